/* rank.c: candidates from matrix factorisation, co-occurrence, trending and popularity, blended into one ranked list with reasons. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"
#include "model.h"
#include "rank.h"

const char *const rank_src_names[RANK_NSRC] = {
	"mf", "cooc", "trend", "dpop", "pop", "seen", "cat", "sknn", "seq", "next",
	"walk"
};

_Static_assert(RANK_NSRC == MODEL_NSRC, "rank.h's sources and model.h's blend");

#define BLEND_DEPTH RANK_BLEND_DEPTH

struct cand {
	float s;
	uint32_t i;
};

/* Keys (categories, brands), each once with the weight of the nearest
 * item the request starts from that has it (start_item). */
struct keyset {
	struct keyw {
		uint64_t key;
		float w;
	} *v;
	size_t n, cap;
};

struct ranker {
	uint64_t cap;             /* items the scratch arrays cover */
	uint32_t gen;             /* request generation */
	uint32_t sgen;            /* blend generation */
	uint32_t *seen;           /* sgen when the item became a candidate */
	uint32_t *slot;           /* its place in the candidate arrays */
	uint32_t *excl;           /* gen when the item is excluded */
	float *acc;               /* co-occurrence sums */
	uint32_t *accl;           /* items with a co-occurrence sum */
	size_t naccl;
	struct cand *heap;        /* top-M selection */
	size_t heap_cap;
	struct cand *lob, *mfc;   /* src_mf_q8's lower bounds and candidates */
	size_t lob_cap, mfc_cap;
	struct cand *wf;          /* the walk's frontier */
	size_t wf_cap;
	float *uvec;              /* the user's factors, widened */
	uint32_t uvec_cap;
	struct cand *src[RANK_NSRC]; /* each source's list, best first */
	size_t nsrc[RANK_NSRC], src_cap[RANK_NSRC];
	uint32_t *ci;             /* candidates: item */
	float *cs;                /* blended score */
	float *cbest;             /* the best single contribution */
	float *cf;                /* RANK_NFEAT features per candidate */
	struct sknn_scratch *sk;  /* scratch of the session neighbours */
	uint8_t *cr;              /* its source */
	size_t nc, c_cap;
	/* The categories of the items the request starts from, for the
	 * category source and RANK_SAMECAT, and their brands, for
	 * RANK_SAMEBRAND. */
	struct keyset qcat, qbrand;
	const uint32_t *icat;     /* the model's item categories, or NULL */
	const uint64_t *ibrand;   /* the model's item brands, or NULL */
	uint64_t nitems;
	struct cand *order;
	struct rank_info info;
};

/* Return the source named name (n bytes), or -1. */
int
rank_src_parse(const char *name, size_t n)
{
	for (int s = 0; s < RANK_NSRC; s++)
		if (strlen(rank_src_names[s]) == n &&
		    memcmp(rank_src_names[s], name, n) == 0)
			return s;
	return -1;
}

/* The blend a model starts from, before the stream teaches it. */
void
rank_weights_hybrid(struct rank_weights *w)
{
	memset(w, 0, sizeof *w);
	w->w[RANK_MF] = 0.2f;
	w->w[RANK_COOC] = 1.0f;
	w->w[RANK_TREND] = 0.05f;
	w->w[RANK_DPOP] = 0.1f;
	w->w[RANK_SEEN] = 0.3f;
	w->w[RANK_CAT] = 0.1f;
	w->w[RANK_SKNN] = 1.0f;
	w->w[RANK_SEQ] = 0.5f;
	w->w[RANK_NEXT] = 0.5f;
	w->w[RANK_WALK] = 0.5f;
}

/* Only one source. */
void
rank_weights_only(struct rank_weights *w, int src)
{
	memset(w, 0, sizeof *w);
	w->w[src] = 1;
}

/*
 * Parse SOURCE=WEIGHT,... (sources mf, cooc, trend, dpop, pop; those not
 * named get 0) into w. Return 0, or -1 with the reason in err.
 */
int
rank_weights_parse(struct rank_weights *w, const char *spec, char *err,
		   size_t errlen)
{
	const char *s = spec;

	memset(w, 0, sizeof *w);
	for (;;) {
		const char *eq = strchr(s, '='), *comma = strchr(s, ',');
		char *end;
		int src;

		if (eq && (!comma || comma > eq) && eq - s == 4 &&
		    memcmp(s, "tail", 4) == 0) {
			unsigned long t = strtoul(eq + 1, &end, 10);
			if (end == eq + 1 || (*end && *end != ',') ||
			    eq[1] == '-' || t > RANK_TAIL_MAX) {
				snprintf(err, errlen, "bad tail in \"%s\" (places from %d on given to the walk: 0 to %d)",
					 spec, RANK_TAIL_AT + 1, RANK_TAIL_MAX);
				return -1;
			}
			w->tail = (unsigned)t;
			if (!*end)
				return 0;
			s = end + 1;
			continue;
		}
		if (!eq || (comma && comma < eq) ||
		    (src = rank_src_parse(s, (size_t)(eq - s))) < 0) {
			snprintf(err, errlen, "expected SOURCE=WEIGHT,... with sources mf, cooc, trend, dpop, pop, seen, cat, sknn, seq, next and walk (and tail=N), not \"%s\"",
				 spec);
			return -1;
		}
		double v = strtod(eq + 1, &end);
		if (end == eq + 1 || (*end && *end != ',') || !isfinite(v) ||
		    v < 0 || v > 1e6) {
			snprintf(err, errlen, "bad weight in \"%s\" (a number from 0 to 1000000)",
				 spec);
			return -1;
		}
		w->w[src] = (float)v;
		if (!*end)
			return 0;
		s = end + 1;
	}
}

/* A new ranker: scratch memory for one request at a time. The caller owns
 * it: ranker_free. */
struct ranker *
ranker_new(void)
{
	return xcalloc(1, sizeof(struct ranker));
}

/* Free r; NULL is allowed. */
void
ranker_free(struct ranker *r)
{
	if (!r)
		return;
	free(r->seen);
	free(r->slot);
	free(r->excl);
	free(r->acc);
	free(r->accl);
	free(r->heap);
	free(r->lob);
	free(r->mfc);
	free(r->wf);
	free(r->uvec);
	for (int s = 0; s < RANK_NSRC; s++)
		free(r->src[s]);
	free(r->ci);
	free(r->cs);
	free(r->cbest);
	free(r->cr);
	free(r->qcat.v);
	free(r->qbrand.v);
	free(r->order);
	free(r->cf);
	sknn_scratch_free(r->sk);
	free(r);
}

/* What the last rank_top found out. */
const struct rank_info *
rank_last(const struct ranker *r)
{
	return &r->info;
}

static void
fit(struct ranker *r, uint64_t nitems)
{
	if (nitems <= r->cap)
		return;
	uint64_t cap = r->cap ? r->cap : 1024;
	while (cap < nitems)
		cap *= 2;
	r->seen = xreallocarray(r->seen, cap, sizeof *r->seen);
	r->slot = xreallocarray(r->slot, cap, sizeof *r->slot);
	r->excl = xreallocarray(r->excl, cap, sizeof *r->excl);
	r->acc = xreallocarray(r->acc, cap, sizeof *r->acc);
	r->accl = xreallocarray(r->accl, cap + 1, sizeof *r->accl); /* + 1: acc_one */
	/* New generations start from nothing. */
	memset(r->seen, 0, cap * sizeof *r->seen);
	memset(r->excl, 0, cap * sizeof *r->excl);
	memset(r->acc, 0, cap * sizeof *r->acc);
	r->gen = r->sgen = 0;
	r->cap = cap;
}

static void
next_gen(struct ranker *r)
{
	if (++r->gen == 0) {
		memset(r->excl, 0, r->cap * sizeof *r->excl);
		r->gen = 1;
	}
}

#define better rank_better

/*
 * The top-M selection: candidates go into a buffer of 2 M; when it is
 * full, the best M are kept (a quickselect) and the worst of them becomes
 * the threshold a candidate must beat to come in. Each candidate costs
 * O(1) amortised, against O(log M) for a heap; the order (better) is
 * total, so the best M are the same whatever the method.
 */
struct top {
	struct cand *h; /* room for 2 m */
	size_t n, m;
	int full;       /* thr holds */
	struct cand thr;
};

/* A selection of m in the buffer *buf (room for *cap, grown). */
static void
top_init_in(struct cand **buf, size_t *cap, struct top *t, size_t m)
{
	if (2 * m > *cap) {
		*cap = 2 * m;
		*buf = xreallocarray(*buf, 2 * m, sizeof **buf);
	}
	t->h = *buf;
	t->n = 0;
	t->m = m;
	t->full = 0;
	t->thr.s = 0;
	t->thr.i = 0;
}

static void
top_init(struct ranker *r, struct top *t, size_t m)
{
	top_init_in(&r->heap, &r->heap_cap, t, m);
}

/* Not good enough to come in: no better than the threshold. */
static inline int
top_out(const struct top *t, float s, uint32_t i)
{
	return t->full && !better(s, i, t->thr.s, t->thr.i);
}

/* The score a candidate must exceed to come in, -INFINITY until the
 * threshold holds (candidates of an equal score may still come in: the
 * index decides). */
static inline float
top_floor(const struct top *t)
{
	return t->full ? t->thr.s : -INFINITY;
}

/*
 * A candidate as one 64-bit key that orders as better does: the score's
 * bits made monotone (negative scores flipped whole, the others by their
 * sign; -0 taken as 0) above the complement of the item. A selection
 * then compares one integer instead of a score and, on a tie, an item.
 */
typedef uint64_t __attribute__((may_alias)) cand_key;

static inline uint64_t
key_of(struct cand c)
{
	float s = c.s + 0.0f;
	uint32_t b;

	memcpy(&b, &s, sizeof b);
	b = b >> 31 ? ~b : b | 0x80000000u;
	return (uint64_t)b << 32 | (uint32_t)~c.i;
}

static inline struct cand
cand_of(uint64_t k)
{
	uint32_t b = (uint32_t)(k >> 32);
	struct cand c;

	b = b >> 31 ? b & 0x7fffffffu : ~b;
	memcpy(&c.s, &b, sizeof b);
	c.i = ~(uint32_t)k;
	return c;
}

/* Reorder the keys x[0..n) so that the k greatest (0 < k < n) come
 * first, in no order, the k-th at x[k - 1]: a quickselect (median of
 * three). */
static void
keys_select(cand_key *x, size_t n, size_t k)
{
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint64_t c;
#define SWAP(a, b) (c = x[a], x[a] = x[b], x[b] = c)
		if (x[mid] > x[lo])
			SWAP(mid, lo);
		if (x[hi] > x[lo])
			SWAP(hi, lo);
		if (x[mid] > x[hi])
			SWAP(mid, hi);
		/* Lomuto's partition without a branch: every key swaps
		 * with the boundary's, which moves on past the better ones. */
		uint64_t p = x[hi];
		size_t st = lo;
		for (size_t j = lo; j < hi; j++) {
			uint64_t y = x[j];
			x[j] = x[st];
			x[st] = y;
			st += y > p;
		}
		SWAP(st, hi);
#undef SWAP
		if (st == k - 1)
			break;
		if (st < k - 1)
			lo = st + 1;
		else
			hi = st - 1;
	}
}

static void
to_keys(struct cand *v, size_t n)
{
	cand_key *x = (cand_key *)(void *)v;

	for (size_t j = 0; j < n; j++)
		x[j] = key_of(v[j]);
}

static void
from_keys(struct cand *v, size_t n)
{
	const cand_key *x = (const cand_key *)(void *)v;

	for (size_t j = 0; j < n; j++)
		v[j] = cand_of(x[j]);
}

/* Reorder v[0..n) so that its best k (0 < k < n) come first, in no
 * order, the k-th best at v[k - 1]. */
static void
select_best(struct cand *v, size_t n, size_t k)
{
	to_keys(v, n);
	keys_select((cand_key *)(void *)v, n, k);
	from_keys(v, n);
}

static void
top_prune(struct top *t)
{
	select_best(t->h, t->n, t->m);
	t->n = t->m;
	t->thr = t->h[t->m - 1];
	t->full = 1;
}

static inline void
top_add(struct top *t, float s, uint32_t i)
{
	if (t->m == 0 || top_out(t, s, i))
		return;
	if (t->n == 2 * t->m) {
		top_prune(t);
		if (top_out(t, s, i))
			return;
	}
	t->h[t->n].s = s;
	t->h[t->n++].i = i;
}

static int
key_cmp(const void *a, const void *b)
{
	uint64_t x = *(const cand_key *)a, y = *(const cand_key *)b;

	return (x < y) - (x > y);
}

/* Put the best n of v[0..len) first, in order; the rest in no order. */
static void
cand_best(struct cand *v, size_t len, size_t n)
{
	cand_key *x = (cand_key *)(void *)v;
	size_t kept = 0, all = len;

	if (n == 0 || len == 0)
		return;
	to_keys(v, len);
	/* Many more than wanted: the best n picked out first. */
	if (len > 4 * n) {
		keys_select(x, len, n);
		len = n;
	}
	if (n > 64)
		qsort(x, len, sizeof *x, key_cmp);
	else
		for (size_t k = 0; k < len; k++) {
			uint64_t y = x[k];
			size_t j;
			if (kept == n && y <= x[n - 1])
				continue;
			x[k] = x[kept < n ? kept : n - 1];
			j = kept < n ? kept++ : n - 1;
			while (j > 0 && y > x[j - 1]) {
				x[j] = x[j - 1];
				j--;
			}
			x[j] = y;
		}
	from_keys(v, all);
}

/* n candidates h, best first, as source s's list. */
static void
src_store(struct ranker *r, int s, const struct cand *h, size_t n)
{
	r->nsrc[s] = n;
	if (n > r->src_cap[s]) {
		r->src_cap[s] = n;
		r->src[s] = xreallocarray(r->src[s], n, sizeof *r->src[s]);
	}
	if (n)
		memcpy(r->src[s], h, n * sizeof *h);
}

/* Move the selection, best first, to source s's list. */
static void
top_done(struct ranker *r, struct top *t, int s)
{
	if (t->n > t->m)
		top_prune(t);
	if (t->n > 1)
		cand_best(t->h, t->n, t->n);
	src_store(r, s, t->h, t->n);
}

#define EXCLUDED(r, i) ((r)->excl[i] == (r)->gen)

/* Not a candidate: excluded, seen when what is seen is left out, or
 * turned away by the request's filter. */
static inline int
skip(const struct ranker *r, const struct model *m, const struct rank_req *q,
     uint64_t i)
{
	if (EXCLUDED(r, i))
		return 1;
	if (q->exclude_seen) {
		struct str id = model_item_id(m, i);
		if (model_seen_has(m, model_pair_key(q->user_hash,
						     hash64(id.p, id.n, MODEL_ID_SEED))))
			return 1;
	}
	return q->allow && !q->allow(q->allow_ctx, (uint32_t)i);
}
#define SKIP(r, q, i) skip(r, m, q, i)

/*
 * The lists of a frozen model that do not depend on the request: for
 * trending and popularity, the best items in order. A request walks the
 * list and skips what it excludes; when that leaves too few and the list
 * does not hold every item with a score, it falls back to the full pass,
 * so the results are always those of the full pass.
 */
struct rank_index {
	struct cand *list[RANK_NSRC];
	size_t n[RANK_NSRC];
	int complete[RANK_NSRC];  /* every item with a score is listed */
	/* The item factors again, in 8 bits (model_q8_block's blocks, each
	 * MODEL_Q8_BYTES: the rows of MF_BLOCK items, then their scales), so
	 * that one pass scores a block's items side by side, reading about a
	 * quarter of the bytes; the best are scored again exactly (src_mf).
	 * The snapshot's own (version 5, mapped), or made here (own). */
	const unsigned char *q;
	unsigned char *own;
	uint64_t nblocks;
};

#define MF_BLOCK MODEL_Q8_BLOCK

/*
 * The approximate scores of a block of 8-bit rows against user factors p:
 * out[j] = scale[j] times the sum over k of p[k] * q[k][j], for the
 * block's MF_BLOCK items; the result has bit j set where out[j] + e[j]
 * (e[j] = scale[j] * p1, the bound of the error) reaches floor. Only
 * candidates come of it (src_mf_q8 scores them again exactly), so the
 * vector and the plain forms need not agree to the last bit.
 */
static unsigned
mf_block_q8_plain(const float *p, const int8_t *blk, uint32_t stride,
		  const float *scale, float p1, float floor, float *out)
{
	float acc[MF_BLOCK] = { 0 };
	unsigned mask = 0;

	for (uint32_t k = 0; k < stride; k++)
		for (int j = 0; j < MF_BLOCK; j++)
			acc[j] += p[k] * blk[(size_t)k * MF_BLOCK + j];
	for (int j = 0; j < MF_BLOCK; j++) {
		out[j] = acc[j] * scale[j];
		mask |= (unsigned)(out[j] + scale[j] * p1 >= floor) << j;
	}
	return mask;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(RANK_PLAIN)
#include <immintrin.h>
#define RANK_X86 1

/* What of AVX the processor runs, asked once: CPU_AVX, and CPU_AVX2 for
 * AVX2 with FMA. */
enum { CPU_AVX = 1, CPU_AVX2 = 2 };
static unsigned
cpu_avx(void)
{
	static int f = -1;

	if (f < 0) {
		__builtin_cpu_init();
		f = (__builtin_cpu_supports("avx") ? CPU_AVX : 0) |
		    (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ?
		     CPU_AVX2 : 0);
	}
	return (unsigned)f;
}

/* The same with AVX2: the bytes widened to 32-bit integers and to floats
 * in registers (which GCC's generic vectors leave to scalar code). */
__attribute__((target("avx2,fma"))) static unsigned
mf_block_q8_avx2(const float *p, const int8_t *blk, uint32_t stride,
		 const float *scale, float p1, float floor, float *out)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;

	for (uint32_t k = 0; k < stride; k += 2) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(blk + (size_t)k * MF_BLOCK));
		__m128i w = _mm_loadu_si128((const __m128i *)(const void *)(blk + (size_t)(k + 1) * MF_BLOCK));
		__m256 pv = _mm256_set1_ps(p[k]), pw = _mm256_set1_ps(p[k + 1]);
		a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), pv, a0);
		a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))), pv, a1);
		b0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(w)), pw, b0);
		b1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(w, 8))), pw, b1);
	}
	__m256 s0 = _mm256_loadu_ps(scale), s1 = _mm256_loadu_ps(scale + 8);
	__m256 pp = _mm256_set1_ps(p1), fl = _mm256_set1_ps(floor);
	a0 = _mm256_mul_ps(_mm256_add_ps(a0, b0), s0);
	a1 = _mm256_mul_ps(_mm256_add_ps(a1, b1), s1);
	_mm256_storeu_ps(out, a0);
	_mm256_storeu_ps(out + 8, a1);
	unsigned lo = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_fmadd_ps(s0, pp, a0), fl, _CMP_GE_OQ));
	unsigned hi = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_fmadd_ps(s1, pp, a1), fl, _CMP_GE_OQ));
	return lo | hi << 8;
}
#endif

typedef unsigned (*rank_q8_fn)(const float *, const int8_t *, uint32_t,
			       const float *, float, float, float *);

/* The widest form the processor runs, chosen once. */
static rank_q8_fn
mf_block_q8(void)
{
#ifdef RANK_X86
	if (cpu_avx() & CPU_AVX2)
		return mf_block_q8_avx2;
#endif
	return mf_block_q8_plain;
}

/*
 * MF's candidates from the 8-bit blocks, exactly the full pass's: an
 * item's approximate score a is within e = 0.51 * scale * sum |p| of its
 * exact one (half a step of rounding per factor, and room for the float
 * sums). A first pass keeps the items whose a + e reaches the depth-th
 * best a - e (which only rises as the pass goes); the second scores them
 * exactly (model_dot, as the full pass) and keeps the best depth.
 */
static void
src_mf_q8(struct ranker *r, const struct model *m, const struct rank_req *q,
	  const float *p, struct top *t)
{
	const struct rank_index *ix = q->ix;
	uint32_t stride = m->stride;
	float p1 = 0, a[MF_BLOCK];
	struct top lo;
	size_t nc = 0;

	for (uint32_t k = 0; k < stride; k++)
		p1 += fabsf(p[k]);
	p1 *= 0.51f;
	top_init_in(&r->lob, &r->lob_cap, &lo, t->m);
	rank_q8_fn block = mf_block_q8();
	for (uint64_t b = 0; b < ix->nblocks; b++) {
		uint64_t base = b * MF_BLOCK;
		uint64_t n = m->nitems - base < MF_BLOCK ? m->nitems - base : MF_BLOCK;
		const unsigned char *blk = ix->q + (size_t)b * MODEL_Q8_BYTES(stride);
		const float *scale = (const float *)(const void *)(blk + MODEL_Q8_SCALES(stride));
		unsigned mask = block(p, (const int8_t *)(const void *)blk, stride,
				      scale, p1, top_floor(&lo), a);
		if (n < MF_BLOCK)
			mask &= (1u << n) - 1;
		while (mask) {
			unsigned j = (unsigned)__builtin_ctz(mask);
			mask &= mask - 1;
			float e = scale[j] * p1, s = a[j];
			if (SKIP(r, q, base + j))
				continue;
			if (nc == r->mfc_cap) {
				r->mfc_cap = nc ? 2 * nc : 1024;
				r->mfc = xreallocarray(r->mfc, r->mfc_cap, sizeof *r->mfc);
			}
			r->mfc[nc].s = s + e;
			r->mfc[nc++].i = (uint32_t)(base + j);
			top_add(&lo, s - e, (uint32_t)(base + j));
		}
	}
	/* The depth-th best lower bound: no item whose upper bound is below
	 * it can be among the best depth. */
	float floor = -INFINITY;
	if (lo.n > lo.m)
		top_prune(&lo);
	if (lo.n == lo.m && lo.m) {
		floor = lo.h[0].s;
		for (size_t k = 1; k < lo.n; k++)
			if (lo.h[k].s < floor)
				floor = lo.h[k].s;
	}
	for (size_t k = 0; k < nc; k++) {
		if (!(r->mfc[k].s >= floor))
			continue;
		uint32_t i = r->mfc[k].i;
		float s = model_dot(p, model_item_vec(m, i), stride);
		if (!top_out(t, s, i) && isfinite(s))
			top_add(t, s, i);
	}
}

/*
 * The exact scores of n rows (stride floats each) against p, into out:
 * model_dot's, to the last bit. The AVX form keeps model_dot's sixteen
 * partial sums as two registers of eight lanes, in the same order, and
 * adds them up as it does; without FMA, nothing is fused.
 */
typedef void (*rank_dots_fn)(const float *, const float *, size_t, uint32_t,
			     float *);

static void
mf_dots_plain(const float *p, const float *rows, size_t n, uint32_t stride,
	      float *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = model_dot(p, rows + i * stride, stride);
}

#ifdef RANK_X86
__attribute__((target("avx"))) static void
mf_dots_avx(const float *p, const float *rows, size_t n, uint32_t stride,
	    float *out)
{
	typedef float v8 __attribute__((vector_size(32)));

	for (size_t i = 0; i < n; i++) {
		const float *b = rows + i * stride;
		v8 s01 = { 0 }, s23 = { 0 }, x, y;
		for (uint32_t k = 0; k < stride; k += MODEL_ROW) {
			memcpy(&x, p + k, 32);
			memcpy(&y, b + k, 32);
			s01 += x * y;
			memcpy(&x, p + k + 8, 32);
			memcpy(&y, b + k + 8, 32);
			s23 += x * y;
		}
		/* Lanes 0-3 and 4-7 of t: model_dot's (s0 + s2), (s1 + s3). */
		v8 t = s01 + s23;
		float l0 = t[0] + t[4], l1 = t[1] + t[5], l2 = t[2] + t[6],
		      l3 = t[3] + t[7];
		out[i] = (l0 + l2) + (l1 + l3);
	}
}
#endif

static rank_dots_fn
mf_dots(void)
{
#ifdef RANK_X86
	if (cpu_avx() & CPU_AVX)
		return mf_dots_avx;
#endif
	return mf_dots_plain;
}

#define MF_DOTS 256 /* rows scored at a time */

/* The user's factors against every item's: a straight pass over the
 * contiguous rows. */
static void
src_mf(struct ranker *r, const struct model *m, const struct rank_req *q,
       size_t depth)
{
	struct top t;
	uint32_t stride = m->stride;

	top_init(r, &t, depth);
	if (q->user < 0 || (uint64_t)q->user >= m->nusers) {
		r->info.cold = 1;
		top_done(r, &t, RANK_MF);
		return;
	}
	if (r->uvec_cap < stride) {
		r->uvec = xreallocarray(r->uvec, stride, sizeof *r->uvec);
		r->uvec_cap = stride;
	}
	const float *p = model_user_vec(m, (uint64_t)q->user, r->uvec);
	if (q->ix && q->ix->q) {
		src_mf_q8(r, m, q, p, &t);
		top_done(r, &t, RANK_MF);
		return;
	}
	rank_dots_fn dots = mf_dots();
	float sc[MF_DOTS];
	for (uint64_t b = 0; b < m->nitems; b += MF_DOTS) {
		size_t n = m->nitems - b < MF_DOTS ? (size_t)(m->nitems - b) : MF_DOTS;
		dots(p, m->ifac + b * stride, n, stride, sc);
		for (size_t j = 0; j < n; j++) {
			uint64_t i = b + j;
			float s = sc[j];
			if (top_out(&t, s, (uint32_t)i))
				continue;
			if (!isfinite(s) || SKIP(r, q, i))
				continue;
			top_add(&t, s, (uint32_t)i);
		}
	}
	top_done(r, &t, RANK_MF);
}

/* Add v to candidate b's sum (acc_done leaves out what the request
 * skips). */
static inline void
acc_one(struct ranker *r, uint32_t b, float v)
{
	/* Without a branch: b is written past the list, and counted in
	 * when its sum was 0 (there is room for one more than the items). */
	r->accl[r->naccl] = b;
	r->naccl += r->acc[b] == 0;
	r->acc[b] += v;
}

/* Add f times the scores of list l (n entries) to the candidates' sums. */
static void
acc_list(struct ranker *r, const struct model *m, const struct model_nb *l,
	 size_t n, float f)
{
	for (size_t j = 0; j < n; j++)
		if (l[j].item < m->nitems && l[j].score > 0)
			acc_one(r, l[j].item, l[j].score * f);
}

/* The best depth of the summed candidates that q does not skip, as
 * source src's list; the sums go back to 0. An item is asked about once,
 * however many lists gave it. */
static void
acc_done(struct ranker *r, const struct model *m, const struct rank_req *q,
	 size_t depth, int src)
{
	struct top t;

	top_init(r, &t, depth);
	for (size_t k = 0; k < r->naccl; k++) {
		uint32_t b = r->accl[k];
		if (!SKIP(r, q, b))
			top_add(&t, r->acc[b], b);
		r->acc[b] = 0;
	}
	top_done(r, &t, src);
}

/* Item k of those a request starts from: its recent items, newest first,
 * item k weighing 1 / (k + 1) in *w, then its context items, 1 each. */
static inline uint32_t
start_item(const struct rank_req *q, size_t k, float *w)
{
	if (k < q->nrecent) {
		*w = 1.0f / (float)(k + 1);
		return q->recent[k];
	}
	*w = 1.0f;
	return q->context[k - q->nrecent];
}

/* The sum of list l's scores (n entries), the items the model has. */
static float
list_sum(const struct model *m, const struct model_nb *l, size_t n)
{
	float sum = 0;

	for (size_t j = 0; j < n; j++)
		if (l[j].item < m->nitems && l[j].score > 0)
			sum += l[j].score;
	return sum;
}

/* Neighbours of the recent items (nearer ones count more) and of the
 * context items: the sums of their co-occurrence counts, so that an item
 * seen with many others weighs as much as the evidence it has. Sequence
 * (seq) asks the lists of what came after each item, each list as the
 * probabilities of what comes next (a mixture of the recent items'
 * chains, so that a much-seen item does not drown the others); next asks
 * the same list of the newest item alone, as counts (a first-order chain:
 * its own features let the blend weigh the newest item apart from the
 * others, and by its evidence). */
static void
src_cooc(struct ranker *r, const struct model *m, const struct rank_req *q,
	 size_t depth, int src)
{
	const struct model_lists *L = src == RANK_COOC ? &m->nb : &m->sq;
	size_t nk = src == RANK_NEXT ? (q->nrecent ? 1 : 0) : q->nrecent + q->ncontext;

	r->naccl = 0;
	for (size_t k = 0; k < nk; k++) {
		float wk;
		uint32_t a = start_item(q, k, &wk);
		const struct model_nb *l;
		size_t n;

		if (a >= m->nitems || (n = model_list(L, a, &l)) == 0 ||
		    !(l[0].score > 0))
			continue;
		if (src == RANK_SEQ)
			wk /= list_sum(m, l, n);
		acc_list(r, m, l, n, wk);
	}
	acc_done(r, m, q, depth, src);
}

/*
 * A random walk on the co-occurrence graph (P^3, Cooper et al. 2014):
 * from the recent items (nearer ones more) and the context items,
 * --walk-steps steps, each to a neighbour in proportion to its count; the
 * items where the walk ends, by their probability. Items that never met
 * the user's items but share their neighbours come in: the taste that a
 * few counts cannot show yet, smoothed over the graph. Each step carries
 * the --walk-width likeliest items on, and follows each item's
 * RANK_WALK_LINKS strongest links (its list is best first), so that a request
 * reads steps * width lists of RANK_WALK_LINKS entries at most, whatever
 * the catalogue and --neighbours.
 */
#define WALK_AHEAD 8 /* lists fetched ahead of the one being read */
static void
walk_fit(struct ranker *r, size_t n)
{
	if (n > r->wf_cap) {
		r->wf_cap = n;
		r->wf = xreallocarray(r->wf, n, sizeof *r->wf);
	}
}

static void
src_walk(struct ranker *r, const struct model *m, const struct rank_req *q,
	 size_t depth)
{
	size_t nf = 0, nk = q->nrecent + q->ncontext, width = m->p.walk_width;
	uint32_t steps = m->p.walk_steps;

	walk_fit(r, nk);
	for (size_t k = 0; k < nk; k++) {
		float wk;
		uint32_t a = start_item(q, k, &wk);
		if (a >= m->nitems)
			continue;
		r->wf[nf].i = a;
		r->wf[nf++].s = wk;
	}
	for (uint32_t step = 1; step <= steps; step++) {
		r->naccl = 0;
		for (size_t f = 0; f < nf; f++) {
			const struct model_nb *l = NULL;
			size_t n;
			/* The lists are scattered in memory: ask for one a
			 * few items ahead while this one is read. */
			if (f + 2 * WALK_AHEAD < nf && m->nb.v)
				__builtin_prefetch(&m->nb.v[r->wf[f + 2 * WALK_AHEAD].i]);
			if (f + WALK_AHEAD < nf &&
			    (n = model_list(&m->nb, r->wf[f + WALK_AHEAD].i, &l)) > 0)
				for (size_t b = 0; b < n && b < RANK_WALK_LINKS; b += 64 / sizeof *l)
					__builtin_prefetch(l + b);
			n = model_list(&m->nb, r->wf[f].i, &l);
			if (n > RANK_WALK_LINKS)
				n = RANK_WALK_LINKS;
			float sum = list_sum(m, l, n);
			if (!(sum > 0))
				continue;
			/* The last step ends on candidates, which acc_done
			 * leaves out as the request says; the steps before
			 * pass through any item. */
			acc_list(r, m, l, n, r->wf[f].s / sum);
		}
		if (step == steps)
			break;
		walk_fit(r, r->naccl);
		for (size_t k = 0; k < r->naccl; k++) {
			uint32_t b = r->accl[k];
			r->wf[k].i = b;
			r->wf[k].s = r->acc[b];
			r->acc[b] = 0;
		}
		nf = r->naccl;
		if (nf > width) {
			select_best(r->wf, nf, width);
			nf = width;
		}
	}
	acc_done(r, m, q, depth, RANK_WALK);
}

/* Take source s's list from the index: the first depth items that are
 * not skipped. Return 0 if the list ran out before depth and does not
 * hold every item: the caller makes the full pass. */
static int
from_index(struct ranker *r, const struct model *m, const struct rank_req *q,
	   int s, size_t depth)
{
	const struct rank_index *ix = q->ix;
	struct top t;

	if (!ix || !ix->list[s])
		return 0;
	top_init(r, &t, depth);
	for (size_t k = 0; k < ix->n[s] && t.n < depth; k++)
		if (!SKIP(r, q, ix->list[s][k].i))
			t.h[t.n++] = ix->list[s][k];
	if (t.n < depth && !ix->complete[s])
		return 0;
	/* Already in order. */
	src_store(r, s, t.h, t.n);
	return 1;
}

/* The same from the lists a trainable model keeps as counts grow
 * (model.h's top): pop's or dpop's first depth items that are not
 * skipped. Return 0 when the model keeps none, or when the list ran out
 * before depth and does not hold every counted item. */
static int
from_top(struct ranker *r, const struct model *m, const struct rank_req *q,
	 int s, size_t depth)
{
	const struct model_top *l = &m->top[s == RANK_DPOP];
	const float *v = s == RANK_DPOP ? m->ipop : m->icount;
	struct top t;

	if (m->mapped || !l->valid)
		return 0;
	top_init(r, &t, depth);
	for (size_t k = 0; k < l->n && t.n < depth; k++) {
		uint32_t i = l->item[k];
		if (!SKIP(r, q, i)) {
			t.h[t.n].s = v[i];
			t.h[t.n++].i = i;
		}
	}
	if (t.n < depth && l->n == MODEL_TOP)
		return 0;
	src_store(r, s, t.h, t.n);
	return 1;
}

#define TREND_BLOCK 256 /* items src_trend screens at a time */

/* Whether an item of expected count e and recent count o may come in
 * above a list whose threshold T has the square th2 (0 while the list is
 * not full): z = (o - e) / sqrt(e + 1) >= T > 0 needs o > e and
 * (o - e)^2 >= T^2 (e + 1), and the margin of a thousandth covers the
 * roundings, so that the root and the division are only for these. */
static inline int
trend_near(float e, float o, float th2)
{
	float d = o - e;

	return (o > e) & !(d * d < th2 * (e + 1) * 0.999f);
}

/* trend_near for n items, the long-run counts ip times a and the recent
 * ones is times b, into near[]: a pass without branches, vectorised when
 * n is a constant. */
static inline void
trend_screen(const float *restrict ip, const float *restrict is,
	     uint8_t *restrict near, size_t n, float a, float b, float th2)
{
	for (size_t j = 0; j < n; j++)
		near[j] = (uint8_t)trend_near(ip[j] * a, is[j] * b, th2);
}

/* Trending: how far the recent count is above what the long-run rate
 * predicts, in Poisson standard deviations. */
static void
src_trend(struct ranker *r, const struct model *m, const struct rank_req *q,
	  size_t depth)
{
	struct top t;
	double fp, fs = model_trend_factor(m, &fp);
	double ratio = (double)m->p.trend_half_life / (double)m->p.pop_half_life;
	float a = (float)(fp * ratio), b = (float)fs;

	top_init(r, &t, depth);
	for (uint64_t base = 0; base < m->nitems; base += TREND_BLOCK) {
		size_t len = m->nitems - base < TREND_BLOCK ? (size_t)(m->nitems - base) : TREND_BLOCK;
		const float *ip = m->ipop + base, *is = m->ishort + base;
		uint8_t near[TREND_BLOCK];
		/* A block's items against the threshold as the block starts,
		 * without a branch (a pass the compiler vectorises): those
		 * that may come in, a few, are then seen one by one. */
		float th = top_floor(&t), th2 = th > 0 ? th * th : 0;
		/* (A constant count for whole blocks, so that it vectorises.) */
		if (len == TREND_BLOCK)
			trend_screen(ip, is, near, TREND_BLOCK, a, b, th2);
		else
			trend_screen(ip, is, near, len, a, b, th2);
		for (size_t j = 0; j < len; j++) {
			if (!near[j])
				continue;
			uint64_t i = base + j;
			float e = ip[j] * a, o = is[j] * b;
			/* Again against the threshold as it is now. */
			th = top_floor(&t);
			if (!trend_near(e, o, th > 0 ? th * th : 0))
				continue;
			float z = (o - e) / sqrtf(e + 1);
			if (top_out(&t, z, (uint32_t)i))
				continue;
			if (!SKIP(r, q, i))
				top_add(&t, z, (uint32_t)i);
		}
	}
	top_done(r, &t, RANK_TREND);
}

static void
src_pop(struct ranker *r, const struct model *m, const struct rank_req *q,
	const float *v, int s, size_t depth)
{
	struct top t;

	top_init(r, &t, depth);
	for (uint64_t i = 0; i < m->nitems; i++) {
		if (!(v[i] > 0) || top_out(&t, v[i], (uint32_t)i))
			continue;
		if (!SKIP(r, q, i))
			top_add(&t, v[i], (uint32_t)i);
	}
	top_done(r, &t, s);
}

/* The user's recent items again: coming back to an item is common in
 * shops (re-views before a purchase) and rare in rating-like data; the
 * blend learns which. */
static void
src_seen(struct ranker *r, const struct model *m, const struct rank_req *q,
	 size_t depth)
{
	struct top t;

	top_init(r, &t, depth);
	for (size_t k = 0; k < q->nrecent; k++) {
		uint32_t i = q->recent[k];
		if (!SKIP(r, q, i))
			top_add(&t, 1.0f / (float)(k + 1), i);
	}
	top_done(r, &t, RANK_SEEN);
}

/* Items of past sessions like the current one (sknn.c), summed into
 * the accumulator of the candidates not left out. */
struct sknn_ctx {
	struct ranker *r;
	const struct model *m;
	const struct rank_req *q;
};

static void
sknn_take(void *ctx, uint32_t b, float score)
{
	struct sknn_ctx *c = ctx;

	acc_one(c->r, b, score);
}

static void
src_sknn(struct ranker *r, const struct model *m, const struct rank_req *q,
	 size_t depth)
{
	struct sknn_ctx c = { r, m, q };
	uint64_t self = 0;

	r->naccl = 0;
	r->nsrc[RANK_SKNN] = 0;
	if (!m->sknn || q->nrecent == 0)
		return;
	if (!r->sk)
		r->sk = sknn_scratch_new();
	if (q->user >= 0 && (uint64_t)q->user < m->nusers && m->uskey)
		self = model_user_skey(m, (uint64_t)q->user);
	sknn_score(m->sknn, r->sk, q->recent, q->nrecent, m->clock, self,
		   (uint32_t)m->nitems, sknn_take, &c);
	acc_done(r, m, q, depth, RANK_SKNN);
}

/* The most popular items of the categories of the recent and context
 * items (start_keys: each category once, weighing as its nearest item),
 * each list scaled by its best. */
static void
src_cat(struct ranker *r, const struct model *m, const struct rank_req *q,
	size_t depth)
{
	r->naccl = 0;
	for (size_t k = 0; k < r->qcat.n; k++) {
		uint32_t c = (uint32_t)r->qcat.v[k].key;
		const struct model_nb *l;
		size_t n;

		if (c > m->ncats || (n = model_cat_items(m, c - 1, &l)) == 0 ||
		    !(l[0].score > 0))
			continue;
		acc_list(r, m, l, n, r->qcat.v[k].w / l[0].score);
	}
	acc_done(r, m, q, depth, RANK_CAT);
}

static void
cands_fit(struct ranker *r, size_t n)
{
	if (n <= r->c_cap)
		return;
	r->c_cap = n;
	r->ci = xreallocarray(r->ci, n, sizeof *r->ci);
	r->cs = xreallocarray(r->cs, n, sizeof *r->cs);
	r->cbest = xreallocarray(r->cbest, n, sizeof *r->cbest);
	r->cr = xreallocarray(r->cr, n, sizeof *r->cr);
	r->order = xreallocarray(r->order, n, sizeof *r->order);
	r->cf = xreallocarray(r->cf, n, RANK_NFEAT * sizeof *r->cf);
}

/* Key k in set x with weight w: its weight the greater of the two if it
 * is in already. */
static void
keyset_add(struct keyset *x, uint64_t k, float w)
{
	size_t j;

	for (j = 0; j < x->n && x->v[j].key != k; j++)
		;
	if (j < x->n) {
		if (w > x->v[j].w)
			x->v[j].w = w;
		return;
	}
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 16;
		x->v = xreallocarray(x->v, x->cap, sizeof *x->v);
	}
	x->v[x->n].key = k;
	x->v[x->n++].w = w;
}

/* The weight of key k in x, 0 if it is not in (nor is key 0). */
static float
keyset_w(const struct keyset *x, uint64_t k)
{
	if (k == 0)
		return 0;
	for (size_t j = 0; j < x->n; j++)
		if (x->v[j].key == k)
			return x->v[j].w;
	return 0;
}

/* The categories and the brands of the items q starts from. */
static void
start_keys(struct ranker *r, const struct model *m, const struct rank_req *q)
{
	r->qcat.n = r->qbrand.n = 0;
	r->icat = m->icat;
	r->ibrand = m->ibrand;
	r->nitems = m->nitems;
	for (size_t k = 0; k < q->nrecent + q->ncontext; k++) {
		float wk;
		uint32_t a = start_item(q, k, &wk);
		if (a >= m->nitems)
			continue;
		if (m->icat && m->icat[a])
			keyset_add(&r->qcat, m->icat[a], wk);
		if (m->ibrand && m->ibrand[a])
			keyset_add(&r->qbrand, m->ibrand[a], wk);
	}
}

/* The category match of candidate i: the weight of the nearest item the
 * request starts from in i's category, 0 if none is; and the brand
 * match, the same for i's brand. */
static float
samecat(const struct ranker *r, uint32_t i)
{
	return r->icat && i < r->nitems ? keyset_w(&r->qcat, r->icat[i]) : 0;
}

static float
samebrand(const struct ranker *r, uint32_t i)
{
	return r->ibrand && i < r->nitems ? keyset_w(&r->qbrand, r->ibrand[i]) : 0;
}

/* The lists of the sources whose bit is set in ask, each of its best
 * depth candidates, excluded items left out before the cut. */
static void
gather(struct ranker *r, const struct model *m, const struct rank_req *q,
       unsigned ask, size_t depth)
{
	for (int s = 0; s < RANK_NSRC; s++)
		r->nsrc[s] = 0;
	fit(r, m->nitems);
	next_gen(r);
	start_keys(r, m, q);
	for (size_t k = 0; k < q->nexclude; k++)
		if (q->exclude[k] < m->nitems)
			r->excl[q->exclude[k]] = r->gen;
	if (ask & 1u << RANK_MF)
		src_mf(r, m, q, depth);
	if (ask & 1u << RANK_COOC)
		src_cooc(r, m, q, depth, RANK_COOC);
	if (ask & 1u << RANK_SEQ)
		src_cooc(r, m, q, depth, RANK_SEQ);
	if (ask & 1u << RANK_NEXT)
		src_cooc(r, m, q, depth, RANK_NEXT);
	if ((ask & 1u << RANK_WALK) && m->p.walk_steps)
		src_walk(r, m, q, depth);
	if ((ask & 1u << RANK_TREND) && !from_index(r, m, q, RANK_TREND, depth))
		src_trend(r, m, q, depth);
	if ((ask & 1u << RANK_DPOP) && !from_index(r, m, q, RANK_DPOP, depth) &&
	    !from_top(r, m, q, RANK_DPOP, depth))
		src_pop(r, m, q, m->ipop, RANK_DPOP, depth);
	if ((ask & 1u << RANK_POP) && !from_index(r, m, q, RANK_POP, depth) &&
	    !from_top(r, m, q, RANK_POP, depth))
		src_pop(r, m, q, m->icount, RANK_POP, depth);
	if (ask & 1u << RANK_SEEN)
		src_seen(r, m, q, depth);
	if (ask & 1u << RANK_CAT)
		src_cat(r, m, q, depth);
	if (ask & 1u << RANK_SKNN)
		src_sknn(r, m, q, depth);
}

/* The sources whose weights the blend learns: all but pop, the same for
 * every user and for every moment (trending and decayed popularity fill
 * the lists of users with little history where the stream says they
 * help, and go where it says they do not). */
#define LEARNED (1u << RANK_MF | 1u << RANK_COOC | 1u << RANK_SEEN | \
		 1u << RANK_CAT | 1u << RANK_SKNN | 1u << RANK_SEQ | \
		 1u << RANK_NEXT | 1u << RANK_WALK | \
		 1u << RANK_TREND | 1u << RANK_DPOP)

/* How a source's scores are scaled to [0, 1]: MF's by the range of its
 * candidates, the others' by their best. */
struct scale {
	float lo, span;
};

static inline struct scale
scale_of(const struct cand *l, size_t n, int s)
{
	struct scale sc = { 0, l[0].s };

	if (s == RANK_MF) {
		sc.lo = n > 1 ? l[n - 1].s : l[0].s - 1;
		sc.span = l[0].s - sc.lo;
	}
	return sc;
}

/* What entry k of source s's list l adds to its item's blended score by
 * weights w; its three features in *v, *rr and *ab. */
static inline float
contribution(const float *w, int s, const struct cand *l, size_t k,
	     struct scale sc, float *v, float *rr, float *ab)
{
	*v = sc.span > 0 ? (l[k].s - sc.lo) / sc.span : 1;
	*rr = 1.0f / (float)(k + 1);
	*ab = l[k].s > 0 ? l[k].s / (1 + l[k].s) : 0;
	return w[s] * *v + w[RANK_NSRC + s] * *rr + w[2 * RANK_NSRC + s] * *ab;
}

/* Whether weights w give source s any weight. */
static inline int
weighs(const float *w, int s)
{
	return w[s] != 0 || w[RANK_NSRC + s] != 0 || w[2 * RANK_NSRC + s] != 0;
}

/* Feature feat of every candidate, match(r, item), into its blended
 * score by weights w (and kept, for the blend's learning, if all). */
static void
add_match(struct ranker *r, const float *w, int all, int feat,
	  float (*match)(const struct ranker *, uint32_t))
{
	for (size_t k = 0; k < r->nc; k++) {
		float f = match(r, r->ci[k]);
		if (all)
			r->cf[k * RANK_NFEAT + feat] = f;
		r->cs[k] += w[feat] * f;
	}
}

/*
 * The candidates of the gathered lists, each with its features: every
 * source's score scaled to [0, 1] (MF's by the range of its candidates,
 * the others by their best), 0 where the source did not list it; and,
 * by the weights w, the blended score and the source that gave most.
 * The features are kept (in cf) only for the blend's learning (all).
 */
static void
blend(struct ranker *r, const float *w, int all)
{
	size_t total = 0;

	if (++r->sgen == 0) {
		memset(r->seen, 0, r->cap * sizeof *r->seen);
		r->sgen = 1;
	}
	for (int s = 0; s < RANK_NSRC; s++)
		total += r->nsrc[s];
	cands_fit(r, total ? total : 1);
	r->nc = 0;
	for (int s = 0; s < RANK_NSRC; s++) {
		size_t n = r->nsrc[s];
		const struct cand *l = r->src[s];
		if (n == 0 || (!all && !weighs(w, s)))
			continue;
		struct scale sc = scale_of(l, n, s);
		for (size_t k = 0; k < n; k++) {
			uint32_t i = l[k].i;
			float v, rr, ab, c = contribution(w, s, l, k, sc, &v, &rr, &ab);
			size_t at;
			if (r->seen[i] != r->sgen) {
				r->seen[i] = r->sgen;
				at = r->slot[i] = (uint32_t)r->nc++;
				r->ci[at] = i;
				r->cs[at] = 0;
				r->cbest[at] = -INFINITY;
				r->cr[at] = (uint8_t)s;
				if (all)
					memset(r->cf + at * RANK_NFEAT, 0, RANK_NFEAT * sizeof *r->cf);
			} else
				at = r->slot[i];
			/* The features, for the blend's learning only. */
			if (all) {
				r->cf[at * RANK_NFEAT + s] = v;
				r->cf[at * RANK_NFEAT + RANK_NSRC + s] = rr;
				r->cf[at * RANK_NFEAT + 2 * RANK_NSRC + s] = ab;
			}
			r->cs[at] += c;
			if (c > r->cbest[at]) {
				r->cbest[at] = c;
				r->cr[at] = (uint8_t)s;
			}
		}
	}
	/* The category match, whatever source listed the candidate: in a
	 * shop, the next item is often of a category the user is in; and
	 * the brand: where shoppers stay with a brand, its items are
	 * likelier next (where brands say nothing, the blend leaves the
	 * weight near 0). */
	if (r->qcat.n && (all || w[RANK_SAMECAT] != 0))
		add_match(r, w, all, RANK_SAMECAT, samecat);
	if (r->qbrand.n && (all || w[RANK_SAMEBRAND] != 0))
		add_match(r, w, all, RANK_SAMEBRAND, samebrand);
	r->info.candidates = r->nc;
}

/* Whether item i is among out[0..n). */
static int
listed(const struct rank_item *out, size_t n, uint32_t i)
{
	for (size_t k = 0; k < n; k++)
		if (out[k].item == i)
			return 1;
	return 0;
}

/*
 * The list of want places from the blend's best n (r->order, in order)
 * and the walk's list: the blend's first RANK_TAIL_AT, then the walk's
 * best tail items not among them, then the blend's next ones not already
 * placed. From the first walk item on, each score is at most the float
 * just below the one before it, so that the scores fall along the list
 * and no tie among them reorders it (reco-serve orders ties by id).
 */
static size_t
walk_tail(struct ranker *r, size_t tail, size_t want, size_t n,
	  struct rank_item *out)
{
	const struct cand *l = r->src[RANK_WALK];
	size_t len = r->nsrc[RANK_WALK], k = 0, j = 0, filled = 0;

	while (k < want) {
		if (k >= RANK_TAIL_AT && filled < tail && len) {
			uint32_t i = l[0].i;
			l++;
			len--;
			if (listed(out, k, i))
				continue;
			out[k].item = i;
			out[k].score = nextafterf(out[k - 1].score, -INFINITY);
			out[k++].reason = RANK_WALK;
			filled++;
			continue;
		}
		if (j == n)
			break;
		uint32_t c = r->slot[r->order[j++].i];
		float sc = r->cs[c];
		if (filled) {
			if (listed(out + RANK_TAIL_AT, k - RANK_TAIL_AT, r->ci[c]))
				continue;
			float below = nextafterf(out[k - 1].score, -INFINITY);
			sc = sc < below ? sc : below;
		}
		out[k].item = r->ci[c];
		out[k].score = sc;
		out[k++].reason = r->cr[c];
	}
	return k;
}

/* The sources that weights w ask: a bit for each. */
unsigned
rank_sources(const struct rank_weights *w)
{
	unsigned ask = 0;

	for (int s = 0; s < RANK_NSRC; s++)
		if (weighs(w->w, s))
			ask |= 1u << s;
	if (w->tail && ask)
		ask |= 1u << RANK_WALK;
	return ask;
}

/*
 * The first half of rank_top: ask the sources of the bits of ask for
 * their best depth candidates for q (the excluded items left out before
 * any cut). rank_pick then blends them, as often as wanted: several
 * blends of one request share the sources' work.
 */
void
rank_gather(struct ranker *r, const struct model *m, const struct rank_req *q,
	    unsigned ask, size_t depth)
{
	memset(&r->info, 0, sizeof r->info);
	for (int s = 0; s < RANK_NSRC; s++)
		r->nsrc[s] = 0;
	r->qcat.n = r->qbrand.n = 0;
	if (ask && depth)
		gather(r, m, q, ask, depth);
}

/* The one source that weights w ask, or -1 if they ask several (or the
 * category or brand match, which weigh candidates of any source). */
static int
only_source(const struct rank_weights *w)
{
	unsigned ask = rank_sources(w);

	if (w->w[RANK_SAMECAT] != 0 || w->w[RANK_SAMEBRAND] != 0 || ask == 0 ||
	    (ask & (ask - 1)))
		return -1;
	return __builtin_ctz(ask);
}

/*
 * The second half: blend the gathered lists of the sources that w
 * weighs (see blend) and write the best n to out (room for n), best
 * first, each with the source that gave most of its score. Return how
 * many were written: fewer than n when the sources have no more. A
 * single source keeps its own order (only_source).
 */
size_t
rank_pick(struct ranker *r, const struct rank_weights *w, size_t n,
	  struct rank_item *out)
{
	/* A single source's candidates are its list, best first: its own
	 * order stands. Sorting them again by the scaled score would let the
	 * rounding of the scaling tie items that the source tells apart, and
	 * the cut at n would then depend on how deep the sources were
	 * asked. */
	int one = only_source(w);

	if (one >= 0) {
		const struct cand *l = r->src[one];
		size_t len = r->nsrc[one];
		r->info.candidates = len;
		if (len < n)
			n = len;
		if (n == 0)
			return 0;
		struct scale sc = scale_of(l, len, one);
		for (size_t k = 0; k < n; k++) {
			float v, rr, ab;
			out[k].item = l[k].i;
			out[k].score = contribution(w->w, one, l, k, sc, &v, &rr, &ab);
			out[k].reason = (uint8_t)one;
		}
		return n;
	}
	blend(r, w->w, 0);
	for (size_t k = 0; k < r->nc; k++) {
		r->order[k].s = r->cs[k];
		r->order[k].i = r->ci[k];
	}
	size_t want = n, tail = w->tail && n > RANK_TAIL_AT ? w->tail : 0;
	if (tail > n - RANK_TAIL_AT)
		tail = n - RANK_TAIL_AT;
	if (tail && !r->nsrc[RANK_WALK])
		tail = 0;
	/* With a tail, the blend's next tail items may follow it. */
	if (r->nc < n + tail)
		n = r->nc;
	else
		n += tail;
	if (r->nc > 1)
		cand_best(r->order, r->nc, n);
	if (tail)
		return walk_tail(r, tail, want, n, out);
	for (size_t k = 0; k < n; k++) {
		uint32_t c = r->slot[r->order[k].i];
		out[k].item = r->ci[c];
		out[k].score = r->cs[c];
		out[k].reason = r->cr[c];
	}
	return n;
}

/*
 * Rank: rank_gather for the sources of non-zero weight, then rank_pick:
 * the best q->n to out. Allocates only when the model has grown since
 * the last call.
 */
size_t
rank_top(struct ranker *r, const struct model *m, const struct rank_req *q,
	 struct rank_item *out)
{
	unsigned ask = rank_sources(&q->w);

	/* A list too short for the walk's places asks the walk only for its
	 * weights. */
	if (q->n <= RANK_TAIL_AT && !weighs(q->w.w, RANK_WALK))
		ask &= ~(1u << RANK_WALK);
	int nsrc = __builtin_popcount(ask);

	if (q->n == 0 || nsrc == 0) {
		rank_gather(r, m, q, 0, 0);
		return 0;
	}
	rank_gather(r, m, q, ask, nsrc > 1 ? q->n * BLEND_DEPTH : q->n);
	return rank_pick(r, &q->w, q->n, out);
}

/*
 * The model's learned blend; or, when one of the user's own sources alone
 * has lately had the next item in its top 20 about as often as the blend
 * or more (the hit means of rank_learn, within EXPERT_MARGIN), that
 * source's order first, the blend's after it: the hybrid is the best of
 * its experts as the stream has judged them, and the blend must be
 * clearly better to be preferred to a single source. Return the source
 * chosen, or -1 for the blend.
 */
#define HIT_RATE (1.0f / 256) /* the weight of an event in the hit means */
#define EXPERT_MARGIN 0.01f /* about one standard error of the hit means */
#define EXPERT_TIE 1e-3f    /* the blend's share beside the chosen source:
			     * it breaks near ties and fills the list */

int
rank_weights_model(struct rank_weights *w, const struct model *m)
{
	const float *h = m->blend.hit;
	int best = -1;
	float top = 0;

	for (int s = 0; s < RANK_NSRC; s++)
		if ((LEARNED >> s & 1) && h[s] > top) {
			top = h[s];
			best = s;
		}
	/* The means say something once the blend has learned from as many
	 * events as they average over. */
	if (best >= 0 && (top < h[RANK_NSRC] - EXPERT_MARGIN ||
			  m->st.blend_events < (uint64_t)(1 / HIT_RATE)))
		best = -1;
	memcpy(w->w, m->blend.w, sizeof w->w);
	w->tail = m->p.walk_steps ? RANK_TAIL : 0;
	/* The chosen source's order first; the blend fills the rest. */
	if (best >= 0) {
		for (int k = 0; k < RANK_NFEAT; k++)
			w->w[k] *= EXPERT_TIE;
		w->w[best] += 1;
	}
	/* And decayed popularity, last, what the blend leaves empty (a user
	 * the sources know nothing about still gets an answer). */
	if (!(rank_sources(w) >> RANK_DPOP & 1))
		w->w[RANK_DPOP] = 1e-4f;
	return best;
}

#define LEARN_N 20         /* the list length the blend learns for */
#define LEARN_REG 1e-4f    /* L2 pull of the weights towards 0 */
#define LEARN_MAX 20.0f    /* weights stay within [0, LEARN_MAX] */


/* The hit means: did each source alone, and the blend, have the target
 * (candidate t, SIZE_MAX if none has it) in its top LEARN_N? */
static void
learn_hits(struct ranker *r, struct model *m, size_t t, uint32_t target)
{
	float *h = m->blend.hit;

	for (int s = 0; s < RANK_NSRC; s++) {
		int hit = 0;
		for (size_t k = 0; t != SIZE_MAX && k < r->nsrc[s] && k < LEARN_N; k++)
			if (r->src[s][k].i == target) {
				hit = 1;
				break;
			}
		h[s] += HIT_RATE * ((float)hit - h[s]);
	}
	size_t above = 0;
	for (size_t k = 0; t != SIZE_MAX && k < r->nc && above < LEARN_N; k++)
		above += k != t && better(r->cs[k], r->ci[k], r->cs[t], target);
	h[RANK_NSRC] += HIT_RATE * ((float)(t != SIZE_MAX && above < LEARN_N) - h[RANK_NSRC]);
}

/*
 * Learn the blend from user u's next item, target, before the model
 * learns it: every source gives its candidates for the user's recent
 * items (the last one left out, as reco-eval asks); when the target is
 * among them, the weights take a step of the listwise logistic loss
 * (the softmax of the blended scores against the target), so that a
 * source gains weight where it lifts the item that really came next
 * above the other candidates. No random choice: the same state and event
 * give the same step.
 */
void
rank_learn(struct model *m, uint64_t u, uint32_t target, uint64_t uh)
{
	struct ranker *r = m->blend_ranker;
	uint32_t rec[MODEL_MAX_RECENT];
	struct rank_req q;
	float *w = m->blend.w;

	if (!r)
		r = m->blend_ranker = ranker_new();
	memset(&q, 0, sizeof q);
	q.user = (int64_t)u;
	q.nrecent = model_user_recent(m, u, rec, MODEL_MAX_RECENT);
	q.recent = rec;
	q.exclude = rec;
	q.nexclude = 1;
	q.n = LEARN_N;
	q.user_hash = uh;
	q.exclude_seen = model_exclude_seen(m);
	m->st.blend_events++;
	gather(r, m, &q, LEARNED, LEARN_N * BLEND_DEPTH);
	blend(r, w, 1);
	int found = target < r->cap && r->seen[target] == r->sgen;
	learn_hits(r, m, found ? r->slot[target] : SIZE_MAX, target);
	if (!found) {
		m->st.blend_missed++;
		return;
	}
	/* The listwise loss over the head of the list: the softmax of the
	 * blended scores of the best LEARN_N * BLEND_DEPTH candidates and the
	 * target, against the target; the step is the target's features less
	 * their expectation under the softmax, so that it is small once the
	 * target leads the list and the weights learn what lifts it there. */
	size_t t = r->slot[target];
	for (size_t k = 0; k < r->nc; k++) {
		r->order[k].s = r->cs[k];
		r->order[k].i = (uint32_t)k;
	}
	size_t top = r->nc < LEARN_N * BLEND_DEPTH ? r->nc : LEARN_N * BLEND_DEPTH;
	cand_best(r->order, r->nc, top);
	float hi = r->cs[t], e[RANK_NFEAT] = { 0 };
	double z = 0;
	int in_top = 0;
	for (size_t k = 0; k < top; k++) {
		if (r->order[k].s > hi)
			hi = r->order[k].s;
		in_top |= r->order[k].i == t;
	}
	for (size_t k = 0; k <= top; k++) {
		size_t c;
		if (k < top)
			c = r->order[k].i;
		else if (!in_top)
			c = t;
		else
			break;
		float p = expf(r->cs[c] - hi);
		const float *fc = r->cf + c * RANK_NFEAT;
		z += p;
		for (int s = 0; s < RANK_NFEAT; s++)
			e[s] += p * fc[s];
	}
	const float *ft = r->cf + t * RANK_NFEAT;
	float lr = m->p.blend_lr;
	for (int s = 0; s < RANK_NFEAT; s++) {
		if (s < RANK_SAMECAT && !(LEARNED >> (s % RANK_NSRC) & 1))
			continue;
		float v = w[s] + lr * (ft[s] - (float)(e[s] / z) - LEARN_REG * w[s]);
		/* Weights stay positive: a source either helps or is left out
		 * (a negative weight would turn its own order upside down for
		 * the users it alone serves). */
		w[s] = v > LEARN_MAX ? LEARN_MAX : v < 0 ? 0 : v;
	}
	m->st.blend_steps++;
}

/* Free the scratch of the blend's learning. */
void
rank_learn_free(struct model *m)
{
	ranker_free(m->blend_ranker);
	m->blend_ranker = NULL;
}

/*
 * The index of model m, which must not change while the index is used:
 * the best depth items of trending and popularity, so that a request
 * need not pass over the catalogue for them. The caller owns it:
 * rank_index_free.
 */
struct rank_index *
rank_index_new(const struct model *m, size_t depth)
{
	struct rank_index *ix = xcalloc(1, sizeof *ix);
	struct ranker *r = ranker_new();
	struct rank_req q;
	static const int lists[] = { RANK_TREND, RANK_DPOP, RANK_POP };

	memset(&q, 0, sizeof q);
	if (depth == 0)
		depth = 1;
	fit(r, m->nitems);
	next_gen(r);
	src_trend(r, m, &q, depth);
	src_pop(r, m, &q, m->ipop, RANK_DPOP, depth);
	src_pop(r, m, &q, m->icount, RANK_POP, depth);
	for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
		int s = lists[k];
		size_t n = r->nsrc[s];
		ix->list[s] = xreallocarray(NULL, n ? n : 1, sizeof *ix->list[s]);
		if (n)
			memcpy(ix->list[s], r->src[s], n * sizeof *ix->list[s]);
		ix->n[s] = n;
		ix->complete[s] = n < depth;
	}
	ranker_free(r);
	/* The 8-bit factors: mapped from the snapshot, or made of the rows
	 * of an older one (or a trainable model). The stride, a multiple of
	 * MODEL_ROW, is even, as the vector pass needs. */
	if (m->nitems) {
		size_t bb = MODEL_Q8_BYTES(m->stride);
		ix->nblocks = (m->nitems + MF_BLOCK - 1) / MF_BLOCK;
		if (m->iq8)
			ix->q = m->iq8;
		else {
			ix->own = xreallocarray(NULL, ix->nblocks, bb);
			for (uint64_t b = 0; b < ix->nblocks; b++)
				model_q8_block(m, b, ix->own + b * bb);
			ix->q = ix->own;
		}
	}
	return ix;
}

/* Free ix; NULL is allowed. */
void
rank_index_free(struct rank_index *ix)
{
	if (!ix)
		return;
	for (int s = 0; s < RANK_NSRC; s++)
		free(ix->list[s]);
	free(ix->own);
	free(ix);
}
