#!/usr/bin/env bats
# reco-ingest-sources.bats: reco-ingest on raw sources: CSV, JSON, access logs and kcat envelopes.
# shellcheck disable=SC2054,SC2143,SC2154

load helpers

bats_require_minimum_version 1.5.0

# The mapping of the REES46 store export.
REES46_MAP=(--map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session
	--type-map cart=add_to_cart)

# Copy the source fixtures into the test directory, so that sources and
# messages name the files by their short names.
use_sources() {
	cp "$RECO_ROOT"/tests/fixtures/sources/* .
}

# Run reco-ingest with --stats, the events to out.ndjson and the rejects to
# rej.ndjson; $status, $output and $stderr are set as by run. Then check
# that every record read is in exactly one place: the summary says
# in = out + dropped + rejected, its numbers add up, the counters by reason
# add up to them, and out.ndjson and rej.ndjson hold out and rejected lines.
# The numbers are left in IN, OUT, DROPPED and REJECTED.
ingest() {
	rm -f out.ndjson rej.ndjson
	run --separate-stderr reco-ingest --stats -o out.ndjson --rejects rej.ndjson "$@"
	no_sanitizer_report "$stderr" || return 1
	accounted out.ndjson rej.ndjson
}

# Check the --stats summary in $stderr against the output file $1 and the
# rejects file $2 (either may be "-" to skip it).
accounted() {
	local re='^reco-ingest: records in ([0-9]+), out ([0-9]+), dropped ([0-9]+), rejected ([0-9]+) \(in = out \+ dropped \+ rejected\)$'
	local line sum_d sum_r
	line=$(printf '%s\n' "$stderr" | grep -E "$re") ||
		{ fail "no --stats summary line in: $stderr"; return 1; }
	[[ $line =~ $re ]]
	IN=${BASH_REMATCH[1]} OUT=${BASH_REMATCH[2]}
	DROPPED=${BASH_REMATCH[3]} REJECTED=${BASH_REMATCH[4]}
	((IN == OUT + DROPPED + REJECTED)) ||
		{ fail "in $IN != out $OUT + dropped $DROPPED + rejected $REJECTED"; return 1; }
	sum_d=$(printf '%s\n' "$stderr" | awk '/records_dropped_total\{/ { s += $NF } END { print s + 0 }')
	sum_r=$(printf '%s\n' "$stderr" | awk '/records_rejected_total\{/ { s += $NF } END { print s + 0 }')
	[ "$sum_d" -eq "$DROPPED" ] ||
		{ fail "dropped $DROPPED, but the counters by reason add up to $sum_d"; return 1; }
	[ "$sum_r" -eq "$REJECTED" ] ||
		{ fail "rejected $REJECTED, but the counters by reason add up to $sum_r"; return 1; }
	if [ "$1" != - ] && [ "$(nlines "$1")" -ne "$OUT" ]; then
		fail "out $OUT, but $1 has $(nlines "$1") lines"
		return 1
	fi
	if [ "$2" != - ] && [ "$(nlines "$2")" -ne "$REJECTED" ]; then
		fail "rejected $REJECTED, but $2 has $(nlines "$2") lines"
		return 1
	fi
}

# Check the numbers of the last summary: in, out, dropped, rejected.
counts() {
	[ "$IN $OUT $DROPPED $REJECTED" = "$1 $2 $3 $4" ] ||
		fail "records in $IN, out $OUT, dropped $DROPPED, rejected $REJECTED; expected $1 $2 $3 $4"
}

# Check that the --stats summary in $stderr has the counter line $1 (such as
# 'records_rejected_total{reason="bad_csv"} 6').
has_stat() {
	printf '%s\n' "$stderr" | grep -qxF "reco-ingest:   $1" ||
		fail "no \"$1\" in: $stderr"
}

# Print "LINE REASON" for each reject of rej.ndjson.
reject_lines() {
	jq -r '"\(.line) \(.reason)"' rej.ndjson
}

# ---- CSV ----

@test "csv: a REES46-shaped store export (golden)" {
	use_sources
	ingest --from csv "${REES46_MAP[@]}" --keep category_code,brand rees46.csv
	[ "$status" -eq 0 ]
	counts 11 11 0 0
	same_bytes out.ndjson rees46.out.ndjson
	# price fills price by its name; category_id is neither mapped nor kept.
	has_stat 'schema_drift_total{field="category_id",change="appeared"} 11'
	[ "$(jq -r .type out.ndjson | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')" = \
		"add_to_cart=3 purchase=1 remove_from_cart=1 view=6 " ]
}

@test "csv: an exact duplicate row gets its original's event_id, other content another id" {
	use_sources
	ingest --from csv "${REES46_MAP[@]}" rees46.csv
	[ "$status" -eq 0 ]
	# Lines 8 and 9 are the same bytes; all other rows differ.
	[ "$(jq -r 'select(.source == "file:rees46.csv:8") | .event_id' out.ndjson)" = \
		"$(jq -r 'select(.source == "file:rees46.csv:9") | .event_id' out.ndjson)" ]
	[ "$(jq -r .event_id out.ndjson | sort -u | wc -l)" -eq 10 ]
	[ -z "$(jq -r .event_id out.ndjson | grep -vxE '[0-9a-f]{16}')" ]
	id=$(jq -r 'select(.source == "file:rees46.csv:8") | .event_id' out.ndjson)
	# The id depends on the content, not on the position.
	{ head -1 rees46.csv; sed -n 8p rees46.csv; } >alone.csv
	reco-ingest -q --from csv "${REES46_MAP[@]}" alone.csv >alone.ndjson
	[ "$(jq -r .event_id alone.ndjson)" = "$id" ]
	# One byte more (a price of 1081.980) and the id is another.
	{ head -1 rees46.csv; sed -n 8p rees46.csv | sed 's/1081\.98/1081.980/'; } >changed.csv
	reco-ingest -q --from csv "${REES46_MAP[@]}" changed.csv >changed.ndjson
	[ "$(jq -r .price changed.ndjson)" = 1081.98 ]
	[ "$(jq -r .event_id changed.ndjson)" != "$id" ]
}

@test "csv: quoted delimiters, doubled quotes and newlines; a record is at its first line (golden)" {
	use_sources
	ingest --from csv --keep note,brand quoted.csv
	[ "$status" -eq 0 ]
	# 15 lines: a header, 7 records (two over three lines), 3 blank lines.
	counts 7 7 0 0
	same_bytes out.ndjson quoted.out.ndjson
	[ "$(jq -r '.source' out.ndjson | tr '\n' ' ')" = \
		"file:quoted.csv:2 file:quoted.csv:3 file:quoted.csv:5 file:quoted.csv:8 file:quoted.csv:11 file:quoted.csv:12 file:quoted.csv:15 " ]
	[ "$(jq -r 'select(.user == "u3") | .attrs.note' out.ndjson)" = \
		"$(printf 'line one\nline two, still quoted\nline three')" ]
	# A blank line inside quotes is data.
	[ "$(jq -r 'select(.user == "u6") | .attrs.note' out.ndjson)" = "$(printf 'para one\n\npara two')" ]
	[ "$(jq -r 'select(.user == "u2") | .attrs.brand' out.ndjson)" = 'Smith, "Jr."' ]
	[ "$(jq -r 'select(.user == "u4") | .item' out.ndjson)" = 'i,4' ]
}

@test "csv: blank lines are skipped and not counted" {
	printf 'user,ts,type,item\n\n\nu1,1569888000,view,i1\n\n\r\n\n' >blank.csv
	ingest --from csv blank.csv
	[ "$status" -eq 0 ]
	counts 1 1 0 0
	[ "$(jq -r .source out.ndjson)" = file:blank.csv:4 ]
	printf '\n\nuser,ts,type,item\n\n' >only-header.csv
	ingest --from csv only-header.csv
	[ "$status" -eq 0 ]
	counts 0 0 0 0
}

@test "csv: CRLF line endings give the same events, fields and line numbers" {
	use_sources
	sed 's/$/\r/' quoted.csv >crlf.csv
	ingest --from csv --keep note,brand crlf.csv
	[ "$status" -eq 0 ]
	counts 7 7 0 0
	jq -c 'del(.event_id)' out.ndjson >got
	jq -c 'del(.event_id) | .source |= sub("quoted"; "crlf")' quoted.out.ndjson >want
	same_bytes got want
	# Malformed CRLF records are rejected at the same lines.
	sed 's/$/\r/' bad.csv >bad-crlf.csv
	ingest --from csv bad-crlf.csv
	[ "$status" -eq 0 ]
	counts 11 5 0 6
	[ "$(jq -r .line rej.ndjson | tr '\n' ' ')" = "3 5 6 9 11 15 " ]
	jq -c 'del(.event_id) | .source |= sub("bad"; "bad-crlf")' bad.out.ndjson | head -5 >want
	jq -c 'del(.event_id)' out.ndjson >got
	same_bytes got want
}

@test "csv: a CRLF record gets the event_id of the same LF record, as JSON lines and access logs do" {
	use_sources
	sed 's/$/\r/' rees46.csv >crlf.csv
	reco-ingest -q --from csv "${REES46_MAP[@]}" --no-source rees46.csv >lf.ndjson
	reco-ingest -q --from csv "${REES46_MAP[@]}" --no-source crlf.csv >crlf.ndjson
	# JSON lines and access logs leave the CR out of the record's bytes.
	sed 's/$/\r/' access.log >access-crlf.log
	reco-ingest -q --from access-log --no-source access.log >a1.ndjson
	reco-ingest -q --from access-log --no-source access-crlf.log >a2.ndjson
	same_bytes a1.ndjson a2.ndjson
	same_bytes lf.ndjson crlf.ndjson
}

@test "csv: --delimiter ';' and tab, --quote and --columns read the same events" {
	use_sources
	base=(--from csv --map event_id=id --keep note --no-source)
	ingest "${base[@]}" delims.csv
	[ "$status" -eq 0 ]
	counts 5 5 0 0
	same_bytes out.ndjson delims.out.ndjson
	ingest "${base[@]}" --delimiter ';' delims.semi.csv
	[ "$status" -eq 0 ]
	same_bytes out.ndjson delims.out.ndjson
	ingest "${base[@]}" --delimiter tab delims.tsv
	[ "$status" -eq 0 ]
	same_bytes out.ndjson delims.out.ndjson
	ingest "${base[@]}" --delimiter '\t' delims.tsv
	[ "$status" -eq 0 ]
	same_bytes out.ndjson delims.out.ndjson
	ingest "${base[@]}" --quote "'" delims.squote.csv
	[ "$status" -eq 0 ]
	same_bytes out.ndjson delims.out.ndjson
	ingest "${base[@]}" --columns id,user,ts,type,item,note delims.noheader.csv
	[ "$status" -eq 0 ]
	counts 5 5 0 0
	same_bytes out.ndjson delims.out.ndjson
	# The semicolon file read with commas: one column, so records of two
	# fields or with quotes inside a field are bad, and one without a user.
	ingest "${base[@]}" delims.semi.csv
	[ "$status" -eq 0 ]
	counts 6 0 0 6
	[ "$(reject_lines | tr '\n' ' ')" = \
		"2 bad_csv 3 bad_csv 4 missing_field 5 bad_csv 6 bad_csv 7 bad_csv " ]
	[[ "$stderr" == *'reco-ingest: delims.semi.csv: column "note" of --keep is not in the header'* ]]
	run --separate-stderr reco-ingest --from csv --delimiter ';;' delims.semi.csv
	[ "$status" -eq 2 ]
}

@test "csv: --columns: no header row, and records counted from line 1" {
	use_sources
	ingest --from csv --map event_id=id --columns id,user,ts,type,item,note delims.noheader.csv
	[ "$status" -eq 0 ]
	[ "$(jq -r .source out.ndjson | tr '\n' ' ')" = \
		"file:delims.noheader.csv:1 file:delims.noheader.csv:2 file:delims.noheader.csv:3 file:delims.noheader.csv:4 file:delims.noheader.csv:5 " ]
	# A header row read as data is a bad record, not a header.
	ingest --from csv --map event_id=id --columns id,user,ts,type,item,note delims.csv
	[ "$status" -eq 0 ]
	counts 6 5 0 1
	[ "$(reject_lines)" = "1 bad_timestamp" ]
}

@test "csv: malformed records are bad_csv at their first line, and the next good record comes out" {
	use_sources
	ingest --from csv bad.csv good.csv
	[ "$status" -eq 0 ]
	counts 12 6 0 6
	same_bytes out.ndjson bad.out.ndjson
	same_bytes rej.ndjson bad.rejects.ndjson
	has_stat 'records_rejected_total{reason="bad_csv"} 6'
	[[ "$stderr" == *"reco-ingest: bad.csv:3: expected 4 fields, got 3"* ]]
	[[ "$stderr" == *"reco-ingest: bad.csv:5: expected 4 fields, got 5"* ]]
	[[ "$stderr" == *"reco-ingest: bad.csv:6: malformed CSV: misplaced quote"* ]]
	[[ "$stderr" == *"reco-ingest: bad.csv:9: malformed CSV: misplaced quote"* ]]
	[[ "$stderr" == *"reco-ingest: bad.csv:11: expected 4 fields, got 5"* ]]
	[[ "$stderr" == *"reco-ingest: bad.csv:15: unterminated quoted field at end of file"* ]]
	# The unterminated quote ends with its file: good.csv starts afresh.
	[ "$(jq -r .source out.ndjson | tail -1)" = file:good.csv:2 ]
}

@test "csv: a quote error on the second line of a record is reported at its first line" {
	printf 'user,ts,type,item\nu1,"15698\n88000"x,view,i1\nu2,1569888001,view,i2\n' >m.csv
	ingest --from csv m.csv
	[ "$status" -eq 0 ]
	counts 2 1 0 1
	[ "$(reject_lines)" = "2 bad_csv" ]
	[[ "$stderr" == *"reco-ingest: m.csv:2: malformed CSV: misplaced quote"* ]]
	[ "$(jq -r .source out.ndjson)" = file:m.csv:4 ]
	[ "$(jq -r .raw rej.ndjson)" = "$(printf 'u1,"15698\n88000"x,view,i1')" ]
}

@test "csv: an unterminated quote at the end of a file without a newline" {
	printf 'user,ts,type,item\nu1,1569888000,view,i1\nu2,1569888001,view,"i2' >noeol.csv
	printf 'user,ts,type,item\nu3,1569888002,view,i3\n' >next.csv
	ingest --from csv noeol.csv next.csv
	[ "$status" -eq 0 ]
	counts 3 2 0 1
	[ "$(reject_lines)" = "3 bad_csv" ]
	[ "$(jq -r .raw rej.ndjson)" = 'u2,1569888001,view,"i2' ]
	[ "$(jq -r .source out.ndjson | tr '\n' ' ')" = "file:noeol.csv:2 file:next.csv:2 " ]
}

@test "csv: a header that cannot be parsed stops with status 1" {
	printf 'us"er,ts,type,item\nu1,1569888000,view,i1\n' >h.csv
	run --separate-stderr reco-ingest --from csv h.csv
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	[[ "$stderr" == *"reco-ingest: h.csv:1: header"* ]]
}

@test "csv: a header with an unterminated quote stops with status 1" {
	printf 'user,"ts,type,item\nu1,1569888000,view,i1\n' >h.csv
	run --separate-stderr reco-ingest --from csv h.csv
	[ -z "$output" ]
	[ "$status" -eq 1 ]
}

@test "csv: a mapped column missing from the header is disappeared, extra columns appeared" {
	use_sources
	ingest --from csv "${REES46_MAP[@]}" --map qty=quantity rees46.csv
	[ "$status" -eq 0 ]
	counts 11 11 0 0
	has_stat 'schema_drift_total{field="quantity",change="disappeared"} 11'
	has_stat 'schema_drift_total{field="category_id",change="appeared"} 11'
	has_stat 'schema_drift_total{field="category_code",change="appeared"} 11'
	has_stat 'schema_drift_total{field="brand",change="appeared"} 11'
	[ "$(printf '%s\n' "$stderr" | grep -c schema_drift_total)" -eq 4 ]
	# The next export renames user_id: its records have no user.
	sed '1s/user_id/visitor_id/' rees46.csv >renamed.csv
	ingest --from csv "${REES46_MAP[@]}" --keep category_id,category_code,brand rees46.csv renamed.csv
	[ "$status" -eq 0 ]
	counts 22 11 0 11
	has_stat 'schema_drift_total{field="user_id",change="disappeared"} 11'
	has_stat 'schema_drift_total{field="visitor_id",change="appeared"} 11'
	has_stat 'records_rejected_total{reason="missing_field"} 11'
	[ "$(jq -r 'select(.file != "renamed.csv" or .reason != "missing_field") | .line' rej.ndjson)" = "" ]
}

@test "csv: --strict rejects records with unexpected columns (unexpected_field)" {
	use_sources
	ingest --from csv "${REES46_MAP[@]}" --keep category_code,brand --strict rees46.csv
	[ "$status" -eq 0 ]
	counts 11 0 0 11
	has_stat 'records_rejected_total{reason="unexpected_field"} 11'
	[ "$(jq -r .raw rej.ndjson)" = "$(tail -n +2 rees46.csv)" ]
	ingest --from csv "${REES46_MAP[@]}" --keep category_id,category_code,brand --strict rees46.csv
	[ "$status" -eq 0 ]
	counts 11 11 0 0
	ingest --from csv "${REES46_MAP[@]}" --keep '*' --strict rees46.csv
	[ "$status" -eq 0 ]
	counts 11 11 0 0
	[ "$(jq -r 'select(.attrs.category_id == null) | .source' out.ndjson)" = "" ]
}

@test "csv: --ts-format auto: epochs by magnitude, ISO 8601 with offsets and fractions" {
	use_sources
	ingest --from csv --map event_id=id ts-auto.csv
	[ "$status" -eq 0 ]
	counts 28 20 0 8
	jq -r '[.event_id, .ts] | @tsv' out.ndjson >got
	same_bytes got ts-auto.expected
	[ "$(jq -r '"\(.line) \(.reason)"' rej.ndjson | sort -u | tr '\n' ' ')" = \
		"22 bad_timestamp 23 bad_timestamp 24 bad_timestamp 25 bad_timestamp 26 bad_timestamp 27 bad_timestamp 28 bad_timestamp 29 bad_timestamp " ]
	[[ "$stderr" == *'reco-ingest: ts-auto.csv:22: bad timestamp "yesterday"'* ]]
	# The expected times are those of date(1).
	[ "$(date -u -d '2019-10-01T00:00:00Z' +%s)000" = 1569888000000 ]
	[ "$(date -u -d '2020-02-29T12:00:00Z' +%s)000" = "$(awk '$1 == "t20" { print $2 }' ts-auto.expected)" ]
}

@test "csv: --ts-format s, ms and us" {
	printf 'id,user,type,item,ts\nn1,u1,view,i1,1569888000\nn2,u1,view,i1,1569888000.5\nn3,u1,view,i1,1569888000123\nn4,u1,view,i1,1569888000123456\nn5,u1,view,i1,2019-10-01\n' >units.csv
	ingest --from csv --map event_id=id --ts-format s units.csv
	[ "$status" -eq 0 ]
	counts 5 2 0 3
	[ "$(jq -r '"\(.event_id)=\(.ts)"' out.ndjson | tr '\n' ' ')" = "n1=1569888000000 n2=1569888000500 " ]
	[ "$(reject_lines | tr '\n' ' ')" = "4 invalid_event 5 invalid_event 6 bad_timestamp " ]
	ingest --from csv --map event_id=id --ts-format ms units.csv
	[ "$status" -eq 0 ]
	counts 5 3 0 2
	[ "$(jq -r '"\(.event_id)=\(.ts)"' out.ndjson | tr '\n' ' ')" = "n1=1569888000 n2=1569888001 n3=1569888000123 " ]
	[ "$(reject_lines | tr '\n' ' ')" = "5 invalid_event 6 bad_timestamp " ]
	ingest --from csv --map event_id=id --ts-format us units.csv
	[ "$status" -eq 0 ]
	counts 5 4 0 1
	[ "$(jq -r '"\(.event_id)=\(.ts)"' out.ndjson | tr '\n' ' ')" = "n1=1569888 n2=1569888 n3=1569888000 n4=1569888000123 " ]
	[ "$(reject_lines)" = "6 bad_timestamp" ]
	# ISO 8601 only: numbers are bad timestamps.
	ingest --from csv --map event_id=id --ts-format iso8601 units.csv
	[ "$status" -eq 0 ]
	counts 5 1 0 4
	[ "$(jq -r '"\(.event_id)=\(.ts)"' out.ndjson)" = "n5=1569888000000" ]
	has_stat 'records_rejected_total{reason="bad_timestamp"} 4'
	run --separate-stderr reco-ingest --from csv --ts-format seconds units.csv
	[ "$status" -eq 2 ]
}

@test "csv: --ts-format with a strptime format, UTC whatever TZ says, offsets with %z" {
	printf 'id,user,type,item,ts\np1,u1,view,i1,01/10/2019 02:03:04\np2,u1,view,i1,29/02/2020 23:59:59\np3,u1,view,i1,2019-10-01 00:00:00\np4,u1,view,i1,31/09/2019 00:00:00\np5,u1,view,i1,01/10/2019 02:03:04 extra\n' >strf.csv
	TZ=UTC ingest --from csv --map event_id=id --ts-format '%d/%m/%Y %H:%M:%S' strf.csv
	[ "$status" -eq 0 ]
	counts 5 2 0 3
	[ "$(jq -r '"\(.event_id)=\(.ts)"' out.ndjson | tr '\n' ' ')" = "p1=1569895384000 p2=1583020799000 " ]
	[ "$(reject_lines | tr '\n' ' ')" = "4 bad_timestamp 5 bad_timestamp 6 bad_timestamp " ]
	cp out.ndjson utc.ndjson
	TZ=America/New_York ingest --from csv --map event_id=id --ts-format '%d/%m/%Y %H:%M:%S' strf.csv
	same_bytes out.ndjson utc.ndjson
	TZ=Asia/Kolkata ingest --from csv --map event_id=id --ts-format '%d/%m/%Y %H:%M:%S' strf.csv
	same_bytes out.ndjson utc.ndjson
	printf 'id,user,type,item,ts\nz1,u1,view,i1,01/Oct/2019:02:00:00 +0200\nz2,u1,view,i1,30/Sep/2019:19:00:00 -0500\n' >z.csv
	TZ=Asia/Tokyo ingest --from csv --map event_id=id --ts-format '%d/%b/%Y:%H:%M:%S %z' z.csv
	[ "$status" -eq 0 ]
	counts 2 2 0 0
	[ "$(jq -r '"\(.event_id)=\(.ts)"' out.ndjson | tr '\n' ' ')" = "z1=1569888000000 z2=1569888000000 " ]
}

@test "csv: types: event types, --type-map, unknown_type and missing fields (golden)" {
	use_sources
	ingest --from csv --type-map transaction=purchase,basket=add_to_cart types.csv
	[ "$status" -eq 0 ]
	counts 10 5 0 5
	same_bytes out.ndjson types.out.ndjson
	same_bytes rej.ndjson types.rejects.ndjson
	[ "$(reject_lines | tr '\n' ' ')" = \
		"4 unknown_type 6 missing_field 8 invalid_event 9 missing_field 10 missing_field " ]
	[[ "$stderr" == *'reco-ingest: types.csv:4: unknown event type "tap"'* ]]
	# Without the --type-map, transaction and basket are unknown types.
	ingest --from csv types.csv
	[ "$status" -eq 0 ]
	counts 10 3 0 7
	has_stat 'records_rejected_total{reason="unknown_type"} 3'
	run --separate-stderr reco-ingest --from csv --type-map cart=basket types.csv
	[ "$status" -eq 2 ]
}

@test "csv: --default-type for a source without a type column (golden)" {
	use_sources
	map=(--map event_id=order_id,user=customer,ts=placed_at,item=sku,price=unit_price)
	ingest --from csv "${map[@]}" --default-type purchase purchases.csv
	[ "$status" -eq 0 ]
	counts 3 3 0 0
	same_bytes out.ndjson purchases.out.ndjson
	ingest --from csv "${map[@]}" purchases.csv
	[ "$status" -eq 0 ]
	counts 3 0 0 3
	has_stat 'records_rejected_total{reason="missing_field"} 3'
	run --separate-stderr reco-ingest --from csv --default-type sale purchases.csv
	[ "$status" -eq 2 ]
}

@test "csv: qty and price; what does not parse is bad_number (golden)" {
	use_sources
	ingest --from csv --map event_id=id --no-source numbers.csv
	[ "$status" -eq 0 ]
	counts 15 5 0 10
	same_bytes out.ndjson numbers.out.ndjson
	same_bytes rej.ndjson numbers.rejects.ndjson
	has_stat 'records_rejected_total{reason="bad_number"} 10'
	[ "$(jq -r .event_id out.ndjson | tr '\n' ' ')" = "q01 q02 q03 q04 q05 " ]
}

@test "csv: qty and price are plain decimal numbers: no blanks before them, no hex" {
	printf 'id,user,ts,type,item,qty,price\nb1,u1,1569888000,purchase,i1, 2,5\nb2,u1,1569888000,purchase,i1,2, 5\nb3,u1,1569888000,purchase,i1,2,\t5\nb4,u1,1569888000,purchase,i1,\t2,5\nb5,u1,1569888000,purchase,i1,2,0x10\nb6,u1,1569888000,purchase,i1,2,5\n' >blanks.csv
	ingest --from csv --map event_id=id blanks.csv
	[ "$status" -eq 0 ]
	[ "$(jq -r .event_id out.ndjson)" = b6 ]
	counts 6 1 0 5
	has_stat 'records_rejected_total{reason="bad_number"} 5'
}

@test "csv: invalid UTF-8 in a mapped field is rejected (invalid_utf8), raw bytes in base64" {
	printf 'user,ts,type,item,session\nu1,1569888000,view,i1,s1\nu\xff2,1569888001,view,i2,s1\nu3,1569888002,view,i\xc3\x283,s1\nu4,1569888003,view,i4,s\xed\xa0\x801\nu5,1569888004,view,caf\xc3\xa9,s1\n' >utf.csv
	ingest --from csv utf.csv
	[ "$status" -eq 0 ]
	counts 5 2 0 3
	[ "$(reject_lines | tr '\n' ' ')" = "3 invalid_utf8 4 invalid_utf8 5 invalid_utf8 " ]
	[ "$(jq -r .message rej.ndjson | tr '\n' ' ')" = \
		"invalid UTF-8 in user invalid UTF-8 in item invalid UTF-8 in session " ]
	jq -r 'select(.line == 3) | .raw_base64' rej.ndjson | base64 -d >got
	sed -n 3p utf.csv | tr -d '\n' >want
	same_bytes got want
	[ "$(jq -r 'select(.user == "u5") | .item' out.ndjson)" = "café" ]
}

@test "csv: invalid UTF-8 in a kept field is rejected too, not silently left out" {
	printf 'user,ts,type,item,note\nu1,1569888000,view,i1,n\xfeote\nu2,1569888001,view,i2,\xe2\x82\xac\n' >utf.csv
	ingest --from csv --keep note utf.csv
	[ "$status" -eq 0 ]
	counts 2 1 0 1
	[ "$(reject_lines)" = "2 invalid_utf8" ]
	[ "$(jq -r .attrs.note out.ndjson)" = "€" ]
}

@test "csv: the source of standard input is stdin:LINE" {
	use_sources
	ingest --from csv --keep note,brand <quoted.csv
	[ "$status" -eq 0 ]
	sed 's/"source":"file:quoted.csv:/"source":"stdin:/' quoted.out.ndjson >want
	same_bytes out.ndjson want
	ingest --from csv --keep note,brand - <quoted.csv
	same_bytes out.ndjson want
}

# ---- JSON ----

JSON_MAP=(--map user=ctx.user.id,item=product.sku,ts=meta.time,type=action,query=q
	--type-map cart=add_to_cart)

@test "json: nested paths, numbers as ids, --keep of nested values (golden)" {
	use_sources
	ingest --from json "${JSON_MAP[@]}" --keep extra,flag nested.ndjson
	[ "$status" -eq 0 ]
	# 11 lines, one blank.
	counts 10 4 0 6
	same_bytes out.ndjson nested.out.ndjson
	same_bytes rej.ndjson nested.rejects.ndjson
	# Numbers become their decimal text; kept objects and arrays compact JSON.
	[ "$(jq -r 'select(.source == "file:nested.ndjson:2") | "\(.user) \(.item) \(.ts)"' out.ndjson)" = \
		"12345 987 1569888001500" ]
	[ "$(jq -r 'select(.source == "file:nested.ndjson:1") | .attrs.extra' out.ndjson)" = '{"a":1,"b":[true,null]}' ]
	[ "$(jq -r 'select(.source == "file:nested.ndjson:4") | .attrs.extra' out.ndjson)" = '[1,2.5,"x"]' ]
	[ "$(jq -r 'select(.source == "file:nested.ndjson:4") | .attrs.flag' out.ndjson)" = true ]
}

@test "json: bad JSON, duplicate keys and non-objects are bad_json; a missing required path is rejected and disappeared" {
	use_sources
	ingest --from json "${JSON_MAP[@]}" --keep extra,flag nested.ndjson
	[ "$status" -eq 0 ]
	[ "$(reject_lines | tr '\n' ' ')" = \
		"5 missing_field 6 invalid_event 7 bad_json 8 bad_json 9 bad_json 11 invalid_event " ]
	[[ "$stderr" == *"reco-ingest: nested.ndjson:5: missing user (ctx.user.id)"* ]]
	[[ "$stderr" == *"reco-ingest: nested.ndjson:8: invalid JSON: duplicate object key"* ]]
	has_stat 'schema_drift_total{field="ctx.user.id",change="disappeared"} 1'
	has_stat 'schema_drift_total{field="product.sku",change="disappeared"} 2'
	has_stat 'schema_drift_total{field="q",change="disappeared"} 6'
	has_stat 'records_rejected_total{reason="bad_json"} 3'
	# Every rejected line comes back byte for byte.
	for n in $(jq -r .line rej.ndjson); do
		sed -n "${n}p" nested.ndjson | tr -d '\n' >want
		jq -j "select(.line == $n) | .raw" rej.ndjson >got
		same_bytes got want
	done
}

@test "json: an array index in a path (golden)" {
	use_sources
	ingest --from json --map ts=at,item=items.0.id,qty=items.0.qty,price=items.0.price cart.ndjson
	[ "$status" -eq 0 ]
	counts 5 4 0 1
	same_bytes out.ndjson cart.out.ndjson
	same_bytes rej.ndjson cart.rejects.ndjson
	has_stat 'schema_drift_total{field="items.0.id",change="disappeared"} 1'
	has_stat 'schema_drift_total{field="items.0.price",change="disappeared"} 3'
	has_stat 'schema_drift_total{field="coupon",change="appeared"} 1'
	[ "$(jq -r 'select(.user == "u2") | "\(.item) \(.qty) \(.price)"' out.ndjson)" = "77 1 100" ]
	# Another index, and one past the end.
	ingest --from json --map ts=at,item=items.1.id cart.ndjson
	[ "$(jq -r .item out.ndjson)" = i2 ]
	counts 5 1 0 4
	has_stat 'schema_drift_total{field="items.1.id",change="disappeared"} 4'
}

@test "json: unmapped top-level keys are appeared drift, --strict rejects them, (other) past 64 names" {
	use_sources
	ingest --from json "${JSON_MAP[@]}" nested.ndjson
	[ "$status" -eq 0 ]
	has_stat 'schema_drift_total{field="extra",change="appeared"} 4'
	has_stat 'schema_drift_total{field="flag",change="appeared"} 1'
	ingest --from json "${JSON_MAP[@]}" --keep extra --strict nested.ndjson
	[ "$status" -eq 0 ]
	counts 10 3 0 7
	[ "$(jq -r 'select(.reason == "unexpected_field") | .line' rej.ndjson)" = 4 ]
	# Nested keys under a mapped path are not drift.
	ingest --from json "${JSON_MAP[@]}" --keep extra,flag --strict nested.ndjson
	counts 10 4 0 6
	jq -nc '{user: "u1", ts: 1569888000, type: "view", item: "i1"} +
		([range(70)] | map({key: "k\(.)", value: .}) | from_entries)' >many.ndjson
	ingest --from json many.ndjson
	[ "$status" -eq 0 ]
	counts 1 1 0 0
	[ "$(printf '%s\n' "$stderr" | grep -c 'schema_drift_total{field=.*,change="appeared"}')" -eq 65 ]
	printf '%s\n' "$stderr" | grep -qF 'schema_drift_total{field="(other)",change="appeared"}'
	has_stat 'schema_drift_total{field="k0",change="appeared"} 1'
}

@test "json: CRLF lines give the same events, ids included" {
	use_sources
	sed 's/$/\r/' nested.ndjson >crlf.ndjson
	ingest --from json "${JSON_MAP[@]}" --keep extra,flag --no-source crlf.ndjson
	[ "$status" -eq 0 ]
	counts 10 4 0 6
	jq -c 'del(.source)' nested.out.ndjson >want
	same_bytes out.ndjson want
}

# ---- access logs ----

@test "access-log: default routes, drops by status and route, bad lines (golden)" {
	use_sources
	ingest --from access-log access.log
	[ "$status" -eq 0 ]
	# 17 lines, one blank.
	counts 16 9 4 3
	same_bytes out.ndjson access.out.ndjson
	same_bytes rej.ndjson access.rejects.ndjson
	has_stat 'records_dropped_total{reason="http_status"} 2'
	has_stat 'records_dropped_total{reason="no_route"} 2'
	has_stat 'records_rejected_total{reason="bad_access_log"} 3'
	[ "$(reject_lines | tr '\n' ' ')" = "11 bad_access_log 12 bad_access_log 13 bad_access_log " ]
	# The 404 (line 7), the 500 (8), /about (9) and DELETE (10) are not events.
	[ "$(jq -r '.source | sub("file:access.log:"; "")' out.ndjson | tr '\n' ' ')" = "1 2 3 4 5 6 15 16 17 " ]
	# Search queries are decoded; the user agent is kept.
	[ "$(jq -r 'select(.type == "search") | .query // "-"' out.ndjson | tr '\n' '|')" = "red shoes|café au lait|-|" ]
	[ "$(jq -r 'select(.source == "file:access.log:3") | .attrs.ua' out.ndjson)" = curl/8.0.1 ]
	[ "$(jq -r 'select(.source == "file:access.log:17") | .attrs.ua // "none"' out.ndjson)" = none ]
}

@test "access-log: --user-from hash: h and 16 hex digits, the same for the same address and agent" {
	use_sources
	ingest --from access-log --user-from hash access.log
	[ "$status" -eq 0 ]
	same_bytes out.ndjson access.out.ndjson
	[ -z "$(jq -r .user out.ndjson | grep -vxE 'h[0-9a-f]{16}')" ]
	user() { jq -r "select(.source == \"file:access.log:$1\") | .user" out.ndjson; }
	# 192.0.2.10 with Firefox on lines 1, 2, 5, 6; 198.51.100.7 with curl on
	# 3 and 4; 203.0.113.5 with Chrome on 15 and 16, without an agent on 17.
	[ "$(user 1)" = "$(user 2)" ]
	[ "$(user 1)" = "$(user 5)" ]
	[ "$(user 1)" = "$(user 6)" ]
	[ "$(user 3)" = "$(user 4)" ]
	[ "$(user 15)" = "$(user 16)" ]
	[ "$(user 1)" != "$(user 3)" ]
	[ "$(user 15)" != "$(user 17)" ]
	# The user does not depend on the time or the request.
	sed -n 1p access.log | sed 's/00:00:00 +0000/09:09:09 +0000/; s|/product/i1|/product/i77|' >other.log
	reco-ingest -q --from access-log other.log >other.ndjson
	[ "$(jq -r .user other.ndjson)" = "$(user 1)" ]
}

@test "access-log: --user-from param:NAME, cookie:NAME and remote-user" {
	use_sources
	ingest --from access-log --user-from param:uid --no-source access.log
	[ "$status" -eq 0 ]
	counts 16 6 4 6
	[ "$(jq -r '"\(.user) \(.type)"' out.ndjson | tr '\n' '|')" = \
		"u1 view|u1 add_to_cart|u2 search|u2 search|u1 remove_from_cart|u1 purchase|" ]
	[ "$(jq -r 'select(.reason == "missing_field") | .line' rej.ndjson | tr '\n' ' ')" = "15 16 17 " ]
	ingest --from access-log --user-from cookie:sid --no-source access.log
	[ "$status" -eq 0 ]
	counts 16 4 4 8
	[ "$(jq -r '"\(.user) \(.type)"' out.ndjson | tr '\n' '|')" = \
		"s-1 view|s-1 add_to_cart|s-1 remove_from_cart|s-1 purchase|" ]
	ingest --from access-log --user-from remote-user --no-source access.log
	[ "$status" -eq 0 ]
	counts 16 3 4 9
	[ "$(jq -r '"\(.user) \(.type)"' out.ndjson | tr '\n' '|')" = \
		"alice add_to_cart|alice remove_from_cart|alice purchase|" ]
	has_stat 'records_rejected_total{reason="missing_field"} 6'
	run --separate-stderr reco-ingest --from access-log --user-from header:x access.log
	[ "$status" -eq 2 ]
}

@test "access-log: explicit routes: any method, {item}.html, ?sku={item}, * and **, --query-param (golden)" {
	use_sources
	ingest --from access-log \
		--route 'GET /p/{item}.html=view' \
		--route '* /api/cart?sku={item}=add_to_cart' \
		--route 'GET /find=search' \
		--route 'POST /order/*/item/{item}=purchase' \
		--route 'GET /search/**=search' \
		--query-param s --user-from cookie:sid shop.log
	[ "$status" -eq 0 ]
	counts 12 7 5 0
	same_bytes out.ndjson shop.out.ndjson
	has_stat 'records_dropped_total{reason="no_route"} 5'
	# The routes replace the default ones: /product/i1 (line 9) is no route.
	[ "$(jq -r '.source | sub("file:shop.log:"; "")' out.ndjson | tr '\n' ' ')" = "1 4 5 7 8 10 11 " ]
	run --separate-stderr reco-ingest --from access-log --route 'GET /p/{sku}=view' shop.log
	[ "$status" -eq 2 ]
	run --separate-stderr reco-ingest --from access-log --route 'GET /p/{item}=visit' shop.log
	[ "$status" -eq 2 ]
}

@test "access-log: exactly the lines that accesslog-check cannot parse are rejected, for its reasons" {
	use_sources
	ingest --from access-log access.log
	accesslog-check <access.log | awk '/^err / && $0 != "err empty line" { sub(/^err /, ""); print NR ": " $0 }' >want
	jq -r '"\(.line): \(.message)"' rej.ndjson >got
	same_bytes got want
}

@test "access-log: reco-gen's access log ingests with no rejects, as the same events" {
	reco-gen --events 2000 --users 150 --items 400 --format access-log >gen.log
	reco-gen --events 2000 --users 150 --items 400 >gen.ndjson
	ingest --from access-log --user-from param:uid gen.log
	[ "$status" -eq 0 ]
	counts 2000 2000 0 0
	[ "$(jq -r .type out.ndjson | sort -u | tr '\n' ' ')" = \
		"add_to_cart purchase remove_from_cart search view " ]
	# Clicks are written as views, times in whole seconds.
	jq -r '[.user, (if .type == "click" then "view" else .type end), .item // "", .query // "", (.ts / 1000 | floor)] | @tsv' gen.ndjson >want
	jq -r '[.user, .type, .item // "", .query // "", (.ts / 1000 | floor)] | @tsv' out.ndjson >got
	same_bytes got want
}

# ---- kcat -J envelopes ----

@test "kcat-json: --payload event: source kafka:topic/partition@offset, tombstones, broken envelopes (golden)" {
	use_sources
	ingest --from kcat-json kcat-event.jsonl
	[ "$status" -eq 0 ]
	counts 9 3 2 4
	same_bytes out.ndjson kcat-event.out.ndjson
	same_bytes rej.ndjson kcat-event.rejects.ndjson
	has_stat 'records_dropped_total{reason="tombstone"} 2'
	[ "$(jq -r .source out.ndjson | tr '\n' ' ')" = "kafka:clicks/3@18231 kafka:clicks/3@18232 kafka:clicks/1@13 " ]
	[ "$(reject_lines | tr '\n' ' ')" = "5 missing_item 6 bad_json 7 bad_json 8 bad_json " ]
	# --no-source leaves the Kafka position out; an event keeps its own source.
	ingest --from kcat-json --no-source kcat-event.jsonl
	[ "$(jq -r '.source // "none"' out.ndjson | tr '\n' ' ')" = "none file:elsewhere:9 none " ]
}

@test "kcat-json: --payload json with a mapping; the envelope's ts when the payload has none (golden)" {
	use_sources
	ingest --from kcat-json --payload json --map user=ctx.user.id,type=what,item=sku,ts=at \
		--type-map cart=add_to_cart kcat-json.jsonl
	[ "$status" -eq 0 ]
	counts 7 4 1 2
	same_bytes out.ndjson kcat-json.out.ndjson
	[ "$(reject_lines | tr '\n' ' ')" = "4 bad_timestamp 5 bad_json " ]
	# Offset 100 has its own time; 101 has none and 102 an empty one.
	[ "$(jq -r '"\(.source)=\(.ts)"' out.ndjson | tr '\n' ' ')" = \
		"kafka:clicks/3@100=1569888005000 kafka:clicks/3@101=1569888009000 kafka:clicks/3@102=1569888010000 kafka:clicks/3@106=1569888014000 " ]
	has_stat 'records_dropped_total{reason="tombstone"} 1'
}

@test "kcat-json: --payload csv with --columns (golden)" {
	use_sources
	ingest --from kcat-json --payload csv --columns user,type,item,qty,price,ts kcat-csv.jsonl
	[ "$status" -eq 0 ]
	counts 7 4 1 2
	same_bytes out.ndjson kcat-csv.out.ndjson
	[ "$(reject_lines | tr '\n' ' ')" = "3 bad_csv 4 bad_csv " ]
	[ "$(jq -r 'select(.user == "c2") | "\(.item) \(.ts)"' out.ndjson)" = "i,2 1569888000250" ]
	[ "$(jq -r 'select(.user == "c5") | .ts' out.ndjson)" = 1569888004000 ]
	# Payloads have no header row.
	run --separate-stderr reco-ingest --from kcat-json --payload csv kcat-csv.jsonl
	[ "$status" -eq 2 ]
	[ -z "$output" ]
}

@test "kcat-json: an empty CSV payload is rejected with a message that says why" {
	printf '%s\n' '{"topic":"orders","partition":0,"offset":1,"ts":1569888000000,"key":"c1","payload":""}' \
		'{"topic":"orders","partition":0,"offset":2,"ts":1569888000000,"key":"c1","payload":"c1,purchase,i1,2,19.99,"}' >empty.jsonl
	ingest --from kcat-json --payload csv --columns user,type,item,qty,price,ts empty.jsonl
	[ "$status" -eq 0 ]
	counts 2 1 0 1
	[ "$(reject_lines)" = "1 bad_csv" ]
	msg=$(jq -r .message rej.ndjson)
	[[ "$msg" =~ [Ee]mpty|[Bb]lank|[Ff]ields ]] || fail "the message is \"$msg\""
}

@test "kcat-json: --payload access-log (golden)" {
	use_sources
	ingest --from kcat-json --payload access-log --user-from param:uid kcat-access.jsonl
	[ "$status" -eq 0 ]
	counts 6 3 2 1
	same_bytes out.ndjson kcat-access.out.ndjson
	has_stat 'records_dropped_total{reason="http_status"} 1'
	has_stat 'records_dropped_total{reason="no_route"} 1'
	[ "$(reject_lines)" = "5 bad_access_log" ]
	# The time is the log's, not the envelope's.
	[ "$(jq -r .ts out.ndjson | head -1)" = 1569888000000 ]
}

@test "kcat-json: the derived event_id is the payload's: the same message at another offset has the same id" {
	use_sources
	sed -n 1p kcat-json.jsonl >one.jsonl
	sed -n 1p kcat-json.jsonl | sed 's/"partition":3,"offset":100/"partition":5,"offset":999/' >>one.jsonl
	ingest --from kcat-json --payload json --map user=ctx.user.id,type=what,item=sku,ts=at one.jsonl
	[ "$status" -eq 0 ]
	counts 2 2 0 0
	[ "$(jq -r .event_id out.ndjson | sort -u | wc -l)" -eq 1 ]
	[ "$(jq -r .source out.ndjson | tr '\n' ' ')" = "kafka:clicks/3@100 kafka:clicks/5@999 " ]
}

# reco-ingest(1), kcat-json: "The Kafka timestamp ts is the event time when
# the payload has none", whatever the payload.
@test "kcat-json: --payload event: an event without ts takes the Kafka timestamp" {
	printf '%s\n' '{"topic":"clicks","partition":0,"offset":1,"tstype":"create","ts":1569888000000,"broker":0,"key":"u1","payload":"{\"event_id\":\"e1\",\"user\":\"u1\",\"type\":\"view\",\"item\":\"i1\",\"v\":1}"}' >nots.jsonl
	ingest --from kcat-json nots.jsonl
	[ "$status" -eq 0 ]
	counts 1 1 0 0
	[ "$(jq -r .ts out.ndjson)" = 1569888000000 ]
}

# ---- reco-gen's CSV ----

@test "csv: reco-gen's CSV ingests with no rejects, as the same events" {
	reco-gen --events 2000 --users 150 --items 400 --format csv >gen.csv
	reco-gen --events 2000 --users 150 --items 400 >gen.ndjson
	ingest --from csv "${REES46_MAP[@]}" --keep category_code,brand gen.csv
	[ "$status" -eq 0 ]
	counts 2000 2000 0 0
	# Clicks and searches are written as views.
	jq -r '[.user, (if .type == "click" or .type == "search" then "view" else .type end), (.ts / 1000 | floor)] | @tsv' gen.ndjson >want
	jq -r '[.user, .type, (.ts / 1000 | floor)] | @tsv' out.ndjson >got
	same_bytes got want
	# Every row has an item: the event's, or for a search the item it found.
	jq -r 'if .type == "search" then "*" else .item end' gen.ndjson >want
	[ "$(jq -r .item out.ndjson | paste - want | awk -F '\t' '$2 != "*" && $1 != $2')" = "" ]
	[ "$(jq -r 'select(.item == null)' out.ndjson)" = "" ]
}

@test "csv: reco-gen --malformed-rate: the rejects are the truth file's malformed lines" {
	reco-gen --events 2000 --users 150 --items 400 --format csv --malformed-rate 0.05 \
		--truth truth.ndjson >gen.csv
	ingest --from csv "${REES46_MAP[@]}" --keep category_code,brand gen.csv
	[ "$status" -eq 0 ]
	malformed=$(jq -r 'select(.kind == "malformed") | .line' truth.ndjson | wc -l)
	[ "$malformed" -gt 20 ]
	[ "$REJECTED" -eq "$malformed" ]
	counts $((2000 + malformed)) 2000 0 "$malformed"
	jq -r 'select(.kind == "malformed") | .line' truth.ndjson >want
	jq -r .line rej.ndjson >got
	same_bytes got want
}

# ---- determinism and Avro ----

@test "every mode run twice on the same input gives byte-identical output" {
	use_sources
	reco-gen --events 500 --users 50 --items 100 --format csv --malformed-rate 0.02 >gen.csv
	reco-gen --events 500 --users 50 --items 100 --format access-log --malformed-rate 0.02 >gen.log
	runs=(
		"--from csv ${REES46_MAP[*]} --keep category_code,brand rees46.csv gen.csv"
		"--from csv --keep note,brand quoted.csv bad.csv good.csv"
		"--from csv --map event_id=id --ts-format iso8601 ts-auto.csv"
		"--from json ${JSON_MAP[*]} --keep * nested.ndjson cart.ndjson"
		"--from access-log access.log gen.log"
		"--from access-log --user-from param:uid gen.log"
		"--from kcat-json kcat-event.jsonl"
		"--from kcat-json --payload json --map user=ctx.user.id,type=what,item=sku,ts=at kcat-json.jsonl"
		"--from kcat-json --payload csv --columns user,type,item,qty,price,ts kcat-csv.jsonl"
		"--from kcat-json --payload access-log kcat-access.jsonl"
	)
	for r in "${runs[@]}"; do
		set -f
		# shellcheck disable=SC2086
		reco-ingest -q --rejects rej1 $r >out1
		# shellcheck disable=SC2086
		reco-ingest -q --rejects rej2 $r >out2
		# shellcheck disable=SC2086
		reco-ingest -q -O avro $r >avro1
		# shellcheck disable=SC2086
		reco-ingest -q -O avro $r >avro2
		set +f
		[ -s out1 ] || fail "no output: $r"
		same_bytes out1 out2 || fail "output differs: $r"
		same_bytes rej1 rej2 || fail "rejects differ: $r"
		same_bytes avro1 avro2 || fail "Avro output differs: $r"
	done
}

@test "the REES46 fixture through CSV, Avro and back is byte-identical" {
	use_sources
	reco-ingest --from csv "${REES46_MAP[@]}" --keep category_code,brand -O avro -o r.avro rees46.csv
	[ "$(head -c 4 r.avro | od -An -c | tr -d ' ')" = 'Obj001' ]
	ingest r.avro
	[ "$status" -eq 0 ]
	counts 11 11 0 0
	same_bytes out.ndjson rees46.out.ndjson
	reco-ingest --from csv "${REES46_MAP[@]}" --keep category_code,brand -O avro --codec deflate rees46.csv |
		reco-ingest >back.ndjson
	same_bytes back.ndjson rees46.out.ndjson
}
