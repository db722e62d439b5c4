#!/usr/bin/env bats
# reco-gen.bats: the generator: determinism, valid output in every format, exact truth, planted structure, bounded memory.

load helpers

bats_require_minimum_version 1.5.0

FAULTS="--dup-rate 0.02 --late-rate 0.01 --ooo-rate 0.03 --bot-users 0.02 --malformed-rate 0.01"

# The long and short option names of a usage synopsis or an mdoc SYNOPSIS,
# in order, one a line.
usage_opts() {
	reco-gen --help | sed '/^Write/,$d' | grep -o '\[-[-a-zA-Z]*' | sed 's/^\[//'
}
man_opts() {
	sed -n '/^\.Sh SYNOPSIS/,/^\.Sh DESCRIPTION/p' "$RECO_ROOT/man/reco-gen.1" |
		grep -o 'Fl [-a-zA-Z]*' | sed 's/^Fl //; s/^-/--/; s/^\([a-zA-Z]\)/-\1/'
}

# ---- the command line ----

@test "--help prints the usage on stdout and exits 0" {
	run --separate-stderr reco-gen --help
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: reco-gen "* ]]
	[ -z "$stderr" ]
	for o in --seed --events --format --truth --bot-users --malformed-rate; do
		[[ "$output" == *"$o"* ]] || fail "--help does not mention $o"
	done
}

@test "the usage synopsis names the options of the manual's SYNOPSIS, in order" {
	[ -f "$RECO_ROOT/man/reco-gen.1" ] || skip "no man page"
	usage_opts >usage.txt
	man_opts >man.txt
	[ -s man.txt ]
	same_bytes man.txt usage.txt
}

@test "--version prints the version" {
	run reco-gen --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^reco-gen\ \(reco\)\ [0-9]+\.[0-9]+\.[0-9]+ ]]
}

@test "a bad option or option value exits 2 with a hint" {
	local args
	for args in "--no-such-option" "--events" "--events abc" "--format xml" \
	    "--dup-rate 2" "--dup-rate 0.6 --late-rate 0.6" "--users 0" \
	    "--late-by soon" "--start yesterday" "--clusters 30 --categories 20" \
	    "--format csv -O avro" "--format csv --key user" \
	    "--malformed-rate 0.1 -O avro"; do
		# shellcheck disable=SC2086
		run --separate-stderr reco-gen $args
		[ "$status" -eq 2 ] || fail "reco-gen $args: status $status, not 2"
		[ -z "$output" ] || fail "reco-gen $args: wrote to stdout"
		[[ "$stderr" == *"reco-gen"*"--help"* ]] || fail "reco-gen $args: no hint: $stderr"
	done
}

@test "a file argument is a usage error" {
	run --separate-stderr reco-gen events.ndjson
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == *"reco-gen: "*"no input files"* ]]
}

@test "writing to a full disk exits 3 with a message" {
	run --separate-stderr to_full reco-gen --events 100
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"reco-gen: standard output: write error"* ]]
	run --separate-stderr to_full reco-gen --events 100000 -O avro
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"reco-gen: standard output: write error"* ]]
	run --separate-stderr reco-gen --events 100 --dup-rate 0.5 --truth /dev/full -o /dev/null
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"reco-gen: /dev/full: write error"* ]]
	run --separate-stderr reco-gen --events 100 --items-out no-such-dir/items.csv
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"reco-gen: no-such-dir/items.csv: "* ]]
}

# ---- determinism ----

@test "the same seed gives the same bytes, another seed others, in every format" {
	local f
	for f in "" "--format csv" "--format access-log" "-O avro" "$FAULTS"; do
		# shellcheck disable=SC2086
		reco-gen --seed 5 --events 5000 $f --truth t1 >a
		# shellcheck disable=SC2086
		reco-gen --seed 5 --events 5000 $f --truth t2 >b
		# shellcheck disable=SC2086
		reco-gen --seed 6 --events 5000 $f >c
		same_bytes a b
		same_bytes t1 t2
		! cmp -s a c || fail "seeds 5 and 6 give the same output ($f)"
	done
}

@test "-o writes the same bytes as standard output" {
	reco-gen --events 2000 >a
	reco-gen --events 2000 -o b
	same_bytes a b
}

# ---- the event format ----

@test "every event is canonical: reco-ingest takes all and writes the same bytes" {
	reco-gen --seed 3 --events 20000 --bot-users 0.02 >gen.ndjson
	run --separate-stderr reco-ingest --stats -o out.ndjson gen.ndjson
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"records in $(nlines gen.ndjson), out $(nlines gen.ndjson), dropped 0, rejected 0"* ]]
	same_bytes gen.ndjson out.ndjson
}

@test "events are in time order, with sessions, user agents, and the funnel's fields" {
	reco-gen --seed 2 --events 20000 >gen.ndjson
	jq -r .ts gen.ndjson | sort -c -n
	# Every event has a session and a browser's user agent.
	[ "$(jq -c 'select(.session == null or (.attrs.ua | test("^Mozilla/")) | not)' gen.ndjson | wc -l)" -eq 0 ]
	# Searches have a query and no item; cart events a qty and a price.
	[ "$(jq -c 'select(.type == "search" and (.query == null or .item != null))' gen.ndjson | wc -l)" -eq 0 ]
	[ "$(jq -c 'select((.type == "add_to_cart" or .type == "purchase") and (.qty < 1 or .price <= 0))' gen.ndjson | wc -l)" -eq 0 ]
	# Mostly views, and some of every other type but impressions.
	jq -r .type gen.ndjson | sort | uniq -c >types
	for t in view click search add_to_cart remove_from_cart purchase; do
		grep -q " $t\$" types || fail "no $t events"
	done
	views=$(awk '$2 == "view" { print $1 }' types)
	[ "$views" -gt 10000 ]
	# A purchase is of an item that was in the session's cart.
	jq -r 'select(.type == "add_to_cart" or .type == "purchase") | "\(.session) \(.item) \(.type)"' gen.ndjson |
		awk '$3 == "add_to_cart" { cart[$1 " " $2] = 1 } $3 == "purchase" && !cart[$1 " " $2] { bad++ } END { exit bad > 0 }'
}

@test "Avro output reads back through reco-ingest as the same NDJSON" {
	reco-gen --seed 4 --events 20000 --bot-users 0.01 >gen.ndjson
	reco-gen --seed 4 --events 20000 --bot-users 0.01 -O avro -o gen.avro
	reco-gen --seed 4 --events 20000 --bot-users 0.01 -O avro --codec deflate -o gen.deflate.avro
	[ "$(head -c 4 gen.avro)" = "$(printf 'Obj\001')" ]
	reco-ingest gen.avro >a.ndjson
	reco-ingest gen.deflate.avro >b.ndjson
	same_bytes gen.ndjson a.ndjson
	same_bytes gen.ndjson b.ndjson
	[ "$(stat -c %s gen.deflate.avro)" -lt "$(stat -c %s gen.avro)" ]
}

@test "--key user writes keyed NDJSON" {
	reco-gen --events 500 >plain
	reco-gen --events 500 --key user >keyed
	cut -f2- keyed >json
	same_bytes plain json
	paste <(cut -f1 keyed) <(jq -r .user plain) | awk '$1 != $2 { exit 1 }'
}

# ---- faults and the truth file ----

@test "--truth: counts near the requested rates, and --stats agrees" {
	run --separate-stderr reco-gen --seed 9 --events 50000 $FAULTS --truth truth.ndjson --stats -o gen.ndjson
	[ "$status" -eq 0 ]
	for k in duplicate late ooo bot malformed; do
		n=$(jq -r "select(.kind == \"$k\") | .kind" truth.ndjson | wc -l)
		eval "n_$k=$n"
		[[ "$stderr" == *"faults_total{kind=\"$k\"} $n"* ]] || fail "--stats does not say $k $n"
	done
	# 50000 events: 2% ~ 1000, 1% ~ 500, 3% ~ 1500 (a few held-back events
	# stay in order and are not faults).
	[ "$n_duplicate" -gt 850 ] && [ "$n_duplicate" -lt 1150 ]
	[ "$n_late" -gt 400 ] && [ "$n_late" -lt 600 ]
	[ "$n_ooo" -gt 1200 ] && [ "$n_ooo" -lt 1650 ]
	[ "$n_malformed" -gt 400 ] && [ "$n_malformed" -lt 600 ]
	# 2% of 1000 users are bots, and every one of their events is listed.
	[ "$(jq -r 'select(.kind == "bot") | .user' truth.ndjson | sort -u | wc -l)" -eq 20 ]
	[ "$n_bot" -eq "$(grep -c '"event_id":"b' gen.ndjson)" ]
	[[ "$stderr" == *"records in $(nlines gen.ndjson), out $(nlines gen.ndjson)"* ]]
}

@test "--truth is exact: duplicates, late, out-of-order, bots and garbage are where it says" {
	reco-gen --seed 8 --events 30000 $FAULTS --truth truth.ndjson >gen.ndjson
	jq -r '"\(.line) \(.kind) \(.event_id) \(.user) \(.lateness_ms // "-")"' truth.ndjson >t.txt
	# Walk the output with the truth: a duplicate repeats an earlier line
	# byte for byte, and no other line does; a late or out-of-order event
	# is older than the newest before it by lateness_ms; every other line
	# is in order; bot events have bot ids; garbage is not JSON or not
	# canonical.
	awk -v tf=t.txt '
	BEGIN { while ((getline l < tf) > 0) { split(l, f, " "); kind[f[1]] = f[2]; id[f[1]] = f[3]; late[f[1]] = f[5] } }
	{
		k = (NR in kind) ? kind[NR] : "none"
		if (k == "malformed") { next }
		if (!match($0, /"ts":[0-9]+/)) { print NR ": no ts"; bad++; next }
		ts = substr($0, RSTART + 5, RLENGTH - 5) + 0
		if (k == "duplicate" && !($0 in seen)) { print NR ": duplicate of nothing"; bad++ }
		if (k != "duplicate" && ($0 in seen)) { print NR ": unlisted duplicate"; bad++ }
		if (k == "late" || k == "ooo") {
			if (max - ts != late[NR]) { print NR ": lateness " max - ts " not " late[NR]; bad++ }
		} else if (k != "duplicate" && ts < max) { print NR ": unlisted disorder"; bad++ }
		if ((k == "bot") != (index($0, "{\"event_id\":\"b") == 1)) { print NR ": bot mismatch"; bad++ }
		if (k != "none" && index($0, "\"event_id\":\"" id[NR] "\"") == 0) { print NR ": wrong id"; bad++ }
		seen[$0] = 1
		if (ts > max) max = ts
	}
	END { exit bad > 0 }' gen.ndjson
	# reco-ingest rejects exactly the garbage lines.
	run --separate-stderr reco-ingest -q --stats --rejects rej.ndjson -o /dev/null gen.ndjson
	[ "$status" -eq 0 ]
	jq -r 'select(.kind == "malformed") | .line' truth.ndjson >want
	jq -r .line rej.ndjson >got
	[ -s want ]
	same_bytes want got
}

@test "without its faults, a dirty stream holds the clean stream's events" {
	reco-gen --seed 11 --events 20000 >clean.ndjson
	reco-gen --seed 11 --events 20000 $FAULTS --truth truth.ndjson >dirty.ndjson
	jq -r 'select(.kind == "duplicate" or .kind == "bot" or .kind == "malformed") | .line' truth.ndjson >drop
	awk 'NR == FNR { drop[$1] = 1; next } !(FNR in drop)' drop dirty.ndjson | sort >kept
	sort clean.ndjson >want
	same_bytes want kept
}

@test "bots are fast, crawl distinct items, and have bot user agents" {
	reco-gen --seed 12 --events 50000 --bot-users 0.01 --truth truth.ndjson >gen.ndjson
	grep '"event_id":"b' gen.ndjson >bots.ndjson
	[ -s bots.ndjson ]
	[ "$(jq -c 'select(.type != "view" or (.attrs.ua | test("bot|python-requests|curl|Scrapy|Wget") | not))' bots.ndjson | wc -l)" -eq 0 ]
	# Much faster than people: events per active minute, per user.
	jq -r '"\(.user) \(.ts / 60000 | floor)"' bots.ndjson | sort | uniq -c |
		awk '{ s += $1; n++ } END { exit !(s / n > 60) }'
	grep -v '"event_id":"b' gen.ndjson | jq -r '"\(.user) \(.ts / 60000 | floor)"' | sort | uniq -c |
		awk '{ s += $1; n++ } END { exit !(s / n < 10) }'
	# A crawl does not view an item twice.
	[ "$(jq -r '"\(.session) \(.item)"' bots.ndjson | sort | uniq -d | wc -l)" -eq 0 ]
}

@test "late events are late by up to --late-by" {
	reco-gen --seed 13 --events 200000 --late-rate 0.01 --late-by 30s --truth truth.ndjson >/dev/null
	jq -r 'select(.kind == "late") | .lateness_ms' truth.ndjson | sort -n >l
	[ "$(nlines l)" -gt 1500 ]
	[ "$(tail -1 l)" -le 30000 ]
	[ "$(awk '$1 >= 14000' l | wc -l)" -gt "$(( $(nlines l) * 9 / 10 ))" ]
}

# ---- CSV and access logs ----

@test "--format csv: a REES46 header, nine fields, UTC times, four types" {
	reco-gen --seed 1 --events 10000 --format csv >store.csv
	[ "$(head -1 store.csv)" = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session" ]
	[ "$(nlines store.csv)" -eq 10001 ]
	awk -F, 'NR > 1 && (NF != 9 ||
	    $1 !~ /^2019-10-01 [0-9][0-9]:[0-9][0-9]:[0-9][0-9] UTC$/ ||
	    $2 !~ /^(view|cart|remove_from_cart|purchase)$/ ||
	    $3 !~ /^i[0-9]+$/ || $5 !~ /^[a-z_0-9]+\.[a-z_0-9]+$/ ||
	    $7 !~ /^[0-9]+\.[0-9][0-9]$/ || $8 !~ /^u[0-9]+$/ ||
	    $9 !~ /^s[0-9]+-[0-9]+$/ || index($9, "s" substr($8, 2) "-") != 1) { print NR ": " $0; bad++ }
	    END { exit bad > 0 }' store.csv
	# The same events as the event format.
	reco-gen --seed 1 --events 10000 | jq -r '.user' >u1
	tail -n +2 store.csv | cut -d, -f8 >u2
	same_bytes u1 u2
}

@test "--format csv: faults are listed by line and duplicates are the same row" {
	reco-gen --seed 3 --events 20000 --format csv --dup-rate 0.02 --malformed-rate 0.01 --truth truth.ndjson >store.csv
	jq -r 'select(.kind == "duplicate") | .line' truth.ndjson >dups
	[ "$(nlines dups)" -gt 300 ]
	awk 'NR == FNR { d[$1] = 1; next } (FNR in d) && !($0 in seen) { bad++ } { seen[$0] = 1 } END { exit bad > 0 }' dups store.csv
	jq -r 'select(.kind == "malformed") | .line' truth.ndjson >want
	reco-ingest -q --from csv \
	    --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	    --type-map cart=add_to_cart --rejects rej.ndjson store.csv >/dev/null
	jq -r .line rej.ndjson >got
	same_bytes want got
}

@test "--format access-log: combined log lines with the documented routes" {
	reco-gen --seed 1 --events 10000 --format access-log >access.log
	[ "$(nlines access.log)" -eq 10000 ]
	awk '!/^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+ - - \[[0-3][0-9]\/Oct\/2019:[0-9][0-9]:[0-9][0-9]:[0-9][0-9] \+0000\] "(GET \/product\/i[0-9]+\?|POST \/cart\/i[0-9]+\?|POST \/cart\/i[0-9]+\/remove\?|POST \/checkout\/i[0-9]+\?|GET \/search\?q=[a-z_0-9+]+&)uid=u[0-9]+ HTTP\/1\.1" 200 [0-9]+ "-" "Mozilla\/5\.0 [^"]+"$/ { print NR ": " $0; bad++ }
	    END { exit bad > 0 }' access.log
	for r in 'GET /product/' 'POST /cart/' '/remove?' 'POST /checkout/' 'GET /search?q='; do
		grep -qF "$r" access.log || fail "no $r requests"
	done
	# reco-ingest reads the users and the types back.
	reco-ingest --from access-log --user-from param:uid access.log | jq -r '"\(.user) \(.type)"' >got
	reco-gen --seed 1 --events 10000 | jq -r '"\(.user) \(if .type == "click" then "view" else .type end)"' >want
	same_bytes want got
}

# ---- lookup tables and structure ----

@test "--items-out and --users-out write the lookup tables" {
	reco-gen --events 3000 --items 700 --users 300 --bot-users 0.01 \
	    --items-out items.csv --users-out users.csv >gen.ndjson
	[ "$(head -1 items.csv)" = "item,category,brand,price,stock" ]
	[ "$(head -1 users.csv)" = "user,segment,country" ]
	[ "$(nlines items.csv)" -eq 701 ]
	[ "$(nlines users.csv)" -eq 304 ]
	awk -F, 'NR > 1 && (NF != 5 || $1 != "i" (NR - 1) || $4 !~ /^[0-9]+\.[0-9][0-9]$/ || $5 !~ /^[0-9]+$/) { bad++ }
	    END { exit bad > 0 }' items.csv
	awk -F, 'NR > 1 && (NF != 3 || $2 !~ /^(new|casual|regular|loyal|vip)$/ || $3 !~ /^[A-Z][A-Z]$/) { bad++ }
	    END { exit bad > 0 }' users.csv
	# The prices of cart events are the catalogue's.
	jq -r 'select(.price) | "\(.item) \(.price)"' gen.ndjson | sort -u >p1
	awk -F, 'NR > 1 { printf "%s %s\n", $1, $4 + 0 }' items.csv | sort >p2
	[ "$(join p1 p2 | awk '$2 != $3' | wc -l)" -eq 0 ]
	[ "$(join p1 p2 | wc -l)" -eq "$(nlines p1)" ]
}

@test "planted structure: users keep to their clusters, unless --no-structure" {
	# With 8 clusters and 20 categories, the first word of a category
	# names its cluster. Score: the share of each user's views that fall
	# in the user's most viewed cluster, over all views.
	share() {
		reco-gen --seed 21 --events 30000 --users 300 "$@" --items-out items.csv >gen.ndjson
		awk -F, 'NR > 1 { split($2, w, "."); print $1, w[1] }' items.csv | sort >clusters
		jq -r 'select(.type == "view") | "\(.item) \(.user)"' gen.ndjson | sort |
			join - clusters | awk '{ n[$2 " " $3]++; t[$2]++ }
			END { for (k in n) { split(k, p, " "); if (n[k] > m[p[1]]) m[p[1]] = n[k] }
			      for (u in t) { a += m[u]; b += t[u] } printf "%d\n", 100 * a / b }'
	}
	s=$(share)
	ns=$(share --no-structure)
	echo "structure $s%, none $ns%"
	[ "$s" -gt 60 ]
	[ "$ns" -lt 45 ]
}

# ---- scale ----

@test "--stats counts events by type" {
	run --separate-stderr reco-gen --events 1000 --stats -o /dev/null
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"reco-gen: records in 1000, out 1000, dropped 0, rejected 0"* ]]
	[[ "$stderr" == *'events_total{type="view"}'* ]]
	[[ "$stderr" == *'events_total{type="purchase"}'* ]]
}

@test "memory does not grow with --events" {
	[ -x /usr/bin/time ] || skip "no /usr/bin/time (Debian package time)"
	/usr/bin/time -f %M -o m5 reco-gen --events 100000 -o /dev/null
	/usr/bin/time -f %M -o m6 reco-gen --events 1000000 $FAULTS -o /dev/null
	a=$(tail -1 m5)
	b=$(tail -1 m6)
	echo "max RSS: 10^5 events $a KB, 10^6 events with faults $b KB"
	[ "$b" -lt $((a + a / 4 + 2048)) ]
}

# ---- regimes ----

@test "--regime shop is the default: the same bytes as no --regime" {
	local f
	for f in "" "--format csv" "-O avro" "$FAULTS --seed 4"; do
		# shellcheck disable=SC2086
		reco-gen --events 5000 $f --truth t1 >a
		# shellcheck disable=SC2086
		reco-gen --events 5000 --regime shop $f --truth t2 >b
		same_bytes a b
		same_bytes t1 t2
	done
}

@test "--regime: an unknown regime, and options a regime refuses, exit 2 with a message" {
	local args
	for args in "--regime mall|unknown regime" \
	    "--regime sessions --users 100|--users: in the sessions regime" \
	    "--regime sessions --users-out u.csv|--users-out: the sessions regime" \
	    "--regime history --sessions 10|--sessions: the history regime" \
	    "--regime history --bot-users 0.01|--bot-users: the history regime" \
	    "--regime history --events 1000 --users 100|must be 50 to 500 times --users" \
	    "--regime history --events 1000 --users 1|must be 50 to 500 times --users" \
	    "--regime history --items 300|--items: the history regime"; do
		# shellcheck disable=SC2086
		run --separate-stderr reco-gen ${args%%|*}
		[ "$status" -eq 2 ] || fail "reco-gen ${args%%|*}: status $status, not 2"
		[ -z "$output" ] || fail "reco-gen ${args%%|*}: wrote to stdout"
		[[ "$stderr" == *"${args#*|}"* ]] || fail "reco-gen ${args%%|*}: $stderr"
	done
}

@test "sessions and history: the same seed gives the same bytes, another seed others" {
	local r f faults
	for r in sessions history; do
		faults="--dup-rate 0.02 --late-rate 0.01 --ooo-rate 0.03 --malformed-rate 0.01"
		[ "$r" = sessions ] && faults="$faults --bot-users 0.02"
		for f in "" "--format csv" "--format access-log" "-O avro" "$faults" "--no-structure"; do
			# shellcheck disable=SC2086
			reco-gen --regime $r --seed 5 --events 5000 $f --truth t1 --items-out i1 >a
			# shellcheck disable=SC2086
			reco-gen --regime $r --seed 5 --events 5000 $f --truth t2 --items-out i2 >b
			# shellcheck disable=SC2086
			reco-gen --regime $r --seed 6 --events 5000 $f >c
			same_bytes a b
			same_bytes t1 t2
			same_bytes i1 i2
			! cmp -s a c || fail "$r: seeds 5 and 6 give the same output ($f)"
		done
	done
}

@test "sessions and history: every event is canonical, and Avro reads back the same" {
	local r
	for r in sessions history; do
		reco-gen --regime $r --seed 3 --events 10000 >gen.ndjson
		run --separate-stderr reco-ingest --stats -o out.ndjson gen.ndjson
		[ "$status" -eq 0 ]
		[[ "$stderr" == *"records in 10000, out 10000, dropped 0, rejected 0"* ]]
		same_bytes gen.ndjson out.ndjson
		reco-gen --regime $r --seed 3 --events 10000 -O avro --codec deflate | reco-ingest >a.ndjson
		same_bytes gen.ndjson a.ndjson
		jq -r .ts gen.ndjson | sort -c -n
	done
}

@test "sessions and history: CSV and access logs hold the same users and items" {
	local r
	for r in sessions history; do
		reco-gen --regime $r --seed 2 --events 5000 >gen.ndjson
		reco-gen --regime $r --seed 2 --events 5000 --format csv >store.csv
		reco-gen --regime $r --seed 2 --events 5000 --format access-log >access.log
		reco-ingest -q --from csv \
		    --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
		    --type-map cart=add_to_cart store.csv | jq -r '"\(.user) \(.item) \(.session)"' >got
		jq -r '"\(.user) \(.item) \(.session)"' gen.ndjson >want
		same_bytes want got
		reco-ingest --from access-log --user-from param:uid access.log | jq -r '"\(.user) \(.item)"' >got
		jq -r '"\(.user) \(.item)"' gen.ndjson >want
		same_bytes want got
	done
}

@test "sessions: short sessions of anonymous visitors, many at once, views and clicks" {
	reco-gen --regime sessions --seed 7 --events 20000 --sessions 100 >gen.ndjson
	jq -r '"\(.session) \(.user) \(.type)"' gen.ndjson >s.txt
	# Every session is its visitor's: s<user>-<n>.
	awk '{ split($1, p, "-"); if (p[1] != "s" substr($2, 2)) bad++ } END { exit bad > 0 }' s.txt
	# 2 to 20 events, for the sessions that began early enough to end.
	awk 'NR <= 15000 && !($1 in n) { first[$1] = 1 } { n[$1]++ }
	    END { for (s in first) if (n[s] < 2 || n[s] > 20) { print s, n[s]; bad++ } exit bad > 0 }' s.txt
	awk '{ n[$1]++ } END { for (s in n) if (n[s] > 20) bad++; exit bad > 0 }' s.txt
	# Most visitors have one session; a few come back.
	awk '{ s[$2 " " $1] = 1 } END { for (k in s) { split(k, p, " "); c[p[1]]++ }
	    for (u in c) { n++; if (c[u] == 1) one++ } print one, n; exit !(one > 0.9 * n && one < n) }' s.txt
	# Sessions interleave: many distinct sessions in any 500 events.
	[ "$(sed -n '10001,10500p' s.txt | cut -d' ' -f1 | sort -u | wc -l)" -gt 60 ]
	# Mostly views and clicks, some adds to the cart and purchases.
	cut -d' ' -f3 s.txt | sort | uniq -c >types
	cat types
	[ "$(awk '$2 == "view" || $2 == "click" { n += $1 } END { print n }' types)" -gt 18000 ]
	grep -q ' add_to_cart$' types
	grep -q ' purchase$' types
	! grep -qE ' (search|remove_from_cart)$' types
}

# The share of a session stream's item-to-item transitions (views and
# clicks) that belong to pairs seen at least 3 times and 5 times as often
# as the items' popularity explains, in percent.
transition_share() {
	jq -r 'select(.type == "view" or .type == "click") | "\(.session) \(.item)"' "$1" |
		awk '{ c[$2]++; N++; if ($1 in last) { n[last[$1] " " $2]++; o[last[$1]]++; t++ } last[$1] = $2 }
		END { for (k in n) { split(k, p, " "); if (n[k] >= 3 && n[k] > 5 * o[p[1]] * c[p[2]] / N) s += n[k] }
		      printf "%d\n", 100 * s / t }'
}

@test "sessions: the planted transitions are measurable, unless --no-structure" {
	reco-gen --regime sessions --seed 4 --events 20000 >gen.ndjson
	reco-gen --regime sessions --seed 4 --events 20000 --no-structure >flat.ndjson
	s=$(transition_share gen.ndjson)
	ns=$(transition_share flat.ndjson)
	echo "planted transitions: $s%, none: $ns%"
	[ "$s" -ge 25 ]
	[ "$ns" -le 5 ]
}

# HR@20 of a model in a reco-eval --json report, in thousandths.
hr20() {
	jq -r --arg m "$1" '.models[] | select(.model == $m) | .["hr@20"] * 1000 | floor' "$2"
}

@test "sessions: session co-occurrence learns the structure, popularity does not" {
	local s
	for s in 1 2; do
		reco-gen --regime sessions --seed $s --events 15000 | reco-eval --json --models pop,cooc >e.json
		reco-gen --regime sessions --seed $s --events 15000 --no-structure | reco-eval --json --models pop,cooc >f.json
		echo "seed $s: pop $(hr20 pop e.json) cooc $(hr20 cooc e.json); no structure: pop $(hr20 pop f.json) cooc $(hr20 cooc f.json)"
		[ "$(hr20 cooc e.json)" -ge $(( $(hr20 pop e.json) + 150 )) ]
		[ "$(hr20 cooc f.json)" -lt $(( $(hr20 pop f.json) + 150 )) ]
	done
}

@test "history: long histories over months, without repeats" {
	reco-gen --regime history --seed 8 --events 20000 --users-out users.csv >gen.ndjson
	jq -r '"\(.user) \(.item) \(.ts) \(.type) \(.session)"' gen.ndjson >h.txt
	[ "$(nlines h.txt)" -eq 20000 ]
	# A user never sees an item twice.
	[ "$(cut -d' ' -f1,2 h.txt | sort | uniq -d | wc -l)" -eq 0 ]
	# 100 users (20000 / 200), of 50 to 500 events each, all in the table.
	awk '{ n[$1]++ } END { for (u in n) { k++; if (n[u] < 50 || n[u] > 500) bad++ } exit !(k == 100 && !bad) }' h.txt
	[ "$(nlines users.csv)" -eq 101 ]
	# Views without sessions, in time order, over about six months, each
	# user's over weeks.
	[ "$(awk '$4 != "view" || $5 != "null"' h.txt | wc -l)" -eq 0 ]
	cut -d' ' -f3 h.txt | sort -c -n
	awk 'NR == 1 { a = $3 } { b = $3 } END { d = (b - a) / 86400000; print d " days"; exit !(d > 120 && d < 260) }' h.txt
	awk '!($1 in a) { a[$1] = $3 } { b[$1] = $3 }
	    END { for (u in a) if ((b[u] - a[u]) / 86400000 < 20) bad++; exit bad > 0 }' h.txt
	# --users alone: 200 events each.
	reco-gen --regime history --users 7 | jq -r .user | sort -u | wc -l | grep -qx 7
	[ "$(reco-gen --regime history --users 7 | wc -l)" -eq 1400 ]
}

@test "history: tastes in clusters, drifting: a user's clusters change over the history" {
	# The first word of a category names its cluster. Per user, the
	# share of events in the user's main cluster of the first and of the
	# last fifth of the history, and how often those two differ.
	reco-gen --regime history --seed 9 --events 20000 --items-out items.csv >gen.ndjson
	awk -F, 'NR > 1 { split($2, w, "."); print $1, w[1] }' items.csv | sort >clusters
	jq -r '"\(.item) \(.user)"' gen.ndjson | awk '{ print $0, NR }' | sort | join - clusters |
		sort -k3,3n | awk '{ n[$2]++; u[NR] = $2; c[NR] = $4 } END {
		for (i = 1; i <= NR; i++) { k = u[i]; p = seen[k]++ * 5 / n[k]
			if (p < 1) f[k " " c[i]]++; else if (p >= 4) l[k " " c[i]]++ }
		for (x in f) { split(x, q, " "); if (f[x] > fm[q[1]]) { fm[q[1]] = f[x]; fc[q[1]] = q[2] } }
		for (x in l) { split(x, q, " "); if (l[x] > lm[q[1]]) { lm[q[1]] = l[x]; lc[q[1]] = q[2] } }
		for (k in n) { users++; share += fm[k] / (n[k] / 5); if (fc[k] != lc[k]) moved++ }
		printf "main cluster share %d%%, users whose taste moved %d of %d\n", 100 * share / users, moved, users
		exit !(share / users > 0.5 && moved > users / 2) }'
}

@test "history: co-occurrence and factorisation learn the tastes, popularity does not" {
	local s
	for s in 1 2; do
		reco-gen --regime history --seed $s --events 15000 >gen.ndjson
		reco-gen --regime history --seed $s --events 15000 --no-structure >flat.ndjson
		# The factors of long histories are learned without forgetting:
		# the default half-life of a week forgets between visits.
		reco-eval --json --models pop,cooc gen.ndjson >e.json
		reco-eval --json --models pop,mf --forget 0 gen.ndjson >m.json
		reco-eval --json --models pop,cooc flat.ndjson >f.json
		reco-eval --json --models pop,mf --forget 0 flat.ndjson >g.json
		echo "seed $s: pop $(hr20 pop e.json) cooc $(hr20 cooc e.json) mf $(hr20 mf m.json);" \
		    "no structure: pop $(hr20 pop f.json) cooc $(hr20 cooc f.json) mf $(hr20 mf g.json)"
		[ "$(hr20 cooc e.json)" -ge $(( $(hr20 pop e.json) + 200 )) ]
		[ "$(hr20 mf m.json)" -ge $(( 2 * $(hr20 pop m.json) )) ]
		[ "$(hr20 cooc f.json)" -lt $(( $(hr20 pop f.json) + 200 )) ]
		[ "$(hr20 mf g.json)" -lt $(( 2 * $(hr20 pop g.json) )) ]
	done
}

@test "sessions and history: a dirty stream holds the clean stream's events, as the truth says" {
	local r faults
	for r in sessions history; do
		faults="--dup-rate 0.02 --late-rate 0.01 --ooo-rate 0.03 --malformed-rate 0.01"
		[ "$r" = sessions ] && faults="$faults --bot-users 0.02"
		# shellcheck disable=SC2086
		reco-gen --regime $r --seed 11 --events 10000 >clean.ndjson
		# shellcheck disable=SC2086
		reco-gen --regime $r --seed 11 --events 10000 $faults --truth truth.ndjson >dirty.ndjson
		jq -r .kind truth.ndjson | sort | uniq -c
		jq -r 'select(.kind == "duplicate" or .kind == "bot" or .kind == "malformed") | .line' truth.ndjson >drop
		awk 'NR == FNR { drop[$1] = 1; next } !(FNR in drop)' drop dirty.ndjson | sort >kept
		sort clean.ndjson >want
		same_bytes want kept
		[ "$(jq -r 'select(.kind == "late") | .kind' truth.ndjson | wc -l)" -gt 50 ]
		if [ "$r" = sessions ]; then
			[ "$(grep -c '"event_id":"b' dirty.ndjson)" -eq "$(jq -r 'select(.kind == "bot") | .kind' truth.ndjson | wc -l)" ]
			[ "$(grep -c '"event_id":"b' dirty.ndjson)" -gt 0 ]
		fi
		# reco-ingest rejects exactly the garbage lines.
		reco-ingest -q --rejects rej.ndjson -o /dev/null dirty.ndjson
		jq -r 'select(.kind == "malformed") | .line' truth.ndjson >want
		jq -r .line rej.ndjson >got
		[ -s want ]
		same_bytes want got
	done
}

@test "sessions and history: memory does not grow with --events" {
	[ -x /usr/bin/time ] || skip "no /usr/bin/time (Debian package time)"
	local r
	for r in sessions history; do
		/usr/bin/time -f %M -o m5 reco-gen --regime $r --events 100000 -o /dev/null
		/usr/bin/time -f %M -o m6 reco-gen --regime $r --events 1000000 -o /dev/null
		a=$(tail -1 m5)
		b=$(tail -1 m6)
		echo "$r: max RSS: 10^5 events $a KB, 10^6 events $b KB"
		[ "$b" -lt $((a + a / 4 + 2048)) ]
	done
}
