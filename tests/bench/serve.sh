#!/bin/sh
# serve.sh: the benchmark of reco-serve: latency percentiles on standard input at 50,000, 100,000 and 1,000,000 items, HTTP requests per second and latency with wrk, and a reload under load.
#
# Environment: RECO_BIN (the built tools, required), BENCH_SERVE_REQUESTS
# (requests per stdin run, default 20000), BENCH_SERVE_BIG (items of the
# largest catalogue, default 1000000), BENCH_SERVE_SECONDS (wrk run
# length, default 5), CC (default cc), BENCH_SERVE_BASE (a git revision:
# also build it in a temporary directory and compare its HTTP rate with
# this build's, runs alternating, in the same run), BENCH_SERVE_ROUNDS
# (runs of each side per catalogue in that comparison, default 5),
# BENCH_SERVE_ONLY_AB (1: only that comparison).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
NQ=${BENCH_SERVE_REQUESTS:-20000}
BIG=${BENCH_SERVE_BIG:-1000000}
SECS=${BENCH_SERVE_SECONDS:-5}
CC=${CC:-cc}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIBRECO=$(dirname "$RECO_BIN")/libreco.a

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-serve.XXXXXX")
. "$(dirname "$0")/common.sh"
SPID=
cleanup() {
	if [ -n "$SPID" ]; then
		kill "$SPID" 2>/dev/null || true
		wait "$SPID" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A model of N items and U users at 32 factors, learned from sessions of
# 4 items within clusters of 64, so that every item has factors and
# neighbours; written as a snapshot.
cat >"$tmp/mk.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"
#include "model.h"

int
main(int argc, char **argv)
{
	struct model_params p;
	struct event ev;
	struct rng r;
	char u[32], it[32], s[32], err[256];
	uint64_t n = strtoull(argv[1], NULL, 10), users = strtoull(argv[2], NULL, 10);
	uint64_t sessions = n / 2 + users;

	model_params_default(&p);
	p.dim = 32;
	p.max_items = n + 1;
	p.max_users = users + 1;
	struct model *m = model_new(&p);
	rng_seed(&r, 1);
	event_init(&ev);
	for (uint64_t k = 0; k < sessions; k++) {
		uint64_t user = k % users, base = (k * 2) % n;
		base -= base % 64;
		snprintf(u, sizeof u, "u%llu", (unsigned long long)user);
		snprintf(s, sizeof s, "s%llu", (unsigned long long)k);
		for (int j = 0; j < 4; j++) {
			uint64_t item = j == 0 && k < n / 2 ? k * 2 % n :
				base + rng_below(&r, 64);
			if (item >= n)
				item = n - 1;
			snprintf(it, sizeof it, "i%llu", (unsigned long long)item);
			event_reset(&ev);
			ev.event_id.p = "e"; ev.event_id.n = 1;
			ev.ts = 1700000000000LL + (int64_t)k * 1000 + j;
			ev.user.p = u; ev.user.n = strlen(u);
			ev.item.p = it; ev.item.n = strlen(it);
			ev.session.p = s; ev.session.n = strlen(s);
			ev.type = ET_VIEW;
			ev.has = EV_ITEM | EV_SESSION;
			model_learn(m, &ev);
		}
	}
	if (model_save(m, argv[3], err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%llu\n", (unsigned long long)m->nitems);
	model_free(m);
	event_free(&ev);
	return 0;
}
EOF
# shellcheck disable=SC2046
$CC -std=c11 -D_DEFAULT_SOURCE -O2 -I"$ROOT/lib" $(pkg-config --cflags jansson) \
	-o "$tmp/mk" "$tmp/mk.c" "$LIBRECO" \
	$(pkg-config --libs jansson avro-c zlib hiredis libmicrohttpd libcurl) -lcsv -lm

# NQ requests of known users, with a context item for one in four and
# an unknown user for one in ten.
requests() {
	awk -v n="$1" -v items="$2" -v users="$3" 'BEGIN {
		srand(7)
		for (k = 0; k < n; k++) {
			u = (k % 10 == 9) ? "new" k : "u" int(rand() * users)
			if (k % 4 == 0)
				printf "{\"user\":\"%s\",\"n\":10,\"context\":{\"items\":[\"i%d\"]}}\n", u, int(rand() * items)
			else
				printf "{\"user\":\"%s\",\"n\":10}\n", u
		}
	}'
}

[ "${BENCH_SERVE_ONLY_AB:-0}" = 1 ] ||
printf '%-52s %10s %10s %10s\n' "reco-serve, standard input, 32 factors" "p50" "p99" "p99.9"
[ "${BENCH_SERVE_ONLY_AB:-0}" = 1 ] ||
for n in 50000 100000 "$BIG"; do
	users=$((n / 5))
	"$tmp/mk" "$n" "$users" "$tmp/m$n.bin" >/dev/null
	requests "$NQ" "$n" "$users" >"$tmp/q.ndjson"
	reco-serve --model "$tmp/m$n.bin" --stats "$tmp/q.ndjson" >/dev/null 2>"$tmp/err" ||
		{ echo "bench: reco-serve: $(head -1 "$tmp/err")" >&2; exit 1; }
	set -- $(sed -n 's/.*latency p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms, p99.9 \([0-9.]*\) ms/\1 \2 \3/p' "$tmp/err")
	printf '%-52s %7s ms %7s ms %7s ms\n' "  $n items, $NQ requests" "$1" "$2" "$3"
	if [ "$n" = 100000 ]; then
		awk -v p="$2" 'BEGIN { printf "%-52s %s\n", "  target: p99 under 2 ms at 100000 items", (p < 2) ? "met" : "NOT MET" }'
	fi
	if [ "$n" = "$BIG" ]; then
		# The model's learned blend leaves mf out; with it in, every
		# request scores every item's 8-bit factors.
		reco-serve --model "$tmp/m$n.bin" --weights mf=0.2,cooc=1,trend=0.05,dpop=0.1 \
			--stats "$tmp/q.ndjson" >/dev/null 2>"$tmp/err" ||
			{ echo "bench: reco-serve: $(head -1 "$tmp/err")" >&2; exit 1; }
		set -- $(sed -n 's/.*latency p50 \([0-9.]*\) ms, p99 \([0-9.]*\) ms, p99.9 \([0-9.]*\) ms/\1 \2 \3/p' "$tmp/err")
		printf '%-52s %7s ms %7s ms %7s ms\n' "  $n items, mf in the blend" "$1" "$2" "$3"
		awk -v p="$2" -v n="$n" 'BEGIN { printf "%-52s %s\n", "  target: p99 under 5 ms at " n " items with mf", (p < 5) ? "met" : "NOT MET" }'
	fi
done

if ! command -v wrk >/dev/null 2>&1; then
	echo "bench: wrk is not installed (make deps): no HTTP rows" >&2
	exit 0
fi

# Start reco-serve on a free port; sets SPID and PORT.
start() {
	bench_serve_start "$@"
}

stop() {
	kill "$SPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
	SPID=
}

cat >"$tmp/req.lua" <<'EOF'
local users = tonumber(os.getenv("USERS") or "1000")
local k = 0
request = function()
	k = k + 1
	return wrk.format("GET", "/recommend?n=10&user=u" .. ((k * 7919) % users))
end
EOF

# wrk's numbers: requests per second, p50 and p99 in ms, errors.
wrk_run() {
	wrk -t2 -c32 -d"${SECS}s" --latency -s "$tmp/req.lua" "http://127.0.0.1:$PORT/" >"$tmp/wrk.out" 2>&1
	awk '
	function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
	/Requests\/sec/ { rps = $2 }
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/Non-2xx/ { bad += $NF }
	/Socket errors/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) bad += $i }
	END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, bad }' "$tmp/wrk.out"
}

# before_after: this build against the revision BENCH_SERVE_BASE, built
# in a temporary directory: BENCH_SERVE_ROUNDS alternating wrk runs each
# per catalogue, the median of each side printed.
before_after() {
	mkdir "$tmp/base"
	git -C "$ROOT" archive "$BENCH_SERVE_BASE" | tar -x -C "$tmp/base"
	make -C "$tmp/base" -j2 all >"$tmp/base.log" 2>&1 ||
		{ echo "bench: cannot build $BENCH_SERVE_BASE: $(tail -3 "$tmp/base.log")" >&2; exit 1; }
	printf '%-44s %10s %10s %10s %12s\n' "reco-serve, HTTP, before ($BENCH_SERVE_BASE) and after" "req/s" "p50" "p99" "CPU/request"
	for n in 10000 100000; do
		users=$((n / 5))
		[ -f "$tmp/m$n.bin" ] || "$tmp/mk" "$n" "$users" "$tmp/m$n.bin" >/dev/null
		export USERS=$users
		: >"$tmp/ab.before"
		: >"$tmp/ab.after"
		for round in $(seq "${BENCH_SERVE_ROUNDS:-5}"); do
			for side in before after; do
				opath=$PATH
				[ "$side" = before ] && PATH=$tmp/base/build/bin:$PATH
				start --model "$tmp/m$n.bin" --threads 2
				PATH=$opath
				# The server's CPU time per request: what the
				# deadlines and checks cost, whatever else runs.
				set -- $(wrk_run || true)
				cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$SPID/stat")
				reqs=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' "$tmp/wrk.out")
				[ "${1:-0}" != 0 ] && [ -n "$reqs" ] &&
					echo "$1 $2 $3 $(awk -v c="$cpu" -v n="$reqs" 'BEGIN { printf "%.1f", c * 1e6 / n }')" >>"$tmp/ab.$side"
				stop
			done
		done
		for side in before after; do
			# Medians of the runs that worked, each column apart.
			med() {
				sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'
			}
			printf '%-44s %10s %7s ms %7s ms %9s us\n' "  $n items, $side, median of $(wc -l <"$tmp/ab.$side")" \
				"$(cut -d' ' -f1 "$tmp/ab.$side" | med)" "$(cut -d' ' -f2 "$tmp/ab.$side" | med)" \
				"$(cut -d' ' -f3 "$tmp/ab.$side" | med)" "$(cut -d' ' -f4 "$tmp/ab.$side" | med)"
			printf '    runs (req/s, CPU us/request): %s\n' "$(awk '{ printf "%s/%s ", $1, $4 }' "$tmp/ab.$side")"
		done
	done
}

if [ -n "${BENCH_SERVE_BASE:-}" ]; then
	before_after
	[ "${BENCH_SERVE_ONLY_AB:-0}" = 1 ] && exit 0
fi

printf '%-52s %10s %10s %10s\n' "reco-serve, HTTP (wrk, 2 threads, 32 connections)" "req/s" "p50" "p99"
for n in 10000 100000; do
	users=$((n / 5))
	[ -f "$tmp/m$n.bin" ] || "$tmp/mk" "$n" "$users" "$tmp/m$n.bin" >/dev/null
	start --model "$tmp/m$n.bin" --threads 2
	export USERS=$users
	set -- $(wrk_run)
	stop
	printf '%-52s %10s %7s ms %7s ms\n' "  $n items" "$1" "$2" "$3"
	target=20000
	[ "$n" = 100000 ] && target=2000
	awk -v r="$1" -v t="$target" -v n="$n" 'BEGIN { printf "%-52s %s\n", "  target: " t " requests per second at " n " items", (r >= t) ? "met" : "NOT MET" }'
done

# A reload under load: the snapshot replaced 5 times while wrk runs.
n=10000
cp "$tmp/m$n.bin" "$tmp/live.bin"
start --model "$tmp/live.bin" --reload-every 100ms
export USERS=2000
wrk_run >"$tmp/wrk.res" &
wpid=$!
for k in 1 2 3 4 5; do
	sleep 0.5
	cp "$tmp/m100000.bin" "$tmp/new.bin" && mv "$tmp/new.bin" "$tmp/live.bin"
	sleep 0.5
	cp "$tmp/m$n.bin" "$tmp/new.bin" && mv "$tmp/new.bin" "$tmp/live.bin"
done
wait "$wpid"
reloads=$(grep -c 'loaded snapshot' "$tmp/serve.err" || true)
stop
set -- $(cat "$tmp/wrk.res")
printf '%-52s %10s %7s ms %7s ms\n' "  reload under load ($reloads reloads)" "$1" "$2" "$3"
awk -v b="$4" 'BEGIN { printf "%-52s %s\n", "  target: a reload under load drops no request", (b == 0) ? "met (0 errors)" : "NOT MET (" b " errors)" }'

# The console's cost to /recommend: wrk with the console off, then on
# with a page's polling of /console/api/live every second, alternating,
# 3 runs each; medians side by side.
n=10000
export USERS=2000
: >"$tmp/con.off"
: >"$tmp/con.on"
for round in 1 2 3; do
	for side in off on; do
		if [ "$side" = on ]; then
			start --model "$tmp/m$n.bin" --threads 2 --console
			(while :; do curl -s "http://127.0.0.1:$PORT/console/api/live" >/dev/null; sleep 1; done) &
			poller=$!
		else
			start --model "$tmp/m$n.bin" --threads 2
		fi
		wrk_run >>"$tmp/con.$side"
		[ "$side" = on ] && { kill "$poller"; wait "$poller" 2>/dev/null || true; }
		stop
	done
done
printf '%-52s %10s %10s %10s\n' "reco-serve, HTTP, the console's cost ($n items)" "req/s" "p50" "p99"
for side in off on; do
	sort -n -k1,1 "$tmp/con.$side" | awk -v s="$side" 'NR == 2 {
		printf "%-52s %10s %7s ms %7s ms\n", "  console " s " (median of 3 runs by req/s)", $1, $2, $3 }'
done
