#!/bin/sh
# clean.sh: the benchmark of reco-clean: throughput and peak memory on a generated stream with faults, against jq.
#
# Environment: RECO_BIN (the built tools, required), BENCH_EVENTS (default
# 1000000), BENCH_BIG=1 (also compare peak memory at 10 times the events).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
N=${BENCH_EVENTS:-1000000}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-clean.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -x /usr/bin/time ]; then
	echo "bench: /usr/bin/time is missing (Debian package time): cannot measure" >&2
	exit 1
fi
if command -v jq >/dev/null 2>&1; then
	JQ=jq
else
	JQ=
	echo "bench: jq is missing: no jq reference" >&2
fi

# The faults of a dirty stream: no garbage lines, so that the NDJSON and
# the Avro input hold the same records.
FAULTS="--dup-rate 0.01 --late-rate 0.005 --ooo-rate 0.01 --bot-users 0.01"

human_kb() {
	case $1 in
	-) echo - ;;
	*) awk -v k="$1" 'BEGIN { printf "%.1f MB\n", k / 1024 }' ;;
	esac
}

printf '%-34s %12s %10s %10s %12s\n' "" "events/s" "peak RSS" "vs jq" "per CPU s"

# row LABEL N CMD: run CMD (a shell command line that writes to its
# standard output) over the whole input, and print its rate (records per
# second of wall-clock time and per second of CPU time), its peak RSS and
# its rate against jq's (once jq has run). A command that fails is shown
# as FAILED and the run goes on.
RATE=- CPURATE=- JQRATE=-
row() {
	label=$1 n=$2 cmd=$3
	if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" sh -c "$cmd" \
	    >/dev/null 2>"$tmp/err"; then
		printf '%-34s FAILED: %s\n' "$label" "$(head -1 "$tmp/err")"
		RATE=- CPURATE=-
		return 0
	fi
	# shellcheck disable=SC2046 # the four numbers, split on purpose
	set -- $(tail -1 "$tmp/time")
	RATE=$(awk -v n="$n" -v s="$1" 'BEGIN { if (s > 0) printf "%d\n", n / s; else print "-" }')
	CPURATE=$(awk -v n="$n" -v u="$3" -v s="$4" \
	    'BEGIN { if (u + s > 0) printf "%d\n", n / (u + s); else print "-" }')
	vs=-
	case "$RATE/$JQRATE" in
	*-*) ;;
	*) vs=$(awk -v a="$RATE" -v b="$JQRATE" 'BEGIN { printf "%.1fx\n", a / b }') ;;
	esac
	printf '%-34s %12s %10s %10s %12s\n' "$label" "$RATE" "$(human_kb "$2")" "$vs" "$CPURATE"
}

echo "bench: $N events with faults; generating the inputs in $tmp" >&2
# shellcheck disable=SC2086
reco-gen --events "$N" $FAULTS -o "$tmp/gen.ndjson"
# shellcheck disable=SC2086
reco-gen --events "$N" $FAULTS -O avro -o "$tmp/gen.avro"
records=$(wc -l <"$tmp/gen.ndjson" | tr -d ' ')
echo "bench: $records records (bots and second copies included)" >&2

if [ -n "$JQ" ]; then
	row "jq -c 'select(.type != \"bot\")'" "$records" \
	    "jq -c 'select(.type != \"bot\")' $tmp/gen.ndjson"
	JQRATE=$RATE
fi
row "reco-clean NDJSON -> NDJSON" "$records" "reco-clean -q $tmp/gen.ndjson"
row "reco-clean Avro -> Avro" "$records" "reco-clean -q -O avro $tmp/gen.avro"
avro_cpu=$CPURATE
row "reco-clean Avro -> NDJSON" "$records" "reco-clean -q $tmp/gen.avro"
row "reco-clean NDJSON, no reordering" "$records" \
    "reco-clean -q --max-lateness 0 --late pass $tmp/gen.ndjson"
row "cat (reference)" "$records" "cat $tmp/gen.ndjson"

case $avro_cpu in
-) ;;
*) awk -v r="$avro_cpu" 'BEGIN {
	printf "reco-clean Avro -> Avro: %d events per CPU second (%s 1000000)\n",
	    r, (r >= 1000000) ? "at least" : "BELOW"
   }' ;;
esac

if [ "${BENCH_BIG:-0}" = 1 ]; then
	# Default windows: a 1 h de-duplication window fills after 360000
	# events at reco-gen's 100 events per second, well within N.
	for n in "$N" $((N * 10)); do
		# shellcheck disable=SC2086
		reco-gen --events "$n" $FAULTS -O avro |
		    /usr/bin/time -f %M -o "$tmp/rss" reco-clean -q -O avro -o /dev/null
		printf 'reco-clean Avro -> Avro, %d events: peak RSS %s\n' \
		    "$n" "$(human_kb "$(tail -1 "$tmp/rss")")"
	done
fi
