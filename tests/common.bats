#!/usr/bin/env bats
# common.bats: the contract every reco tool keeps: help, version, usage errors, files, stdin, write errors.

load helpers

tools() {
	local list
	list=$(reco_tools)
	[ -n "$list" ] || { fail "no reco-* tools in $RECO_BIN"; return 1; }
	printf '%s\n' "$list"
}

@test "the tools are built" {
	run tools
	[ "$status" -eq 0 ]
	[[ "$output" == *reco-ingest* ]]
}

@test "--help and -h print the usage on stdout and exit 0" {
	for t in $(tools); do
		contract_help "$t"
	done
}

@test "--version and -V print 'reco-X (reco) VERSION' and exit 0" {
	for t in $(tools); do
		contract_version "$t"
	done
}

@test "every tool says the same version" {
	local v= first=
	for t in $(tools); do
		v=$("$t" --version </dev/null)
		v=${v##* }
		[ -z "$first" ] && first=$v
		[ "$v" = "$first" ] || fail "$t: version $v, others $first"
	done
}

@test "a bad option exits 2 with a hint on stderr and nothing on stdout" {
	for t in $(tools); do
		contract_bad_option "$t"
	done
}

@test "a missing input file exits 3 naming the file" {
	for t in $(tools); do
		contract_missing_file "$t"
	done
}

@test "'-' and no file read standard input" {
	for t in $(tools); do
		contract_stdin "$t"
	done
}

@test "writing to a full disk exits 3 with a message" {
	for t in $(tools); do
		contract_full "$t"
	done
}

@test "the usage names the options every tool shares" {
	for t in $(tools); do
		usage=$("$t" --help)
		for opt in --help --version; do
			[[ "$usage" == *"$opt"* ]] || fail "$t --help does not mention $opt"
		done
	done
}

@test "make install and uninstall honour PREFIX and DESTDIR" {
	local build root=$BATS_TEST_TMPDIR/root
	build=$(dirname "$RECO_BIN")
	make -s -C "$RECO_ROOT" install BUILD="$build" DESTDIR="$root" PREFIX=/opt/reco >/dev/null
	[ -x "$root/opt/reco/bin/reco-ingest" ]
	for t in "$root"/opt/reco/bin/*; do
		[ -f "$root/opt/reco/share/man/man1/$(basename "$t").1" ] ||
			fail "no man page for $(basename "$t")"
	done
	[ -f "$root/opt/reco/share/man/man7/reco.7" ]
	[ -f "$root/opt/reco/share/man/man5/reco-event.5" ]
	cmp "$root/opt/reco/share/reco/schema/event.avsc" "$RECO_ROOT/schema/event.avsc"
	"$root/opt/reco/bin/reco-ingest" --schema=avro | cmp - "$RECO_ROOT/schema/event.avsc"
	# The examples, where the crontab line of backfill-cron.sh looks.
	cmp "$root/opt/reco/share/reco/examples/backfill-cron.sh" "$RECO_ROOT/examples/backfill-cron.sh"
	[ -f "$root/opt/reco/share/reco/examples/monitoring/alerts.yml" ]
	make -s -C "$RECO_ROOT" uninstall BUILD="$build" DESTDIR="$root" PREFIX=/opt/reco >/dev/null
	[ -z "$(find "$root" -type f)" ]
}

# ---- --shard I/N: a shard of the users ----

load helpers-redis

teardown() {
	redis_stop
}

# The tools that read events, and so take --shard.
shard_tools="reco-ingest reco-clean reco-enrich reco-profile reco-train reco-eval"

# A generated CSV export with duplicates, bots, late and malformed rows.
shard_export() {
	reco-gen --seed 11 --events "$1" --users "$2" --dup-rate 0.02 --ooo-rate 0.03 \
	    --bot-users 0.02 --malformed-rate 0.005 --format csv -o gen.csv
}

# reco-ingest of that export, with positions (file:gen.csv:LINE).
shard_ingest() {
	reco-ingest --from csv \
	    --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	    --type-map cart=add_to_cart --keep category_code,brand,price "$@"
}

# The record counters of metrics files, summed over the files, without
# other_shard and the total of the drops (which includes it): what every
# record of a stream became across the shards.
record_fates() {
	cat "$@" | awk '$1 ~ /_records_(out|rejected|dropped)_total/ && $1 !~ /other_shard/ {
		n[$1] += $2 } END { for (k in n) print k, n[k] }' | sort
}

@test "--shard: a bad value exits 2 with a clear message; tools without events refuse it" {
	local t v st
	for t in $shard_tools; do
		for v in 3/3 1/0 x 1/2/3 -1/2 2/ /2 '' 0/65537 1.5/2; do
			"$t" --shard "$v" </dev/null >out 2>err && st=0 || st=$?
			[ "$st" -eq 2 ] || fail "$t --shard '$v': exit status $st, not 2"
			[ ! -s out ] || fail "$t --shard '$v': wrote to stdout"
			grep -q "^$t: --shard" err || fail "$t --shard '$v': no message naming --shard: $(cat err)"
			grep -q -- "--help" err || fail "$t --shard '$v': no hint"
		done
		"$t" --shard 3/3 </dev/null 2>err || true
		grep -q 'I must be below N, from 0 to 2' err
		"$t" --shard 1/0 </dev/null 2>err || true
		grep -q 'N must be from 1 to 65536' err
		"$t" --shard 1/2/3 </dev/null 2>err || true
		grep -q 'expected I/N.*not "1/2/3"' err
		"$t" --help | grep -q -- '--shard I/N'
	done
	# A generator and a server of requests have no events to shard.
	for t in reco-gen reco-serve; do
		"$t" --shard 0/2 </dev/null >out 2>err && st=0 || st=$?
		[ "$st" -eq 2 ] || fail "$t --shard 0/2: exit status $st, not 2"
		grep -q "$t reads no events" err
		! "$t" --help | grep -q -- '--shard'
	done
	# The edges are valid; one shard of one is everything.
	reco-gen --events 300 --users 40 >ev.ndjson
	reco-ingest --shard 65535/65536 ev.ndjson >/dev/null
	reco-ingest --shard 0/1 --stats ev.ndjson >one 2>err
	reco-ingest ev.ndjson | same_bytes /dev/stdin one
	! grep -q other_shard err
}

@test "--shard: the shards partition a stream: every event in one shard, no user in two, the counts add up" {
	local i n=4 users
	shard_export 6000 400
	# Unsharded: ingest | clean | enrich, and train on the result.
	shard_ingest --stats --metrics ing.prom --rejects rej.ndjson gen.csv 2>ing.err >ing.ndjson
	reco-clean --metrics cln.prom --stats ing.ndjson 2>cln.err >cln.ndjson
	reco-enrich --metrics enr.prom cln.ndjson >enr.ndjson
	reco-train --metrics trn.prom -o model.bin enr.ndjson
	[ -s rej.ndjson ] && [ "$(nlines ing.ndjson)" -gt 5000 ]
	for i in $(seq 0 $((n - 1))); do
		shard_ingest --shard "$i/$n" --stats --metrics "ing$i.prom" --rejects "rej$i.ndjson" gen.csv \
		    2>"ing$i.err" >"ing$i.ndjson"
		reco-clean --shard "$i/$n" --stats --metrics "cln$i.prom" "ing$i.ndjson" 2>"cln$i.err" >"cln$i.ndjson"
		reco-enrich --shard "$i/$n" --stats --metrics "enr$i.prom" "cln$i.ndjson" 2>"enr$i.err" >"enr$i.ndjson"
		reco-train --shard "$i/$n" --stats --metrics "trn$i.prom" -o "model$i.bin" "enr$i.ndjson" 2>"trn$i.err"
		reco-eval --shard "$i/$n" --stats "enr$i.ndjson" 2>"evl$i.err" >/dev/null
		for f in ing cln enr trn; do
			grep -q '(in = out + dropped + rejected)' "$f$i.err" ||
				fail "$f shard $i: $(cat "$f$i.err")"
		done
		# Each shard reads every record: what is not its own is other_shard.
		grep -q "records in $(grep -o 'records in [0-9]*' ing.err | cut -d' ' -f3)," "ing$i.err"
		grep -q 'reco_ingest_records_dropped_total{reason="other_shard"} [1-9]' "ing$i.prom"
		# The shard of the ingested events is the shard of every tool: the
		# same users, whichever tool shards.
		reco-ingest --shard "$i/$n" ing.ndjson | same_bytes "ing$i.ndjson" /dev/stdin
		reco-clean --shard "$i/$n" ing.ndjson | same_bytes "cln$i.ndjson" /dev/stdin
		reco-enrich --shard "$i/$n" cln.ndjson | same_bytes "enr$i.ndjson" /dev/stdin
		# A shard's users are its own.
		jq -r .user "ing$i.ndjson" | sort -u >"users$i"
		[ -s "users$i" ]
	done
	# The union of the shards is the unsharded output, line for line.
	for f in ing cln enr; do
		sort "$f".ndjson >want
		cat "$f"[0-9].ndjson | sort | same_bytes want /dev/stdin
	done
	# No user in two shards.
	users=$(cat users[0-9] | sort | uniq -d)
	[ -z "$users" ] || fail "users in two shards: $users"
	# Records that are not events yet are shard 0's: its rejects are all of
	# them, the other shards reject none.
	same_bytes rej.ndjson rej0.ndjson
	for i in 1 2 3; do [ ! -s "rej$i.ndjson" ]; done
	# Every counter of what the records became adds up over the shards.
	for f in ing cln enr trn; do
		record_fates "$f.prom" >want
		record_fates "$f"[0-9].prom | same_bytes want /dev/stdin
		grep -q 'records_out_total [1-9]' want
	done
	grep -q 'records_rejected_total{reason=' <(record_fates ing.prom)
	grep -q 'records_dropped_total{reason="duplicate"}' <(record_fates cln.prom)
}

@test "--shard: reco-profile's stores of the shards, merged, are the store of one unsharded run" {
	local i n=3
	shard_export 6000 300
	shard_ingest gen.csv 2>/dev/null | reco-clean | reco-enrich >ev.ndjson
	reco-profile --emit none --store all.state ev.ndjson
	reco-profile --dump --store all.state >all.dump
	for i in $(seq 0 $((n - 1))); do
		# Each shard's own pipeline, from the raw export to its store.
		shard_ingest --shard "$i/$n" gen.csv 2>/dev/null | reco-clean --shard "$i/$n" |
		    reco-enrich --shard "$i/$n" |
		    reco-profile --shard "$i/$n" --emit none --stats --store "s$i.state" 2>"p$i.err"
		grep -q '(in = out + dropped + rejected)' "p$i.err"
		reco-profile --dump --store "s$i.state" >"s$i.dump"
		[ -s "s$i.dump" ]
		# --dump --shard prints the shard's profiles of a whole store.
		reco-profile --dump --shard "$i/$n" --store all.state | same_bytes "s$i.dump" /dev/stdin
		# A replay of the shard's events changes nothing.
		reco-profile --shard "$i/$n" --emit none --stats --store "s$i.state" ev.ndjson 2>err
		grep -q 'out 0,' err
		grep -q 'reason="replayed"} [1-9]' err
		reco-profile --dump --store "s$i.state" | same_bytes "s$i.dump" /dev/stdin
	done
	sort all.dump >want
	cat s[0-9].dump | sort | same_bytes want /dev/stdin
	[ "$(cat s[0-9].dump | wc -l)" -eq "$(wc -l <all.dump)" ]
	# Not with --get or --restore.
	run reco-profile --get u1 --shard 0/2 --store all.state
	[ "$status" -eq 2 ]
	run reco-profile --restore --shard 0/2 --store x.state
	[ "$status" -eq 2 ]
}

# Wait (at most 20 s) until file $1 has a line matching $2.
wait_for_line() {
	local i
	for i in $(seq 400); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	fail "$1: no line matching $2 after 20 s: $(cat "$1" 2>/dev/null)"
}

@test "--shard: N shards write into one Redis store: the unsharded store, replays and kill -9 apply nothing twice" {
	local i n=3 pids pid k st
	redis_start
	shard_export 8000 300
	shard_ingest gen.csv 2>/dev/null >ev.ndjson
	reco-profile --emit none --store ref.state ev.ndjson
	reco-profile --dump --store ref.state >ref.dump
	# All shards at once into one store, in small batches.
	pids=
	for i in $(seq 0 $((n - 1))); do
		reco-profile --shard "$i/$n" --emit none --batch 50 --store "$REDIS_URL" ev.ndjson 3>&- &
		pids="$pids $!"
	done
	for pid in $pids; do wait "$pid"; done
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin
	# Each shard has its own positions.
	for i in $(seq 0 $((n - 1))); do
		[ "$(rcli hget reco:meta "pos:file:gen.csv#$i/$n")" -gt 7000 ]
		[ "$(rcli strlen "reco:w:file:gen.csv#$i/$n")" -gt 0 ]
	done
	[ -z "$(rcli hget reco:meta pos:file:gen.csv)" ]
	# The same input again, all shards at once: nothing is applied twice.
	pids=
	for i in $(seq 0 $((n - 1))); do
		reco-profile --shard "$i/$n" --emit none --batch 50 --stats --store "$REDIS_URL" \
		    ev.ndjson 2>"again$i.err" 3>&- &
		pids="$pids $!"
	done
	for pid in $pids; do wait "$pid"; done
	for i in $(seq 0 $((n - 1))); do
		grep -q 'out 0,' "again$i.err" || fail "shard $i applied again: $(cat "again$i.err")"
	done
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin

	# A shard that loaded the store before the others moved on must not
	# put their old positions back when it commits. Start over: every
	# shard applies the first half; shard 0 opens the store and waits for
	# input while shards 1 and 2 apply the whole; then shard 0 does.
	rcli flushdb >/dev/null
	k=$(($(wc -l <ev.ndjson) / 2))
	head -n "$k" ev.ndjson >half.ndjson
	for i in $(seq 0 $((n - 1))); do
		reco-profile --shard "$i/$n" --emit none --batch 50 --store "$REDIS_URL" half.ndjson
	done
	rm -f in.fifo && mkfifo in.fifo
	exec 8<>in.fifo
	reco-profile -v --shard "0/$n" --emit none --batch 50 --store "$REDIS_URL" in.fifo \
	    2>p0.err 8>&- 3>&- &
	pid=$!
	wait_for_line p0.err 'profiles loaded'
	for i in 1 2; do
		reco-profile --shard "$i/$n" --emit none --batch 50 --store "$REDIS_URL" ev.ndjson
	done
	cat ev.ndjson >&8
	exec 8>&-
	wait "$pid"
	for i in 1 2; do
		reco-profile --shard "$i/$n" --emit none --stats --store "$REDIS_URL" ev.ndjson 2>err
		grep -q 'out 0,' err || fail "shard $i applied again: $(cat err)"
	done
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin

	# kill -9 of a shard in the middle of its input, with the others
	# running: the restart on the same input applies the rest once.
	rcli flushdb >/dev/null
	rm -f in.fifo && mkfifo in.fifo
	exec 8<>in.fifo
	reco-profile --shard "1/$n" --emit none --batch 50 --store "$REDIS_URL" in.fifo 8>&- 3>&- &
	pid=$!
	head -n "$k" ev.ndjson >&8
	# Its first commits are in Redis once its position is there.
	for st in $(seq 400); do
		[ -n "$(rcli hget reco:meta "pos:file:gen.csv#1/$n")" ] && break
		sleep 0.05
	done
	[ -n "$(rcli hget reco:meta "pos:file:gen.csv#1/$n")" ]
	pids=
	for i in 0 2; do
		reco-profile --shard "$i/$n" --emit none --batch 50 --store "$REDIS_URL" ev.ndjson 3>&- &
		pids="$pids $!"
	done
	kill -9 "$pid"
	st=0
	wait "$pid" || st=$?
	[ "$st" -eq 137 ]
	exec 8>&-
	for pid in $pids; do wait "$pid"; done
	reco-profile --shard "1/$n" --emit none --batch 50 --stats --store "$REDIS_URL" ev.ndjson 2>err
	grep -q 'reason="replayed"} [1-9]' err
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin
}

@test "--metrics: a tool waiting for input keeps its metrics file current" {
	reco-gen --events 50 >ev.ndjson
	mkfifo in
	reco-clean --metrics m.prom in >out.ndjson 3>&- &
	pid=$!
	exec 8>in
	cat ev.ndjson >&8
	# The input stays open and idle: the counts still reach the file
	# (rewritten every 5 s), and the tool is still running.
	for i in $(seq 150); do
		grep -q '^reco_clean_records_in_total 50$' m.prom 2>/dev/null && break
		sleep 0.1
	done
	grep -q '^reco_clean_records_in_total 50$' m.prom
	kill -0 "$pid"
	# The file keeps being rewritten while nothing arrives.
	t1=$(stat -c %Y.%y m.prom)
	for i in $(seq 80); do
		[ "$(stat -c %Y.%y m.prom)" != "$t1" ] && break
		sleep 0.1
	done
	[ "$(stat -c %Y.%y m.prom)" != "$t1" ]
	exec 8>&-
	wait "$pid"
}

@test "--config FILE and \$RECO_CONFIG: options before the command line's, shared and per tool; errors name the file and line" {
	reco-gen --events 300 >ev.ndjson
	cat >reco.conf <<'CONF'
# one file for the pipeline
store = p.state
max-line 65536
[reco-profile]
--emit none
[serve]
default-n 3
CONF
	reco-profile --config reco.conf ev.ndjson >out.ndjson
	[ -s p.state ] && [ ! -s out.ndjson ]
	# The command line comes after the file, so it wins.
	reco-profile --config reco.conf --emit every --store q.state ev.ndjson >out.ndjson
	[ -s q.state ] && [ "$(nlines out.ndjson)" -eq 300 ]
	reco-train -o m.bin ev.ndjson
	u=$(jq -r .user ev.ndjson | head -1)
	echo "{\"user\":\"$u\"}" | RECO_CONFIG=reco.conf reco-serve --model m.bin >a.json
	[ "$(jq '.items | length' a.json)" -eq 3 ]
	# The request's n comes before the file's default.
	echo "{\"user\":\"$u\",\"n\":5}" | RECO_CONFIG=reco.conf reco-serve --model m.bin | jq -e '.items | length == 5' >/dev/null
	# A tool without the shared option skips it (reco-ingest has no --store).
	RECO_CONFIG=reco.conf reco-ingest ev.ndjson | cmp - ev.ndjson
	# Errors.
	printf '[reco-profile]\nbogus 1\n' >bad.conf
	run reco-profile --config bad.conf ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad.conf:2: reco-profile has no option --bogus"* ]]
	printf '[reco-profile]\nstore\n' >bad.conf
	run reco-profile --config bad.conf ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad.conf:2: --store needs a value"* ]]
	printf '[reco-profile\n' >bad.conf
	run reco-profile --config bad.conf ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad.conf:1: a section is [tool]"* ]]
	run reco-profile --config missing.conf ev.ndjson
	[ "$status" -eq 3 ]
	[[ "$output" == *"--config missing.conf: No such file or directory"* ]]
}

@test "RECO_STORE, RECO_METRICS, RECO_SHARD_BY...: defaults for the tools that have the option; the command line wins, the file loses" {
	reco-gen --events 300 --seed 5 >ev.ndjson
	RECO_STORE=env.state RECO_METRICS=env.prom reco-profile ev.ndjson >/dev/null
	[ -s env.state ]
	grep -q '^reco_profile_records_in_total 300$' env.prom
	# reco-clean has no --store: the variable is not its concern.
	RECO_STORE=clean.state reco-clean ev.ndjson >/dev/null
	[ ! -e clean.state ]
	# The command line wins over the environment.
	RECO_METRICS=env2.prom reco-clean --metrics cli.prom ev.ndjson >/dev/null
	[ -s cli.prom ]
	[ ! -e env2.prom ]
	# The environment wins over the configuration file.
	echo "metrics file.prom" >reco.conf
	RECO_METRICS=env3.prom reco-clean --config reco.conf ev.ndjson >/dev/null
	[ -s env3.prom ]
	[ ! -e file.prom ]
	# Kafka-aligned shards from the environment.
	RECO_SHARD_BY=murmur2 reco-clean --shard 1/4 ev.ndjson >env.shard
	reco-clean --shard 1/4 --shard-by murmur2 ev.ndjson | cmp - env.shard
	reco-clean --shard 1/4 ev.ndjson | cmp -s - env.shard && false
	run env RECO_SHARD_BY=bogus reco-clean ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *'--shard-by: "bogus" is none of'* ]]
	# Empty means unset.
	RECO_METRICS= reco-clean ev.ndjson >/dev/null
}
