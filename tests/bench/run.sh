#!/bin/sh
# run.sh: the benchmark of make bench: throughput, peak memory and latency of the tools against jq and cat.
#
# Environment: RECO_BIN (the built tools, required), BENCH_EVENTS (default
# 1000000), BENCH_BIG=1 (also compare peak memory at 10 times the events),
# BENCH_LIVE (records sent one at a time for latency, default 200).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
N=${BENCH_EVENTS:-1000000}
LIVE=${BENCH_LIVE:-200}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -x /usr/bin/time ]; then
	TIME=/usr/bin/time
else
	TIME=
	echo "bench: /usr/bin/time is missing (Debian package time): peak RSS is not measured" >&2
fi
. "$(dirname "$0")/common.sh"

# Print the rate of n records in ms milliseconds.
rate() {
	if [ "$2" -gt 0 ]; then
		echo $(($1 * 1000 / $2))
	else
		echo "-"
	fi
}

human_kb() {
	case $1 in
	-) echo - ;;
	*) awk -v k="$1" 'BEGIN { printf "%.1f MB\n", k / 1024 }' ;;
	esac
}

printf '%-34s %12s %10s %10s %20s\n' "" "events/s" "peak RSS" "first out" "live p50/p90/p99"
printf '%-34s %12s %10s %10s %20s\n' "" "" "" "(ms)" "(us)"

# row LABEL N CMD [LIVEINPUT LIVECMD]: run CMD (a shell command line that
# writes to its standard output) over the whole input, measure it, and
# print a row. N is the number of records
# it handles. A command that fails is shown as FAILED and the run goes on.
RATE=-
row() {
	label=$1 n=$2 cmd=$3
	live_in=${4:-} live_cmd=${5:-}
	rss=-
	t0=$(now_ms)
	if [ -n "$TIME" ]; then
		$TIME -f %M -o "$tmp/rss" sh -c "$cmd" >/dev/null 2>"$tmp/err" && st=0 || st=$?
	else
		sh -c "$cmd" >/dev/null 2>"$tmp/err" && st=0 || st=$?
	fi
	t1=$(now_ms)
	if [ "$st" -ne 0 ]; then
		printf '%-34s FAILED (status %d): %s\n' "$label" "$st" \
		    "$(head -1 "$tmp/err")"
		RATE=-
		return 0
	fi
	[ -z "$TIME" ] || rss=$(tail -1 "$tmp/rss")
	RATE=$(rate "$n" $((t1 - t0)))
	first=- live=-
	if [ -n "$PERL" ]; then
		first=$(perl "$tmp/probe.pl" first "$cmd")
		if [ -n "$live_cmd" ]; then
			live=$(perl "$tmp/probe.pl" live "$live_in" "$LIVE" "$live_cmd")
		fi
	fi
	printf '%-34s %12s %10s %10s %20s\n' "$label" "$RATE" "$(human_kb "$rss")" \
	    "$first" "$live"
}

echo "bench: $N events; generating the inputs in $tmp" >&2
nd=$tmp/gen.ndjson
reco-gen --events "$N" -o "$nd"
reco-gen --events "$N" --format csv -o "$tmp/gen.csv"
reco-gen --events "$N" -O avro -o "$tmp/gen.avro"

row "reco-gen -> NDJSON" "$N" "reco-gen --events $N"
row "reco-ingest CSV -> NDJSON" "$N" \
    "reco-ingest --from csv --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session --type-map cart=add_to_cart --keep category_code,brand,price $tmp/gen.csv"
row "reco-ingest NDJSON -> NDJSON" "$N" "reco-ingest $nd" \
    "$nd" "reco-ingest"
ingest_rate=$RATE
row "reco-ingest NDJSON -> Avro" "$N" "reco-ingest -O avro $nd"
row "reco-ingest Avro -> Avro" "$N" "reco-ingest -O avro $tmp/gen.avro"
row "reco-ingest Avro -> NDJSON" "$N" "reco-ingest $tmp/gen.avro"
row "reco-ingest x3 NDJSON pipe" "$N" \
    "reco-ingest $nd | reco-ingest | reco-ingest" \
    "$nd" "reco-ingest | reco-ingest | reco-ingest"
jq_rate=-
if [ -n "$JQ" ]; then
	row "jq -c . (reference)" "$N" "jq -c . $nd" "$nd" "jq -c --unbuffered ."
	jq_rate=$RATE
fi
row "cat (reference)" "$N" "cat $nd" "$nd" "cat"

case "$ingest_rate/$jq_rate" in
*-*) ;;
*)
	awk -v a="$ingest_rate" -v b="$jq_rate" \
	    'BEGIN { printf "reco-ingest NDJSON -> NDJSON / jq -c .: %.1fx\n", a / b }'
	;;
esac

if [ "${BENCH_BIG:-0}" = 1 ]; then
	if [ -z "$TIME" ]; then
		echo "BENCH_BIG: needs /usr/bin/time" >&2
	else
		for n in "$N" $((N * 10)); do
			reco-gen --events "$n" |
			    $TIME -f %M -o "$tmp/rss" reco-ingest -o /dev/null
			printf 'reco-ingest NDJSON -> NDJSON, %d events: peak RSS %s\n' \
			    "$n" "$(human_kb "$(tail -1 "$tmp/rss")")"
		done
	fi
fi
