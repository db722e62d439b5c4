#!/usr/bin/env bats
# reco-ingest.bats: reco-ingest on canonical events: golden outputs, rejects, Avro in and out, parser agreement.

load helpers

bats_require_minimum_version 1.5.0

# N events whose Avro records all have the same length, one a line.
gen_events() {
	awk -v n="$1" 'BEGIN {
		for (i = 0; i < n; i++)
			printf "{\"event_id\":\"ev-%05d\",\"ts\":%d,\"user\":\"user-%02d\",\"type\":\"view\",\"item\":\"item-%03d\",\"v\":1}\n",
			    i, 1700000000000 + i, i % 7, i % 13
	}'
}

# Copy a fixture into the test directory, so that messages and rejects
# name it by its short name.
use_fixture() {
	cp "$(fixture "$1")" "$1"
}

# ---- golden outputs ----

@test "golden: a mix of valid and invalid lines" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest --rejects rej.ndjson -o out.ndjson ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	same_bytes out.ndjson "$(fixture ingest-mixed.out.ndjson)"
	same_bytes rej.ndjson "$(fixture ingest-mixed.rejects.ndjson)"
	[[ "$stderr" == *"reco-ingest: ingest-mixed.ndjson:11: invalid JSON"* ]]
	[[ "$stderr" == *"reco-ingest: ingest-mixed.ndjson:15: missing field user"* ]]
}

@test "golden: the same from standard input, named '-'" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest --rejects rej.ndjson - <ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >out.ndjson
	same_bytes out.ndjson "$(fixture ingest-mixed.out.ndjson)"
	sed 's/"file":"ingest-mixed.ndjson"/"file":"-"/' \
		"$(fixture ingest-mixed.rejects.ndjson)" >expected.rej
	same_bytes rej.ndjson expected.rej
	[[ "$stderr" == *"reco-ingest: -:11: invalid JSON"* ]]
}

@test "rejects keep the raw line, as base64 when it is not UTF-8" {
	use_fixture ingest-mixed.ndjson
	reco-ingest -q --rejects rej.ndjson ingest-mixed.ndjson >/dev/null
	# Every rejected line comes back byte for byte.
	for n in $(jq -r .line rej.ndjson); do
		sed -n "${n}p" ingest-mixed.ndjson | tr -d '\n' >want
		kind=$(jq -r "select(.line == $n) | if has(\"raw\") then \"raw\" else \"base64\" end" rej.ndjson)
		if [ "$kind" = raw ]; then
			jq -j "select(.line == $n) | .raw" rej.ndjson >got
		else
			jq -r "select(.line == $n) | .raw_base64" rej.ndjson | base64 -d >got
		fi
		same_bytes got want
	done
	[ "$(jq -r 'select(.raw_base64) | .line' rej.ndjson)" = 14 ]
	# Each reject has its reason, message, file and line.
	[ "$(jq -c 'select((.reason | type) != "string" or (.message | type) != "string"
		or .file != "ingest-mixed.ndjson" or (.line | type) != "number")' rej.ndjson)" = "" ]
}

@test "--stats: in = out + dropped + rejected, with the numbers" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest --stats -q ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	# 31 lines, two of them blank: 29 records, 9 good, 20 rejected.
	[[ "$stderr" == *"reco-ingest: records in 29, out 9, dropped 0, rejected 20 (in = out + dropped + rejected)"* ]]
	[[ "$stderr" == *'records_rejected_total{reason="bad_json"} 7'* ]]
	[[ "$stderr" == *'records_rejected_total{reason="missing_field"} 2'* ]]
	[[ "$stderr" == *'records_rejected_total{reason="unknown_type"} 1'* ]]
	[[ "$stderr" == *'records_rejected_total{reason="missing_item"} 2'* ]]
	[[ "$stderr" == *'records_rejected_total{reason="invalid_event"} 8'* ]]
	[ "${#lines[@]}" -eq 9 ]
}

@test "blank lines are not records" {
	printf '\n  \n\t\r\n\n' >blank.ndjson
	run --separate-stderr reco-ingest --stats blank.ndjson
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[[ "$stderr" == *"records in 0, out 0, dropped 0, rejected 0"* ]]
}

@test "reject messages: the first ten, all with -v, none with -q" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	[ "$(grep -c '^reco-ingest: ingest-mixed.ndjson:[0-9]*: ' <<<"$stderr")" -eq 10 ]
	[[ "$stderr" == *"further rejects are not shown"* ]]
	run --separate-stderr reco-ingest -v ingest-mixed.ndjson
	[ "$(grep -c '^reco-ingest: ingest-mixed.ndjson:[0-9]*: ' <<<"$stderr")" -eq 20 ]
	run --separate-stderr reco-ingest -q ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
}

@test "--max-rejects 0 stops with status 1 at the first reject" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest --max-rejects 0 --rejects rej.ndjson -o out.ndjson ingest-mixed.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"more than 0 rejected records"* ]]
	# The records before the first bad line (line 11) are written.
	head -n 8 "$(fixture ingest-mixed.out.ndjson)" >want
	same_bytes out.ndjson want
	[ "$(nlines rej.ndjson)" -eq 1 ]
	[ "$(jq .line rej.ndjson)" -eq 11 ]
}

@test "--max-rejects N allows N rejects" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest -q --max-rejects 20 ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 9 ]
	# The 20th reject is line 30: the last good line (31) is not reached.
	run --separate-stderr reco-ingest -q --max-rejects 19 ingest-mixed.ndjson
	[ "$status" -eq 1 ]
	[ "${#lines[@]}" -eq 8 ]
	[[ "$stderr" == *"more than 19 rejected records"* ]]
	run --separate-stderr reco-ingest -q --max-rejects -1 ingest-mixed.ndjson
	[ "$status" -eq 2 ]
}

@test "--max-line: longer lines are rejected, cut, and the next line is read" {
	use_fixture ingest-long.ndjson
	run --separate-stderr reco-ingest --max-line 100 --rejects rej.ndjson -o out.ndjson ingest-long.ndjson
	[ "$status" -eq 0 ]
	same_bytes out.ndjson "$(fixture ingest-long.out.ndjson)"
	same_bytes rej.ndjson "$(fixture ingest-long.rejects.ndjson)"
}

@test "--max-line does not depend on how the input arrives" {
	use_fixture ingest-long.ndjson
	reco-ingest -q --max-line 100 ingest-long.ndjson >file.out
	# The same bytes through a pipe, each line in two writes, the first
	# already longer than the limit.
	(
		while IFS= read -r line; do
			printf '%s' "${line:0:150}"
			sleep 0.05
			printf '%s\n' "${line:150}"
		done <ingest-long.ndjson
	) | reco-ingest -q --max-line 100 >pipe.out
	same_bytes file.out pipe.out
	same_bytes file.out "$(fixture ingest-long.out.ndjson)"
}

@test "a line longer than the default limit (1 MiB) is rejected with 1 KiB of it" {
	{
		gen_events 1
		printf '{"event_id":"huge","note":"'
		head -c 1500000 /dev/zero | tr '\0' x
		printf '"}\n'
		gen_events 2 | tail -n 1
	} >huge.ndjson
	run --separate-stderr reco-ingest --rejects rej.ndjson huge.ndjson
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ "${lines[1]}" == *'"ev-00001"'* ]]
	[ "$(jq -r .reason rej.ndjson)" = line_too_long ]
	[ "$(jq .line rej.ndjson)" -eq 2 ]
	[ "$(jq -j .raw rej.ndjson | wc -c)" -eq 1024 ]
}

@test "reco-ingest's output read back gives the same bytes" {
	for f in ingest-mixed.ndjson ingest-numbers.ndjson evcheck-edge.ndjson; do
		reco-ingest -q "$(fixture "$f")" >once
		[ -s once ]
		reco-ingest once >twice
		same_bytes once twice || fail "$f: not a fixed point"
	done
}

@test "numbers survive NDJSON -> Avro -> NDJSON" {
	reco-ingest -q --rejects rej.ndjson "$(fixture ingest-numbers.ndjson)" >want
	# Two of the 19 are negative amounts, rejected.
	[ "$(nlines want)" -eq 17 ]
	[ "$(jq -r .reason rej.ndjson | sort | uniq -c | tr -s ' ')" = " 2 negative" ]
	for codec in null deflate; do
		reco-ingest -O avro --codec "$codec" "$(fixture ingest-numbers.ndjson)" |
			reco-ingest >got
		same_bytes got want
	done
}

@test "-o FILE writes what stdout gets" {
	use_fixture ingest-mixed.ndjson
	reco-ingest -q ingest-mixed.ndjson >stdout.ndjson
	reco-ingest -q -o file.ndjson ingest-mixed.ndjson
	same_bytes stdout.ndjson file.ndjson
}

# ---- Avro ----

@test "NDJSON -> Avro -> NDJSON is byte-identical (codec null)" {
	reco-ingest -O avro --codec null -o out.avro "$(fixture ingest-mixed.out.ndjson)"
	[ "$(head -c 4 out.avro)" = "$(printf 'Obj\001')" ]
	reco-ingest out.avro >back.ndjson
	same_bytes back.ndjson "$(fixture ingest-mixed.out.ndjson)"
}

@test "NDJSON -> Avro -> NDJSON is byte-identical (codec deflate)" {
	reco-ingest -O avro --codec deflate -o out.avro "$(fixture ingest-mixed.out.ndjson)"
	reco-ingest out.avro >back.ndjson
	same_bytes back.ndjson "$(fixture ingest-mixed.out.ndjson)"
	grep -aq deflate out.avro
}

@test "Avro through a pipe is detected on standard input" {
	reco-ingest -O avro "$(fixture ingest-mixed.out.ndjson)" | reco-ingest >back.ndjson
	same_bytes back.ndjson "$(fixture ingest-mixed.out.ndjson)"
}

@test "a large file round-trips through several blocks, both codecs" {
	gen_events 5000 >big.ndjson
	for codec in null deflate; do
		reco-ingest -O avro --codec "$codec" big.ndjson >big.avro
		[ "$(avro_blocks big.avro | wc -l)" -gt 1 ]
		reco-ingest big.avro >back.ndjson
		same_bytes back.ndjson big.ndjson
	done
}

@test "the same input twice gives the same bytes (NDJSON and Avro)" {
	use_fixture ingest-mixed.ndjson
	gen_events 5000 >big.ndjson
	reco-ingest -q --rejects r1 ingest-mixed.ndjson big.ndjson >o1.ndjson
	reco-ingest -q --rejects r2 ingest-mixed.ndjson big.ndjson >o2.ndjson
	same_bytes o1.ndjson o2.ndjson
	same_bytes r1 r2
	for codec in null deflate; do
		reco-ingest -q -O avro --codec "$codec" ingest-mixed.ndjson big.ndjson >a1.avro
		reco-ingest -q -O avro --codec "$codec" ingest-mixed.ndjson big.ndjson >a2.avro
		same_bytes a1.avro a2.avro
		# Avro in, Avro out: the same file again.
		reco-ingest -O avro --codec "$codec" a1.avro >a3.avro
		same_bytes a1.avro a3.avro
	done
}

# avrocat prints unions as {"type": value}: unwrap them and drop nulls.
unwrap_avrocat() {
	jq -S -c 'with_entries(select(.value != null)
		| .value |= (if type == "object" and length == 1
			and (keys[0] | IN("string", "long", "double", "map"))
			then .[keys[0]] else . end))'
}

@test "avrocat (Avro C) reads our Avro and finds the same events" {
	jq -S -c . "$(fixture ingest-mixed.out.ndjson)" >want
	for codec in null deflate; do
		reco-ingest -O avro --codec "$codec" -o out.avro "$(fixture ingest-mixed.out.ndjson)"
		avrocat out.avro >avrocat.out
		unwrap_avrocat <avrocat.out >got
		same_bytes got want
	done
}

@test "a truncated Avro file (codec null) gives every complete record, then status 1" {
	gen_events 5000 >big.ndjson
	reco-ingest -O avro --codec null big.ndjson >big.avro
	size=$(stat -c %s big.avro)
	avro_blocks big.avro >blocks
	[ "$(wc -l <blocks)" -ge 3 ]
	read -r ds1 de1 n1 e1 < <(sed -n 1p blocks)
	read -r ds2 de2 n2 e2 < <(sed -n 2p blocks)
	read -r ds3 de3 n3 e3 < <(sed -n 3p blocks)
	len=$(((de1 - ds1) / n1))
	[ $((len * n1)) -eq $((de1 - ds1)) ]
	# cut at: expected records
	cuts="$((ds1 + 10 * len + 5)):10
$((ds1 + 10 * len)):10
$((ds1 + 1)):0
$((e1 - 1)):$n1
$((e1 + 1)):$n1
$((ds2 + 7 * len - 1)):$((n1 + 6))
$((ds3 + 100 * len + 20)):$((n1 + n2 + 100))
$((de3 - 1)):$((n1 + n2 + n3 - 1))
$((size - 1)):5000"
	for c in $cuts; do
		at=${c%%:*} want=${c##*:}
		head -c "$at" big.avro >cut.avro
		run --separate-stderr reco-ingest cut.avro
		[ "$status" -eq 1 ] || fail "cut at $at: status $status"
		[ "${#lines[@]}" -eq "$want" ] ||
			fail "cut at $at: ${#lines[@]} records, expected $want"
		[[ "$stderr" == *"reco-ingest: cut.avro: "*"truncated"* ]] ||
			fail "cut at $at: message: $stderr"
		if [ "$want" -gt 0 ]; then
			printf '%s\n' "$output" >got
			head -n "$want" big.ndjson >want.ndjson
			same_bytes got want.ndjson
		fi
	done
}

@test "a truncated Avro file (codec deflate) gives the complete blocks, then status 1" {
	gen_events 5000 >big.ndjson
	reco-ingest -O avro --codec deflate big.ndjson >big.avro
	size=$(stat -c %s big.avro)
	avro_blocks big.avro >blocks
	read -r ds1 de1 n1 e1 < <(sed -n 1p blocks)
	read -r ds2 de2 n2 e2 < <(sed -n 2p blocks)
	for c in "$((ds1 + 100)):0" "$((e1 - 1)):0" "$((ds2 + 100)):$n1" \
		"$((size - 1)):$((5000 - $(sed -n '$p' blocks | cut -d' ' -f3)))"; do
		at=${c%%:*} want=${c##*:}
		head -c "$at" big.avro >cut.avro
		run --separate-stderr reco-ingest cut.avro
		[ "$status" -eq 1 ] || fail "cut at $at: status $status"
		[ "${#lines[@]}" -eq "$want" ] ||
			fail "cut at $at: ${#lines[@]} records, expected $want"
		[[ "$stderr" == *"truncated"* ]] || fail "cut at $at: message: $stderr"
	done
}

@test "a file cut inside the Avro header is a clear error" {
	reco-ingest -O avro "$(fixture contract-events.ndjson)" >good.avro
	for at in 4 5 40 500; do
		head -c "$at" good.avro >cut.avro
		run --separate-stderr reco-ingest cut.avro
		[ "$status" -eq 1 ]
		[ -z "$output" ]
		[[ "$stderr" == *"reco-ingest: cut.avro: bad or truncated Avro header"* ]]
	done
}

@test "garbage after the Avro magic is a clear error" {
	printf 'Obj\001garbage garbage garbage\n' >garbage.avro
	run --separate-stderr reco-ingest garbage.avro
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ "$stderr" == *"reco-ingest: garbage.avro: "*"Avro header"* ]]
	# A good header followed by garbage blocks.
	reco-ingest -O avro </dev/null >empty.avro
	{ cat empty.avro; head -c 3000 /dev/zero | tr '\0' '\377'; } >garbage2.avro
	run --separate-stderr reco-ingest garbage2.avro
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ "$stderr" == *"reco-ingest: garbage2.avro: "*"block 1"* ]]
}

@test "a corrupt sync marker is an error" {
	gen_events 100 >e.ndjson
	reco-ingest -O avro e.ndjson >good.avro
	size=$(stat -c %s good.avro)
	{ head -c $((size - 16)) good.avro; printf '0123456789abcdef'; } >bad.avro
	run --separate-stderr reco-ingest bad.avro
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"reco-ingest: bad.avro: "*"sync"* ]]
}

@test "an empty Avro file (a header, no blocks) has no events" {
	reco-ingest -O avro </dev/null >empty.avro
	[ "$(head -c 4 empty.avro)" = "$(printf 'Obj\001')" ]
	run --separate-stderr reco-ingest --stats empty.avro
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[[ "$stderr" == *"records in 0, out 0"* ]]
	avrocat empty.avro >/dev/null
}

@test "an Avro file with an older schema reads with the defaults filled in" {
	avro-old old.avro <"$(fixture contract-events.ndjson)"
	# The reference reader sees the old schema: no v, no qty.
	avrocat old.avro >avrocat.out
	! grep -q '"v"' avrocat.out
	run --separate-stderr reco-ingest old.avro
	[ "$status" -eq 0 ] || fail "status $status: $stderr"
	printf '%s\n' "$output" >got
	same_bytes got "$(fixture old-schema.out.ndjson)"
}

@test "an Avro file with an incompatible schema is a clear error" {
	avro-old --incompatible bad.avro <"$(fixture contract-events.ndjson)"
	use_fixture contract-events.ndjson
	run --separate-stderr reco-ingest bad.avro contract-events.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"reco-ingest: bad.avro: "*"schema"* ]]
	# The next file is still read.
	[ "${#lines[@]}" -eq 4 ]
}

# ---- several inputs ----

@test "several files are read in order, '-' is standard input, Avro and NDJSON mix" {
	gen_events 30 >all.ndjson
	head -n 10 all.ndjson >a.ndjson
	sed -n '11,20p' all.ndjson | reco-ingest -O avro >b.avro
	sed -n '21,25p' all.ndjson >c.ndjson
	sed -n '26,30p' all.ndjson | reco-ingest -O avro --codec deflate >d.avro
	run --separate-stderr reco-ingest --stats a.ndjson b.avro - d.avro <c.ndjson
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >got
	same_bytes got all.ndjson
	[[ "$stderr" == *"records in 30, out 30"* ]]
	# Standard input may be Avro too.
	run reco-ingest c.ndjson - <b.avro
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >got
	{ cat c.ndjson; sed -n '11,20p' all.ndjson; } >want
	same_bytes got want
}

@test "rejects name the file they come from" {
	printf '{"bad":1}\n' >x.ndjson
	printf 'not json\n' >y.ndjson
	reco-ingest -q --rejects rej.ndjson x.ndjson y.ndjson - <x.ndjson
	[ "$(jq -r '"\(.file):\(.line)"' rej.ndjson | tr '\n' ' ')" = "x.ndjson:1 y.ndjson:1 -:1 " ]
}

@test "-I avro on an NDJSON file fails clearly" {
	use_fixture contract-events.ndjson
	run --separate-stderr reco-ingest -I avro contract-events.ndjson
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ "$stderr" == *"reco-ingest: contract-events.ndjson: not an Avro object container file"* ]]
	run --separate-stderr reco-ingest -I bogus contract-events.ndjson
	[ "$status" -eq 2 ]
}

@test "-I ndjson on an Avro file stops with status 1 and a hint" {
	reco-ingest -O avro "$(fixture contract-events.ndjson)" >e.avro
	run --separate-stderr reco-ingest -q -I ndjson --stats e.avro
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ "$stderr" == *"looks like an Avro container file"*"-I avro"* ]]
	[[ "$stderr" == *"out 0"* ]]
}

# ---- output options ----

@test "--key user writes KEY<TAB>JSON" {
	reco-ingest --key user "$(fixture contract-events.ndjson)" >got
	same_bytes got "$(fixture contract-events.key-user.ndjson)"
	# Every line splits at its first tab into the user and the event.
	while IFS=$'\t' read -r key json; do
		[ "$key" = "$(jq -r .user <<<"$json")" ]
	done <got
}

@test "--key: tabs and newlines in a key become spaces" {
	printf '%s\n' '{"event_id":"k1","ts":1,"user":"a\tb\nc","type":"view","item":"i","v":1}' >k.ndjson
	run reco-ingest --key user k.ndjson
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'a b c\t%s' '{"event_id":"k1","ts":1,"user":"a\tb\nc","type":"view","item":"i","v":1}')" ]
}

@test "--key cannot be used with -O avro" {
	run --separate-stderr reco-ingest --key user -O avro </dev/null
	[ "$status" -eq 2 ]
	[ -z "$output" ]
}

@test "--schema prints the JSON Schema and --schema=avro the Avro schema" {
	run reco-ingest --schema
	[ "$status" -eq 0 ]
	jq -e . <<<"$output" >/dev/null
	reco-ingest --schema >got
	same_bytes got "$RECO_ROOT/schema/event.schema.json"
	run reco-ingest --schema=json
	[ "$status" -eq 0 ]
	reco-ingest --schema=avro >got
	same_bytes got "$RECO_ROOT/schema/event.avsc"
	jq -e '.type == "record" and .name == "Event" and .namespace == "reco"' got
	[ "$(jq -r '[.fields[].name] | join(",")' got)" = \
		"event_id,ts,user,type,item,session,qty,price,query,source,attrs,v" ]
	run reco-ingest --schema=xml
	[ "$status" -eq 2 ]
}

@test "--metrics FILE writes Prometheus text with the counters by reason" {
	use_fixture ingest-mixed.ndjson
	run reco-ingest -q --metrics metrics.prom ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	[ -f metrics.prom ]
	grep -qx 'reco_ingest_records_in_total 29' metrics.prom
	grep -qx 'reco_ingest_records_out_total 9' metrics.prom
	grep -qx 'reco_ingest_records_rejected_total{reason="bad_json"} 7' metrics.prom
	grep -qx 'reco_ingest_records_rejected_total{reason="unknown_type"} 1' metrics.prom
	grep -qx 'reco_ingest_records_rejected_total{reason="invalid_event"} 8' metrics.prom
	grep -qx '# TYPE reco_ingest_records_in_total counter' metrics.prom
	grep -q '^# HELP reco_ingest_records_in_total ' metrics.prom
	# Every line is a comment or a sample.
	! grep -Ev '^(# (HELP|TYPE) [a-z_]+ .*|[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9]+)$' metrics.prom
	# No temporary file is left behind.
	[ "$(ls | grep -c 'metrics.prom')" -eq 1 ]
}

@test "an unwritable --rejects file is an I/O error; an unwritable --metrics file is a warning" {
	use_fixture ingest-mixed.ndjson
	run --separate-stderr reco-ingest --rejects no/such/dir/rej ingest-mixed.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"no/such/dir/rej"* ]]
	run --separate-stderr reco-ingest -q --metrics no/such/dir/m.prom ingest-mixed.ndjson
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 9 ]
	[[ "$stderr" == *"no/such/dir/m.prom"* ]]
}

@test "a directory as input is an I/O error" {
	mkdir d
	run --separate-stderr reco-ingest d
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"reco-ingest: d: "* ]]
}

# ---- the two NDJSON parsers agree ----

@test "evcheck: the lean and the jansson parser agree on every fixture line" {
	# (evcheck-nul.ndjson has a test of its own.)
	run --separate-stderr evcheck $(ls "$RECO_ROOT"/tests/fixtures/*.ndjson | grep -v evcheck-nul)
	[ "$status" -eq 0 ] || fail "$output"
	[[ "$stderr" == *" 0 disagreements"* ]]
	[[ "$stderr" != *" 0 accepted by both"* ]]
}

@test "golden: lines at the edge of the canonical form (escapes, UTF-8, number forms, key order, extra fields)" {
	use_fixture canonical-edge.ndjson
	run --separate-stderr reco-ingest --rejects rej.ndjson -o out.ndjson canonical-edge.ndjson
	[ "$status" -eq 0 ]
	same_bytes out.ndjson "$(fixture canonical-edge.out.ndjson)"
	same_bytes rej.ndjson "$(fixture canonical-edge.rejects.ndjson)"
	[[ "$stderr" == *"reco-ingest: canonical-edge.ndjson:11: invalid JSON"* ]]
	[[ "$stderr" == *"reco-ingest: canonical-edge.ndjson:26: timestamp out of range -1"* ]]
	[ "$(jq -r 'select(.line == 75 or .line == 76 or .line == 81) | .message' rej.ndjson | sort -u)" = \
		"invalid JSON: duplicate object key" ]
	# Read back, the output comes out as it went in; all its lines but
	# five take the short way (two with escapes, one with 20 attributes,
	# one with a long escaped string, one with a 19-digit qty).
	run --separate-stderr evcheck out.ndjson
	[ "$status" -eq 0 ] || fail "$output"
	[[ "$stderr" == *"46 accepted by both, 0 rejected by both (0 classed differently), 41 canonical, 0 disagreements"* ]]
	reco-ingest out.ndjson | cmp - out.ndjson
}

@test "evcheck: the canonical short way takes only lines that the full parse writes back as they are" {
	# evcheck fails on a line the scan takes if the full parse or jansson
	# rejects it, or writes its event as other bytes.
	run --separate-stderr evcheck "$(fixture canonical-edge.ndjson)"
	[ "$status" -eq 0 ] || fail "$output"
	[[ "$stderr" == *" 15 canonical, 0 disagreements"* ]]
	reco-gen --seed 3 --events 2000 --dup-rate 0.05 --ooo-rate 0.05 --bot-users 0.1 \
		--malformed-rate 0.05 >gen.ndjson
	run --separate-stderr evcheck --mutate 5 --rounds 10 gen.ndjson
	[ "$status" -eq 0 ] || fail "$(head -n 40 <<<"$output")"
	[[ "$stderr" == *" 0 disagreements"* ]]
	[[ "$stderr" != *" 0 canonical"* ]]
}

@test "evcheck: a NUL byte after a number is rejected by both parsers" {
	run --separate-stderr evcheck "$(fixture evcheck-nul.ndjson)"
	[ "$status" -eq 0 ] || fail "$output"
	run evcheck -p "$(fixture evcheck-nul.ndjson)"
	[ "$(grep -c '^reject ' <<<"$output")" -eq 3 ]
}

@test "evcheck: the parsers agree on thousands of corrupted lines" {
	for seed in 1 2 3; do
		run --separate-stderr evcheck --mutate "$seed" --rounds 40 \
			"$(fixture ingest-mixed.ndjson)" "$(fixture contract-events.ndjson)" \
			"$(fixture evcheck-edge.ndjson)" "$(fixture ingest-numbers.ndjson)" \
			"$(fixture canonical-edge.ndjson)"
		[ "$status" -eq 0 ] || fail "$(head -n 40 <<<"$output")"
		[[ "$stderr" == *" 0 disagreements"* ]]
	done
}

@test "evcheck -p prints what the lean parser makes of each line" {
	run --separate-stderr evcheck -p "$(fixture ingest-mixed.ndjson)"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 31 ]
	[ "$stderr" = "evcheck: 31 lines: 9 ok, 22 rejected" ]
	# The accepted lines are reco-ingest's output.
	grep '^ok ' <<<"$output" | cut -c4- >got
	same_bytes got "$(fixture ingest-mixed.out.ndjson)"
}

@test "evcheck counts the lines both parsers accept and reject" {
	printf '%s\n' '{"event_id":"a","ts":1,"user":"u","type":"view","item":"i","v":1}' '{' >t.ndjson
	run --separate-stderr evcheck t.ndjson
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"2 checked: 1 accepted by both, 1 rejected by both"* ]]
}

# Live use: with the input still open and idle, everything read so far must
# already be in the output (NDJSON lines, or a complete Avro block).
live_flush() {
	local ev='{"event_id":"e1","ts":1569888000000,"user":"u","type":"view","item":"i","v":1}'
	mkfifo in.fifo
	reco-ingest "$@" < in.fifo > out.live &
	local pid=$! i
	exec 8> in.fifo
	printf '%s\n' "$ev" >&8
	for i in $(seq 100); do
		[ "$(reco-ingest out.live 2>/dev/null | wc -l)" -eq 1 ] && break
		sleep 0.05
	done
	local got
	got=$(reco-ingest out.live 2>/dev/null)
	exec 8>&-
	wait "$pid"
	[ "$got" = "$ev" ]
}

@test "output is flushed when the input would block (NDJSON)" {
	live_flush
}

@test "output is flushed when the input would block (Avro: the block is closed)" {
	live_flush -O avro
}
