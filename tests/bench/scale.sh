#!/bin/sh
# scale.sh: reco-profile and reco-train over long-tail traffic at scale (10 million users by default): events/s, resident bytes per user and per item, state and snapshot sizes, load and checkpoint times, next to jq -c . on the same events in the same run; Redis with its own INFO memory.
#
# Environment: RECO_BIN (the built tools, required); SCALE, the users
# wanted (default 10000000); SCALE_EVENTS (default: what gives SCALE users
# in reco-gen's sessions regime, about 5.7 events a user); SCALE_REDIS=0
# leaves Redis out; SCALE_JQ=0 leaves jq out; TMPDIR (the input: about
# 165 bytes an event as Avro, and 5 million events as NDJSON).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
U=${SCALE:-10000000}
N=${SCALE_EVENTS:-$((U / 10 * 57))}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-scale.XXXXXX")
. "$(dirname "$0")/common.sh"
bench_redis_traps

# run NAME CMD: run CMD (its standard error in $tmp/NAME.err), its wall
# and CPU seconds and peak RSS (KB) in $tmp/NAME.time as "wall rss cpu".
run() {
	if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/$1.t" sh -c "$2" \
	    >/dev/null 2>"$tmp/$1.err"; then
		echo "bench: $1 failed: $(grep -v '^Command' "$tmp/$1.err" | tail -1)" >&2
		echo "- - -" >"$tmp/$1.time"
		return 0
	fi
	tail -1 "$tmp/$1.t" | awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' >"$tmp/$1.time"
}

# row LABEL NAME USERS ITEMS [EVENTS]: a line of the table from run NAME.
row() {
	_n=${5:-$N}
	set -- "$1" "$2" "$3" "$4" $(cat "$tmp/$2.time")
	awk -v l="$1" -v n="$_n" -v u="$3" -v it="$4" -v w="$5" -v r="$6" -v c="$7" -v r0="$RSS0" 'BEGIN {
		if (w == "-") { printf "%-36s %10s\n", l, "FAILED"; exit }
		rate = w > 0 ? n / w : 0
		cpu = c > 0 ? n / c : 0
		pu = u > 0 ? (r - r0) * 1024 / u : 0
		pi = it > 0 ? sprintf("%.0f", (r - r0) * 1024 / it) : "-"
		printf "%-36s %10d %10d %10.1f %9.0f %9s\n", l, rate, cpu, r / 1024, pu, pi }'
}

# stat NAME KEY: the value of "KEY VALUE" in run NAME's --stats.
stat() {
	sed -n "s/.* $2 \([0-9.]*\)\$/\1/p" "$tmp/$1.err" | tail -1
}

echo "bench-scale: $N long-tail events (reco-gen --regime sessions) for about $U users; inputs in $tmp" >&2
reco-gen --regime sessions --events "$N" --items 1000000 -O avro -o "$tmp/ev.avro"
# jq keeps no state, so its rate does not grow with the users: it reads
# the first NJ events, as NDJSON, and so does the NDJSON row.
NJ=$((N < 5000000 ? N : 5000000))
if [ "${SCALE_JQ:-1}" != 0 ] && [ -n "$JQ" ]; then
	reco-ingest -q --no-source "$tmp/ev.avro" | head -n "$NJ" >"$tmp/ev.ndjson" || true
fi
/usr/bin/time -f %M -o "$tmp/rss0" reco-profile --emit none /dev/null
RSS0=$(tail -1 "$tmp/rss0")

run mem "reco-profile --emit none --stats --max-users 100000000 $tmp/ev.avro"
# A checkpoint writes every profile: by default, every 1M events or as
# many events as there are users, whichever is more.
run file "reco-profile --emit none --stats --max-users 100000000 --store $tmp/p.state $tmp/ev.avro"
run load "reco-profile --emit none --stats --max-users 100000000 --store $tmp/p.state /dev/null"
run train "reco-train --stats --max-users 100000000 --max-items 10000000 -o $tmp/m.bin $tmp/ev.avro"
if [ -s "$tmp/ev.ndjson" ]; then
	run jq "jq -c . $tmp/ev.ndjson"
	run ndjson "reco-profile --emit none --max-users 100000000 $tmp/ev.ndjson"
fi
users=$(stat mem users)
items=$(stat train items)

printf '%-36s %10s %10s %10s %9s %9s\n' "$N events, ${users:-?} users, ${items:-?} items" \
    "events/s" "per CPU s" "RSS MB" "B/user" "B/item"
row "reco-profile Avro, memory" mem "$users" 0
row "reco-profile Avro, state file" file "$users" 0
[ -s "$tmp/ndjson.time" ] && row "reco-profile NDJSON, memory ($NJ ev)" ndjson 0 0 "$NJ"
row "reco-train Avro (users and items)" train "$users" "$items"
[ -s "$tmp/jq.time" ] && row "jq -c . (reference, $NJ ev)" jq 0 0 "$NJ"
echo "(B/user and B/item: resident bytes above an idle tool's over the users, and over the items; reco-train's hold both)"

if [ "${SCALE_REDIS:-1}" != 0 ] && command -v redis-server >/dev/null 2>&1 &&
    bench_redis_start; then
	run redis "reco-profile --emit none --stats --batch 5000 --store redis://127.0.0.1:$REDIS_PORT/0 $tmp/ev.avro"
	row "reco-profile Avro, Redis (loopback)" redis "$users" 0
	used=$(redis-cli -p "$REDIS_PORT" info memory | tr -d '\r' | sed -n 's/^used_memory://p')
	keys=$(redis-cli -p "$REDIS_PORT" dbsize)
	awk -v b="$used" -v k="$keys" -v u="$users" 'BEGIN {
		pu = u > 0 ? b / u : 0
		printf "Redis: %d keys, used_memory %.1f MB, %.0f bytes per user\n", k, b / 1048576, pu }'
	kill "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null || true
	REDIS_PID=
fi

if [ -s "$tmp/jq.time" ]; then
	awk -v a="$(cut -d' ' -f1 "$tmp/mem.time")" -v j="$(cut -d' ' -f1 "$tmp/jq.time")" \
	    -v n="$N" -v nj="$NJ" 'BEGIN {
		if (a > 0 && j > 0) printf "reco-profile (Avro) against jq -c .: %.1fx the events per second\n", (n / a) / (nj / j) }'
fi
awk -v s="$(wc -c <"$tmp/p.state")" -v m="$(wc -c <"$tmp/m.bin")" -v u="$users" -v i="$items" 'BEGIN {
	pu = u > 0 ? s / u : 0
	printf "state file %.1f MB (%.0f B/user); snapshot %.1f MB\n", s / 1048576, pu, m / 1048576 }'
echo "state file: load $(stat load load_seconds) s, checkpoint $(stat file checkpoint_seconds) s"
awk -v p="$(cut -d' ' -f2 "$tmp/mem.time")" -v t="$(cut -d' ' -f2 "$tmp/train.time")" 'BEGIN {
	printf "profiles and model together: %.2f GB resident (target: under 8 GB at 10M users)\n", (p + t) / 1048576 }'
