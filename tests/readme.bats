#!/usr/bin/env bats
# readme.bats: README.md's shell blocks run and print exactly what the README shows; the checker finds a difference and keeps its rules.

load helpers

bats_require_minimum_version 1.5.0

CHECK="$BATS_TEST_DIRNAME/tools/readme-check.py"

# The test's directory as the README's tour finds it: build/bin holds the
# tools (the tour's first block puts it on PATH).
setup() {
	common_setup
	mkdir build
	ln -s "$RECO_BIN" build/bin
}

@test "README.md: every shell block prints what the README shows" {
	run python3 "$CHECK" --timeout 60 "$RECO_ROOT/README.md"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
	[[ "$output" == *"README.md: "*" commands in "*" blocks, 0 differ"* ]]
	# The blocks that do not run are few, and each says why.
	[[ "$output" == *"skip (installs packages as root; builds the tree)"* ]]
	[ "$(grep -c '^  README.md:[0-9]*: skip (.' <<<"$output")" -le 5 ]
}

@test "readme-check fails on an output line the tools do not print, naming the line, the command and the difference" {
	local want='{"events":22,"counts":{"view":22}}' n
	n=$(grep -n -F -x "$want" "$RECO_ROOT/README.md" | cut -d: -f1)
	[ -n "$n" ] || fail "README.md no longer shows $want"
	sed "${n}s/\"events\":22/\"events\":23/" "$RECO_ROOT/README.md" >README.md
	run python3 "$CHECK" --timeout 60 README.md
	[ "$status" -eq 1 ] || { printf '%s\n' "$output" >&2; false; }
	[[ "$output" == *"README.md:$((n - 1)): in the block at line "* ]]
	[[ "$output" == *"\$ reco-profile --get u1 --store profiles.state | jq -c '{events, counts}'"* ]]
	[[ "$output" == *$'\n-{"events":23,"counts":{"view":22}}\n+{"events":22,"counts":{"view":22}}\n'* ]]
	[[ "$output" == *", 1 differ "* ]]
}

@test "readme-check: placeholders, skips, exit statuses, missing newlines, background jobs stopped" {
	cat >ok.md <<'MD'
# ok

<!-- readme-test: skip (a reason) -->
```sh
$ false
```

<!-- readme-test: file in.txt -->
```
one
two
```

```sh
$ wc -l <in.txt
2
$ echo "took 0.25 s, 812345 records/s" >&2
took ... s, ... records/s
$ printf 'a b\n' |
  tr ' ' '\n'
a
b
$ sleep 30 &
$ echo "$(( 6 * 7 ))"
42
```
MD
	SECONDS=0
	run python3 "$CHECK" ok.md
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
	[[ "$output" == *"ok.md: 5 commands in 1 blocks, 0 differ"* ]]
	[[ "$output" == *"1 blocks skipped:"*"ok.md:4: skip (a reason)"* ]]
	# The background sleep was stopped, not waited for.
	[ "$SECONDS" -lt 20 ]

	cat >bad.md <<'MD'
```sh
$ sh -c 'echo out; exit 3'
out
$ printf 'no newline'
no newline
$ echo 'took 0.25 s'
took ... ms
```
MD
	run python3 "$CHECK" bad.md
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad.md:2: in the block at line 1:"*"exit status 3"* ]]
	[[ "$output" == *"bad.md:4: "*"does not end in a newline"* ]]
	[[ "$output" == *"bad.md:6: "*"-took ... ms"*"+took 0.25 s"* ]]
	[[ "$output" == *", 3 differ "* ]]
}

@test "readme-check refuses a README that breaks the convention" {
	printf '<!-- readme-test: skip -->\n```sh\n$ true\n```\n' >a.md
	run python3 "$CHECK" a.md
	[ "$status" -eq 2 ]
	[[ "$output" == *"a.md:1: unknown directive"* ]]
	printf '```bash\n$ true\n```\n' >b.md
	run python3 "$CHECK" b.md
	[ "$status" -eq 2 ]
	[[ "$output" == *"a \"bash\" block"* ]]
	printf '```\n$ true\n```\n' >c.md
	run python3 "$CHECK" c.md
	[ "$status" -eq 2 ]
	[[ "$output" == *"c.md:2: a command in a block that is not \"sh\""* ]]
	printf '```sh\nls\n```\n' >d.md
	run python3 "$CHECK" d.md
	[ "$status" -eq 2 ]
	[[ "$output" == *"d.md:2: output before any command"* ]]
}
