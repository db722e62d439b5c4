/* model.h: the recommendation model: streaming matrix factorisation, session co-occurrence, decayed popularity and trending, and its snapshot files (reco-model(5)). */
#ifndef MODEL_H
#define MODEL_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pool.h"
#include "reco.h"
#include "sknn.h"

#define MODEL_VERSION 6
#define MODEL_VERSION_READ 2 /* the oldest version read */
#define MODEL_MAGIC "RECOMDL1"
#define MODEL_ALIGN 64     /* bytes: factor rows and file sections */
#define MODEL_ROW 16       /* floats per 64 bytes: factor rows are padded
			    * to a multiple of this */
#define MODEL_MAX_DIM 1024
#define MODEL_MAX_NEIGHBOURS 1024
#define MODEL_MAX_RECENT 64
#define MODEL_MAX_WALK_STEPS 8
#define MODEL_MAX_WALK_WIDTH 65536
#define MODEL_TOP 255     /* the pop and dpop lists kept as counts grow */
#define MODEL_NSRC 11       /* the sources of rank.h's blend */
#define MODEL_MAX_CAT_ITEMS 1024
#define MODEL_BLEND_WARM (1ULL << 24) /* the blend's work before the budget holds */
#define MODEL_ID_SEED 0x7265636f2d6d646cULL /* seed of hash64 for ids */

/*
 * Hyper-parameters. The first four give the model its shape and cannot
 * change over a model's life; the others may differ on --resume.
 */
struct model_params {
	uint32_t dim;           /* factors */
	uint32_t neighbours;    /* co-occurrence neighbours kept per item */
	uint32_t recent;        /* recent items kept per user */
	uint32_t negatives;     /* negative samples per positive */
	float lr, reg, init;    /* SGD step, L2 penalty, initial scale */
	float type_w[ET_NTYPES]; /* event-type weights; 0 ignores a type */
	int64_t forget;         /* half-life of the factors (ms), 0: none */
	int64_t cooc_half_life, pop_half_life, trend_half_life; /* ms */
	int64_t session_gap;    /* inactivity that ends a session without id */
	uint64_t max_users, max_items;
	uint64_t seed;
	uint64_t cooc_memory;   /* bytes of neighbour lists, at most */
	uint64_t seen_max;      /* (user, item) pairs remembered, at most */
	uint32_t cat_items;     /* items listed per category */
	uint32_t blend_budget;  /* the blend's learning may cost this many item
				 * scores per event learned (after the first
				 * MODEL_BLEND_WARM); 0: never learn it */
	float blend_lr;         /* step of the blend's pairwise updates */
	uint32_t walk_steps;    /* steps of the walk source; 0: none */
	uint32_t walk_width;    /* items its frontier keeps per step */
	int exclude_seen;       /* MODEL_SEEN_* */
	/* The attributes naming an item's category, then, after its NUL,
	 * those naming its brand (model_brand_attrs): each a list of names
	 * separated by commas, of which the first an event has counts. An
	 * empty category list: category, category_code, category_id; an
	 * empty brand list: none. */
	char cat_attr[64];
	struct sknn_params sk;  /* session neighbours; sk.sessions 0: none */
	uint32_t given;         /* MP_* bits of the options set explicitly */
};

/* What a recommendation leaves out of what the user has seen. */
enum {
	MODEL_SEEN_AUTO,        /* all of it when the stream says users do
				 * not come back (model_exclude_seen) */
	MODEL_SEEN_NONE, MODEL_SEEN_PURCHASED, MODEL_SEEN_ALL
};

/* Bits of model_params.given. */
enum {
	MP_DIM = 1 << 0, MP_NEIGHBOURS = 1 << 1, MP_RECENT = 1 << 2,
	MP_NEGATIVES = 1 << 3, MP_LR = 1 << 4, MP_REG = 1 << 5,
	MP_INIT = 1 << 6, MP_TYPE_W = 1 << 7, MP_FORGET = 1 << 8,
	MP_COOC_HL = 1 << 9, MP_POP_HL = 1 << 10, MP_TREND_HL = 1 << 11,
	MP_SESSION_GAP = 1 << 12, MP_MAX_USERS = 1 << 13,
	MP_MAX_ITEMS = 1 << 14, MP_SEED = 1 << 15, MP_COOC_MEMORY = 1 << 16,
	MP_SEEN_MAX = 1 << 17, MP_CAT_ITEMS = 1 << 18, MP_BLEND_BUDGET = 1 << 19,
	MP_BLEND_LR = 1 << 20, MP_EXCLUDE_SEEN = 1 << 21, MP_CAT_ATTR = 1 << 22,
	MP_SKNN = 1 << 23, MP_WALK_STEPS = 1 << 24, MP_WALK_WIDTH = 1 << 25,
	MP_BRAND_ATTR = 1 << 26
};

/* Counters, kept in the snapshot so that they add up over --resume. */
struct model_stats {
	uint64_t events;          /* events offered to model_learn */
	uint64_t learned;         /* of them, learned */
	uint64_t ignored_type;    /* type weight 0 */
	uint64_t ignored_item;    /* no item */
	uint64_t users_added, items_added;
	uint64_t users_evicted, items_evicted; /* --max-users, --max-items */
	uint64_t evictions;       /* eviction rounds */
	uint64_t mf_updates;      /* SGD steps, positive and negative */
	uint64_t cooc_pairs;      /* co-occurrence increments */
	uint64_t cooc_replaced;   /* neighbours pushed out of a full list */
	uint64_t ticks;           /* forgetting steps */
	uint64_t renorms;         /* decay reference moves */
	uint64_t epochs;          /* extra shuffled passes */
	uint64_t comm_passes;     /* community detections */
	uint64_t cooc_full;       /* list growths refused by --cooc-memory */
	uint64_t seen_evicted;    /* pairs pushed out of the seen set */
	uint64_t cat_replaced;    /* items pushed out of a category list */
	uint64_t blend_events;    /* events the blend learned from */
	uint64_t blend_steps;     /* its pairwise updates */
	uint64_t blend_missed;    /* events whose item no source offered */
	uint64_t repeat_events;   /* eligible events whose item the user had seen */
	uint64_t repeat_asked;    /* eligible events */
	uint64_t blend_work;      /* item scores the blend's learning cost */
	uint64_t comm_next;       /* events learned at the next one */
};
#define MODEL_NSTATS 26

/* One co-occurrence neighbour. */
struct model_nb {
	uint32_t item;
	float score;
};

/* A list of items per item, best first: trainable, an array each (l,
 * n held, cap counted, room allocated); mapped, in CSR form (off, ent). */
struct model_lists {
	/* A trainable model's lists: item i's n entries, room for cap, in
	 * one place so that a list costs one lookup. */
	struct model_list {
		struct model_nb *l;
		uint16_t n, cap;  /* held; the room --cooc-memory counts */
		uint16_t room;    /* allocated: n to cap */
	} *v;
	const uint64_t *off;
	const struct model_nb *ent;
};

/* The learned blend: rank.h's struct rank_weights. */
struct model_blend {
	float w[3 * MODEL_NSRC + 2]; /* rank.h's RANK_NFEAT */
	/* How often, lately, each source alone and the blend (the last) had
	 * the next item in their top 20: decayed means over the events the
	 * blend learned from. */
	float hit[MODEL_NSRC + 1];
};

/* 64 slots of a table: a bit for each in use, and what those hold, in
 * slot order (model.c). */
struct model_blk {
	uint64_t occ;
	unsigned char *a;
};

/*
 * A trainable model's index of ids: slot k holds an entry's number + 1, or
 * 0; a slot's key is the hash64 of its entry's id, kept per entry (4 bytes
 * a slot and 8 an entry, not the 12 a slot of a struct htab). Entries are
 * put in the order of their numbers into a power of two of slots, at
 * least twice their count: the layout of a snapshot's index section.
 */
struct model_index {
	uint32_t *slot;
	uint64_t cap;
	/* A trainable model's: the key of each entry, so that a search
	 * compares keys (one load) instead of ids (two) and a rebuild
	 * hashes nothing; NULL in a mapped model. */
	uint64_t *key, kcap;
};

/*
 * The model. A trainable model owns its arrays and grows them; a model
 * loaded with MODEL_MAP points into a read-only mapping of its snapshot
 * (and nbl is NULL: neighbours are in nboff/nbent). Use the accessors
 * below rather than the fields where there is one.
 */
struct model {
	struct model_params p;
	uint32_t stride;          /* floats per factor row */
	/* items */
	uint64_t nitems, items_cap;
	float *ifac;              /* nitems rows of stride floats */
	/* Mapped, version 5: the item factors again in 8 bits, in blocks of
	 * MODEL_Q8_BLOCK items (model_q8_block); NULL for older snapshots
	 * and trainable models. */
	const unsigned char *iq8;
	unsigned nsec;            /* mapped: sections in the table */
	float *icount;            /* weighted count, never decayed */
	float *ipop;              /* forward-decayed count, pop_half_life */
	float *ishort;            /* forward-decayed count, trend_half_life */
	/* The best MODEL_TOP items by icount (0) and by ipop (1), best
	 * first, kept as the counts grow (they only grow, so the touched
	 * item is the only one that moves); tpos[k][i] is item i's place + 1,
	 * 0 if it is not listed. Derived: built again after a load, a rebase
	 * or an eviction (valid 0), never stored. */
	struct model_top {
		uint32_t item[MODEL_TOP];
		uint32_t n;
		int valid;
		uint8_t *pos;
	} top[2];
	int64_t *its;             /* time of the last event */
	uint64_t *ioff;           /* nitems + 1 offsets into ibytes */
	char *ibytes;
	size_t ibytes_n, ibytes_cap;
	struct htab iidx;         /* mapped: hash64 of the id -> index */
	struct model_index ii;    /* trainable: the same */
	struct model_lists nb;    /* co-occurrence: items seen together */
	struct model_lists sq;    /* sequence: items that came next */
	uint64_t nbtotal;         /* entries of both, by their caps (what
				   * --cooc-memory bounds) */
	uint64_t nbroom;          /* entries allocated in both */
	struct pool nbpool;       /* trainable: the blocks of both */
	uint32_t *icat;           /* the item's category + 1, 0: none */
	/* hash64 of the item's brand | 1, 0: none; mapped: NULL before
	 * version 6 */
	uint64_t *ibrand;
	/* categories: the hash of the name, and the most popular items */
	uint64_t ncats, cats_cap;
	uint32_t ncomm;           /* community keys made (COMM_TAG) */
	uint64_t *chash;
	struct htab cidx;
	struct model_nb **cl;     /* trainable: per category, best first */
	uint16_t *cln;
	const uint64_t *cloff;    /* mapped: CSR of the category lists */
	const struct model_nb *clent;
	/* the (user, item) pairs seen: open addressing, 0 empty; mapped,
	 * the slots (seen), trainable, blocks of them (model.c) */
	const uint64_t *seen;
	struct model_blk *seenb;  /* keys of seen_w bytes (model.c) */
	uint64_t seen_cap, seen_n;
	uint64_t seen_room;       /* keys the blocks have room for */
	unsigned seen_bits, seen_w; /* log2 of seen_cap; bytes of a key */
	struct model_blend blend;
	void *blend_ranker;       /* scratch of the blend's learning */
	struct sknn *sknn;        /* past sessions, or NULL */
	uint64_t nlists;          /* neighbour lists allocated */
	/* users */
	uint64_t nusers, users_cap;
	/* The users' factor rows, stride values each: a mapped snapshot's
	 * floats (ufac), or a trainable model's bfloat16 values (ufac16:
	 * the upper half of a float, rounded to the nearest, ties to even),
	 * which the snapshot writes as the floats they are. */
	float *ufac;
	uint16_t *ufac16;
	float *urow;              /* one row widened, for the SGD steps */
	int64_t *uts;
	/* The current session's key in sknn, whose bit 0 (always 1 in a
	 * key: model_user_skey) is 1 when the session has an id and 0 when
	 * inactivity cuts it. */
	uint64_t *uskey;
	const uint64_t *usess3;   /* mapped, version 3: the hash of each
				   * user's session id, 0 for none */
	uint8_t *unrec, *unsess;  /* recent items held; of them, the current session's */
	uint32_t *urec;           /* users_cap * recent: newest first */
	uint64_t *uoff;
	char *ubytes;
	size_t ubytes_n, ubytes_cap;
	struct htab uidx;
	struct model_index ui;
	/* clocks and the rest of the training state */
	int have_clock;
	int64_t clock;            /* the newest event time learned */
	int64_t tref;             /* reference time of the forward decay */
	int64_t tick;             /* forgetting steps done, in tick units */
	struct rng rng;
	struct model_stats st;
	/* the log of this run, for extra epochs (model_log_start) */
	struct model_logent *log;
	size_t nlog, log_cap;
	int logging;
	/* mapping */
	void *map;
	size_t maplen;
	int mapped;               /* 1: mmap, 2: read into memory */
	uint64_t version;         /* changes whenever the model learns */
	struct buf ledger;        /* the ledger section (model_set_ledger) */
};

struct model_logent {
	uint32_t user, item;
	float w;
};

/* The options of the model, shared by reco-train and reco-eval. */
enum {
	MOPT_FIRST = 3000,
	MOPT_DIM = MOPT_FIRST, MOPT_NEIGHBOURS, MOPT_RECENT, MOPT_NEGATIVES,
	MOPT_LR, MOPT_REG, MOPT_INIT, MOPT_TYPE_W, MOPT_FORGET, MOPT_COOC_HL,
	MOPT_POP_HL, MOPT_TREND_HL, MOPT_SESSION_GAP, MOPT_MAX_USERS,
	MOPT_MAX_ITEMS, MOPT_SEED, MOPT_COOC_MEMORY, MOPT_SEEN_MAX,
	MOPT_CAT_ITEMS, MOPT_BLEND_BUDGET, MOPT_BLEND_LR, MOPT_EXCLUDE_SEEN,
	MOPT_CAT_ATTR, MOPT_SKNN_SESSIONS, MOPT_SKNN_SAMPLE, MOPT_SKNN_K,
	MOPT_SKNN_ITEMS, MOPT_WALK_STEPS, MOPT_WALK_WIDTH, MOPT_BRAND_ATTR,
	MOPT_PARAMS,
	MOPT_LAST = MOPT_PARAMS
};
extern const struct option model_options[]; /* ended by a zero entry */
extern const char model_usage[];

/* model.c */
void model_params_default(struct model_params *p);
const char *model_brand_attrs(const struct model_params *p);
int model_option(struct model_params *p, int c, const char *arg, char *err,
		 size_t errlen);
int model_params_merge(struct model_params *snap,
		       const struct model_params *cmd, char *err,
		       size_t errlen);
int model_retune(struct model *m, const struct model_params *cmd, char *err,
		 size_t errlen);
struct model *model_new(const struct model_params *p);
void model_free(struct model *m);
int model_learn(struct model *m, const struct event *ev);
void model_log_start(struct model *m);
void model_epoch(struct model *m);
size_t model_bytes(const struct model *m);

int model_save(const struct model *m, const char *path, char *err,
	       size_t errlen);
int model_write(const struct model *m, struct wout *o, char *err,
		size_t errlen);
enum { MODEL_MAP = 1 };
struct model *model_load(const char *path, int flags, char *err,
			 size_t errlen);
int model_section(const struct model *m, int k, const char **name,
		  uint64_t *off, uint64_t *size, uint32_t *crc);

uint64_t model_pair_key(uint64_t uh, uint64_t ih);
int model_seen_has(const struct model *m, uint64_t key);
int model_exclude_seen(const struct model *m);
void model_blend_default(struct model_blend *b);
extern const char *const model_seen_names[];

/* model.c: the ledger section */
void model_set_ledger(struct model *m, const void *p, size_t n);
const char *model_ledger(const struct model *m, size_t *n);

int64_t model_item_find(const struct model *m, const char *id, size_t n);
int64_t model_user_find(const struct model *m, const char *id, size_t n);
struct str model_item_id(const struct model *m, uint64_t i);
struct str model_user_id(const struct model *m, uint64_t u);
size_t model_user_recent(const struct model *m, uint64_t u, uint32_t *out,
			 size_t max);
double model_trend_factor(const struct model *m, double *pop_scale);
/* Categories that are communities found in the co-occurrence graph,
 * with items listed; the passes that found them are in st.comm_passes. */
uint64_t model_communities(const struct model *m);
/* The number of item i's community, or -1 if it is in none (it has a
 * category the events name, or none). */
int64_t model_item_community(const struct model *m, uint64_t i);

/* The most popular items of category c (an index), best first. */
static inline size_t
model_cat_items(const struct model *m, uint64_t c, const struct model_nb **l)
{
	if (m->cl) {
		*l = m->cl[c];
		return m->cl[c] ? m->cln[c] : 0;
	}
	if (!m->cloff)
		return 0;
	*l = m->clent + m->cloff[c];
	return (size_t)(m->cloff[c + 1] - m->cloff[c]);
}

/* Item i's list in L, best first. */
static inline size_t
model_list(const struct model_lists *L, uint64_t i, const struct model_nb **l)
{
	if (L->v) {
		*l = L->v[i].l;
		return L->v[i].l ? L->v[i].n : 0;
	}
	if (!L->off)
		return 0;
	*l = L->ent + L->off[i];
	return (size_t)(L->off[i + 1] - L->off[i]);
}

/* The co-occurrence neighbours of item i, best first. */
static inline size_t
model_neighbours(const struct model *m, uint64_t i, const struct model_nb **l)
{
	return model_list(&m->nb, i, l);
}

/* The items that came right after item i, best first. */
static inline size_t
model_successors(const struct model *m, uint64_t i, const struct model_nb **l)
{
	return model_list(&m->sq, i, l);
}

/*
 * The dot product of two rows of n floats (n a multiple of MODEL_ROW),
 * summed in 16 lanes that are added up in a fixed order, so that the
 * result is the same bits with or without SIMD. GCC 12 does not vectorise
 * a float reduction at -O2 (it would have to reorder the additions), so
 * the lanes are written with the vector extension of GCC and clang; other
 * compilers get the same order in plain C.
 */
#if defined(__GNUC__)
typedef float model_v4 __attribute__((vector_size(16)));

static inline float
model_dot(const float *a, const float *b, uint32_t n)
{
	model_v4 s0 = { 0 }, s1 = { 0 }, s2 = { 0 }, s3 = { 0 }, x, y;

	for (uint32_t k = 0; k < n; k += MODEL_ROW) {
		memcpy(&x, a + k, 16);
		memcpy(&y, b + k, 16);
		s0 += x * y;
		memcpy(&x, a + k + 4, 16);
		memcpy(&y, b + k + 4, 16);
		s1 += x * y;
		memcpy(&x, a + k + 8, 16);
		memcpy(&y, b + k + 8, 16);
		s2 += x * y;
		memcpy(&x, a + k + 12, 16);
		memcpy(&y, b + k + 12, 16);
		s3 += x * y;
	}
	s0 = (s0 + s2) + (s1 + s3);
	return (s0[0] + s0[2]) + (s0[1] + s0[3]);
}

/* p, q = p * keep + g * q, q * keep + g * p, lane by lane. */
static inline void
model_step(float *p, float *q, float g, float keep, uint32_t n)
{
	model_v4 x, y, nx, ny;

	for (uint32_t k = 0; k < n; k += 4) {
		memcpy(&x, p + k, 16);
		memcpy(&y, q + k, 16);
		nx = x * keep + g * y;
		ny = y * keep + g * x;
		memcpy(p + k, &nx, 16);
		memcpy(q + k, &ny, 16);
	}
}
#else
static inline float
model_dot(const float *a, const float *b, uint32_t n)
{
	float acc[MODEL_ROW] = { 0 }, t[4];

	for (uint32_t k = 0; k < n; k += MODEL_ROW)
		for (int j = 0; j < MODEL_ROW; j++)
			acc[j] += a[k + j] * b[k + j];
	for (int l = 0; l < 4; l++)
		t[l] = (acc[l] + acc[8 + l]) + (acc[4 + l] + acc[12 + l]);
	return (t[0] + t[2]) + (t[1] + t[3]);
}

static inline void
model_step(float *p, float *q, float g, float keep, uint32_t n)
{
	for (uint32_t k = 0; k < n; k++) {
		float x = p[k], y = q[k];
		p[k] = x * keep + g * y;
		q[k] = y * keep + g * x;
	}
}
#endif

/* Item i's factor row (stride floats, 64-byte aligned). */
static inline const float *
model_item_vec(const struct model *m, uint64_t i)
{
	return m->ifac + i * m->stride;
}

/* The 8-bit item factors: item i's row is scale[i] times its bytes,
 * each factor rounded to the nearest of 255 steps of the row's largest
 * magnitude; a block holds MODEL_Q8_BLOCK items, factor k of its item j
 * at [k * MODEL_Q8_BLOCK + j], so that a pass scores a block's items
 * side by side. A block is MODEL_Q8_BYTES: the rows' bytes, then at
 * MODEL_Q8_SCALES the items' scales (floats). */
#define MODEL_Q8_BLOCK 16
#define MODEL_Q8_SCALES(stride) ((size_t)MODEL_Q8_BLOCK * (size_t)(stride))
#define MODEL_Q8_BYTES(stride) (MODEL_Q8_SCALES(stride) + MODEL_Q8_BLOCK * sizeof(float))
void model_q8_block(const struct model *m, uint64_t b, unsigned char *out);

/* The key of user u's current session in the session index. */
static inline uint64_t
model_user_skey(const struct model *m, uint64_t u)
{
	return m->uskey[u] | 1;
}

/* A bfloat16 value as the float it is, and a float rounded to the
 * nearest bfloat16 (ties to even); the factors are finite and far from
 * the largest float, so the rounding never makes an infinity. */
static inline float
model_bf16_float(uint16_t h)
{
	uint32_t b = (uint32_t)h << 16;
	float f;

	memcpy(&f, &b, sizeof f);
	return f;
}

static inline uint16_t
model_bf16(float f)
{
	uint32_t b;

	memcpy(&b, &f, sizeof b);
	return (uint16_t)((b + 0x7fffu + (b >> 16 & 1)) >> 16);
}

/* Trainable user u's bfloat16 row widened into buf (stride floats). */
static inline float *
model_user_widen(const struct model *m, uint64_t u, float *buf)
{
	const uint16_t *h = m->ufac16 + u * m->stride;

	for (uint32_t k = 0; k < m->stride; k++)
		buf[k] = model_bf16_float(h[k]);
	return buf;
}

/* User u's factor row (stride floats): the mapped snapshot's own, or a
 * trainable model's widened into buf. */
static inline const float *
model_user_vec(const struct model *m, uint64_t u, float *buf)
{
	return m->ufac16 ? model_user_widen(m, u, buf) : m->ufac + u * m->stride;
}

#endif
