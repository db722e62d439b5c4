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

@test "examples/backfill-cron.sh: a generated day, sharded over JOBS pipelines, equals one unsharded run" {
	run --separate-stderr env JOBS=3 EVENTS=20000 USERS=400 sh "$RECO_ROOT/examples/backfill-cron.sh"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" "$stderr" >&2; false; }
	no_sanitizer_report "$stderr"
	[[ "$output" == *"generating a day"* ]]
	[[ "$output" == *"24 log file(s), 3 shard(s)"* ]]
	for i in 0 1 2; do
		[[ "$output" == *"shard $i/3: "*" applied, "*" profiles"* ]]
	done
	[[ "$output" == *"check: the 3 shard stores hold the same "*" profiles as one unsharded run, byte for byte"* ]]
	[[ "$output" == *"backfill-cron: ok" ]]
}

@test "examples/backfill-cron.sh on given logs: the stores it keeps are the unsharded store; a second run applies nothing" {
	local i
	reco-gen --seed 4 --events 6000 --users 300 --dup-rate 0.02 --ooo-rate 0.02 >day.ndjson
	split -n l/3 day.ndjson part-
	for f in part-*; do mv "$f" "$f.ndjson"; done
	OUT=$PWD/out JOBS=2 sh "$RECO_ROOT/examples/backfill-cron.sh" part-*.ndjson >out1 2>err1 ||
		{ cat out1 err1 >&2; false; }
	grep -q '^backfill: 3 log file(s), 2 shard(s)' out1
	grep -q '^backfill-cron: ok$' out1
	# The test's own unsharded pipeline, and the shard stores it kept.
	reco-ingest --from json part-*.ndjson | reco-clean | reco-enrich |
	    reco-profile --emit none --store ref.state
	reco-profile --dump --store ref.state | sort >want
	[ "$(wc -l <want)" -gt 250 ]
	for i in 0 1; do reco-profile --dump --store "out/profiles.$i-of-2.state"; done | sort >got
	same_bytes want got
	# The shards split the users between them.
	for i in 0 1; do
		reco-profile --dump --store "out/profiles.$i-of-2.state" >"s$i.dump"
		[ "$(wc -l <"s$i.dump")" -gt 50 ]
	done
	# The same logs again: every event is a replay, the stores unchanged.
	OUT=$PWD/out JOBS=2 sh "$RECO_ROOT/examples/backfill-cron.sh" part-*.ndjson >out2 2>err2 ||
		{ cat out2 err2 >&2; false; }
	grep -q 'shard 0/2: .* 0 applied' out2
	grep -q 'shard 1/2: .* 0 applied' out2
	grep -q '^backfill-cron: ok$' out2
	for i in 0 1; do reco-profile --dump --store "out/profiles.$i-of-2.state"; done | sort >got
	same_bytes want got
}

@test "examples/backfill-cron.sh fails loudly when a shard fails" {
	reco-gen --seed 4 --events 3000 --users 200 >good.ndjson
	# Garbage past --max-rejects: the shard that reports rejects (0) stops.
	{ head -1000 good.ndjson; yes 'not json {' | head -50; } >bad.ndjson
	run --separate-stderr env MAX_REJECTS=10 JOBS=2 sh "$RECO_ROOT/examples/backfill-cron.sh" good.ndjson bad.ndjson
	[ "$status" -eq 1 ]
	no_sanitizer_report "$stderr"
	[[ "$stderr" == *"shard 0/2: reco-ingest failed (exit status 1)"* ]]
	[[ "$stderr" == *"more than 10 rejected records"* ]]
	[[ "$stderr" == *"FAILED"* ]]
	[[ "$stderr" != *"shard 1/2: reco-"*failed* ]]
	[[ "$output" != *"backfill-cron: ok"* ]]
	[[ "$output" != *"check:"* ]]
	# A log that cannot be read stops it before anything runs.
	run --separate-stderr env JOBS=2 sh "$RECO_ROOT/examples/backfill-cron.sh" good.ndjson missing.ndjson
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"missing.ndjson"* ]]
	run --separate-stderr env JOBS=x sh "$RECO_ROOT/examples/backfill-cron.sh" good.ndjson
	[ "$status" -eq 2 ]
}

@test "examples/replay-incident.sh: the replayed hour gives the live profiles and answers byte for byte" {
	run --separate-stderr env HOURS=3 INCIDENT=1 EVENTS=12000 USERS=300 sh "$RECO_ROOT/examples/replay-incident.sh"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" "$stderr" >&2; false; }
	no_sanitizer_report "$stderr"
	[[ "$output" == *"replay: profiles: identical to the live system's"* ]]
	[[ "$output" == *"replay: answers: identical to the live system's (6 lines"* ]]
	[[ "$output" == *'"items":[{"item":'* ]]
	[[ "$output" == *"replay-incident: ok" ]]
}

@test "examples/replay-incident.sh: what it compares is real, and a broken replay fails" {
	export WORK=$PWD/w HOURS=4 INCIDENT=2 EVENTS=12000 USERS=300
	sh "$RECO_ROOT/examples/replay-incident.sh" live >live.out 2>live.err || { cat live.out live.err >&2; false; }
	[ "$(ls w/archive)" = "$(printf 'events-2019-10-01T%s.avro\n' 00 01 02 03)" ]
	[ "$(head -c 4 w/archive/events-2019-10-01T02.avro)" = "$(printf 'Obj\001')" ]
	# The recorded profiles are the live store's at the end of hour 02:
	# not the state before it, nor the state now.
	reco-profile --dump --store w/live/checkpoints/03/profiles.state >end.dump
	reco-profile --dump --store w/live/checkpoints/02/profiles.state >start.dump
	reco-profile --dump --store w/live/state/profiles.state >now.dump
	same_bytes w/live/incident/profiles.ndjson end.dump
	! cmp -s start.dump end.dump
	! cmp -s now.dump end.dump
	[ "$(grep -c '"items":\[{' w/live/incident/answers.ndjson)" -ge 5 ]
	sh "$RECO_ROOT/examples/replay-incident.sh" replay >replay.out 2>replay.err || { cat replay.out replay.err >&2; false; }
	grep -q '^replay-incident: ok$' replay.out
	same_bytes w/live/incident/answers.ndjson w/replay/incident/answers.ndjson
	# Replayed from the wrong state (the backup of the hour before, which
	# lacks hour 01): a mismatch, status 1.
	cp -r w/live/checkpoints/02 saved
	cp w/live/checkpoints/01/* w/live/checkpoints/02/
	run --separate-stderr sh "$RECO_ROOT/examples/replay-incident.sh" replay
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"MISMATCH: the replayed profiles differ"* ]]
	[[ "$stderr" == *"MISMATCH: the replayed answers differ"* ]]
	[[ "$output" != *"replay-incident: ok"* ]]
	rm -r w/live/checkpoints/02 && mv saved w/live/checkpoints/02
	sh "$RECO_ROOT/examples/replay-incident.sh" replay | grep -q '^replay-incident: ok$'
	# A damaged archive: the replay stops with the failing stage named.
	size=$(wc -c <w/archive/events-2019-10-01T02.avro)
	head -c $((size * 2 / 3)) w/archive/events-2019-10-01T02.avro >cut.avro
	mv cut.avro w/archive/events-2019-10-01T02.avro
	run --separate-stderr sh "$RECO_ROOT/examples/replay-incident.sh" replay
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"events-2019-10-01T02.avro: reco-clean failed (exit status 1)"* ]]
	[[ "$output" != *"replay-incident: ok"* ]]
}
