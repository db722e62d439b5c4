#!/bin/sh
# chain.sh: the three-filter NDJSON chain (reco-ingest | reco-clean | reco-enrich) on long-tail and shop traffic: events/s of the chain, CPU seconds and peak memory of each stage, next to jq -c . on the same input in the same run.
#
# A pipeline on one machine costs the sum of its stages' CPU (two vCPUs
# busy at once give little more than one core), so the CPU seconds of each
# stage say more than the wall clock of any one run.
#
# Environment: RECO_BIN (the built tools, required); BENCH_EVENTS (default
# 1000000); BENCH_ROUNDS (runs of each chain, the fastest kept, default
# 3); BENCH_BEFORE (the directory of another build of the three tools,
# say the last release's: its rows come too, and the ratio of the two in
# the same run); BENCH_TARGET (events/s the chain should reach, default
# 500000).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
N=${BENCH_EVENTS:-1000000}
ROUNDS=${BENCH_ROUNDS:-3}
BEFORE=${BENCH_BEFORE:-}
TARGET=${BENCH_TARGET:-500000}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-chain.XXXXXX")
. "$(dirname "$0")/common.sh"
bench_redis_traps
if [ -n "$BEFORE" ] && [ ! -x "$BEFORE/reco-enrich" ]; then
	echo "bench: BENCH_BEFORE=$BEFORE holds no reco-enrich" >&2
	exit 1
fi

# chain BIN INPUT: one run of the chain built in BIN over INPUT; writes
# "wall_ms ingest_cpu clean_cpu enrich_cpu peak_kb" to $tmp/run, or
# returns 1 if a stage failed.
chain() {
	t0=$(now_ms)
	/usr/bin/time -f '%U %S %M' -o "$tmp/t.ingest" "$1/reco-ingest" -q "$2" 2>>"$tmp/err" |
	    /usr/bin/time -f '%U %S %M' -o "$tmp/t.clean" "$1/reco-clean" -q 2>>"$tmp/err" |
	    /usr/bin/time -f '%U %S %M' -o "$tmp/t.enrich" "$1/reco-enrich" -q >/dev/null 2>>"$tmp/err"
	t1=$(now_ms)
	if grep -q 'exited\|terminated' "$tmp/t.ingest" "$tmp/t.clean" "$tmp/t.enrich"; then
		return 1
	fi
	{
		echo $((t1 - t0))
		for s in ingest clean enrich; do tail -1 "$tmp/t.$s"; done
	} | awk 'NR == 1 { w = $1; next }
		{ cpu[NR] = $1 + $2; if ($3 > m) m = $3 }
		END { printf "%d %.2f %.2f %.2f %d\n", w, cpu[2], cpu[3], cpu[4], m }' >"$tmp/run"
}

# best BIN INPUT: the fastest of ROUNDS runs in $tmp/best, or "-".
best() {
	echo - >"$tmp/best"
	_r=0
	while [ $_r -lt "$ROUNDS" ]; do
		_r=$((_r + 1))
		if ! chain "$1" "$2"; then
			echo "bench: the chain of $1 failed: $(grep -v '^Command' "$tmp/err" | tail -1)" >&2
			return 0
		fi
		if [ "$(cat "$tmp/best")" = - ] ||
		    [ "$(cut -d' ' -f1 "$tmp/run")" -lt "$(cut -d' ' -f1 "$tmp/best")" ]; then
			cp "$tmp/run" "$tmp/best"
		fi
	done
}

# row LABEL: a line of the table from $tmp/best; RATE is its events/s.
RATE=- JQRATE=-
row() {
	if [ "$(cat "$tmp/best")" = - ]; then
		printf '%-30s %10s\n' "$1" FAILED
		RATE=-
		return 0
	fi
	# shellcheck disable=SC2046 # the five numbers, split on purpose
	set -- "$1" $(cat "$tmp/best")
	RATE=$(awk -v n="$N" -v w="$2" 'BEGIN { printf "%d\n", (w > 0 ? n * 1000 / w : 0) }')
	awk -v l="$1" -v r="$RATE" -v w="$2" -v a="$3" -v b="$4" -v c="$5" \
	    -v m="$6" -v j="$JQRATE" 'BEGIN {
		vs = (j == "-" || j == 0) ? "-" : sprintf("%.1fx", r / j)
		printf "%-30s %10d %7.2f %8.2f %8.2f %8.2f %8.2f %9.1f %7s\n",
		    l, r, w / 1000, a, b, c, a + b + c, m / 1024, vs }'
}

header() {
	printf '%-30s %10s %7s %8s %8s %8s %8s %9s %7s\n' "" events/s "wall s" \
	    "ingest" "clean" "enrich" "CPU s" "peak MB" "vs jq"
}

# input NAME GEN-ARGS...: the events of one table.
input() {
	_name=$1
	shift
	reco-gen --events "$N" "$@" -o "$tmp/$_name.ndjson"
}

table() {
	_name=$1 _what=$2
	in=$tmp/$_name.ndjson
	echo
	echo "$N events, $_what ($(($(wc -c <"$in") / N)) bytes an event):"
	header
	JQRATE=-
	if [ -n "$JQ" ]; then
		if /usr/bin/time -f '%e %U %S %M' -o "$tmp/t.jq" jq -c . "$in" >/dev/null 2>"$tmp/err"; then
			# shellcheck disable=SC2046 # the four numbers, split on purpose
			set -- $(tail -1 "$tmp/t.jq")
			JQRATE=$(awk -v n="$N" -v w="$1" 'BEGIN { printf "%d\n", (w > 0 ? n / w : 0) }')
			awk -v l="jq -c . (reference)" -v r="$JQRATE" -v w="$1" -v u="$2" \
			    -v s="$3" -v m="$4" 'BEGIN {
				printf "%-30s %10d %7.2f %8s %8s %8s %8.2f %9.1f %7s\n",
				    l, r, w, "", "", "", u + s, m / 1024, "1.0x" }'
		else
			printf '%-30s %10s\n' "jq -c . (reference)" FAILED
		fi
	fi
	best "$RECO_BIN" "$in"
	row "ingest | clean | enrich"
	after=$RATE
	if [ -n "$BEFORE" ]; then
		best "$BEFORE" "$in"
		row "the same, BENCH_BEFORE"
		case "$after/$RATE" in
		*-*) ;;
		*) awk -v a="$after" -v b="$RATE" \
		    'BEGIN { printf "this build / BENCH_BEFORE: %.2fx\n", a / b }' ;;
		esac
	fi
	case $after in
	-) ;;
	*) awk -v r="$after" -v t="$TARGET" 'BEGIN {
		printf "the chain: %d events/s (%s the target, %d)\n", r,
		    (r >= t ? "at least" : "BELOW"), t }' ;;
	esac
}

echo "bench: the NDJSON chain, $N events a table, the fastest of $ROUNDS runs; inputs in $tmp" >&2
input sessions --regime sessions --items 50000
input shop
table sessions "long-tail sessions (reco-gen --regime sessions --items 50000)"
table shop "a shop (reco-gen)"
