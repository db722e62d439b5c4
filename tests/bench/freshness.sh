#!/bin/sh
# freshness.sh: the benchmark of freshness: the time from producing an event to Kafka until it shows in Redis and in reco-serve's next answer, through the live pipeline, at 1,000 and 10,000 events per second.
#
# Environment: RECO_BIN (the built tools, required), RECO_TESTBIN (the
# test helpers kafka-broker and freshness; default RECO_BIN/../tests),
# BENCH_FRESH_RATES (events per second, default "1000 10000"),
# BENCH_FRESH_SECONDS (measured per rate, default 10; 20 probes a second),
# BENCH_FRESH_WAIT_MS (kcat's fetch.wait.max.ms, default 5),
# BENCH_FRESH_LINGER (the sender's linger.ms values, default "0 5"),
# BENCH_FRESH_BROKERS (brokers of the loopback cluster, default 1),
# BENCH_FRESH_TAPS (1, the default: one more run at the highest rate per
# linger.ms, with a tap after each stage, to tell which stage holds the
# events back; 0: none).
#
# The pipeline is the one of examples/live-kafka.sh, on a loopback broker
# (librdkafka's mock cluster, tests/tools/kafka-broker) with a topic of 4
# partitions and a private redis-server:
#
#   kcat -C -J -u | reco-ingest --from kcat-json | reco-clean | reco-enrich |
#       reco-profile --store redis://... --emit none
#
# and reco-serve --store redis://... answering over HTTP. tests/tools/
# freshness sends events at a fixed rate with librdkafka (no Nagle, the
# linger.ms given), 20
# of them a second probes (a purchase by a new user of the item reco-serve
# recommends first to a stranger), and times each probe until its profile
# key is written in Redis (keyspace notification) and until reco-serve's
# answer for that user leaves the item out (see freshness.c).
#
# The loopback broker is librdkafka's mock cluster, and two of its
# shortcuts shape the numbers: a fetch returns at most one produced batch
# per partition, and a fetch that finds nothing waits the whole
# fetch.wait.max.ms even if data arrives meanwhile (a real broker returns
# every batch up to max.partition.fetch.bytes, and answers as soon as
# fetch.min.bytes have arrived). So the sender's linger.ms matters here:
# with 0, at 10,000 events/s, batches hold one to three events, the
# broker's one thread is kept busy by thousands of them a second, the
# consumer cannot fetch them as fast as they come and the backlog grows;
# with 5, batches of a dozen events per partition keep up, for up to 5 ms
# more per event. Both are measured.
#
# Latency against batching: kcat's consumer asks the broker for more with
# fetch.wait.max.ms as the longest the broker may wait for data
# (fetch.min.bytes=1: it answers as soon as there is any). A small value
# means a probe waits at most that long in the broker, at the cost of a
# fetch request per partition every few milliseconds while the topic is
# quiet (CPU in kcat and in the broker); the librdkafka default, 500 ms,
# fetches in large batches and adds up to half a second per event. The
# tools downstream flush whenever their input would block, and
# reco-profile commits a batch (--batch, 1000 events) to Redis when its
# input would block, so under a steady trickle each MULTI/EXEC carries
# what arrived since the last one: the batch size follows the load, not
# a timer. --max-lateness 0 keeps reco-clean from holding events in its
# reorder buffer (with the default 5 s, every event would wait 5 s of
# event time).
# shellcheck disable=SC2046 # set -- $(...): a row of numbers, split on purpose
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
TESTBIN=${RECO_TESTBIN:-$(dirname "$RECO_BIN")/tests}
RATES=${BENCH_FRESH_RATES:-1000 10000}
SECS=${BENCH_FRESH_SECONDS:-10}
WAIT_MS=${BENCH_FRESH_WAIT_MS:-5}
LINGERS=${BENCH_FRESH_LINGER:-0 5}
TAPS=${BENCH_FRESH_TAPS:-1}
NBROKERS=${BENCH_FRESH_BROKERS:-1}
WARM=2
PATH=$RECO_BIN:$TESTBIN:$PATH
export PATH LC_ALL=C

for t in kafka-broker freshness; do
	if [ ! -x "$TESTBIN/$t" ]; then
		echo "bench: $TESTBIN/$t is not built (make $TESTBIN/$t)" >&2
		exit 1
	fi
done
for t in kcat redis-server redis-cli; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "bench: $t is missing (make deps): no freshness benchmark" >&2
		exit 0
	fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-fresh.XXXXXX")
. "$(dirname "$0")/common.sh"
KPID='' RPID='' SPID='' PPID_='' KCAT=''
stop_pipeline() {
	if [ -n "$KCAT" ]; then
		kill "$(cat "$KCAT")" 2>/dev/null || true
		KCAT=
	fi
	if [ -n "$PPID_" ]; then
		wait "$PPID_" 2>/dev/null || true
		PPID_=
	fi
}
stop_pid() {
	if [ -n "$1" ]; then
		kill "$1" 2>/dev/null || true
		wait "$1" 2>/dev/null || true
	fi
}
cleanup() {
	stop_pipeline
	stop_pid "$SPID"
	stop_pid "$KPID"
	stop_pid "$RPID"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM

# Start a loopback Kafka cluster with a topic clicks of 4 partitions;
# sets KPID and BROKERS.
kafka_start() {
	: >"$tmp/kafka.addr"
	kafka-broker -b "$NBROKERS" -t clicks:4 >"$tmp/kafka.addr" 2>"$tmp/kafka.log" </dev/null &
	KPID=$!
	BROKERS=
	i=0
	while [ $i -lt 400 ]; do
		BROKERS=$(sed -n 1p "$tmp/kafka.addr")
		[ -n "$BROKERS" ] && return 0
		i=$((i + 1))
		sleep 0.025
	done
	echo "bench: kafka-broker did not start: $(cat "$tmp/kafka.log")" >&2
	exit 1
}

# Start redis-server without persistence on a free port; sets RPID, RPORT.
redis_start() {
	bench_redis_start || { echo "bench: redis-server did not start" >&2; exit 1; }
	RPID=$REDIS_PID
	RPORT=$REDIS_PORT
}

# Start reco-serve over HTTP on a free port; sets SPID and SPORT.
serve_start() {
	bench_serve_start --model "$tmp/model.bin" --store "redis://127.0.0.1:$RPORT/0"
	SPORT=$PORT
}

# "tap NAME": the pipe into a tap that notes when each probe leaves the
# stage before (freshness tap TAPDIR/NAME), or nothing without TAPDIR.
tap() {
	if [ -n "$TAPDIR" ]; then
		printf '| freshness tap %s/%s ' "$TAPDIR" "$1"
	fi
}

# Start the live pipeline in the background; sets PPID_ (its last stage)
# and KCAT (a file with kcat's PID). The CPU time of kcat goes to
# $tmp/kcat.cpu when it exits.
pipeline_start() {
	KCAT=$tmp/kcat.pid
	rm -f "$KCAT"
	# shellcheck disable=SC2016
	sh -c "
	sh -c 'echo \$\$ >$KCAT; exec kcat -b $BROKERS -C -J -q -u -t clicks -o beginning \
	    -X fetch.wait.max.ms=$WAIT_MS -X fetch.min.bytes=1 -X socket.nagle.disable=true \
	    -X enable.auto.commit=false' $(tap kcat)|
	reco-ingest --from kcat-json $(tap ingest)|
	reco-clean --max-lateness 0 --late pass --max-future 0 $(tap clean)|
	reco-enrich $(tap enrich)|
	reco-profile --store redis://127.0.0.1:$RPORT/0 --emit none --stats 2>$tmp/profile.stats
	" </dev/null &
	PPID_=$!
	i=0
	while [ ! -s "$KCAT" ] && [ $i -lt 400 ]; do
		i=$((i + 1))
		sleep 0.025
	done
}

# The CPU seconds (user + system) a process has used so far.
cpu_of() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
	    "/proc/$1/stat" 2>/dev/null || echo -
}

# Percentiles of the numbers in a file (milliseconds): "N P50 P99 MAX".
pcts() {
	sort -n "$1" | awk '{ v[NR] = $1 }
	END {
		if (NR == 0) { print "0 - - -"; exit }
		printf "%d %.1f %.1f %.1f\n", NR, v[int(0.5 * (NR - 1)) + 1], v[int(0.99 * (NR - 1)) + 1], v[NR]
	}'
}

# One measured run at RATE events per second; the probes in $tmp/probes.
# With TAPDIR set, a tap after each stage.
measure() {
	rate=$1
	kafka_start
	redis-cli -p "$RPORT" flushall >/dev/null
	if [ -n "$TAPDIR" ]; then
		rm -rf "$TAPDIR"
		mkdir -p "$TAPDIR"
	fi
	pipeline_start
	kpid=$(cat "$KCAT")
	freshness run -b "$BROKERS" -t clicks -e "$tmp/events.keyed" \
	    -R "127.0.0.1:$RPORT/0" -S "127.0.0.1:$SPORT" -r "$rate" -d "$SECS" -w "$WARM" -l "$LINGER" \
	    -o "$tmp/probes" 2>"$tmp/fresh.err" ||
		{ echo "bench: freshness: $(cat "$tmp/fresh.err")" >&2; exit 1; }
	KCPU=$(cpu_of "$kpid")
	BCPU=$(cpu_of "$KPID")
	stop_pipeline
	stop_pid "$KPID"
	KPID=
	MISSED=$(awk '$3 < 0 || $4 < 0' "$tmp/probes" | wc -l | tr -d ' ')
	BEHIND=$(sed -n 's/.*the sender ended \([0-9.-]*\) ms behind.*/\1/p' "$tmp/fresh.err")
}

# Latencies in ms of column COL of the probes (3 Redis, 4 reco-serve).
lat_col() {
	awk -v c="$1" '$c > 0 { printf "%.3f\n", ($c - $2) / 1e6 }' "$tmp/probes" >"$tmp/lat"
	pcts "$tmp/lat"
}

# Latencies in ms of a tap's times.
lat_tap() {
	awk 'NR == FNR { sent[$1] = $2; next } ($1 in sent) && sent[$1] > 0 { printf "%.3f\n", ($2 - sent[$1]) / 1e6 }' \
	    "$tmp/probes" "$TAPDIR/$1" >"$tmp/lat"
	pcts "$tmp/lat"
}

maxrate=0
for r in $RATES; do
	[ "$r" -gt "$maxrate" ] && maxrate=$r
done
n=$((maxrate * (SECS + WARM)))
echo "bench: freshness, $SECS s measured per rate after $WARM s of warm-up; $n events in $tmp" >&2
reco-gen --events "$n" --users $((n / 10 > 1000 ? n / 10 : 1000)) --items 5000 -o "$tmp/events.ndjson"
reco-ingest --key user "$tmp/events.ndjson" >"$tmp/events.keyed"
reco-train -o "$tmp/model.bin" "$tmp/events.ndjson"
redis_start
serve_start

printf '%-46s %8s %8s %8s %8s %9s %9s\n' "produce -> visible (fetch.wait.max.ms=$WAIT_MS)" \
    "probes" "p50" "p99" "max" "kcat CPU" "broker"
TAPDIR=
results=
for l in $LINGERS; do
	for r in $RATES; do
		LINGER=$l
		measure "$r"
		set -- $(lat_col 3)
		printf '%-46s %8s %5s ms %5s ms %5s ms %8ss %8ss\n' "  Redis, $r/s, producer linger.ms=$l" "$1" "$2" "$3" "$4" "$KCPU" "$BCPU"
		results="$results $r:$l:$3"
		set -- $(lat_col 4)
		printf '%-46s %8s %5s ms %5s ms %5s ms\n' "  reco-serve, $r/s, producer linger.ms=$l" "$1" "$2" "$3" "$4"
		[ "$MISSED" = 0 ] || echo "  ($MISSED probes not seen within 5 s)"
		case $BEHIND in
		-* | 0.* | [0-9].* | [0-9]) ;;
		*) echo "  (the sender ended $BEHIND ms behind its schedule: the rate was not reached)" ;;
		esac
	done
done
for x in $results; do
	case $x in
	10000:*)
		l=${x#*:}
		awk -v p="${l#*:}" -v l="${l%%:*}" 'BEGIN { printf "%-46s %s\n", "  target: Redis p99 under 50 ms at 10000/s, linger.ms=" l, (p != "-" && p < 50) ? "met" : "NOT MET" }'
		;;
	esac
done

if [ "$TAPS" = 1 ]; then
	TAPDIR=$tmp/taps
	for l in $LINGERS; do
		LINGER=$l
		r=$maxrate
		measure "$r"
		printf '%-46s %8s %8s %8s %8s\n' "where the time goes: $r/s, linger.ms=$l" "probes" "p50" "p99" "max"
		for st in kcat ingest clean enrich; do
			set -- $(lat_tap "$st")
			printf '%-46s %8s %5s ms %5s ms %5s ms\n' "  out of $st" "$1" "$2" "$3" "$4"
		done
		set -- $(lat_col 3)
		printf '%-46s %8s %5s ms %5s ms %5s ms\n' "  in Redis (reco-profile's MULTI/EXEC)" "$1" "$2" "$3" "$4"
		set -- $(lat_col 4)
		printf '%-46s %8s %5s ms %5s ms %5s ms\n' "  in reco-serve's next answer" "$1" "$2" "$3" "$4"
	done
fi

cat <<EOF
notes: p50/p99 of the time from handing a probe to the producer until its
  profile is written in Redis (the MULTI/EXEC has run) and until reco-serve's
  next answer leaves out the item just bought; CPU: seconds used by kcat and
  by the loopback broker over the run ($WARM s of warm-up and $SECS s measured).
- fetch.wait.max.ms=$WAIT_MS: the longest a fetch that finds nothing waits. The
  loopback broker does not cut it short when data arrives, so an event may
  wait that long in it; lower is fresher but costs fetch requests (CPU in kcat
  and the broker) while the topic is quiet. librdkafka's default is 500 ms.
- the sender's linger.ms: the loopback broker (one thread) takes each produced
  batch as it comes and returns one batch per partition per fetch. With
  linger.ms=0 at 10000/s it gets thousands of batches of one to three events
  a second, its thread is busy (its CPU column) and the consumer falls behind;
  linger.ms=5 batches a dozen events per partition, for up to 5 ms more. A
  real broker returns every batch up to max.partition.fetch.bytes per fetch.
- the taps show when a probe leaves each stage: the tools after kcat add a
  millisecond or two (each flushes when its input would block; reco-clean
  with --max-lateness 0 holds nothing back; reco-profile commits to Redis when
  its input would block, so the size of a MULTI/EXEC follows the load).
EOF
