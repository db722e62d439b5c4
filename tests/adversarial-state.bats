#!/usr/bin/env bats
# adversarial-state.bats: state under attack: kill -9 and full disks against output before commit, exactly-once training, poison positions, one writer per store.

bats_require_minimum_version 1.5.0

load helpers
load helpers-redis

# ADVERSARIAL_LONG=1: the long loops (50 kills of reco-profile, 40 of
# reco-train, bigger inputs).
if [ -n "${ADVERSARIAL_LONG:-}" ]; then
	KILLS=50 TRAIN_KILLS=40 EVENTS=150000
else
	KILLS=12 TRAIN_KILLS=20 EVENTS=40000
fi

setup() {
	common_setup
	SHIM=$RECO_TESTBIN/failwrite.so
}

teardown() {
	[ -z "${HOLDER_PID:-}" ] || { kill "$HOLDER_PID" 2>/dev/null || true; wait "$HOLDER_PID" 2>/dev/null || true; }
	redis_stop
}

# Events with file positions (source file:gen.csv:LINE). With as many
# users asked for as events, most users have a few events: a lost update
# is often a user's last one.
positioned_events() {
	reco-gen --events "$1" --users "$2" --format csv -o gen.csv
	reco-ingest --from csv --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	    --type-map cart=add_to_cart --keep category_code,brand,price gen.csv >ev.ndjson
}

# The input, delivered slowly (a pause every 500 lines), so that kills land
# at random points of a run whatever the speed of the machine.
slowly() {
	awk 'NR % 500 == 0 { fflush(); system("sleep 0.02") } { print }' "$1"
}

# The last update of each user in the files given (concatenated in order),
# sorted by user: what the changelog of profile updates says, in the form
# of --dump. An update starts with the user ({"user":"u1",...), whose ids
# here have no quotes; a line cut by a full disk is not an update.
last_per_user() {
	awk '/"v":1}$/ { split($0, f, "\""); last[f[4]] = $0 } END { for (u in last) print last[u] }' "$@" | sort
}

# Run "$@" on ev.ndjson (its updates to upd.NNN, one file per run, in
# order), killing it with SIGKILL at a random point, at most $1 times;
# then run it to the end. Print the number of kills that landed before the
# run was done. The input is read at full speed: no pause in the input
# flushes the output between a commit and a kill.
kill_runs() {
	local max=$1 i=0 kills=0 pid st
	shift
	while [ "$i" -lt "$max" ]; do
		i=$((i + 1))
		"$@" ev.ndjson >"upd.$(printf %03d "$i")" 2>>kill.err 3>&- &
		pid=$!
		sleep "0.$(printf '%03d' $((RANDOM % ${KILL_MS:-250} + 20)))"
		kill -9 "$pid" 2>/dev/null || true
		st=0
		wait "$pid" || st=$?
		if [ "$st" -eq 0 ]; then
			echo "$kills"
			return 0
		fi
		[ "$st" -eq 137 ] || { cat kill.err >&2; fail "exit status $st"; return 1; }
		kills=$((kills + 1))
	done
	"$@" ev.ndjson >"upd.$(printf %03d $((i + 1)))" 2>>kill.err || { cat kill.err >&2; return 1; }
	echo "$kills"
}

# The checks after a run that was interrupted: the updates of all runs,
# deduplicated by user (the last one wins), equal those of the clean run
# (ref.upd), and the last update of every user equals the store ($1).
changelog_is_store() {
	last_per_user ref.upd >ref.last
	last_per_user upd.* >k.last
	same_bytes ref.last k.last
	reco-profile --dump --store "$1" >k.dump
	same_bytes k.last k.dump
}

# Run "$@" with the full-disk shim: writes to files whose path has $1 in
# it fail (ENOSPC) after $2 bytes.
full_disk() {
	local match=$1 after=$2
	shift 2
	FAILWRITE_MATCH=$match FAILWRITE_AFTER=$after LD_PRELOAD=$SHIM \
	    ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" "$@"
}

# ---- output before commit ----

@test "reco-profile: kill -9 at random points with updates on stdout: the changelog covers the store" {
	positioned_events "$EVENTS" "$EVENTS"
	reco-profile --checkpoint-every 1000 --store ref.state ev.ndjson >ref.upd
	kills=$(KILL_MS=120 kill_runs "$KILLS" reco-profile --checkpoint-every 1000 --batch 100 --store k.state)
	echo "# reco-profile, state file: killed $kills times (of at most $KILLS)" >&3
	[ "$kills" -ge 3 ]
	changelog_is_store k.state
	reco-profile --dump --store ref.state | same_bytes k.dump /dev/stdin
}

@test "reco-profile on Redis: kill -9 at random points: the changelog covers the store" {
	redis_start
	positioned_events "$EVENTS" "$EVENTS"
	reco-profile --store ref.state ev.ndjson >ref.upd
	kills=$(KILL_MS=150 kill_runs "$KILLS" reco-profile --batch 20 --store "$REDIS_URL")
	echo "# reco-profile, Redis: killed $kills times (of at most $KILLS)" >&3
	[ "$kills" -ge 3 ]
	changelog_is_store "$REDIS_URL"
	reco-profile --dump --store ref.state | same_bytes k.dump /dev/stdin
}

@test "reco-profile: a full disk under -o: exit 3, nothing committed past the output; the restart completes the changelog" {
	positioned_events 20000 20000
	reco-profile --store ref.state ev.ndjson >ref.upd
	size=$(wc -c <ref.upd)
	for q in 3 5 7; do
		rm -f k.state upd.*
		run --separate-stderr full_disk upd.001 $((size * q / 10)) \
		    reco-profile --checkpoint-every 100 --batch 100 --store k.state -o upd.001 ev.ndjson
		[ "$status" -eq 3 ]
		[[ "$stderr" == *"upd.001: write error: No space left on device"* ]]
		[ -e k.state ] # checkpoints were written before the disk filled
		reco-profile --store k.state -o upd.002 ev.ndjson
		changelog_is_store k.state
	done
}

@test "reco-profile on Redis: a full disk under -o and --rejects: exit 3, no transaction past the output" {
	redis_start
	positioned_events 20000 20000
	# A few bad records, so that the rejects file has something to write.
	awk 'NR % 2000 == 0 { print "{not json" } { print }' ev.ndjson >bad.ndjson
	reco-profile --store ref.state ev.ndjson >ref.upd
	size=$(wc -c <ref.upd)
	run --separate-stderr full_disk upd.001 $((size * 3 / 10)) \
	    reco-profile --batch 100 --store "$REDIS_URL" -o upd.001 --rejects rej.001 bad.ndjson
	[ "$status" -eq 3 ]
	[ "$(rcli hget reco:meta pos:file:gen.csv)" -gt 0 ]
	run --separate-stderr full_disk rej.002 10 \
	    reco-profile --batch 100 --store "$REDIS_URL" -o upd.002 --rejects rej.002 bad.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"rej.002: write error"* ]]
	reco-profile --store "$REDIS_URL" -o upd.003 --rejects rej.003 bad.ndjson
	changelog_is_store "$REDIS_URL"
}

@test "reco-clean and reco-enrich: a full disk never leaves state past the output" {
	positioned_events 20000 1000
	# At the end of the input, the events still held for reordering stay
	# in the state: the reference keeps a state too.
	reco-clean --state ref.state -o ref.ndjson ev.ndjson
	jq -c '.event_id' ref.ndjson | sort >want
	size=$(wc -c <ref.ndjson)
	for q in 3 5 7; do
		rm -f c.state out.*
		run full_disk out.1 $((size * q / 10)) \
		    reco-clean --state c.state --checkpoint-every 1500 -o out.1 ev.ndjson
		[ "$status" -eq 3 ]
		[ -e c.state ]
		# What the state says was seen, the restart drops (as late or
		# duplicate): it must be in the first output.
		reco-clean --state c.state -o out.2 ev.ndjson 2>/dev/null
		jq -c -R 'fromjson? | .event_id' out.1 out.2 | sort -u >got
		same_bytes want got
	done
	run full_disk out.ndjson 1000 reco-enrich --state e.state -o out.ndjson ev.ndjson
	[ "$status" -eq 3 ]
	[ ! -e e.state ]
	reco-enrich --state e2.state -o out2.ndjson ev.ndjson
	[ -e e2.state ]
}

# ---- reco-train: exactly once ----

@test "reco-train: kill -9 while writing --snapshot-every, --resume each time: the snapshot of one uninterrupted run, byte for byte" {
	positioned_events "$EVENTS" 2000
	reco-train -o ref.snap --stats ev.ndjson 2>ref.err
	kills=0 i=0
	while [ "$i" -lt "$TRAIN_KILLS" ]; do
		i=$((i + 1))
		resume=()
		[ ! -e k.snap ] || resume=(--resume k.snap)
		slowly ev.ndjson | reco-train "${resume[@]}" -o k.snap --snapshot-every 500 - 2>>kill.err 3>&- &
		pid=$!
		sleep "0.$(printf '%03d' $((RANDOM % 300 + 30)))"
		kill -9 "$pid" 2>/dev/null || true
		st=0
		wait "$pid" || st=$?
		[ "$st" -ne 0 ] || break
		[ "$st" -eq 137 ] || { cat kill.err >&2; fail "exit status $st"; }
		kills=$((kills + 1))
	done
	echo "# reco-train: killed $kills times (of at most $TRAIN_KILLS)" >&3
	[ "$kills" -ge 3 ]
	reco-train --resume k.snap -o k.snap --stats ev.ndjson 2>k.err
	same_bytes ref.snap k.snap
	grep -q 'reason="replayed"' k.err
}

@test "reco-train: --resume on the same or an overlapping input learns each event once" {
	positioned_events 20000 800
	reco-train -o ref.snap --stats ev.ndjson 2>ref.err
	head -n 8000 ev.ndjson >a.ndjson
	sed -n '5001,20000p' ev.ndjson >b.ndjson
	reco-train -o k.snap a.ndjson
	reco-train --resume k.snap -o k.snap --stats b.ndjson 2>err
	grep -q 'dropped_total{reason="replayed"} 3000' err
	same_bytes ref.snap k.snap
	# The whole input once more changes nothing but the count of drops.
	reco-train --resume k.snap -o again.snap --stats ev.ndjson 2>err
	grep -q 'records in 20000, out 0, dropped 20000' err
	reco-train --inspect k.snap >k.txt
	grep -q '^positions    1 sources' k.txt
	grep -q 'file:gen.csv  20001' k.txt
}

@test "reco-train: a snapshot without the ledger section loads and resumes; one that has it is checked" {
	positioned_events 4000 200
	reco-train --no-positions -o old.snap ev.ndjson
	reco-train --inspect old.snap >old.txt
	! grep -q '^positions' old.txt
	reco-train --resume old.snap -o r.snap --stats ev.ndjson 2>err
	! grep -q 'reason="replayed' err
	reco-train --inspect r.snap | grep -q '^positions    1 sources'
	# A flipped byte in the ledger section is refused. Its offset is in
	# the header, at byte 200.
	reco-train -o l.snap ev.ndjson
	off=$(od -An -t u8 -j 200 -N 8 l.snap | tr -d ' ')
	[ "$off" -gt 256 ]
	cp l.snap bad.snap
	printf '\377' | dd of=bad.snap bs=1 seek=$((off + 1)) conv=notrunc 2>/dev/null
	! cmp -s l.snap bad.snap
	run --separate-stderr reco-train --inspect bad.snap
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"corrupt snapshot"* ]]
}

# ---- poison positions ----

poison() {
	printf '%s\n' '{"event_id":"poison","ts":1569888000000,"user":"u1","type":"view","item":"i1","source":"file:gen.csv:999999999999","v":1}'
}

@test "reco-profile: a poison position in front of the stream is rejected and moves nothing (no store)" {
	positioned_events 10000 500
	reco-profile ev.ndjson >ref.upd
	{ poison; cat ev.ndjson; } >p.ndjson
	reco-profile --stats --rejects rej.ndjson p.ndjson >p.upd 2>err
	grep -q 'records in 10001, out 10000, dropped 0, rejected 1' err
	[ "$(jq -r .reason rej.ndjson)" = position_jump ]
	last_per_user ref.upd >ref.last
	last_per_user p.upd | same_bytes ref.last /dev/stdin
}

@test "reco-profile: a poison position in a state file or Redis: rejected, and a later clean run applies everything" {
	redis_start
	positioned_events 10000 500
	reco-profile --store ref.state ev.ndjson >/dev/null
	reco-profile --dump --store ref.state >ref.dump
	for store in p.state "$REDIS_URL"; do
		poison >p.ndjson
		run --separate-stderr reco-profile --stats --store "$store" p.ndjson
		[[ "$stderr" == *'records_rejected_total{reason="position_jump"} 1'* ]]
		reco-profile --stats --store "$store" ev.ndjson 2>err >/dev/null
		grep -q 'records in 10000, out 10000, dropped 0' err
		reco-profile --dump --store "$store" | same_bytes ref.dump /dev/stdin
	done
	[ "$(rcli hget reco:meta pos:file:gen.csv)" -eq 10001 ]
	# Past the high mark, the bound holds too; 0 lifts it.
	printf '%s\n' '{"event_id":"far","ts":1569888000000,"user":"u1","type":"view","item":"i1","source":"file:gen.csv:2000000","v":1}' >far.ndjson
	run --separate-stderr reco-profile --stats --store p.state far.ndjson
	[[ "$stderr" == *'reason="position_jump"} 1'* ]]
	run --separate-stderr reco-profile --stats --store p.state --max-position-jump 10000000 far.ndjson
	[[ "$stderr" == *'out 1, dropped 0, rejected 0'* ]]
}

@test "reco-profile: a Kafka partition's first offset is taken as it comes; a jump past it is rejected" {
	for o in 5000000 5000001 5000002 9000000 5000003; do
		printf '{"event_id":"k%s","ts":1569888000000,"user":"u1","type":"view","item":"i1","source":"kafka:clicks/0@%s","v":1}\n' "$o" "$o"
	done >k.ndjson
	reco-profile --stats --store k.state k.ndjson 2>err >/dev/null
	grep -q 'records in 5, out 4, dropped 0, rejected 1' err
}

@test "reco-train: a poison position is rejected; the snapshot is the clean run's, byte for byte" {
	positioned_events 10000 500
	reco-train -o ref.snap ev.ndjson
	{ poison; cat ev.ndjson; } >p.ndjson
	reco-train -o p.snap --stats p.ndjson 2>err
	grep -q 'reason="position_jump"} 1' err
	same_bytes ref.snap p.snap
}

# ---- one writer per store ----

# Start a writer that holds its store until hold.fifo is closed (its input
# is written to fd 5): sets HOLDER_PID. $1 is the file that says it holds
# the store ("" for none); the rest is its command.
hold() {
	local mark=$1
	shift
	rm -f hold.fifo && mkfifo hold.fifo
	"$@" hold.fifo >holder.out 2>holder.err 3>&- &
	HOLDER_PID=$!
	exec 5>hold.fifo
	[ -n "$mark" ] || return 0
	for _ in $(seq 100); do
		[ -e "$mark" ] && return 0
		sleep 0.05
	done
	fail "the writer did not take its lock"
}

release() {
	exec 5>&-
	local st=0
	wait "$HOLDER_PID" || st=$?
	HOLDER_PID=
	return "$st"
}

@test "one writer per state file: a second reco-profile exits 3 naming the holder; readers need no lock" {
	positioned_events 4000 200
	head -n 2000 ev.ndjson >a.ndjson
	tail -n 2000 ev.ndjson >b.ndjson
	hold s.state.lock reco-profile --store s.state
	[ -e s.state.lock ]
	run --separate-stderr reco-profile --store s.state b.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"s.state: another writer holds it (pid $HOLDER_PID on "* ]]
	cat a.ndjson >&5
	release
	reco-profile --dump --store s.state >/dev/null
	# The two halves one after the other: every user is there.
	reco-profile --store s.state b.ndjson >/dev/null
	reco-profile --store all.state ev.ndjson >/dev/null
	reco-profile --dump --store all.state | same_bytes <(reco-profile --dump --store s.state) /dev/stdin
	[ ! -e s.state.lock ]
}

@test "one writer per snapshot: a second reco-train on the same -o exits 3" {
	positioned_events 2000 100
	hold m.snap.lock reco-train -o m.snap
	run --separate-stderr reco-train -o m.snap ev.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"m.snap: another writer holds it (pid $HOLDER_PID on "* ]]
	cat ev.ndjson >&5
	release
	reco-train --inspect m.snap >/dev/null
}

@test "one writer per Redis store: a lease; a second writer exits 3 naming the holder; shards hold their own" {
	redis_start
	positioned_events 4000 200
	hold "" reco-profile --store "$REDIS_URL"
	for _ in $(seq 100); do
		[ -n "$(rcli get reco:lease)" ] && break
		sleep 0.05
	done
	[[ "$(rcli get reco:lease)" == "pid $HOLDER_PID on "* ]]
	[ "$(rcli pttl reco:lease)" -gt 0 ]
	run --separate-stderr reco-profile --store "$REDIS_URL" ev.ndjson
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"another writer holds the lease (pid $HOLDER_PID on "* ]]
	# A reader needs no lease; a named writer takes its own.
	reco-profile --dump --store "$REDIS_URL" >/dev/null
	sed 's/file:gen.csv:/file:other.csv:/' ev.ndjson >other.ndjson
	reco-profile --writer b --store "$REDIS_URL" other.ndjson >/dev/null
	[ -z "$(rcli get reco:lease@b)" ]
	cat ev.ndjson >&5
	release
	[ -z "$(rcli get reco:lease)" ]
	# Two shards of one store at once: distinct writers.
	rcli flushdb >/dev/null
	reco-profile --shard 0/2 --store "$REDIS_URL" ev.ndjson >/dev/null &
	p0=$!
	reco-profile --shard 1/2 --store "$REDIS_URL" ev.ndjson >/dev/null
	wait "$p0"
	reco-profile --store all.state ev.ndjson >/dev/null
	reco-profile --dump --store all.state | same_bytes <(reco-profile --dump --store "$REDIS_URL") /dev/stdin
}

@test "Redis: a writer whose lease expired and was taken meanwhile commits nothing and exits 3" {
	redis_start
	positioned_events 2000 200
	hold "" reco-profile --redis-lease 1s --store "$REDIS_URL"
	for _ in $(seq 100); do
		[ -n "$(rcli get reco:lease)" ] && break
		sleep 0.05
	done
	sleep 1.3
	[ -z "$(rcli get reco:lease)" ]
	# The lease expired: another writer takes it, and gives it back.
	reco-profile --store "$REDIS_URL" ev.ndjson >/dev/null
	[ "$(rcli hget reco:meta lease_gen)" -eq 2 ]
	rcli hget reco:meta pos:file:gen.csv >pos.before
	# It stops at its first commit: the rest of the input finds no reader.
	cat ev.ndjson >&5 || true
	# Not "run release": a subshell cannot wait for this shell's child,
	# which, on a busy machine, may not have exited yet.
	local st=0
	release || st=$?
	[ "$st" -eq 3 ] || fail "status $st: $(cat holder.err)"
	grep -q 'lease lost' holder.err
	rcli hget reco:meta pos:file:gen.csv | same_bytes pos.before /dev/stdin
}

@test "one writer per state file of reco-clean and reco-enrich" {
	positioned_events 1000 100
	for tool in reco-clean reco-enrich; do
		hold c.state.lock "$tool" --state c.state
		run --separate-stderr "$tool" --state c.state ev.ndjson
		[ "$status" -eq 3 ]
		[[ "$stderr" == *"c.state: another writer holds it (pid $HOLDER_PID on "* ]]
		cat ev.ndjson >&5
		release
		[ -e c.state ]
		[ ! -e c.state.lock ]
		rm -f c.state
	done
}

# ---- smaller ----

@test "Redis: a timeout says timed out, with the server's address" {
	redis_start
	positioned_events 500 50
	kill -STOP "$REDIS_PID"
	run --separate-stderr reco-profile --redis-timeout 300ms --redis-retries 0 --store "$REDIS_URL" ev.ndjson
	kill -CONT "$REDIS_PID"
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"127.0.0.1:$REDIS_PORT: timed out after 300 ms"* ]]
	[[ "$stderr" != *"Resource temporarily unavailable"* ]]
}

@test "reco-profile without --store: memory bounded by --max-users, least recently used dropped and counted" {
	positioned_events 20000 2000
	reco-profile --max-users 300 --stats --metrics m.prom ev.ndjson >upd 2>err
	grep -q 'records in 20000, out 20000' err
	evicted=$(awk '/^reco_profile_users_evicted_total/ { print $2 }' m.prom)
	[ "$evicted" -gt 1000 ]
	users=$(awk '/^reco_profile_users / { print $2 }' m.prom)
	[ "$users" -le 300 ]
	reco-profile --help | grep -q 'recently used dropped past it (default 1000000)'
}
