#!/usr/bin/env bats
# adversarial.bats: garbage, damaged state, poison event times, interrupts, broken pipes, full disks and wrong input, through every tool that reads events.

load helpers

bats_require_minimum_version 1.5.0

teardown() {
	if mountpoint -q "$BATS_TEST_TMPDIR/mnt" 2>/dev/null; then
		umount "$BATS_TEST_TMPDIR/mnt"
	fi
}

# A generated stream of N events (default 3000).
gen() {
	reco-gen --seed "${3:-3}" --events "${2:-3000}" --users 200 --items 500 -o "$1"
}

# The counts of a --stats summary in a file: "in out dropped rejected".
counts_of() {
	sed -n 's/^[a-z-]*: records in \([0-9]*\), out \([0-9]*\), dropped \([0-9]*\), rejected \([0-9]*\) .*/\1 \2 \3 \4/p' "$1" | tail -1
}

# Fail unless a --stats file says in = out + dropped + rejected.
conserved() {
	local c
	c=$(counts_of "$1")
	[ -n "$c" ] || fail "no --stats summary in $1: $(cat "$1")"
	set -- $c
	[ "$1" -eq $(($2 + $3 + $4)) ] || fail "in $1 != out $2 + dropped $3 + rejected $4"
}

# A corpus of bad records between good ones: the first line is a good event,
# so that the input is clearly NDJSON events.
garbage() {
	local good='{"event_id":"g%d","ts":%d,"user":"u%d","type":"view","item":"i1","v":1}\n'
	{
		printf "$good" 1 1569888000000 1
		head -c 3000 /dev/urandom | tr -d '\n'
		printf '\n'
		printf '{"event_id":"t1","ts":1569888000001,"user":"u1","ty\n'
		printf '{"event_id":"n1","ts":1569888000002,"user":"u\0001","type":"view","item":"i1","v":1}\n'
		printf '{"event_id":"x1","ts":1569888000003,"user":"\377\376","type":"view","item":"i1","v":1}\n'
		printf '{"event_id":"w1","ts":"yesterday","user":"u1","type":"view","item":"i1","v":1}\n'
		printf '{"event_id":"w2","ts":1569888000004,"user":17,"type":"view","item":"i1","v":1}\n'
		printf '{"event_id":"w3","ts":1569888000005,"user":"u1","type":"view","item":["i1"],"v":1}\n'
		printf '{"event_id":"w4","ts":1569888000006,"user":"u1","type":"view","item":"i1","v":"1"}\n'
		printf '%*s\n' 5000 '' | tr ' ' '[' 
		printf '{"a":%s1%s}\n' "$(printf '%*s' 3000 '' | tr ' ' '[')" "$(printf '%*s' 3000 '' | tr ' ' ']')"
		printf '{"event_id":"h1","ts":1569888000007,"user":"u1","type":"view","item":"%s","v":1}\n' "$(head -c 200000 /dev/zero | tr '\0' x)"
		printf 'user,item,ts,type\n'
		printf '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /p/1 HTTP/1.0" 200 2326 "-" "curl"\n'
		printf 'Obj\001\000\000\n'
		printf '\n\n   \n'
		printf "$good" 2 1569888000100 2
		printf '{"event_id":"q1","ts":1569888000101,"user":"u3","type":"purchase","item":"i1","qty":-2,"v":1}\n'
		printf '{"event_id":"q2","ts":1569888000102,"user":"u3","type":"purchase","item":"i1","price":-9.5,"v":1}\n'
		printf "$good" 3 1569888000200 3
		printf '{"event_id":"cut","ts":1569888000300,"us'
	} >"$1"
}

# Run a tool on FIFO in.fifo fed with the bytes of a file, wait until it
# has read all of them (it then waits in poll with the bytes read), and
# send it SIGNAL. Sets status; stdout in out, stderr in err.
feed_and_signal() {
	local feed=$1 sig=$2
	shift 2
	mkfifo in.fifo
	"$@" in.fifo >out 2>err &
	local pid=$! bytes i
	exec 8>in.fifo
	cat "$feed" >&8
	bytes=$(wc -c <"$feed")
	for i in $(seq 200); do
		if grep -q poll "/proc/$pid/wchan" 2>/dev/null &&
			[ "$(sed -n 's/^rchar: //p' "/proc/$pid/io")" -ge "$bytes" ]; then
			break
		fi
		sleep 0.05
	done
	kill "-$sig" "$pid"
	status=0
	wait "$pid" || status=$?
	exec 8>&-
}

# The same with the first N lines of a file and then a line cut short.
interrupt_mid_line() {
	local n=$1 file=$2 sig=$3
	shift 3
	{ head -n "$n" "$file"; printf '{"event_id":"cut-short","ts":15698880'; } >feed
	feed_and_signal feed "$sig" "$@"
}

# ---- 3: a poison event time ----

@test "poison: one event in the year 2200 before a stream is rejected as future, never the clock" {
	gen g.ndjson 10000
	{ echo '{"event_id":"poison","ts":7258118400000,"user":"p","type":"view","item":"i1","v":1}'; cat g.ndjson; } >p.ndjson
	run --separate-stderr reco-clean --stats --rejects rej.ndjson -o out.ndjson p.ndjson
	[ "$status" -eq 0 ]
	[ "$(nlines out.ndjson)" -eq 10000 ]
	[ "$(jq -r .reason rej.ndjson)" = future ]
	printf '%s\n' "$stderr" >stats
	conserved stats
	# The same with --state, and a second run on clean input from it.
	run --separate-stderr reco-clean --stats --state st --rejects rej.ndjson -o out1.ndjson p.ndjson
	[ "$status" -eq 0 ]
	[ "$(jq -r .reason rej.ndjson)" = future ]
	# The next minute of the stream, with ids of its own.
	reco-gen --seed 4 --events 2000 --users 200 --items 500 --start 2019-10-01T00:02:00Z |
		sed 's/"event_id":"e/"event_id":"f/' >g2.ndjson
	run --separate-stderr reco-clean --stats --state st --rejects rej2.ndjson -o out2.ndjson g2.ndjson
	[ "$status" -eq 0 ]
	[ "$(nlines rej2.ndjson)" -eq 0 ]
	[ "$(nlines out2.ndjson)" -gt 1000 ]
}

@test "poison: a future event in the middle of a stream is rejected and does not move the clock" {
	gen g.ndjson 2000
	{ head -n 100 g.ndjson; echo '{"event_id":"poison","ts":7258118400000,"user":"p","type":"view","item":"i1","v":1}'; tail -n +101 g.ndjson; } >p.ndjson
	reco-clean -q --rejects rej.ndjson -o out.ndjson p.ndjson
	[ "$(nlines out.ndjson)" -eq 2000 ]
	[ "$(jq -r '.raw | fromjson | .event_id' rej.ndjson)" = poison ]
}

@test "poison: a stream that resumes a day later from --state goes on; a few events ahead are rejected" {
	gen g.ndjson 2000
	reco-clean -q --state st -o /dev/null g.ndjson
	reco-gen --seed 4 --events 2000 --users 200 --items 500 --start 2019-10-02T00:00:00Z |
		sed 's/"event_id":"e/"event_id":"f/' >day2.ndjson
	run --separate-stderr reco-clean --stats --state st --rejects rej.ndjson -o out.ndjson day2.ndjson
	[ "$status" -eq 0 ]
	[ "$(nlines rej.ndjson)" -eq 0 ] || fail "$(head -c 300 rej.ndjson)"
	[ "$(nlines out.ndjson)" -gt 1500 ]
	# Three events an hour ahead in a row are not enough to move it.
	{ head -n 500 g.ndjson
	  for i in 1 2 3; do echo "{\"event_id\":\"x$i\",\"ts\":1569899000000,\"user\":\"p\",\"type\":\"view\",\"item\":\"i1\",\"v\":1}"; done
	  tail -n +501 g.ndjson; } >ahead.ndjson
	reco-clean -q --rejects rej2.ndjson -o out2.ndjson ahead.ndjson
	[ "$(jq -r '.reason' rej2.ndjson | sort | uniq -c | tr -s ' ')" = " 3 future" ]
	[ "$(nlines out2.ndjson)" -eq 2000 ]
}

# ---- 5: interrupts and broken pipes ----

@test "interrupt: SIGINT of reco-ingest mid-line leaves the cut line unread and exits 130" {
	gen g.ndjson 3000
	interrupt_mid_line 1200 g.ndjson INT reco-ingest --stats --rejects rej.ndjson
	[ "$status" -eq 130 ] || fail "status $status: $(cat err)"
	[ "$(nlines rej.ndjson)" -eq 0 ] || fail "rejected: $(cat rej.ndjson)"
	[ "$(nlines out)" -eq 1200 ]
	[ "$(counts_of err)" = "1200 1200 0 0" ] || fail "$(cat err)"
	! grep -q cut-short out
}

@test "interrupt: SIGINT of reco-ingest --from csv inside a quoted record of several lines leaves it unread" {
	{
		echo 'user,item,ts,type,query'
		for i in $(seq 300); do echo "u$i,i$i,$((1569888000 + i)),view,"; done
		# A record whose quoted query goes on past this line.
		printf 'u0,,1569888400,search,"red\n'
	} >feed
	feed_and_signal feed INT reco-ingest --from csv --stats --rejects rej.ndjson
	[ "$status" -eq 130 ] || fail "status $status: $(cat err)"
	[ "$(nlines rej.ndjson)" -eq 0 ] || fail "rejected: $(head -c 300 rej.ndjson)"
	[ "$(nlines out)" -eq 300 ]
	[ "$(counts_of err)" = "300 300 0 0" ]
}

@test "interrupt: SIGTERM of reco-clean --state saves the state for what was read, exit 143" {
	gen g.ndjson 3000
	interrupt_mid_line 1500 g.ndjson TERM reco-clean --stats --state st --rejects rej.ndjson
	[ "$status" -eq 143 ] || fail "status $status: $(cat err)"
	[ -s st ]
	[ "$(nlines rej.ndjson)" -eq 0 ]
	conserved err
}

@test "interrupt: SIGINT of reco-train writes the snapshot of the whole records and exits 130" {
	gen g.ndjson 3000
	interrupt_mid_line 2000 g.ndjson INT reco-train --stats --rejects rej.ndjson -o m.bin
	[ "$status" -eq 130 ] || fail "status $status: $(cat err)"
	[ "$(nlines rej.ndjson)" -eq 0 ] || fail "rejected: $(cat rej.ndjson)"
	[ -s m.bin ]
	[ "$(counts_of err | cut -d' ' -f1,4)" = "2000 0" ] || fail "$(cat err)"
}

@test "interrupt: a Ctrl-C'd pipeline ends 130 130 130 without write errors" {
	gen g.ndjson 3000
	# Ctrl-C sends SIGINT to every process of the pipeline.
	mkfifo in.fifo a.fifo b.fifo
	reco-ingest in.fifo >a.fifo 2>err1 &
	local p1=$!
	reco-clean a.fifo >b.fifo 2>err2 &
	local p2=$!
	reco-profile --store st.db b.fifo >out 2>err3 &
	local p3=$!
	exec 8>in.fifo
	head -n 1000 g.ndjson >&8
	printf '{"event_id":"cut-short","ts":1' >&8
	local i
	for i in $(seq 100); do
		[ "$(nlines out)" -gt 0 ] && break
		sleep 0.05
	done
	# Ctrl-C signals the whole group at once; signalled one by one from
	# the end, no stage can see the end of its input before its signal.
	kill -INT "$p3" "$p2" "$p1"
	local s1=0 s2=0 s3=0
	wait "$p1" || s1=$?
	wait "$p2" || s2=$?
	wait "$p3" || s3=$?
	exec 8>&-
	[ "$s1 $s2 $s3" = "130 130 130" ] || fail "statuses $s1 $s2 $s3: $(cat err1 err2 err3)"
	! grep -q "write error" err1 err2 err3
	! grep -q "invalid JSON" err1 err2 err3
	[ -s st.db ]
}

@test "broken pipe: every tool that writes records ends quietly with status 141" {
	gen g.ndjson 60000
	local cmd st
	for cmd in "reco-gen --events 200000" "reco-ingest g.ndjson" "reco-clean g.ndjson" \
		"reco-enrich g.ndjson" "reco-profile g.ndjson" "reco-train g.ndjson"; do
		# shellcheck disable=SC2086
		$cmd 2>err | head -c 1 >/dev/null
		st=${PIPESTATUS[0]}
		[ "$st" -eq 141 ] || fail "$cmd: status $st: $(cat err)"
		[ ! -s err ] || fail "$cmd said: $(cat err)"
	done
	reco-train -o m.bin g.ndjson
	yes '{"user":"u1","n":5}' | head -n 100000 | reco-serve --model m.bin 2>err | head -n 1 >/dev/null
	st=${PIPESTATUS[2]}
	[ "$st" -eq 141 ] || fail "reco-serve: status $st: $(cat err)"
	[ ! -s err ] || fail "reco-serve said: $(cat err)"
}

# ---- 6: input that cannot be right ----

@test "wrong input: --map naming no column of the CSV header is a usage error" {
	printf 'userid_x,item,ts,type\nu1,i1,1569888000,view\n' >e.csv
	run --separate-stderr reco-ingest --from csv --map user=userid e.csv
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == *'"userid"'* ]]
	[[ "$stderr" == *"userid_x, item, ts, type"* ]]
}

@test "wrong input: CSV or an access log given as NDJSON stops with status 1 and a hint" {
	reco-gen --events 50 --format csv -o e.csv
	run --separate-stderr reco-ingest e.csv
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"looks like CSV"*"--from csv"* ]]
	reco-gen --events 50 --format access-log -o a.log
	run --separate-stderr reco-clean a.log
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"looks like a web access log"* ]]
	run --separate-stderr reco-train -o m.bin e.csv
	[ "$status" -eq 1 ]
	[ ! -e m.bin ]
}

@test "wrong input: the first --max-initial-rejects records all rejected stop the run with status 1" {
	seq 1500 | sed 's/^/not an event /' >junk.txt
	run --separate-stderr reco-ingest --stats junk.txt
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"first 1000 records were all rejected"* ]]
	[[ "$stderr" == *"records in 1000, out 0, dropped 0, rejected 1000"* ]]
	run --separate-stderr reco-ingest --max-initial-rejects 0 --stats junk.txt
	[ "$status" -eq 0 ]
	run --separate-stderr reco-ingest --max-initial-rejects 10 --stats junk.txt
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"records in 10, "* ]]
}

@test "wrong input: reco-train writes no snapshot that learned nothing" {
	printf '{"event_id":"a","ts":1,"user":"u","type":"teleport","item":"i","v":1}\n' >bad.ndjson
	run --separate-stderr reco-train -o m.bin bad.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"no event learned"* ]]
	[ ! -e m.bin ]
}

# ---- 7: the library returns; the tool saves what it applied ----

@test "--max-rejects 0: reco-train saves the snapshot of the events before the bad line, then exits 1" {
	gen g.ndjson 1000
	{ head -n 600 g.ndjson; echo '{bad'; tail -n +601 g.ndjson; } >b.ndjson
	run --separate-stderr reco-train --max-rejects 0 --stats -o m.bin b.ndjson
	[ "$status" -eq 1 ]
	[ -s m.bin ]
	reco-train --inspect m.bin | tail -n +2 >inspect.txt
	head -n 600 g.ndjson | reco-train -o m600.bin
	reco-train --inspect m600.bin | tail -n +2 >inspect600.txt
	same_bytes inspect.txt inspect600.txt
}

@test "--max-rejects 0: reco-profile saves the state of the events before the bad line, then exits 1" {
	gen g.ndjson 1000
	{ head -n 600 g.ndjson; echo '{bad'; tail -n +601 g.ndjson; } >b.ndjson
	run --separate-stderr reco-profile --emit none --max-rejects 0 --store st.db b.ndjson
	[ "$status" -eq 1 ]
	[ -s st.db ]
	head -n 600 g.ndjson | reco-profile --emit none --store st600.db
	reco-profile --dump --store st.db >d.ndjson
	reco-profile --dump --store st600.db >d600.ndjson
	same_bytes d.ndjson d600.ndjson
}

@test "reco-profile stopped by --max-users still prints --stats and saves the state" {
	gen g.ndjson 1000
	run --separate-stderr reco-profile --emit none --max-users 5 --store st.db --stats g.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"records in "* ]]
	[ -s st.db ]
}

@test "the library does not exit: tool.c, evin.c, io.c and the parsers call no exit()" {
	local lib="$RECO_BIN/../lib"
	[ -f "$lib/tool.o" ]
	local o
	for o in tool evin io event event_json sniff; do
		! nm "$lib/$o.o" | grep -qw 'U exit' || fail "$o.o calls exit"
		! nm "$lib/$o.o" | grep -qw 'U die' || fail "$o.o calls die"
	done
}

# ---- 8: metrics, full disks, negative amounts ----

@test "a --metrics file that cannot be written does not stop the data" {
	gen g.ndjson 500
	run --separate-stderr reco-clean --metrics nodir/m.prom -o out.ndjson g.ndjson
	[ "$status" -eq 0 ]
	[ "$(nlines out.ndjson)" -eq 500 ]
	[ "$(grep -c 'cannot write the metrics' <<<"$stderr")" -eq 1 ]
}

@test "full disk: -o is left at a complete line and the tool exits 3" {
	gen g.ndjson 5000
	# A small tmpfs where it can be mounted, else a shim that fills a
	# pretend disk at 200000 bytes (ADVERSARIAL_SHIM=1 forces the shim).
	mkdir mnt
	if [ -z "${ADVERSARIAL_SHIM:-}" ] && [ "$(id -u)" -eq 0 ] &&
		mount -t tmpfs -o size=256k tmpfs mnt 2>/dev/null; then
		run --separate-stderr reco-ingest -o mnt/out.ndjson g.ndjson
		cp mnt/out.ndjson out.ndjson
		umount mnt
	else
		[ -f "$RECO_TESTBIN/failwrite.so" ] || fail "no $RECO_TESTBIN/failwrite.so (make check builds it)"
		run --separate-stderr env FAILWRITE_MATCH=out.ndjson FAILWRITE_AFTER=200000 \
			LD_PRELOAD="$RECO_TESTBIN/failwrite.so" \
			ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" \
			reco-ingest -o out.ndjson g.ndjson
	fi
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"No space left on device"* ]]
	[ -s out.ndjson ]
	[ "$(tail -c 1 out.ndjson | od -An -c | tr -d ' ')" = '\n' ] || fail "the file ends in a cut line"
	jq -c . out.ndjson >/dev/null
	# What is there is the input's first records, whole.
	same_bytes out.ndjson <(head -n "$(nlines out.ndjson)" g.ndjson)
}

@test "negative qty and price are rejected with reason negative" {
	printf '{"event_id":"q1","ts":1,"user":"u","type":"purchase","item":"i","qty":-2,"v":1}\n{"event_id":"q2","ts":1,"user":"u","type":"purchase","item":"i","price":-1.5,"v":1}\n{"event_id":"q3","ts":1,"user":"u","type":"purchase","item":"i","qty":2,"price":0,"v":1}\n' >n.ndjson
	run --separate-stderr reco-ingest --rejects rej.ndjson n.ndjson
	[ "$status" -eq 0 ]
	[ "$(jq -r .reason rej.ndjson | sort -u)" = negative ]
	[ "$(printf '%s\n' "$output" | grep -c .)" -eq 1 ]
	printf 'user,item,ts,type,qty\nu,i,1569888000,purchase,-3\n' >n.csv
	reco-ingest -q --from csv --rejects rej.ndjson n.csv
	[ "$(jq -r .reason rej.ndjson)" = negative ]
}

# ---- corpora ----

@test "garbage corpus: every event-reading tool rejects it record by record and conserves records" {
	garbage junk.ndjson
	local cmd st
	for cmd in reco-ingest reco-clean reco-enrich "reco-profile --store st.db" "reco-train -o m.bin"; do
		rm -f st.db
		# shellcheck disable=SC2086
		run --separate-stderr $cmd --stats --rejects rej.ndjson junk.ndjson
		no_sanitizer_report "$stderr"
		[ "$status" -eq 0 ] || fail "$cmd: status $status: $stderr"
		printf '%s\n' "$stderr" >stats
		conserved stats || fail "$cmd"
		[ "$(counts_of stats | cut -d' ' -f4)" -ge 15 ] || fail "$cmd: $(counts_of stats)"
		[ "$(jq -r .reason rej.ndjson | grep -c negative)" -eq 2 ] || fail "$cmd: negative"
	done
}

@test "corrupt state: damaged reco-clean and reco-enrich state files and a reco-train snapshot are refused" {
	gen g.ndjson 800
	reco-clean -q --state c.st g.ndjson >/dev/null
	reco-enrich -q --state e.st g.ndjson >/dev/null
	reco-train -o m.bin g.ndjson
	local f size off tool
	for f in c.st e.st m.bin; do
		size=$(wc -c <"$f")
		case $f in
		c.st) tool="reco-clean --state bad" ;;
		e.st) tool="reco-enrich --state bad" ;;
		m.bin) tool="reco-train -o out.bin --resume bad" ;;
		esac
		for off in 0 5 9 $((size / 3)) $((size / 2)) $((size - 2)); do
			cp "$f" bad
			printf '\125' | dd of=bad bs=1 seek="$off" conv=notrunc 2>/dev/null
			cmp -s "$f" bad && continue
			# shellcheck disable=SC2086
			run --separate-stderr $tool g.ndjson
			no_sanitizer_report "$stderr"
			[ "$status" -eq 1 ] || fail "$tool, byte $off flipped: status $status: $stderr"
			[ -z "$output" ] || fail "$tool, byte $off: wrote output"
		done
		for off in 1 7 $((size / 2)) $((size - 1)); do
			head -c "$off" "$f" >bad
			# shellcheck disable=SC2086
			run --separate-stderr $tool g.ndjson
			no_sanitizer_report "$stderr"
			[ "$status" -eq 1 ] || fail "$tool, cut at $off: status $status: $stderr"
		done
	done
	[ ! -e out.bin ]
}
