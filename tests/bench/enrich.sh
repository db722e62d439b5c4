#!/bin/sh
# enrich.sh: the benchmark of reco-enrich: throughput and peak memory, NDJSON and Avro, against jq doing the same work.
#
# Environment: RECO_BIN (the built tools, required), BENCH_EVENTS (default
# 1000000), BENCH_JQ_EVENTS (events given to jq, default 100000: jq's rate
# does not depend on the length of the stream, only its time does),
# BENCH_BIG=1 (also peak memory at 10 times the events), BENCH_LIVE
# (records sent one at a time for latency, default 200).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
N=${BENCH_EVENTS:-1000000}
NJQ=${BENCH_JQ_EVENTS:-100000}
LIVE=${BENCH_LIVE:-200}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -x /usr/bin/time ]; then
	echo "bench: /usr/bin/time is missing (Debian package time)" >&2
	exit 1
fi
. "$(dirname "$0")/common.sh"

human_kb() {
	case $1 in
	-) echo - ;;
	*) awk -v k="$1" 'BEGIN { printf "%.1f MB\n", k / 1024 }' ;;
	esac
}

printf '%-34s %12s %10s %10s %20s\n' "" "events/s" "peak RSS" "first out" "live p50/p90/p99"
printf '%-34s %12s %10s %10s %20s\n' "" "" "" "(ms)" "(us)"

# row LABEL N CMD [LIVEINPUT LIVECMD]: run CMD (a shell command line that
# writes to its standard output) over the whole input of N records,
# measure it with /usr/bin/time (elapsed seconds, peak RSS, CPU seconds),
# and print a row. RATE is per elapsed second, CPU_RATE per CPU second. A
# command that fails is shown as FAILED and the run goes on.
RATE=- CPU_RATE=-
row() {
	label=$1 n=$2 cmd=$3
	live_in=${4:-} live_cmd=${5:-}
	/usr/bin/time -f '%e %M %U %S' -o "$tmp/time" sh -c "$cmd" >/dev/null 2>"$tmp/err" &&
	    st=0 || st=$?
	if [ "$st" -ne 0 ]; then
		printf '%-34s FAILED (status %d): %s\n' "$label" "$st" \
		    "$(head -1 "$tmp/err")"
		RATE=- CPU_RATE=-
		return 0
	fi
	RATE=$(tail -1 "$tmp/time" |
	    awk -v n="$n" '{ if ($1 > 0) printf "%.0f\n", n / $1; else print "-" }')
	rss=$(tail -1 "$tmp/time" | awk '{ print $2 }')
	CPU_RATE=$(tail -1 "$tmp/time" |
	    awk -v n="$n" '{ c = $3 + $4; if (c > 0) printf "%.0f\n", n / c; else print "-" }')
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
items=$tmp/items.csv
reco-gen --events "$N" --items-out "$items" -o "$nd"
reco-gen --events "$N" -O avro -o "$tmp/gen.avro"
head -n "$NJQ" "$nd" >"$tmp/jq.ndjson"
# jq gets the same table as a JSON object from item to attributes (not
# timed), with the same rule: empty fields are left out.
if [ -n "$JQ" ]; then
	jq -R -n '[inputs | split(",")] | .[0] as $h
	    | reduce .[1:][] as $r ({}; .[$r[0]] = ([range(1; $h | length) as $i
	      | select($r[$i] != "") | {($h[$i]): $r[$i]}] | add))' "$items" >"$tmp/items.json"
fi

enrich="reco-enrich --items $items"
row "reco-enrich NDJSON -> NDJSON" "$N" "$enrich $nd" "$nd" "$enrich"
nd_rate=$RATE
row "reco-enrich Avro -> Avro" "$N" "$enrich -O avro $tmp/gen.avro"
avro_rate=$CPU_RATE
row "reco-enrich Avro -> Avro, deflate" "$N" "$enrich -O avro --codec deflate $tmp/gen.avro"
row "reco-enrich NDJSON, sessions only" "$N" "reco-enrich $nd"
row "reco-enrich NDJSON, lookups only" "$N" "reco-enrich --no-sessions --items $items $nd"
jq_rate=-
if [ -n "$JQ" ]; then
	# Sessions by a 30-minute gap with ids USER:FIRST_TS and a number in
	# the session, and the item's attributes: what reco-enrich does.
	# shellcheck disable=SC2016 # jq's variables, not the shell's
	jqprog='$items[0] as $it
	  | foreach inputs as $e ({};
	      .[$e.user] |= (if . == null or $e.ts - .last >= 1800000
	        then {first: $e.ts, last: $e.ts, seq: 1}
	        else .last = $e.ts | .seq += 1 end);
	      .[$e.user] as $s
	      | $e
	      | .session = "\(.user):\($s.first)"
	      | .attrs = ((.attrs // {}) + ($it[.item // ""] // {})
	          + {session_seq: ($s.seq | tostring)}))'
	printf '%s\n' "$jqprog" >"$tmp/enrich.jq"
	row "jq sessions + items (reference)" "$NJQ" \
	    "jq -c -n --slurpfile items $tmp/items.json -f $tmp/enrich.jq $tmp/jq.ndjson" \
	    "$nd" "jq -c -n --unbuffered --slurpfile items $tmp/items.json -f $tmp/enrich.jq"
	jq_rate=$RATE
	row "jq -c . (reference)" "$NJQ" "jq -c . $tmp/jq.ndjson"
fi

case "$nd_rate/$jq_rate" in
*-*) ;;
*)
	awk -v a="$nd_rate" -v b="$jq_rate" \
	    'BEGIN { printf "reco-enrich NDJSON -> NDJSON / jq sessions + items: %.1fx\n", a / b }'
	;;
esac
case $avro_rate in
-) ;;
*) echo "reco-enrich Avro -> Avro: one thread, $avro_rate events per CPU second" ;;
esac

if [ "${BENCH_BIG:-0}" = 1 ]; then
	for n in "$N" $((N * 10)); do
		reco-gen --events "$n" --users $((n / 10)) -O avro |
		    /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" \
		    reco-enrich --items "$items" --max-users 100000 -O avro -o /dev/null
		rss=$(tail -1 "$tmp/time" | awk '{ print $2 }')
		printf 'reco-enrich Avro -> Avro, %d events, %d users, --max-users 100000: peak RSS %s\n' \
		    "$n" $((n / 10)) "$(human_kb "$rss")"
	done
fi
