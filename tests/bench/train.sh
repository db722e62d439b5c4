#!/bin/sh
# train.sh: the benchmark of reco-train and reco-eval: model updates per second, snapshot write and load times, evaluation speed, each with peak memory.
#
# Environment: RECO_BIN (the built tools, required), BENCH_EVENTS (events
# for the update rates, default 1000000), BENCH_ITEMS (items of the
# snapshot, default 1000000), BENCH_EVAL_EVENTS (events for reco-eval,
# default 50000), CC (default cc).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
N=${BENCH_EVENTS:-1000000}
NI=${BENCH_ITEMS:-1000000}
NE=${BENCH_EVAL_EVENTS:-50000}
CC=${CC:-cc}
PATH=$RECO_BIN:$PATH
export PATH LC_ALL=C
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIBRECO=$(dirname "$RECO_BIN")/libreco.a

tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-bench-train.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ ! -x /usr/bin/time ]; then
	echo "bench: /usr/bin/time is missing (Debian package time): cannot measure" >&2
	exit 1
fi

# The micro-benchmark: the model's parts timed on events made in memory,
# so that no parsing is counted.
cat >"$tmp/mb.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reco.h"
#include "model.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Events of sessions that stay within one of 64 clusters of items, with
 * a skew towards the first items of a cluster; ids are made up front. */
struct evs {
	size_t n;
	char *ids;
	uint32_t *uo, *io, *so;
	int64_t *ts;
};

static void
make(struct evs *e, size_t n, uint64_t users, uint64_t items, int distinct)
{
	struct rng r;
	struct {
		uint64_t user, sess, cluster;
		int left;
	} slot[1024];
	size_t cap = n * 48, at = 0;

	rng_seed(&r, 42);
	memset(slot, 0, sizeof slot);
	e->n = n;
	e->ids = xmalloc(cap);
	e->uo = xreallocarray(NULL, n, sizeof *e->uo);
	e->io = xreallocarray(NULL, n, sizeof *e->io);
	e->so = xreallocarray(NULL, n, sizeof *e->so);
	e->ts = xreallocarray(NULL, n, sizeof *e->ts);
	for (size_t k = 0; k < n; k++) {
		size_t s = rng_below(&r, 1024);
		if (slot[s].left <= 0) {
			slot[s].user = rng_below(&r, users);
			slot[s].sess = k;
			slot[s].cluster = rng_below(&r, 64);
			slot[s].left = 2 + (int)rng_below(&r, 19);
		}
		slot[s].left--;
		double u = rng_double(&r);
		uint64_t per = items / 64 ? items / 64 : 1;
		uint64_t item = distinct ? k % items :
			(slot[s].cluster * per + (uint64_t)(u * u * u * (double)per)) % items;
		e->uo[k] = (uint32_t)at;
		at += (size_t)sprintf(e->ids + at, "u%llu", (unsigned long long)slot[s].user) + 1;
		e->io[k] = (uint32_t)at;
		at += (size_t)sprintf(e->ids + at, "i%llu", (unsigned long long)item) + 1;
		e->so[k] = (uint32_t)at;
		at += (size_t)sprintf(e->ids + at, "s%llu", (unsigned long long)slot[s].sess) + 1;
		e->ts[k] = 1569888000000LL + (int64_t)k * 10;
	}
}

static void
learn_all(struct model *m, const struct evs *e)
{
	struct event ev;

	event_init(&ev);
	ev.type = ET_VIEW;
	ev.v = 1;
	ev.has = EV_ITEM | EV_SESSION;
	for (size_t k = 0; k < e->n; k++) {
		ev.user.p = e->ids + e->uo[k];
		ev.user.n = strlen(ev.user.p);
		ev.item.p = e->ids + e->io[k];
		ev.item.n = strlen(ev.item.p);
		ev.session.p = e->ids + e->so[k];
		ev.session.n = strlen(ev.session.p);
		ev.ts = e->ts[k];
		model_learn(m, &ev);
	}
	event_free(&ev);
}

int
main(int argc, char **argv)
{
	struct model_params p;
	struct evs e;
	char err[512];

	if (argc < 4)
		return 2;
	model_params_default(&p);
	size_t n = strtoull(argv[2], NULL, 10);
	if (strcmp(argv[1], "mf") == 0) {
		/* One streaming pass to fill the model, then timed epochs. */
		p.dim = (uint32_t)atoi(argv[3]);
		make(&e, n, 100000, 100000, 0);
		struct model *m = model_new(&p);
		model_log_start(m);
		learn_all(m, &e);
		double best = 0, steps = 0;
		for (int k = 0; k < 3; k++) {
			uint64_t s0 = m->st.mf_updates;
			double t = now();
			model_epoch(m);
			t = now() - t;
			if (n / t > best) {
				best = (double)n / t;
				steps = (double)(m->st.mf_updates - s0) / t;
			}
		}
		printf("%.0f %.0f\n", best, steps);
		model_free(m);
	} else if (strcmp(argv[1], "learn") == 0) {
		/* All of model_learn; with neighbours 0, all but the lists. */
		p.neighbours = (uint32_t)atoi(argv[3]);
		make(&e, n, 100000, 100000, 0);
		struct model *m = model_new(&p);
		double t = now();
		learn_all(m, &e);
		t = now() - t;
		printf("%.0f %.0f %.6f\n", (double)n / t, (double)m->st.cooc_pairs, t);
		model_free(m);
	} else if (strcmp(argv[1], "snap") == 0) {
		/* n items, each with events, and a tenth as many users. */
		make(&e, n, n / 10 ? n / 10 : 1, n, 1);
		struct model *m = model_new(&p);
		learn_all(m, &e);
		free(e.ids);
		free(e.uo);
		free(e.io);
		free(e.so);
		free(e.ts);
		double t = now();
		if (model_save(m, argv[3], err, sizeof err)) {
			fprintf(stderr, "%s\n", err);
			return 3;
		}
		printf("%.3f %llu\n", now() - t, (unsigned long long)m->nitems);
		model_free(m);
	} else if (strcmp(argv[1], "load") == 0) {
		/* argv[2]: 1 to map (serving), 0 to copy (--resume). */
		double t = now();
		struct model *v = model_load(argv[3], n ? MODEL_MAP : 0, err, sizeof err);
		if (!v) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		printf("%.3f\n", now() - t);
		model_free(v);
	}
	return 0;
}
EOF
# shellcheck disable=SC2046 # pkg-config's words, split on purpose
$CC -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -O2 -I"$ROOT/lib" \
    $(pkg-config --cflags jansson avro-c zlib hiredis libcurl) -o "$tmp/mb" "$tmp/mb.c" \
    "$LIBRECO" $(pkg-config --libs jansson avro-c zlib hiredis libcurl) -lcsv -lm

human_kb() {
	awk -v k="$1" 'BEGIN { printf "%.1f MB\n", k / 1024 }'
}

human_n() {
	awk -v n="$1" 'BEGIN { if (n >= 1e6) printf "%.2fM\n", n / 1e6; else printf "%.0fk\n", n / 1e3 }'
}

# run OUT CMD...: run CMD with its standard output in OUT and its peak
# memory in $RSS.
run() {
	out=$1
	shift
	/usr/bin/time -f %M -o "$tmp/rss" "$@" >"$out" 2>"$tmp/err" || {
		echo "bench: $*: failed: $(head -1 "$tmp/err")" >&2
		return 1
	}
	RSS=$(tail -1 "$tmp/rss")
}

printf '%-46s %12s %10s\n' "" "per second" "peak RSS"

for d in 32 64; do
	run "$tmp/o" "$tmp/mb" mf "$N" "$d"
	read -r ev steps <"$tmp/o"
	printf '%-46s %12s %10s\n' "MF updates, $d factors (events, 4 negatives)" \
	    "$(human_n "$ev")" "$(human_kb "$RSS")"
	printf '%-46s %12s\n' "  SGD steps (1 positive + 4 negatives each)" "$(human_n "$steps")"
	if [ "$d" = 32 ]; then
		awk -v r="$ev" 'BEGIN { printf "%-46s %s\n", "  target: 1000000 per second per core", (r >= 1000000) ? "met" : "NOT MET" }'
	fi
done

run "$tmp/o" "$tmp/mb" learn "$N" 100
read -r ev pairs t20 <"$tmp/o"
rss20=$RSS
run "$tmp/o" "$tmp/mb" learn "$N" 0
read -r ev0 pairs0 t0 <"$tmp/o"
printf '%-46s %12s %10s\n' "model_learn, every source and the blend" "$(human_n "$ev")" "$(human_kb "$rss20")"
awk -v r="$ev" 'BEGIN { printf "%-46s %s\n", "  target: 300000 per second per core", (r >= 300000) ? "met" : "NOT MET" }' 
printf '%-46s %12s %10s\n' "model_learn, no neighbour lists (events)" "$(human_n "$ev0")" "$(human_kb "$RSS")"
awk -v p="$pairs" -v a="$t20" -v b="$t0" 'BEGIN {
	if (a > b) printf "%-46s %12s\n", "co-occurrence increments (time difference)", sprintf("%.2fM", p / (a - b) / 1e6)
	else printf "%-46s %12s\n", "co-occurrence increments (time difference)", "-"
	printf "%-46s %12s\n", "  increments per event", sprintf("%.1f", p / '"$N"')
}'

run "$tmp/o" "$tmp/mb" snap "$NI" "$tmp/snap.bin"
read -r tw items <"$tmp/o"
size=$(wc -c <"$tmp/snap.bin")
printf '%-46s %12s %10s\n' "snapshot of $items items: write (with fsync)" "$tw s" "$(human_kb "$RSS")"
awk -v s="$size" 'BEGIN { printf "%-46s %12s\n", "  size", sprintf("%.1f MB", s / 1048576) }'
run "$tmp/o" "$tmp/mb" load 1 "$tmp/snap.bin"
printf '%-46s %12s %10s\n' "  load, mapped and checked (serving)" "$(cat "$tmp/o") s" "$(human_kb "$RSS")"
run "$tmp/o" "$tmp/mb" load 0 "$tmp/snap.bin"
printf '%-46s %12s %10s\n' "  load, checked and copied (--resume)" "$(cat "$tmp/o") s" "$(human_kb "$RSS")"
run "$tmp/o" reco-train --inspect "$tmp/snap.bin"
printf '%-46s %12s %10s\n' "reco-train --inspect of it" "-" "$(human_kb "$RSS")"

reco-gen --events "$N" --users 100000 --items 100000 -O avro -o "$tmp/gen.avro"
run "$tmp/o" sh -c "reco-train --stats -o $tmp/m.bin $tmp/gen.avro 2>&1 >/dev/null"
rate=$(sed -n 's/.*learned in [0-9.]* s (\([0-9]*\) per second.*/\1/p' "$tmp/o")
printf '%-46s %12s %10s\n' "reco-train, Avro in, 100k users and items" "$(human_n "$rate")" "$(human_kb "$RSS")"

# Long-tail traffic (a user comes a few times, most items are rare): what
# a user costs resident, all told (model, sessions, seen pairs, items and
# lists over the users), above an idle reco-train, as bench-scale counts.
reco-gen --regime sessions --events "$N" --items 50000 -O avro -o "$tmp/lt.avro"
run "$tmp/o" sh -c "reco-train --stats -o $tmp/lt.bin $tmp/lt.avro 2>&1 >/dev/null"
rate=$(sed -n 's/.*learned in [0-9.]* s (\([0-9]*\) per second.*/\1/p' "$tmp/o")
users=$(sed -n 's/^reco-train:   users \([0-9]*\)$/\1/p' "$tmp/o")
rss=$RSS
run "$tmp/o" sh -c "reco-train -q -o $tmp/e.bin /dev/null || true"
printf '%-46s %12s %10s\n' "reco-train, long tail, $(human_n "$users") users, 50k items" "$(human_n "$rate")" "$(human_kb "$rss")"
awk -v r="$rss" -v r0="$RSS" -v u="$users" 'BEGIN {
	printf "%-46s %12s\n", "  resident bytes per user (above an idle one)", sprintf("%.0f (%.0f)", r * 1024 / u, (r - r0) * 1024 / u)
	printf "%-46s %s\n", "  target: 500 per user", ((r - r0) * 1024 / u <= 500) ? "met" : "NOT MET" }'

# Each kind of data: reco-train's rate with every source, and what a
# snapshot costs per item, per user and per session kept.
for r in shop sessions history; do
	reco-gen --regime "$r" --events 300000 -O avro -o "$tmp/$r.avro"
	run "$tmp/o" sh -c "reco-train --stats -o $tmp/$r.bin $tmp/$r.avro 2>&1 >/dev/null"
	rate=$(sed -n 's/.*learned in [0-9.]* s (\([0-9]*\) per second.*/\1/p' "$tmp/o")
	printf '%-46s %12s %10s\n' "reco-train, $r regime, 300k events" "$(human_n "$rate")" "$(human_kb "$RSS")"
	reco-train --inspect "$tmp/$r.bin" >"$tmp/insp"
	awk '
		$1 == "items" { items = $2 } $1 == "users" { users = $2 }
		$1 == "sessions" && $3 == "kept" { sess = $2 }
		$1 ~ /^(item_|neighbours|sequence|categories)/ { ib += $5 }
		$1 ~ /^(user_|seen)/ { ub += $5 }
		$1 == "sessions" && $2 == "offset" { sb = $5 }
		END {
			printf "%-46s %12s\n", "  snapshot bytes per item (all its lists)", sprintf("%.0f", ib / items)
			printf "%-46s %12s\n", "  per user (and seen pairs)", sprintf("%.0f", ub / users)
			if (sess) printf "%-46s %12s\n", "  per session kept (with its index)", sprintf("%.0f", sb / sess)
		}' "$tmp/insp"
done

reco-gen --events "$NE" -o "$tmp/eval.ndjson"
run "$tmp/o" sh -c "reco-eval --stats $tmp/eval.ndjson 2>&1 >/dev/null"
rate=$(sed -n 's/.*evaluated in [0-9.]* s: \([0-9]*\) events\/s/\1/p' "$tmp/o")
ev=$(sed -n 's/.* \([0-9]*\) evaluated in.*/\1/p' "$tmp/o")
printf '%-46s %12s %10s\n' "reco-eval, its 8 default models, $NE events" "$(human_n "$rate")" "$(human_kb "$RSS")"
awk -v e="$ev" -v n="$NE" -v r="$rate" 'BEGIN { printf "%-46s %12s\n", "  evaluated events", sprintf("%.1fk", r * e / n / 1e3)
	printf "%-46s %s\n", "  target: 10000 evaluated per second", (r * e / n >= 10000) ? "met" : "NOT MET" }'
sed -n 's/^reco-eval:   \([a-z]*\): \([0-9]*\) requests\/s$/\1 \2/p' "$tmp/o" |
while read -r m r; do
	printf '%-46s %12s\n' "  $m requests" "$(human_n "$r")"
done
