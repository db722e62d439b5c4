#!/usr/bin/env bats
# reco-enrich.bats: sessions, lookup tables, SIGHUP reloads, state files and bounds of reco-enrich.

load helpers

bats_require_minimum_version 1.5.0

# Copy fixtures of tests/fixtures/enrich into the test directory, so that
# messages name them by their short names.
use() {
	local f
	for f in "$@"; do
		cp "$(fixture "enrich/$f")" "$f"
	done
}

# N events of view type for items i1..i3, with ids from FIRST on.
views() {
	awk -v first="$1" -v n="$2" 'BEGIN {
		for (i = first; i < first + n; i++)
			printf "{\"event_id\":\"e%d\",\"ts\":%.0f,\"user\":\"u%d\",\"type\":\"view\",\"item\":\"i%d\",\"v\":1}\n",
			    i, 1700000000000 + 1000 * i, i % 5, i % 3 + 1
	}'
}

# Wait (up to 10 s) until file has at least n lines.
wait_lines() {
	local i
	for i in $(seq 100); do
		[ "$(nlines "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "$1: $(nlines "$1") lines after 10 s, not $2"
}

# The value of a metric line (name and labels as written) in a metrics file.
metric_of() {
	awk -v m="$2" '$1 == m { print $2 }' "$1"
}

# ---- sessions ----

@test "golden: sessions split at a gap of exactly 30m, per user, with late events" {
	use sessions.ndjson
	run --separate-stderr reco-enrich -o out.ndjson sessions.ndjson
	[ "$status" -eq 0 ]
	same_bytes out.ndjson "$(fixture enrich/sessions.out.ndjson)"
	# The rules the golden file holds, spelt out.
	s() { jq -r "select(.event_id == \"$1\") | .session + \" \" + .attrs.session_seq" out.ndjson; }
	[ "$(s a2)" = "a:1700000000000 2" ]   # 29:59.999 after a1: same session
	[ "$(s a3)" = "a:1700003599999 1" ]   # exactly 30:00 after a2: a new one
	[ "$(s b2)" = "b:1700000000500 2" ]   # b's sessions are b's own
	[ "$(s b3)" = "b:1700003600000 1" ]   # its source session is replaced
	[ "$(s c3)" = "c:1700010000000 3" ]   # late, within the session
	[ "$(s c4)" = "c:1700008000000 1" ]   # late by more than the gap: alone
	[ "$(s c5)" = "c:1700010000000 4" ]   # late, less than the gap before it
	[ "$(s a5)" = "a:1700010000000 1" ]   # session_seq is always ours
	[ "$(s d1)" = "d:é:1700010000000 1" ]
}

@test "--session-gap changes the gap" {
	use sessions.ndjson
	reco-enrich --session-gap 1h sessions.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "a3") | .session' out.ndjson)" = a:1700000000000 ]
	reco-enrich --session-gap 1799999ms sessions.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "a2") | .session' out.ndjson)" = a:1700001799999 ]
}

@test "golden: --keep-session keeps an event's session and numbers within it" {
	use keep.ndjson
	reco-enrich --keep-session keep.ndjson >out.ndjson
	same_bytes out.ndjson "$(fixture enrich/keep.out.ndjson)"
}

@test "--source-session-attr keeps the incoming session; --seq-attr renames or drops the number" {
	use sessions.ndjson
	reco-enrich --source-session-attr src --seq-attr n sessions.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "b3") | [.session, .attrs.src, .attrs.n] | @tsv' out.ndjson)" = \
	    "$(printf 'b:1700003600000\tsrc-b\t1')" ]
	[ "$(jq -r 'select(.event_id == "a1") | .attrs | keys | join(",")' out.ndjson)" = n ]
	reco-enrich --seq-attr '' sessions.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "a1") | has("attrs")' out.ndjson)" = false ]
}

# ---- lookups ----

@test "golden: item and user attributes from CSV tables" {
	use lookups.ndjson items.csv users.csv
	reco-enrich --no-sessions --items items.csv --users users.csv \
		--metrics m.prom lookups.ndjson >out.ndjson
	same_bytes out.ndjson "$(fixture enrich/lookups.out.ndjson)"
	[ "$(metric_of m.prom 'reco_enrich_lookup_missing_total{table="items"}')" = 1 ]
	[ "$(metric_of m.prom 'reco_enrich_lookup_missing_total{table="users"}')" = 1 ]
	[ "$(metric_of m.prom 'reco_enrich_lookup_hits_total{table="items"}')" = 4 ]
	[ "$(metric_of m.prom 'reco_enrich_table_rows{table="items"}')" = 3 ]
}

@test "golden: an NDJSON table gives the same attributes as the CSV one" {
	use lookups.ndjson items.ndjson users.csv
	reco-enrich --no-sessions --items items.ndjson --users users.csv lookups.ndjson >out.ndjson
	same_bytes out.ndjson "$(fixture enrich/lookups.out.ndjson)"
	# Detected by its first byte too, whatever its name.
	cp items.ndjson items.table
	reco-enrich --no-sessions --items items.table --users users.csv lookups.ndjson >out2.ndjson
	same_bytes out2.ndjson out.ndjson
}

@test "NDJSON table values that are not strings become their JSON text; null is left out" {
	printf '%s\n' '{"sku":"x","n":1,"r":2.50,"t":true,"o":{"a":[1,2]},"z":null,"s":""}' >t.ndjson
	views 0 1 | sed 's/"i1"/"x"/' >in.ndjson
	reco-enrich --no-sessions --items t.ndjson in.ndjson >out.ndjson
	[ "$(jq -c .attrs out.ndjson)" = '{"n":"1","r":"2.5","t":"true","o":"{\"a\":[1,2]}","s":""}' ]
}

@test "--item-key, --item-fields and --item-prefix; the key defaults to the first column" {
	use lookups.ndjson items.csv
	reco-enrich --no-sessions --items items.csv --item-key item --item-fields price,brand \
		--item-prefix item_ lookups.ndjson >out.ndjson
	[ "$(jq -c 'select(.event_id == "l1") | .attrs' out.ndjson)" = '{"item_price":"19.99","item_brand":"acme"}' ]
	printf '%s\n' 'uid,tier' 'a,gold' >u.csv
	reco-enrich --no-sessions --users u.csv lookups.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "l1") | .attrs.tier' out.ndjson)" = gold ]
	run --separate-stderr reco-enrich --items items.csv --item-fields nope lookups.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *'reco-enrich: items.csv:1: header: no column "nope"'* ]]
}

@test "an attribute the event has wins, unless --overwrite-attrs" {
	use lookups.ndjson items.csv
	reco-enrich --no-sessions --items items.csv lookups.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "l6") | .attrs.price' out.ndjson)" = 17.00 ]
	reco-enrich --no-sessions --overwrite-attrs --items items.csv lookups.ndjson >out.ndjson
	[ "$(jq -r 'select(.event_id == "l6") | .attrs.price' out.ndjson)" = 19.99 ]
	[ "$(jq -r 'select(.event_id == "l6") | .attrs.ua' out.ndjson)" = curl ]
}

@test "bad tables: too many rows and malformed rows exit 1, a missing file exits 3" {
	use lookups.ndjson items.csv
	run --separate-stderr reco-enrich --items items.csv --max-table-rows 2 -o out lookups.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"items.csv:4: more than 2 rows (--max-table-rows)"* ]]
	[ ! -e out ]
	printf '%s\n' 'item,brand' 'i1,a' 'i2' >bad.csv
	run --separate-stderr reco-enrich --items bad.csv lookups.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"bad.csv:3: 1 fields, the header has 2"* ]]
	printf '%s\n' '{"item":"i1"}' '{"item":' >bad.ndjson
	run --separate-stderr reco-enrich --items bad.ndjson lookups.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"bad.ndjson:2: invalid JSON"* ]]
	run --separate-stderr reco-enrich --items no-such.csv lookups.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"no-such.csv"* ]]
}

# ---- SIGHUP ----

@test "SIGHUP reloads a changed table between two events: none lost, none twice" {
	use items.csv
	mkfifo in
	# (bats keeps fd 3 for itself: the writer is fd 7.)
	reco-enrich --no-sessions --items items.csv --metrics m.prom in >out.ndjson 2>err 3>&- &
	pid=$!
	exec 7>in
	views 0 60 >&7
	wait_lines out.ndjson 60
	sed 's/acme/acme-2/' items.csv >items.new
	mv items.new items.csv
	kill -HUP "$pid"
	views 60 60 >&7
	exec 7>&-
	wait "$pid"
	[ "$(nlines out.ndjson)" -eq 120 ]
	[ "$(jq -r .event_id out.ndjson | sort -u | wc -l)" -eq 120 ]
	[ "$(jq -r .event_id out.ndjson)" = "$(views 0 120 | jq -r .event_id)" ]
	# i1 is acme before the reload and acme-2 after it.
	[ "$(head -60 out.ndjson | jq -r 'select(.item == "i1") | .attrs.brand' | sort -u)" = acme ]
	[ "$(tail -60 out.ndjson | jq -r 'select(.item == "i1") | .attrs.brand' | sort -u)" = acme-2 ]
	[ "$(metric_of m.prom 'reco_enrich_table_reloads_total{table="items"}')" = 1 ]
	grep -q 'items.csv: reloaded: 3 rows' err
}

@test "a table that fails to reload keeps the old one" {
	use items.csv
	mkfifo in
	reco-enrich --no-sessions --items items.csv --metrics m.prom in >out.ndjson 2>err 3>&- &
	pid=$!
	exec 7>in
	views 0 30 >&7
	wait_lines out.ndjson 30
	printf '%s\n' 'item,brand' 'i1,new' 'i2' >items.new
	mv items.new items.csv
	kill -HUP "$pid"
	views 30 30 >&7
	exec 7>&-
	wait "$pid"
	[ "$(nlines out.ndjson)" -eq 60 ]
	[ "$(jq -r 'select(.item == "i1") | .attrs.brand' out.ndjson | sort -u)" = acme ]
	[ "$(metric_of m.prom 'reco_enrich_table_reload_failures_total{table="items"}')" = 1 ]
	[ "$(metric_of m.prom 'reco_enrich_table_reloads_total{table="items"}')" = 0 ]
	grep -q 'items.csv:3: 1 fields, the header has 2; the table loaded before stays' err
}

# ---- state ----

@test "state: part 1 then part 2 give the bytes of one run, at several split points" {
	reco-gen --events 3000 --users 60 --rate 0.05 --ooo-rate 0.05 --seed 3 >all.ndjson
	opts="--max-users 40 --source-session-attr src"
	reco-enrich $opts all.ndjson >whole.ndjson
	# The input has sessions that a split cuts, and evictions.
	[ "$(jq -r .session whole.ndjson | sort -u | wc -l)" -gt 200 ]
	for k in 1 10 999 1500 2999; do
		rm -f s.state
		head -n "$k" all.ndjson | reco-enrich $opts --state s.state >parts.ndjson
		tail -n +$((k + 1)) all.ndjson | reco-enrich $opts --state s.state >>parts.ndjson
		same_bytes parts.ndjson whole.ndjson || fail "split after line $k"
	done
	# Three parts, Avro in the middle.
	rm -f s.state
	head -n 1000 all.ndjson | reco-enrich $opts --state s.state >parts.ndjson
	sed -n 1001,2000p all.ndjson | reco-ingest -O avro | reco-enrich $opts --state s.state >>parts.ndjson
	tail -n +2001 all.ndjson | reco-enrich $opts --state s.state >>parts.ndjson
	same_bytes parts.ndjson whole.ndjson
}

@test "state: --keep-session survives a restart too" {
	reco-gen --events 2000 --users 30 --rate 0.05 --seed 5 >all.ndjson
	reco-enrich --keep-session all.ndjson >whole.ndjson
	head -n 1234 all.ndjson | reco-enrich --keep-session --state s.state >parts.ndjson
	tail -n +1235 all.ndjson | reco-enrich --keep-session --state s.state >>parts.ndjson
	same_bytes parts.ndjson whole.ndjson
}

@test "state: a corrupt, truncated or foreign file is refused with status 1 and left alone" {
	use sessions.ndjson
	reco-enrich --state s.state sessions.ndjson >/dev/null
	head -c 18 s.state | grep -q '^reco-enrich state$'
	cp s.state good.state
	# One byte changed in the middle.
	size=$(wc -c <s.state)
	printf 'X' | dd of=s.state bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	cp s.state bad.state
	run --separate-stderr reco-enrich --state s.state -o out sessions.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"reco-enrich: s.state: corrupt state file"* ]]
	[ ! -e out ]
	same_bytes s.state bad.state
	# Cut short.
	head -c $((size - 3)) good.state >s.state
	run --separate-stderr reco-enrich --state s.state sessions.ndjson
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	# Not a state file at all, or another tool's.
	printf 'hello\n' >s.state
	run --separate-stderr reco-enrich --state s.state sessions.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"s.state: not a reco-enrich state file"* ]]
	: >s.state
	run --separate-stderr reco-enrich --state s.state sessions.ndjson
	[ "$status" -eq 1 ]
	# The good one still loads.
	cp good.state s.state
	reco-enrich --state s.state sessions.ndjson >/dev/null
}

@test "state: a run whose output fails leaves the state file as it was" {
	use sessions.ndjson
	run reco-enrich --state s.state sessions.ndjson -o /dev/full
	[ "$status" -eq 3 ]
	[ ! -e s.state ]
	head -5 sessions.ndjson | reco-enrich --state s.state >/dev/null
	cp s.state before.state
	run reco-enrich --state s.state sessions.ndjson -o /dev/full
	[ "$status" -eq 3 ]
	same_bytes s.state before.state
	[ -z "$(ls | grep tmp)" ]
}

# ---- formats, determinism, accounting, bounds ----

@test "determinism; NDJSON and Avro input give the same output; Avro output reads back the same" {
	reco-gen --events 3000 --users 100 --items 50 --items-out items.csv --users-out users.csv >in.ndjson
	reco-gen --events 3000 --users 100 --items 50 -O avro >in.avro
	opts="--items items.csv --users users.csv --source-session-attr src"
	reco-enrich $opts in.ndjson >a.ndjson
	reco-enrich $opts in.ndjson >b.ndjson
	same_bytes a.ndjson b.ndjson
	reco-enrich $opts in.avro >c.ndjson
	same_bytes a.ndjson c.ndjson
	reco-enrich $opts -O avro in.avro >a.avro
	reco-enrich $opts -O avro in.ndjson >b.avro
	same_bytes a.avro b.avro
	reco-ingest a.avro >d.ndjson
	same_bytes a.ndjson d.ndjson
	[ "$(jq -r 'select(.item) | .attrs.category // "none"' a.ndjson | grep -c none)" -eq 0 ]
}

@test "canonical lines and the same events in another form give the same bytes" {
	# The canonical lines take the short path; with their keys reversed
	# and spaces added they go through the full parse.
	reco-gen --regime sessions --events 20000 --items-out items.csv >in.ndjson
	jq -c 'to_entries | reverse | from_entries' in.ndjson | sed 's/,/, /' >other.ndjson
	! cmp -s in.ndjson other.ndjson
	for opts in "" "--keep-session --source-session-attr src" "--no-sessions --items items.csv"; do
		reco-enrich $opts --stats in.ndjson >a 2>a.err
		reco-enrich $opts --stats other.ndjson >b 2>b.err
		same_bytes a b || fail "$opts: the output differs"
		[ "$(grep -v records/s a.err)" = "$(grep -v records/s b.err)" ]
	done
	reco-ingest -q other.ndjson >canon.ndjson
	same_bytes in.ndjson canon.ndjson
}

@test "bad input: every record in is accounted for (in = out + dropped + rejected)" {
	use sessions.ndjson
	{ head -5 sessions.ndjson; echo '{"broken'; echo '{"event_id":"x","ts":1,"type":"view","item":"i","v":1}'
	  echo; tail -n +6 sessions.ndjson; echo 'not json'; } >mixed.ndjson
	run --separate-stderr reco-enrich --stats --rejects rej.ndjson -o out.ndjson mixed.ndjson
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"records in 19, out 16, dropped 0, rejected 3 (in = out + dropped + rejected)"* ]]
	[ "$(nlines rej.ndjson)" -eq 3 ]
	same_bytes out.ndjson "$(fixture enrich/sessions.out.ndjson)"
}

@test "--max-users bounds the sessions held, and memory with them" {
	reco-gen --events 60000 --users 60000 --sessions 20000 -O avro >small.avro
	reco-gen --events 240000 --users 240000 --sessions 80000 -O avro >big.avro
	reco-enrich --max-users 1000 --metrics m.prom -O avro small.avro >/dev/null
	[ "$(metric_of m.prom reco_enrich_users)" -eq 1000 ]
	[ "$(metric_of m.prom reco_enrich_users_evicted_total)" -gt 0 ]
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f %M -o rss1 reco-enrich --max-users 1000 -O avro small.avro >/dev/null
		/usr/bin/time -f %M -o rss2 reco-enrich --max-users 1000 -O avro big.avro >/dev/null
		/usr/bin/time -f %M -o rss3 reco-enrich -O avro big.avro >/dev/null
		r1=$(tail -1 rss1) r2=$(tail -1 rss2) r3=$(tail -1 rss3)
		# Four times the users in, the same memory (KB); unbounded, more.
		[ "$r2" -lt $((r1 + 1024)) ] || fail "peak RSS $r1 KB, then $r2 KB"
		[ "$r3" -gt $((r2 + 4096)) ] || fail "unbounded: $r3 KB, bounded: $r2 KB"
	fi
}

@test "an evicted user's next event starts a new session" {
	views 0 4 >in.ndjson    # users u0 u1 u2 u3, a second apart
	views 5 1 >>in.ndjson   # u0 again, 5 s after its first event
	reco-enrich --max-users 2 --metrics m.prom in.ndjson >out.ndjson
	[ "$(tail -1 out.ndjson | jq -r '.session + " " + .attrs.session_seq')" = "u0:1700000005000 1" ]
	reco-enrich in.ndjson >out.ndjson
	[ "$(tail -1 out.ndjson | jq -r '.session + " " + .attrs.session_seq')" = "u0:1700000000000 2" ]
}

@test "usage errors exit 2" {
	for args in "--session-gap abc" "--session-gap 0" "--item-key x" "--max-users 0" \
	    "--no-sessions --state s" "--item-fields a,,b --items x" "--max-table-rows -1" \
	    "--items -"; do
		run --separate-stderr reco-enrich $args
		[ "$status" -eq 2 ] || fail "$args: status $status"
		[[ "$stderr" == *"--help"* ]] || fail "$args: no hint"
	done
}

# ---- the agreement checker ----

@test "session-agree.sh: pair agreement on a known case" {
	printf '%s\n' \
	    '{"user":"u1","session":"A","attrs":{"source_session":"X"}}' \
	    '{"user":"u1","session":"A","attrs":{"source_session":"X"}}' \
	    '{"user":"u2","session":"P","attrs":{"source_session":"Q"}}' \
	    '{"user":"u1","session":"B","attrs":{"source_session":"X"}}' \
	    '{"user":"u1","session":"B","attrs":{"source_session":"Y"}}' \
	    '{"user":"u2","session":"P","attrs":{"source_session":"Q"}}' \
	    '{"user":"u1","session":"C","attrs":{"source_session":"Z"}}' >pairs.ndjson
	run sh "$RECO_ROOT/tests/tools/session-agree.sh" pairs.ndjson
	[ "$status" -eq 0 ]
	[ "$output" = "60.00% of 5 pairs agree (same in both 2, new in both 1, split only by session 1, split only by source_session 1)" ]
}

@test "session-agree.sh on reco-gen's own sessions" {
	reco-gen --events 5000 --users 100 --rate 0.2 >in.ndjson
	# Its sessions kept: full agreement.
	reco-enrich --keep-session --source-session-attr source_session in.ndjson |
		sh "$RECO_ROOT/tests/tools/session-agree.sh" >kept
	[[ "$(cat kept)" == "100.00% of 4900 pairs agree"* ]]
	# Computed ones: a percentage of the same pairs.
	reco-enrich --source-session-attr orig in.ndjson |
		sh "$RECO_ROOT/tests/tools/session-agree.sh" -a orig >computed
	[[ "$(cat computed)" =~ ^[0-9]+\.[0-9][0-9]%\ of\ 4900\ pairs\ agree ]]
}
