#!/bin/sh
# profile.sh: the benchmark of reco-profile: events/s and peak memory with the embedded store and with Redis, against jq; bytes per profile; load and checkpoint of 10^6 profiles.
#
# Environment: RECO_BIN (the built tools, required), BENCH_EVENTS (default
# 1000000), BENCH_USERS (default BENCH_EVENTS / 10), BENCH_PROFILES
# (profiles for the load and checkpoint rows, default 1000000).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
N=${BENCH_EVENTS:-1000000}
U=${BENCH_USERS:-$((N / 10))}
P=${BENCH_PROFILES:-1000000}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-profile.XXXXXX")
. "$(dirname "$0")/common.sh"
bench_redis_traps

human_kb() {
	awk -v k="$1" 'BEGIN { printf "%.1f MB\n", k / 1024 }'
}

printf '%-40s %12s %12s %10s\n' "" "events/s" "per CPU s" "peak RSS"

# row LABEL N CMD: run CMD over the whole input and print its rate (per
# second of wall-clock time and of CPU time) and its peak RSS.
row() {
	label=$1 n=$2 cmd=$3
	if ! /usr/bin/time -f '%e %M %U %S' -o "$tmp/time" sh -c "$cmd" \
	    >/dev/null 2>"$tmp/err"; then
		printf '%-40s FAILED: %s\n' "$label" "$(grep -v '^Command' "$tmp/err" | head -1)"
		return 0
	fi
	set -- $(tail -1 "$tmp/time")
	printf '%-40s %12s %12s %10s\n' "$label" \
	    "$(awk -v n="$n" -v s="$1" 'BEGIN { if (s > 0) printf "%d", n / s; else print "-" }')" \
	    "$(awk -v n="$n" -v u="$3" -v s="$4" 'BEGIN { if (u + s > 0) printf "%d", n / (u + s); else print "-" }')" \
	    "$(human_kb "$2")"
}

echo "bench: $N events over $U users; inputs in $tmp" >&2
reco-gen --events "$N" --users "$U" -o "$tmp/ev.ndjson"
reco-gen --events "$N" --users "$U" -O avro -o "$tmp/ev.avro"

row "reco-profile NDJSON, memory, --emit none" "$N" \
    "reco-profile --emit none $tmp/ev.ndjson"
row "reco-profile NDJSON, state file" "$N" \
    "reco-profile --emit none --store $tmp/a.state $tmp/ev.ndjson"
row "reco-profile Avro, state file" "$N" \
    "reco-profile --emit none --store $tmp/b.state $tmp/ev.avro"
row "reco-profile NDJSON, --emit changed" "$N" \
    "reco-profile --store $tmp/c.state $tmp/ev.ndjson"
row "reco-profile NDJSON, replayed (all skipped)" "$N" \
    "reco-profile --emit none --store $tmp/b.state $tmp/ev.ndjson"

if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
	port=
	bench_redis_start && port=$REDIS_PORT
	if [ -n "$port" ]; then
		url=redis://127.0.0.1:$port/0
		row "reco-profile NDJSON, Redis (loopback)" "$N" \
		    "reco-profile --emit none --store $url $tmp/ev.ndjson"
		redis-cli -p "$port" flushall >/dev/null
		row "reco-profile Avro, Redis (loopback)" "$N" \
		    "reco-profile --emit none --store $url $tmp/ev.avro"
		redis-cli -p "$port" flushall >/dev/null
		row "reco-profile Avro, Redis, --batch 5000" "$N" \
		    "reco-profile --emit none --batch 5000 --store $url $tmp/ev.avro"
		echo "Redis used_memory after $N events: $(redis-cli -p "$port" info memory |
		    tr -d '\r' | sed -n 's/^used_memory_human://p')"
		kill "$REDIS_PID"
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=
	else
		echo "bench: redis-server did not start: no Redis rows" >&2
	fi
else
	echo "bench: redis-server is missing: no Redis rows" >&2
fi

if command -v jq >/dev/null 2>&1; then
	# For scale: jq reading every event and writing its user, item and
	# weight, no state at all (a jq reduce over per-user objects is
	# quadratic and does not finish).
	row "jq per-event projection (reference)" "$N" \
	    "jq -c '{user, item, w: ({\"view\":1,\"add_to_cart\":4,\"purchase\":8}[.type] // 0)}' $tmp/ev.ndjson"
fi

# Bytes per profile: what the profiles and their table hold, and the
# peak RSS over the profiles.
reco-profile --emit none --stats --store "$tmp/d.state" "$tmp/ev.ndjson" 2>"$tmp/stats" >/dev/null
users=$(sed -n 's/.* users \([0-9]*\)$/\1/p' "$tmp/stats")
bytes=$(sed -n 's/.* store_bytes \([0-9]*\)$/\1/p' "$tmp/stats")
/usr/bin/time -f %M -o "$tmp/rss0" reco-profile --emit none /dev/null
/usr/bin/time -f %M -o "$tmp/rss1" reco-profile --emit none "$tmp/ev.avro"
rss0=$(tail -1 "$tmp/rss0")
rss1=$(tail -1 "$tmp/rss1")
awk -v u="$users" -v b="$bytes" -v r0="$rss0" -v r1="$rss1" -v s="$(wc -c <"$tmp/d.state")" 'BEGIN {
	printf "profiles: %d; bytes per profile: %.0f held, %.0f of peak RSS, %.0f in the state file\n",
	    u, b / u, (r1 - r0) * 1024 / u, s / u }'

# Load and checkpoint 10^6 profiles: the profiles of the run above, copied
# under new user names until there are P of them, restored into a state
# file, then loaded again and written again.
reco-profile --dump --store "$tmp/d.state" >"$tmp/dump"
awk -v want="$P" -v have="$users" 'BEGIN { k = 0 }
	{ line[NR] = $0 }
	END {
		n = 0
		for (k = 0; n < want; k++)
			for (i = 1; i <= NR && n < want; i++) {
				l = line[i]
				sub(/^\{"user":"/, "{\"user\":\"c" k "-", l)
				print l
				n++
			}
	}' "$tmp/dump" >"$tmp/many"
rm -f "$tmp/dump"
/usr/bin/time -f '%e %M' -o "$tmp/t" reco-profile --restore --batch 10000 --stats \
    --store "$tmp/many.state" "$tmp/many" 2>"$tmp/stats"
set -- $(tail -1 "$tmp/t")
printf 'restore %d profiles from NDJSON: %.2f s, peak RSS %s; checkpoint %s s; state file %s\n' \
    "$P" "$1" "$(human_kb "$2")" \
    "$(sed -n 's/.* checkpoint_seconds \([0-9.]*\)$/\1/p' "$tmp/stats")" \
    "$(awk -v s="$(wc -c <"$tmp/many.state")" 'BEGIN { printf "%.1f MB", s / 1048576 }')"
head -1 "$tmp/ev.ndjson" | sed 's/"user":"[^"]*"/"user":"bench-new-user"/' >"$tmp/one"
/usr/bin/time -f '%e %M' -o "$tmp/t" reco-profile --emit none --stats \
    --store "$tmp/many.state" "$tmp/one" 2>"$tmp/stats"
set -- $(tail -1 "$tmp/t")
printf 'load %d profiles: %s s; checkpoint them: %s s; peak RSS %s\n' "$P" \
    "$(sed -n 's/.* load_seconds \([0-9.]*\)$/\1/p' "$tmp/stats")" \
    "$(sed -n 's/.* checkpoint_seconds \([0-9.]*\)$/\1/p' "$tmp/stats")" \
    "$(human_kb "$2")"
/usr/bin/time -f '%e' -o "$tmp/t" reco-profile --get bench-new-user --store "$tmp/many.state" >/dev/null
echo "reco-profile --get one user of $P (loads the file): $(tail -1 "$tmp/t") s"
