#!/usr/bin/env bats
# reco-clean.bats: reco-clean: golden outputs per option, accounting, scoring against reco-gen's truth, state files, determinism, bounded memory.

load helpers

bats_require_minimum_version 1.5.0

# Copy fixtures of tests/fixtures/clean into the test directory, so that
# messages and rejects name them by their short names.
use() {
	local f
	for f in "$@"; do
		cp "$(fixture "clean/$f")" "$f"
	done
}

# Print the numbers of the --stats line: in out dropped rejected.
stats_of() {
	sed -n 's/^reco-clean: records in \([0-9]*\), out \([0-9]*\), dropped \([0-9]*\), rejected \([0-9]*\) (in = out + dropped + rejected)$/\1 \2 \3 \4/p' "$1"
}

# A dirty stream and its truth: duplicates, late and out-of-order events,
# bots. Late events are at most --late-by late, so that some come within
# a short stream.
dirty() {
	reco-gen --seed "${3:-7}" --events "$1" --dup-rate 0.02 --late-rate 0.01 \
		--late-by "${4:-10m}" --ooo-rate 0.02 --bot-users 0.02 \
		--truth truth.ndjson -o "$2"
}

# ---- the contract ----

@test "the tool contract: help, version, bad options, files, stdin, full disk" {
	check_contract reco-clean
}

@test "usage errors exit 2" {
	local bad
	for bad in "--max-rate 12" "--max-rate x/min" "--max-rate 5/fortnight" \
		"--bots maybe" "--late never" "--types view,teleport" \
		"--max-lateness soon" "--dedupe-max 0" "--max-buffer -1" \
		"--checkpoint-every 10" "--flush" "--max-users 1x"; do
		# shellcheck disable=SC2086
		run --separate-stderr reco-clean $bad </dev/null
		[ "$status" -eq 2 ] || fail "$bad: status $status"
		[[ "$stderr" == *"reco-clean: "*"--help"* ]] || fail "$bad: $stderr"
		[ -z "$output" ]
	done
}

@test "a missing pattern or user file is an I/O error" {
	run --separate-stderr reco-clean --bot-agents nope.txt </dev/null
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"nope.txt"* ]]
	run --separate-stderr reco-clean --users-from nope.txt </dev/null
	[ "$status" -eq 3 ]
}

# ---- golden outputs ----

@test "golden: order, duplicates, bots, late, future and invalid records" {
	use basic.ndjson
	run --separate-stderr reco-clean --rejects rej.ndjson --drops drops.ndjson \
		-o out.ndjson basic.ndjson
	[ "$status" -eq 0 ]
	same_bytes out.ndjson "$(fixture clean/basic.out.ndjson)"
	same_bytes rej.ndjson "$(fixture clean/basic.rejects.ndjson)"
	same_bytes drops.ndjson "$(fixture clean/basic.drops.ndjson)"
	[[ "$stderr" == *"reco-clean: basic.ndjson:7: late event: 7.000s older than the newest event (--max-lateness 5s)"* ]]
	[[ "$stderr" == *"reco-clean: basic.ndjson:8: event time 2023-11-15T00:13:30.000Z is 7200.000s ahead of the newest event (--max-future 1h)"* ]]
	[[ "$stderr" == *"reco-clean: basic.ndjson:11: unknown event type \"teleport\""* ]]
	[[ "$stderr" == *"reco-clean: basic.ndjson:12: missing item for purchase event"* ]]
}

@test "golden: each option on the same input" {
	use basic.ndjson users.txt agents.txt
	local name opts
	while IFS='|' read -r name opts; do
		# shellcheck disable=SC2086
		reco-clean -q $opts basic.ndjson >"$name.out" ||
			fail "$name: status $?"
		same_bytes "$name.out" "$(fixture "clean/basic.$name.out.ndjson")" ||
			fail "option $opts"
	done <<-'EOF'
	types|--types view,purchase
	users|--users-from users.txt
	exclude|--exclude-users users.txt
	tag|--bots tag
	latepass|--late pass
	l0|--max-lateness 0
	l0pass|--max-lateness 0 --late pass
	nobots|--no-default-bots
	agents|--no-default-bots --bot-agents agents.txt
	nofuture|--max-future 0
	EOF
}

@test "--max-lateness 0 --late pass: the valid events in input order" {
	use basic.ndjson
	reco-clean -q --max-lateness 0 --late pass --dedupe-window 0 \
		--no-default-bots --max-future 0 basic.ndjson >out.ndjson
	reco-ingest -q basic.ndjson >valid.ndjson
	same_bytes out.ndjson valid.ndjson
}

@test "--bots reject and --max-age give their reject reasons" {
	use basic.ndjson
	reco-clean -q --bots reject --rejects rej.ndjson basic.ndjson >out.ndjson
	same_bytes out.ndjson "$(fixture clean/basic.out.ndjson)"
	[ "$(jq -r 'select(.line == 5) | .reason' rej.ndjson)" = bot ]
	reco-clean -q --max-age 1s --late pass --rejects rej2.ndjson basic.ndjson >out2.ndjson
	same_bytes out2.ndjson "$(fixture clean/basic.out.ndjson)"
	[ "$(jq -r 'select(.line == 7) | .reason' rej2.ndjson)" = too_old ]
	[[ "$(jq -r 'select(.line == 7) | .message' rej2.ndjson)" == *"behind the watermark (--max-age 1s)"* ]]
}

@test "golden: the de-duplication window and its bounds" {
	use dedupe.ndjson
	reco-clean -q dedupe.ndjson >out.ndjson
	same_bytes out.ndjson "$(fixture clean/dedupe.out.ndjson)"
	reco-clean -q --dedupe-window 10s dedupe.ndjson >w10.ndjson
	same_bytes w10.ndjson "$(fixture clean/dedupe.w10.out.ndjson)"
	reco-clean -q --dedupe-window 0 dedupe.ndjson >off.ndjson
	same_bytes off.ndjson "$(fixture clean/dedupe.off.out.ndjson)"
	run --separate-stderr reco-clean --dedupe-max 1 --stats --metrics m.prom \
		-o max1.ndjson dedupe.ndjson
	[ "$status" -eq 0 ]
	same_bytes max1.ndjson "$(fixture clean/dedupe.max1.out.ndjson)"
	[[ "$stderr" == *"reco-clean:   dedupe_evicted_early_total 3"* ]]
	grep -qx 'reco_clean_dedupe_evicted_early_total 3' m.prom
	grep -qx 'reco_clean_dedupe_ids 1' m.prom
}

@test "golden: the rate limit slides, and --max-users bounds it" {
	use rate.ndjson
	run --separate-stderr reco-clean --max-rate 3/s --bots tag --stats -o out.ndjson rate.ndjson
	[ "$status" -eq 0 ]
	same_bytes out.ndjson "$(fixture clean/rate.tag.out.ndjson)"
	[[ "$stderr" == *'bots_total{rule="rate"} 2'* ]]
	# The same limit spelled differently.
	reco-clean -q --max-rate 3/1000ms --bots tag rate.ndjson >out2.ndjson
	same_bytes out2.ndjson out.ndjson
	run --separate-stderr reco-clean --max-rate 3/s --bots tag --max-users 1 --stats \
		-o users1.ndjson rate.ndjson
	same_bytes users1.ndjson "$(fixture clean/rate.users1.out.ndjson)"
	[[ "$stderr" == *"users_evicted_total 4"* ]]
	# Dropped by default; off with 0.
	[ "$(reco-clean -q --max-rate 3/s rate.ndjson | wc -l)" -eq 7 ]
	[ "$(reco-clean -q --max-rate 0 rate.ndjson | wc -l)" -eq 9 ]
}

@test "Avro in: the same output, rejects by block and record" {
	use basic.ndjson
	reco-ingest -q -O avro -o basic.avro basic.ndjson
	reco-clean -q --rejects rej.ndjson basic.avro >out.ndjson
	same_bytes out.ndjson "$(fixture clean/basic.out.ndjson)"
	[ "$(jq -r 'select(.reason == "late") | "\(.block) \(.record)"' rej.ndjson)" = "1 7" ]
	reco-clean -q -O avro basic.avro | reco-ingest -q >back.ndjson
	same_bytes back.ndjson "$(fixture clean/basic.out.ndjson)"
}

# ---- a generated stream ----

@test "precision and recall against reco-gen's truth are at least 99%" {
	dirty 50000 dirty.ndjson
	reco-clean -q --drops drops.ndjson --rejects rej.ndjson dirty.ndjson >out.ndjson
	jq -r 'select(.kind == "duplicate" or .kind == "bot" or .kind == "late") |
		"\(.line) \(.kind)"' truth.ndjson | sort >planted
	jq -r 'select(.reason == "duplicate" or .reason == "bot" or .reason == "late") |
		"\(.line) \(.reason)"' drops.ndjson rej.ndjson | sort >found
	local tp np nf
	tp=$(comm -12 planted found | wc -l)
	np=$(wc -l <planted)
	nf=$(wc -l <found)
	[ "$np" -gt 5000 ]
	awk -v tp="$tp" -v np="$np" -v nf="$nf" 'BEGIN {
		p = tp / nf; r = tp / np
		printf "precision %.4f recall %.4f (%d found, %d planted)\n", p, r, nf, np
		exit !(p >= 0.99 && r >= 0.99)
	}'
	# Each kind on its own too. The generator calls late whatever it held
	# back by minutes, but at the end of its stream such an event may come
	# only seconds late: within --max-lateness, it is put in order, rightly.
	jq -r 'select(.kind == "late" and .lateness_ms <= 5000) | "\(.line) late"' \
		truth.ndjson | sort >in_time
	comm -23 planted in_time >planted.late
	mv planted.late planted
	local k
	for k in duplicate bot late; do
		awk -v k="$k" '$2 == k' planted >p.k
		awk -v k="$k" '$2 == k' found >f.k
		tp=$(comm -12 p.k f.k | wc -l)
		awk -v tp="$tp" -v np="$(wc -l <p.k)" -v nf="$(wc -l <f.k)" -v k="$k" 'BEGIN {
			if (np == 0 || nf == 0) exit 1
			exit !(tp / nf >= 0.99 && tp / np >= 0.99)
		}' || fail "$k: $tp of $(wc -l <f.k) found, $(wc -l <p.k) planted"
	done
}

@test "the output is in time order and no out-of-order event is lost" {
	dirty 20000 dirty.ndjson
	reco-clean -q dirty.ndjson >out.ndjson
	jq -r .ts out.ndjson >ts
	sort -n -c ts
	jq -r 'select(.kind == "ooo") | .event_id' truth.ndjson | sort >ooo
	[ "$(wc -l <ooo)" -gt 100 ]
	jq -r .event_id out.ndjson | sort >kept
	[ -z "$(comm -23 ooo kept)" ]
	# No event_id twice.
	[ -z "$(uniq -d kept)" ]
}

@test "a shuffled stream comes out sorted, equal times in arrival order" {
	# Times in whole seconds, so that many are equal; then shuffled.
	reco-gen --seed 5 --events 4000 --rate 20 |
		jq -c '.ts -= .ts % 1000' |
		awk 'BEGIN { srand(42) } { printf "%.8f\t%s\n", rand(), $0 }' |
		sort -k1,1 | cut -f2- >shuffled.ndjson
	local opts="--max-lateness 1d --dedupe-window 0 --max-rate 0 --no-default-bots"
	# shellcheck disable=SC2086
	reco-clean -q $opts shuffled.ndjson >out.ndjson
	# (jq's sort is stable; reco-ingest writes numbers as the tools do)
	jq -s -c 'sort_by(.ts) | .[]' shuffled.ndjson | reco-ingest -q >want.ndjson
	same_bytes out.ndjson want.ndjson
	# The same through a state file, split anywhere.
	head -n 1500 shuffled.ndjson >a.ndjson
	tail -n +1501 shuffled.ndjson >b.ndjson
	# shellcheck disable=SC2086
	reco-clean -q $opts --state s.state a.ndjson >p1.ndjson
	# shellcheck disable=SC2086
	reco-clean -q $opts --state s.state --flush b.ndjson >p2.ndjson
	cat p1.ndjson p2.ndjson >joined.ndjson
	same_bytes want.ndjson joined.ndjson
	# A small buffer lets the earliest out early; what comes later than
	# that is late, and the rest is still in order.
	# shellcheck disable=SC2086
	run --separate-stderr reco-clean -q $opts --max-buffer 100 --stats -o small.ndjson shuffled.ndjson
	[ "$status" -eq 0 ]
	jq -r .ts small.ndjson | sort -n -c
	[[ "$stderr" == *"reorder_evicted_early_total"* ]]
	[[ "$stderr" == *'records_rejected_total{reason="late"}'* ]]
}

@test "--stats: every record accounted for, bad records included" {
	reco-gen --seed 3 --events 20000 --dup-rate 0.02 --late-rate 0.01 \
		--late-by 20s --ooo-rate 0.02 --bot-users 0.02 --malformed-rate 0.01 \
		-o dirty.ndjson
	run --separate-stderr reco-clean -q --stats -o out.ndjson dirty.ndjson
	[ "$status" -eq 0 ]
	printf '%s\n' "$stderr" >stats
	read -r in out dr rj < <(stats_of stats)
	[ "$in" -eq "$(wc -l <dirty.ndjson)" ]
	[ "$out" -eq "$(wc -l <out.ndjson)" ]
	[ "$in" -eq $((out + dr + rj)) ]
	grep -q 'records_rejected_total{reason="bad_json"}' stats
	grep -q 'records_rejected_total{reason="late"}' stats
	grep -q 'records_dropped_total{reason="duplicate"}' stats
	grep -q 'records_dropped_total{reason="bot"}' stats
}

@test "the same input and options give the same bytes; NDJSON and Avro agree" {
	dirty 20000 dirty.ndjson
	reco-gen --seed 7 --events 20000 --dup-rate 0.02 --late-rate 0.01 \
		--ooo-rate 0.02 --bot-users 0.02 -O avro -o dirty.avro
	reco-clean -q --bots tag dirty.ndjson >a.ndjson
	reco-clean -q --bots tag dirty.ndjson >b.ndjson
	same_bytes a.ndjson b.ndjson
	reco-clean -q --bots tag - <dirty.ndjson >c.ndjson
	same_bytes a.ndjson c.ndjson
	reco-clean -q --bots tag dirty.avro >d.ndjson
	same_bytes a.ndjson d.ndjson
	reco-clean -q --bots tag -O avro dirty.ndjson >a.avro
	reco-clean -q --bots tag -O avro dirty.avro >b.avro
	same_bytes a.avro b.avro
	reco-ingest -q a.avro >e.ndjson
	same_bytes a.ndjson e.ndjson
}

# ---- state ----

@test "canonical lines and the same events in another form give the same bytes" {
	# The canonical lines take the short path; with their keys reversed
	# and spaces added they go through the full parse.
	dirty 20000 in.ndjson
	jq -c 'to_entries | reverse | from_entries' in.ndjson | sed 's/,/, /' >other.ndjson
	! cmp -s in.ndjson other.ndjson
	for f in in other; do
		reco-clean --stats --rejects "$f.rej" --drops "$f.drops" --bots tag \
			--metrics "$f.prom" "$f.ndjson" >"$f.out" 2>"$f.err"
		sed -i '/records\/s$/d' "$f.err"
		sed -i '/_seconds\|build_info/d' "$f.prom"
	done
	[ "$(nlines in.out)" -gt 19000 ]
	[ "$(nlines in.rej)" -gt 0 ]
	[ "$(nlines in.drops)" -gt 0 ]
	grep -q '"bot":"' in.out
	for x in out rej drops err prom; do
		sed 's/other\.ndjson/in.ndjson/g' "other.$x" >b
		same_bytes "in.$x" b || fail "$x differs"
	done
}

@test "--state: runs on parts give the bytes of one run, at any split" {
	dirty 3000 dirty.ndjson 11 20s
	reco-clean -q dirty.ndjson >whole.ndjson
	local k
	for k in 1 17 500 1234 2000 2999 $(wc -l <dirty.ndjson); do
		rm -f s.state
		head -n "$k" dirty.ndjson | reco-clean -q --state s.state >p1.ndjson
		tail -n +"$((k + 1))" dirty.ndjson | reco-clean -q --state s.state >p2.ndjson
		reco-clean -q --state s.state --flush </dev/null >p3.ndjson
		cat p1.ndjson p2.ndjson p3.ndjson >joined.ndjson
		same_bytes whole.ndjson joined.ndjson || fail "split at $k"
	done
	# --flush on the last part does the same.
	rm -f s.state
	head -n 1500 dirty.ndjson | reco-clean -q --state s.state >p1.ndjson
	tail -n +1501 dirty.ndjson | reco-clean -q --state s.state --flush >p2.ndjson
	cat p1.ndjson p2.ndjson >joined.ndjson
	same_bytes whole.ndjson joined.ndjson
	[ "$(head -c 17 s.state)" = "reco-clean state" ]
}

@test "--state with --checkpoint-every: the same bytes, and counts that add up" {
	dirty 3000 dirty.ndjson 5 20s
	reco-clean -q --bots tag -O avro dirty.ndjson >whole.avro
	rm -f s.state
	head -n 1700 dirty.ndjson >a.ndjson
	tail -n +1701 dirty.ndjson >b.ndjson
	run --separate-stderr reco-clean -q --bots tag -O avro --state s.state \
		--checkpoint-every 100 --stats --metrics m1.prom -o p1.avro a.ndjson
	[ "$status" -eq 0 ]
	printf '%s\n' "$stderr" >st1
	read -r in1 out1 dr1 rj1 < <(stats_of st1)
	[ "$in1" -eq 1700 ]
	grep -q 'records_dropped_total{reason="deferred"}' st1
	grep -qx 'reco_clean_checkpoints_total 18' m1.prom
	run --separate-stderr reco-clean -q --bots tag -O avro --state s.state \
		--checkpoint-every 100 --flush --stats -o p2.avro b.ndjson
	[ "$status" -eq 0 ]
	printf '%s\n' "$stderr" >st2
	read -r in2 out2 dr2 rj2 < <(stats_of st2)
	local n
	n=$(wc -l <dirty.ndjson)
	[ "$in2" -gt $((n - 1700)) ]
	grep -q 'state_restored_total' st2
	reco-ingest -q whole.avro >whole.ndjson
	reco-ingest -q p1.avro p2.avro >joined.ndjson
	same_bytes whole.ndjson joined.ndjson
	# The held events the first run deferred are the second run's extra
	# records in, and over both runs every record of the input ends in
	# one place.
	local deferred
	deferred=$(sed -n 's/.*records_dropped_total{reason="deferred"} //p' st1)
	[ "$deferred" -gt 0 ]
	[ "$in2" -eq $((n - 1700 + deferred)) ]
	[ $((out1 + out2 + dr1 - deferred + dr2 + rj1 + rj2)) -eq "$n" ]
}

@test "--checkpoint-every: a run killed after a checkpoint resumes from it" {
	dirty 3000 dirty.ndjson 9 20s
	reco-clean -q dirty.ndjson >whole.ndjson
	mkfifo feed
	reco-clean -q --state s.state --checkpoint-every 1000 -o p1.ndjson feed &
	local pid=$! i
	# (bats keeps descriptor 3 for itself)
	exec 8>feed
	head -n 1000 dirty.ndjson >&8
	for i in $(seq 100); do
		[ -f s.state ] && break
		[ "$i" -lt 100 ] || fail "no checkpoint after 10 s"
		sleep 0.1
	done
	kill -9 "$pid"
	wait "$pid" || true
	exec 8>&-
	[ -f s.state ]
	run --separate-stderr reco-clean -v --state s.state --flush -o p2.ndjson \
		<(tail -n +1001 dirty.ndjson)
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"restored after 1000 input records"* ]]
	cat p1.ndjson p2.ndjson >joined.ndjson
	same_bytes whole.ndjson joined.ndjson
}

@test "a corrupt or foreign state file is refused with status 1" {
	dirty 2000 dirty.ndjson 2 20s
	head -n 1000 dirty.ndjson | reco-clean -q --state good.state >/dev/null
	local size
	size=$(wc -c <good.state)
	[ "$size" -gt 1000 ]
	# Not a state file at all, or empty.
	printf 'hello\n' >foreign.state
	: >empty.state
	# A byte changed in the middle; the end cut off.
	cp good.state flipped.state
	printf '\377' | dd of=flipped.state bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	head -c $((size - 3)) good.state >short.state
	# Another version (the varint after the magic line).
	cp good.state v2.state
	printf '\004' | dd of=v2.state bs=1 seek=17 conv=notrunc 2>/dev/null
	local f
	for f in foreign empty flipped short v2; do
		cp "$f.state" "$f.before"
		run --separate-stderr reco-clean --state "$f.state" -o "$f.out" dirty.ndjson
		[ "$status" -eq 1 ] || fail "$f: status $status"
		[ ! -e "$f.out" ] || fail "$f: an output was written"
		cmp -s "$f.state" "$f.before" || fail "$f: the state file changed"
		case $f in
		foreign | empty) [[ "$stderr" == *"$f.state: not a reco-clean state file"* ]] ;;
		v2) [[ "$stderr" == *"v2.state: state file version 2; this reco-clean reads version 1"* ]] ;;
		*) [[ "$stderr" == *"$f.state: corrupt state file"* ]] ;;
		esac || fail "$f: $stderr"
	done
	# The good one still loads.
	tail -n +1001 dirty.ndjson | reco-clean -q --state good.state >/dev/null
}

# ---- memory ----

@test "peak memory is set by the windows, not by the input size" {
	[ -x /usr/bin/time ] || skip "/usr/bin/time is missing"
	local n
	for n in 100000 1000000; do
		reco-gen --seed 4 --events "$n" --dup-rate 0.01 --ooo-rate 0.01 |
			/usr/bin/time -f %M -o "rss.$n" reco-clean -q --dedupe-window 2m -o /dev/null
	done
	local a b
	a=$(tail -1 rss.100000)
	b=$(tail -1 rss.1000000)
	awk -v a="$a" -v b="$b" 'BEGIN {
		printf "peak RSS: %d KB at 10^5 events, %d KB at 10^6\n", a, b
		exit !(b <= a * 1.15 + 1024)
	}'
}
