/* sknn-check: prequential next-item evaluation of the session-kNN index (lib/sknn.c) against popularity, and its snapshot, bound and fuzz checks. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reco.h"
#include "sknn.h"

static const char usage_text[] =
"usage: sknn-check [options] [file ...]\n"
"Read canonical NDJSON events; for each item event of a user with an earlier\n"
"item event, unless it repeats that item, rank the top 20 (without that item)\n"
"before learning the event; print HR@20 and MRR@20 of the session kNN and of\n"
"popularity.\n"
"  --sessions N --per-item N --items N --k N   bounds (sknn_params)\n"
"  --l1 X --l2 MS --l3 X --idf X --norm 0|1    weights (sknn_params)\n"
"  --spec SPEC      settings as sknn_params_parse reads them (name=value,...)\n"
"  --cur N          current-session items passed to a request (default 20)\n"
"  --gap MS         a new session after this much inactivity, for events\n"
"                   without a session (default 1800000)\n"
"  --exclude-cur    exclude every current-session item, not only the last\n"
"  --no-pop         skip the popularity baseline (slow on large catalogues)\n"
"  --cooc           also evaluate a plain session co-occurrence baseline: pairs\n"
"                   of the session's last 8 items weighted 1/distance, scored\n"
"                   from the current session's items weighted 1/rank\n"
"  --fill           fill a short sknn list with popular items\n"
"  --with-self      let the current session be its own neighbour (a probe)\n"
"  --timing         print the time per add and per request (varies by run)\n"
"  --stats          print the index's counters and memory\n"
"  --save FILE      write the snapshot blob at the end\n"
"  --split-at N     after N events, save the blob, load it back and go on\n"
"                   with the copy (the end must not change)\n"
"  --retune SPEC    with --split-at: retune the reloaded copy (sknn_retune)\n"
"  --remap-at N     after N events, keep only the items seen twice or more,\n"
"                   renumbered (sknn_remap)\n"
"  --load FILE      only load the blob FILE, items below --nitems N (default\n"
"                   2^32 - 1): print its counters, or why it is refused\n"
"  --bench          only time sknn_add over all the events (read first), then\n"
"                   sknn_score for up to 20000 users' last sessions\n"
"  --synth N        no input: time N synthetic sessions of 2 to 9 items over\n"
"                   1M items (skewed popularity), 4 sessions open at once,\n"
"                   then 20000 requests; print time, memory and counters\n"
"  --fuzz N         load N corrupted copies of the final blob: each is\n"
"                   refused or serves a request and an add without harm\n";

enum {
	O_SESSIONS = 256, O_PER_ITEM, O_ITEMS, O_K, O_L1, O_L2, O_L3, O_IDF,
	O_NORM, O_CUR, O_GAP, O_EXCL, O_FILL, O_TIMING, O_STATS, O_SAVE, O_SPLIT,
	O_REMAP, O_FUZZ, O_SELF, O_LOAD, O_NITEMS, O_BENCH, O_NOPOP, O_SPEC, O_SYNTH, O_RETUNE, O_COOC
};

static const struct option lopts[] = {
	{ "sessions", required_argument, NULL, O_SESSIONS },
	{ "per-item", required_argument, NULL, O_PER_ITEM },
	{ "items", required_argument, NULL, O_ITEMS },
	{ "k", required_argument, NULL, O_K },
	{ "l1", required_argument, NULL, O_L1 },
	{ "l2", required_argument, NULL, O_L2 },
	{ "l3", required_argument, NULL, O_L3 },
	{ "idf", required_argument, NULL, O_IDF },
	{ "norm", required_argument, NULL, O_NORM },
	{ "cur", required_argument, NULL, O_CUR },
	{ "gap", required_argument, NULL, O_GAP },
	{ "exclude-cur", no_argument, NULL, O_EXCL },
	{ "fill", no_argument, NULL, O_FILL },
	{ "timing", no_argument, NULL, O_TIMING },
	{ "stats", no_argument, NULL, O_STATS },
	{ "save", required_argument, NULL, O_SAVE },
	{ "split-at", required_argument, NULL, O_SPLIT },
	{ "remap-at", required_argument, NULL, O_REMAP },
	{ "fuzz", required_argument, NULL, O_FUZZ },
	{ "with-self", no_argument, NULL, O_SELF },
	{ "load", required_argument, NULL, O_LOAD },
	{ "bench", no_argument, NULL, O_BENCH },
	{ "no-pop", no_argument, NULL, O_NOPOP },
	{ "spec", required_argument, NULL, O_SPEC },
	{ "synth", required_argument, NULL, O_SYNTH },
	{ "retune", required_argument, NULL, O_RETUNE },
	{ "cooc", no_argument, NULL, O_COOC },
	{ "nitems", required_argument, NULL, O_NITEMS },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 }
};

#define TOPN 20
#define MAXCUR 64

struct user {
	uint32_t prev;          /* last item, UINT32_MAX: none */
	int64_t ts;             /* last event time */
	uint64_t skey;          /* current session key */
	uint64_t sid;           /* hash of the session field, 0: none */
	uint32_t cur[MAXCUR];   /* current-session items, newest first */
	uint32_t ncur;
};

struct hit {
	float s;
	uint32_t i;
};

static struct {
	struct sknn_params p;
	uint32_t cur;
	int64_t gap;
	int excl, fill, timing, stats, with_self, bench, nopop, cooc;
	const char *save, *load, *retune;
	uint32_t nitems;
	uint64_t split, remap, fuzz, synth;
} O = { .cur = 20, .gap = 1800000, .nitems = UINT32_MAX };

static struct sknn *S;
static struct sknn_scratch *SC;
static struct htab items, users;
static uint64_t *ihash;
static double *icount;
static uint32_t nitems, capitems;
static struct user *U;
static uint32_t nusers, capusers;
static uint64_t nsess;

/* The request being answered. */
static struct hit top[TOPN];
static size_t ntop;
static const uint32_t *excl;
static size_t nexcl;

static struct {
	uint64_t n, hit, empty;
	double mrr;
} E_sknn, E_pop, E_cooc;

/* CPU time of the process: the machine may be busy with other work. */
static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
num(const char *opt, const char *s)
{
	char *e;
	double v = strtod(s, &e);

	if (!*s || *e)
		die(EXIT_USAGE, "%s: not a number: %s", opt, s);
	return v;
}

/* Is (s, i) better than (t, j)? Higher score, then lower index. */
static inline int
better(float s, uint32_t i, float t, uint32_t j)
{
	return s > t || (s == t && i < j);
}

static void
offer(uint32_t item, float s)
{
	size_t k;

	for (size_t x = 0; x < nexcl; x++)
		if (excl[x] == item)
			return;
	if (ntop == TOPN && !better(s, item, top[TOPN - 1].s, top[TOPN - 1].i))
		return;
	for (k = ntop < TOPN ? ntop : TOPN - 1; k > 0 && better(s, item, top[k - 1].s, top[k - 1].i); k--)
		top[k] = top[k - 1];
	top[k].s = s;
	top[k].i = item;
	if (ntop < TOPN)
		ntop++;
}

static void
on_score(void *ctx, uint32_t item, float s)
{
	(void)ctx;
	offer(item, s);
}

static void
tally(uint64_t *n, uint64_t *hit, double *mrr, uint64_t *empty, int64_t target)
{
	(*n)++;
	if (ntop == 0)
		(*empty)++;
	for (size_t j = 0; j < ntop; j++)
		if ((int64_t)top[j].i == target) {
			(*hit)++;
			*mrr += 1.0 / (double)(j + 1);
		}
}

/* Fill the list with the most popular items not in it (ranks below all). */
static void
pop_fill(float below)
{
	struct hit save[TOPN];
	size_t nsave = ntop;

	memcpy(save, top, sizeof top);
	ntop = 0;
	for (uint32_t i = 0; i < nitems; i++) {
		int in = 0;
		for (size_t j = 0; j < nsave && !in; j++)
			in = save[j].i == i;
		if (!in && icount[i] > 0)
			offer(i, (float)icount[i]);
	}
	struct hit pop[TOPN];
	size_t npop = ntop;
	memcpy(pop, top, sizeof top);
	memcpy(top, save, sizeof top);
	ntop = nsave;
	for (size_t j = 0; j < npop && ntop < TOPN; j++) {
		top[ntop].i = pop[j].i;
		top[ntop++].s = below;
	}
}

static uint32_t
item_index(const struct str *id)
{
	int isnew;
	uint64_t h = hash64(id->p, id->n, 0x736b6e6e);
	uint32_t *v = htab_put(&items, h, &isnew);

	if (isnew) {
		if (nitems == capitems) {
			capitems = capitems ? capitems * 2 : 1024;
			ihash = xreallocarray(ihash, capitems, sizeof *ihash);
			icount = xreallocarray(icount, capitems, sizeof *icount);
		}
		ihash[nitems] = h;
		icount[nitems] = 0;
		*v = nitems++;
	}
	return *v;
}

static struct user *
user_get(const struct str *id)
{
	int isnew;
	uint32_t *v = htab_put(&users, hash64(id->p, id->n, 0x75736572), &isnew);

	if (isnew) {
		if (nusers == capusers) {
			capusers = capusers ? capusers * 2 : 1024;
			U = xreallocarray(U, capusers, sizeof *U);
		}
		memset(&U[nusers], 0, sizeof *U);
		U[nusers].prev = UINT32_MAX;
		*v = nusers++;
	}
	return &U[*v];
}

/* The co-occurrence baseline: pair weights in a table keyed by a hash of
 * the pair, and each item's partners for scoring. */
#define COOC_DEPTH 8
struct adj {
	uint32_t *j, *w; /* partner, index of the pair's weight */
	uint32_t n, cap;
};
static struct htab pairs;
static float *pw, *cs;
static uint32_t npw, cappw, *cgen, cg, *clist, ncl;
static struct adj *A;
static uint32_t nA;

static void
cooc_pair(uint32_t i, uint32_t j, float w)
{
	uint64_t k = (uint64_t)i << 32 | j;
	int isnew;
	uint32_t *v = htab_put(&pairs, hash64(&k, sizeof k, 0x636f6f63), &isnew);

	if (isnew) {
		if (npw == cappw) {
			cappw = cappw ? cappw * 2 : 65536;
			pw = xreallocarray(pw, cappw, sizeof *pw);
		}
		pw[npw] = 0;
		*v = npw++;
		if (i >= nA) {
			uint32_t na = nA ? nA : 1024;
			while (na <= i)
				na *= 2;
			A = xreallocarray(A, na, sizeof *A);
			memset(A + nA, 0, (na - nA) * sizeof *A);
			nA = na;
		}
		struct adj *a = &A[i];
		if (a->n == a->cap) {
			a->cap = a->cap ? a->cap * 2 : 4;
			a->j = xreallocarray(a->j, a->cap, sizeof *a->j);
			a->w = xreallocarray(a->w, a->cap, sizeof *a->w);
		}
		a->j[a->n] = j;
		a->w[a->n++] = *v;
	}
	pw[*v] += w;
}

static void
cooc_learn(const struct user *u, uint32_t item)
{
	for (uint32_t r = 0; r < u->ncur && r < COOC_DEPTH; r++)
		if (u->cur[r] != item) {
			cooc_pair(item, u->cur[r], 1.0f / (float)(r + 1));
			cooc_pair(u->cur[r], item, 1.0f / (float)(r + 1));
		}
}

static void
cooc_score(const struct user *u)
{
	if (nitems > ncl) {
		cs = xreallocarray(cs, nitems, sizeof *cs);
		cgen = xreallocarray(cgen, nitems, sizeof *cgen);
		clist = xreallocarray(clist, nitems, sizeof *clist);
		memset(cgen + ncl, 0, (nitems - ncl) * sizeof *cgen);
		ncl = nitems;
	}
	uint32_t nl = 0;
	cg++;
	for (uint32_t r = 0; r < u->ncur && r < COOC_DEPTH; r++) {
		uint32_t c = u->cur[r];
		if (c >= nA)
			continue;
		for (uint32_t k = 0; k < A[c].n; k++) {
			uint32_t j = A[c].j[k];
			if (cgen[j] != cg) {
				cgen[j] = cg;
				cs[j] = 0;
				clist[nl++] = j;
			}
			cs[j] += pw[A[c].w[k]] / (float)(r + 1);
		}
	}
	for (uint32_t k = 0; k < nl; k++)
		offer(clist[k], cs[clist[k]]);
}

static void
cooc_free(void)
{
	for (uint32_t i = 0; i < nA; i++) {
		free(A[i].j);
		free(A[i].w);
	}
	free(A);
	free(pw);
	free(cs);
	free(cgen);
	free(clist);
	htab_free(&pairs);
}

/* Keep the items seen twice or more, renumbered in order. */
static void
remap(void)
{
	uint32_t *newidx = xcalloc(nitems ? nitems : 1, sizeof *newidx), nn = 0;

	for (uint32_t i = 0; i < nitems; i++)
		newidx[i] = icount[i] >= 2 ? nn++ : UINT32_MAX;
	sknn_remap(S, newidx, nitems);
	htab_free(&items);
	htab_init(&items, nn);
	for (uint32_t i = 0; i < nitems; i++) {
		int isnew;
		if (newidx[i] == UINT32_MAX)
			continue;
		ihash[newidx[i]] = ihash[i];
		icount[newidx[i]] = icount[i];
		*htab_put(&items, ihash[i], &isnew) = newidx[i];
	}
	for (uint32_t u = 0; u < nusers; u++) {
		struct user *x = &U[u];
		uint32_t w = 0;
		if (x->prev != UINT32_MAX)
			x->prev = newidx[x->prev];
		for (uint32_t r = 0; r < x->ncur; r++)
			if (newidx[x->cur[r]] != UINT32_MAX)
				x->cur[w++] = newidx[x->cur[r]];
		x->ncur = w;
	}
	nitems = nn;
	free(newidx);
}

static unsigned char *
blob(const struct sknn *s, size_t *n)
{
	unsigned char *b;

	*n = sknn_blob_size(s);
	b = xmalloc(*n ? *n : 1);
	sknn_blob_write(s, b);
	return b;
}

static void
split(void)
{
	char err[256];
	size_t n, n2;
	unsigned char *b = blob(S, &n), *b2;
	struct sknn *t = sknn_blob_read(b, n, nitems, err, sizeof err);

	if (!t)
		die(EXIT_DATA, "split: own blob refused: %s", err);
	b2 = blob(t, &n2);
	if (n != n2 || memcmp(b, b2, n) != 0)
		die(EXIT_DATA, "split: the reloaded index writes another blob");
	sknn_free(S);
	S = t;
	free(b);
	free(b2);
	if (O.retune) {
		struct sknn_params p = *sknn_get_params(S);
		if (sknn_params_parse(&p, O.retune, err, sizeof err) ||
		    sknn_retune(S, &p, err, sizeof err))
			die(EXIT_USAGE, "--retune: %s", err);
	}
}

static void
dummy(void *ctx, uint32_t item, float s)
{
	(void)item;
	(void)s;
	(*(size_t *)ctx)++;
}

/* Corrupt the blob N ways (deterministic): flips, bytes set to extremes,
 * truncation, growth. Every copy must be refused or be usable. */
static void
fuzz(void)
{
	struct rng r;
	size_t n, refused = 0, accepted = 0;
	unsigned char *b = blob(S, &n), *m = xmalloc(n + 16);
	char err[256];

	rng_seed(&r, 42);
	for (uint64_t t = 0; t < O.fuzz; t++) {
		size_t mn = n;
		memcpy(m, b, n);
		switch (t % 5) {
		case 0: /* a few flipped bits */
			for (int k = 0; k < 1 + (int)rng_below(&r, 4); k++) {
				size_t at = rng_below(&r, n);
				m[at] ^= (unsigned char)(1u << rng_below(&r, 8));
			}
			break;
		case 1: /* a byte set to 0 or 0xff in the header */
			m[rng_below(&r, n < 128 ? n : 128)] = rng_below(&r, 2) ? 0xff : 0;
			break;
		case 2: /* truncated */
			mn = rng_below(&r, n);
			break;
		case 3: /* a random 32-bit word anywhere */
		{
			size_t at = rng_below(&r, n > 4 ? n - 4 : 1);
			uint64_t v = rng_next(&r);
			memcpy(m + at, &v, n - at < 4 ? n - at : 4);
			break;
		}
		default: /* extra bytes */
			memset(m + n, (int)rng_below(&r, 256), 16);
			mn = n + 1 + rng_below(&r, 15);
			break;
		}
		struct sknn *s = sknn_blob_read(m, mn, nitems, err, sizeof err);
		if (!s) {
			refused++;
			continue;
		}
		accepted++;
		uint32_t cur[4] = { 0, 1 % (nitems ? nitems : 1), 2 % (nitems ? nitems : 1), 3 };
		size_t calls = 0;
		sknn_score(s, SC, cur, nitems > 3 ? 4 : 0, 0, 0, nitems, dummy, &calls);
		sknn_add(s, 12345, 0, 0);
		size_t n2;
		free(blob(s, &n2));
		sknn_free(s);
	}
	printf("fuzz tried=%llu refused=%zu accepted=%zu\n", (unsigned long long)O.fuzz,
	       refused, accepted);
	free(b);
	free(m);
}

static void
report(const char *name, uint64_t n, uint64_t hit, double mrr, uint64_t empty)
{
	double d = n ? (double)n : 1;

	printf("%s evaluated=%llu hr20=%.4f mrr20=%.4f empty=%llu\n", name,
	       (unsigned long long)n, (double)hit / d, mrr / d,
	       (unsigned long long)empty);
}

static void
print_stats(const struct sknn *s)
{
	struct sknn_stats st;

	sknn_stats(s, &st);
	printf("stats sessions=%llu sessions_evicted=%llu index_evicted=%llu items_dropped=%llu adds=%llu repeats=%llu live=%llu items=%llu entries=%llu remapped_out=%llu bytes=%zu blob=%zu\n",
	       (unsigned long long)st.sessions, (unsigned long long)st.sessions_evicted,
	       (unsigned long long)st.index_evicted, (unsigned long long)st.items_dropped,
	       (unsigned long long)st.adds, (unsigned long long)st.repeats,
	       (unsigned long long)st.live, (unsigned long long)st.items,
	       (unsigned long long)st.entries, (unsigned long long)st.remapped_out,
	       sknn_bytes(s), sknn_blob_size(s));
}

/* The events of --bench, read before anything is timed. */
struct logged {
	uint64_t key;
	int64_t ts;
	uint32_t item;
};
static struct logged *lg;
static size_t nlog, caplog;

static void
bench(void)
{
	double t0 = mono(), t_add, t_score;
	size_t nreq = 0, calls = 0;

	for (size_t j = 0; j < nlog; j++)
		sknn_add(S, lg[j].key, lg[j].item, lg[j].ts);
	t_add = mono() - t0;
	t0 = mono();
	for (uint32_t u = 0; u < nusers && nreq < 20000; u++) {
		if (!U[u].ncur)
			continue;
		sknn_score(S, SC, U[u].cur, U[u].ncur < O.cur ? U[u].ncur : O.cur,
				    U[u].ts, U[u].skey, nitems, dummy, &calls);
		nreq++;
	}
	t_score = mono() - t0;
	struct sknn_stats st;
	sknn_stats(S, &st);
	printf("bench events=%zu add_ns=%.0f requests=%zu score_us=%.2f candidates=%.0f live=%llu items=%llu bytes=%zu\n",
	       nlog, nlog ? t_add / (double)nlog * 1e9 : 0, nreq,
	       nreq ? t_score / (double)nreq * 1e6 : 0, nreq ? (double)calls / (double)nreq : 0,
	       (unsigned long long)st.live, (unsigned long long)st.items, sknn_bytes(S));
	free(lg);
}

/* A skewed item of 1M: a few are popular, most are rare. */
static uint32_t
synth_item(struct rng *r)
{
	double u = rng_double(r);

	return (uint32_t)(1000000 * u * u * u);
}

static int
synth(void)
{
	struct rng r;
	struct {
		uint64_t key;
		uint32_t left, last;
	} open[4] = { { 0, 0, 0 } };
	uint64_t keys = 0, adds = 0;
	int64_t ts = 1569888000000;
	double t0 = mono(), t_add, t_score;
	size_t calls = 0;

	rng_seed(&r, 7);
	for (uint64_t done = 0; done < O.synth;) {
		int o = (int)rng_below(&r, 4);
		if (!open[o].left) {
			open[o].key = ++keys;
			open[o].left = 2 + (uint32_t)rng_below(&r, 8);
			done++;
		}
		/* Items of a session lie near each other, as in a category. */
		uint32_t it = open[o].left == 0 || rng_below(&r, 2) ? synth_item(&r) :
			(open[o].last + (uint32_t)rng_below(&r, 16)) % 1000000;
		open[o].last = it;
		open[o].left--;
		sknn_add(S, open[o].key, it, ts += 10);
		adds++;
	}
	t_add = mono() - t0;
	t0 = mono();
	for (int q = 0; q < 20000; q++) {
		uint32_t cur[8];
		cur[0] = synth_item(&r);
		for (int j = 1; j < 8; j++)
			cur[j] = (cur[j - 1] + (uint32_t)rng_below(&r, 16)) % 1000000;
		sknn_score(S, SC, cur, 8, ts, 0, 1000000, dummy, &calls);
	}
	t_score = mono() - t0;
	printf("synth sessions=%llu adds=%llu add_ns=%.0f score_us=%.2f candidates=%.0f bytes=%zu\n",
	       (unsigned long long)O.synth, (unsigned long long)adds,
	       adds ? t_add / (double)adds * 1e9 : 0, t_score / 20000 * 1e6,
	       (double)calls / 20000, sknn_bytes(S));
	print_stats(S);
	return 0;
}

/* Load a blob file: 0 and its counters, or 1 and the reason. */
static int
load_only(const char *path)
{
	struct buf b = { 0 };
	char chunk[65536], err[256];
	size_t n;
	FILE *f = fopen(path, "rb");
	struct sknn *s;

	if (!f)
		die(EXIT_IO, "%s:", path);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_put(&b, chunk, n);
	if (ferror(f))
		die(EXIT_IO, "%s:", path);
	fclose(f);
	s = sknn_blob_read((const unsigned char *)b.p, b.n, O.nitems, err, sizeof err);
	buf_free(&b);
	if (!s) {
		printf("refused: %s\n", err);
		return 1;
	}
	print_stats(s);
	sknn_free(s);
	return 0;
}

int
main(int argc, char **argv)
{
	struct event ev;
	char err[512], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int c, fi;
	uint64_t events = 0;
	double t_add = 0, t_score = 0;
	uint64_t n_add = 0, n_score = 0;

	err_init(argv[0]);
	sknn_params_default(&O.p);
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case O_SESSIONS: O.p.sessions = (uint32_t)num("--sessions", optarg); break;
		case O_PER_ITEM: O.p.per_item = (uint32_t)num("--per-item", optarg); break;
		case O_ITEMS: O.p.items = (uint32_t)num("--items", optarg); break;
		case O_K: O.p.k = (uint32_t)num("--k", optarg); break;
		case O_L1: O.p.l1 = (float)num("--l1", optarg); break;
		case O_L2: O.p.l2 = (int64_t)num("--l2", optarg); break;
		case O_L3: O.p.l3 = (float)num("--l3", optarg); break;
		case O_IDF: O.p.idf = (float)num("--idf", optarg); break;
		case O_NORM: O.p.norm = (int)num("--norm", optarg); break;
		case O_CUR: O.cur = (uint32_t)num("--cur", optarg); break;
		case O_GAP: O.gap = (int64_t)num("--gap", optarg); break;
		case O_EXCL: O.excl = 1; break;
		case O_FILL: O.fill = 1; break;
		case O_SELF: O.with_self = 1; break;
		case O_LOAD: O.load = optarg; break;
		case O_BENCH: O.bench = 1; break;
		case O_NOPOP: O.nopop = 1; break;
		case O_RETUNE: O.retune = optarg; break;
		case O_COOC: O.cooc = 1; break;
		case O_SYNTH: O.synth = (uint64_t)num("--synth", optarg); break;
		case O_SPEC:
			if (sknn_params_parse(&O.p, optarg, err, sizeof err))
				die(EXIT_USAGE, "--spec: %s", err);
			break;
		case O_NITEMS: O.nitems = (uint32_t)num("--nitems", optarg); break;
		case O_TIMING: O.timing = 1; break;
		case O_STATS: O.stats = 1; break;
		case O_SAVE: O.save = optarg; break;
		case O_SPLIT: O.split = (uint64_t)num("--split-at", optarg); break;
		case O_REMAP: O.remap = (uint64_t)num("--remap-at", optarg); break;
		case O_FUZZ: O.fuzz = (uint64_t)num("--fuzz", optarg); break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: fputs(usage_text, stderr); return EXIT_USAGE;
		}
	}
	if (O.cur < 1 || O.cur > MAXCUR)
		die(EXIT_USAGE, "--cur: 1 to %d", MAXCUR);
	if (O.load)
		return load_only(O.load);
	if (O.cooc && O.remap)
		die(EXIT_USAGE, "--cooc: not with --remap-at");
	if (O.cooc)
		htab_init(&pairs, 65536);
	if (sknn_params_check(&O.p, err, sizeof err))
		die(EXIT_USAGE, "%s", err);
	S = sknn_new(&O.p);
	SC = sknn_scratch_new();
	if (O.synth) {
		synth();
		sknn_scratch_free(SC);
		sknn_free(S);
		return 0;
	}
	htab_init(&items, 1024);
	htab_init(&users, 1024);
	event_init(&ev);
	fi = optind;
	FILE *f = fi < argc ? NULL : stdin;
	for (;;) {
		if (!f) {
			if (fi >= argc)
				break;
			if (!(f = fopen(argv[fi], "r")))
				die(EXIT_IO, "%s:", argv[fi]);
			fi++;
		}
		if ((len = getline(&line, &cap, f)) < 0) {
			if (f != stdin)
				fclose(f);
			if (f == stdin)
				break;
			f = NULL;
			continue;
		}
		if (len && line[len - 1] == '\n')
			len--;
		if (event_parse_json(&ev, line, (size_t)len, err, sizeof err))
			continue;
		if (!(ev.has & EV_ITEM) || !ev.item.n ||
		    !(ev.type == ET_VIEW || ev.type == ET_CLICK ||
		      ev.type == ET_ADD_TO_CART || ev.type == ET_PURCHASE))
			continue;
		events++;
		struct user *u = user_get(&ev.user);
		uint32_t item = item_index(&ev.item);
		if (!O.bench && u->prev != UINT32_MAX && u->prev != item) {
			uint32_t prev = u->prev;
			/* sknn */
			ntop = 0;
			excl = O.excl ? u->cur : &prev;
			nexcl = O.excl ? u->ncur : 1;
			double t0 = O.timing ? mono() : 0;
			sknn_score(S, SC, u->cur, u->ncur < O.cur ? u->ncur : O.cur, ev.ts,
				   O.with_self ? 0 : u->skey, nitems, on_score, NULL);
			if (O.timing) {
				t_score += mono() - t0;
				n_score++;
			}
			if (O.fill)
				pop_fill(ntop ? top[ntop - 1].s / 2 : 1);
			tally(&E_sknn.n, &E_sknn.hit, &E_sknn.mrr, &E_sknn.empty, item);
			if (O.cooc) {
				ntop = 0;
				excl = &prev;
				nexcl = 1;
				cooc_score(u);
				tally(&E_cooc.n, &E_cooc.hit, &E_cooc.mrr, &E_cooc.empty, item);
			}
			/* popularity */
			if (O.nopop)
				goto learn;
			ntop = 0;
			excl = &prev;
			nexcl = 1;
			for (uint32_t i = 0; i < nitems; i++)
				if (icount[i] > 0)
					offer(i, (float)icount[i]);
			tally(&E_pop.n, &E_pop.hit, &E_pop.mrr, &E_pop.empty, item);
		}
learn:;
		uint64_t sid = (ev.has & EV_SESSION) && ev.session.n ?
			hash64(ev.session.p, ev.session.n, 0x73657373) | 1 : 0;
		int64_t d = ev.ts - u->ts;
		if (u->prev == UINT32_MAX || sid != u->sid ||
		    (!sid && (d > O.gap || d < -O.gap))) {
			u->skey = hash64(&nsess, sizeof nsess, 0x6b6579) | 2;
			nsess++;
			u->ncur = 0;
			u->sid = sid;
		}
		if (O.cooc)
			cooc_learn(u, item);
		int first = u->prev == UINT32_MAX;
		uint32_t r;
		for (r = 0; r < u->ncur && u->cur[r] != item; r++)
			;
		if (r == u->ncur && u->ncur < MAXCUR)
			u->ncur++;
		if (r == u->ncur)
			r--;
		memmove(u->cur + 1, u->cur, r * sizeof *u->cur);
		u->cur[0] = item;
		u->prev = item;
		if (ev.ts > u->ts || first)
			u->ts = ev.ts;
		icount[item] += 1;
		if (O.bench) {
			if (nlog == caplog) {
				caplog = caplog ? caplog * 2 : 65536;
				lg = xreallocarray(lg, caplog, sizeof *lg);
			}
			lg[nlog].key = u->skey;
			lg[nlog].ts = ev.ts;
			lg[nlog++].item = item;
			continue;
		}
		double t0 = O.timing ? mono() : 0;
		sknn_add(S, u->skey, item, ev.ts);
		if (O.timing) {
			t_add += mono() - t0;
			n_add++;
		}
		if (O.split && events == O.split)
			split();
		if (O.remap && events == O.remap)
			remap();
	}
	if (O.bench)
		bench();
	report("sknn", E_sknn.n, E_sknn.hit, E_sknn.mrr, E_sknn.empty);
	if (O.cooc)
		report("cooc", E_cooc.n, E_cooc.hit, E_cooc.mrr, E_cooc.empty);
	if (!O.nopop)
		report("pop", E_pop.n, E_pop.hit, E_pop.mrr, E_pop.empty);
	if (O.timing)
		printf("timing add_ns=%.0f score_us=%.2f\n",
		       n_add ? t_add / (double)n_add * 1e9 : 0,
		       n_score ? t_score / (double)n_score * 1e6 : 0);
	if (O.stats)
		print_stats(S);
	if (O.stats) {
		const struct sknn_params *p = sknn_get_params(S);
		printf("params sessions=%u per_item=%u items=%u k=%u l1=%g l2=%lld l3=%g idf=%g norm=%d\n",
		       p->sessions, p->per_item, p->items, p->k, (double)p->l1,
		       (long long)p->l2, (double)p->l3, (double)p->idf, p->norm);
	}
	if (O.save) {
		size_t n;
		unsigned char *b = blob(S, &n);
		FILE *o = fopen(O.save, "wb");
		if (!o || fwrite(b, 1, n, o) != n || fclose(o))
			die(EXIT_IO, "%s:", O.save);
		free(b);
	}
	if (O.fuzz)
		fuzz();
	if (O.cooc)
		cooc_free();
	free(line);
	event_free(&ev);
	sknn_scratch_free(SC);
	sknn_free(S);
	htab_free(&items);
	htab_free(&users);
	free(ihash);
	free(icount);
	free(U);
	return 0;
}
