#!/usr/bin/env bats
# examples.bats: the pipelines in examples/ run as they are documented.

load helpers

bats_require_minimum_version 1.5.0

@test "examples/quickstart.sh runs from raw events to recommendations" {
	run --separate-stderr sh "$RECO_ROOT/examples/quickstart.sh"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" "$stderr" >&2; false; }
	no_sanitizer_report "$stderr"
	[[ "$output" == *"quickstart: ok"* ]]
	# It ends in recommendations with reasons, for a known and a cold user.
	[[ "$output" == *'"user":"u290","variant":"A"'*'"reason":"'* ]]
	[[ "$output" == *'"user":"new-visitor"'*'"cold":true'* ]]
}
