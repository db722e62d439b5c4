/* rank.h: candidate generation and blending: the items a model recommends to a user, the same code for reco-eval and reco-serve. */
#ifndef RANK_H
#define RANK_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Where a candidate comes from; also the reason given with a result. */
enum rank_src {
	RANK_MF,    /* the user's factors against every item's */
	RANK_COOC,  /* neighbours of the user's recent and context items */
	RANK_TREND, /* items whose recent rate is above their long-run rate */
	RANK_DPOP,  /* time-decayed popularity */
	RANK_POP,   /* popularity since the model began */
	RANK_SEEN,  /* the user's own recent items, the newest first */
	RANK_CAT,   /* the most popular items of the recent items' categories */
	RANK_SKNN,  /* items of past sessions like the current one */
	RANK_SEQ,   /* items that came right after the recent items */
	RANK_NEXT,  /* items that came right after the newest one alone */
	RANK_WALK,  /* where a few steps along the neighbour lists lead */
	RANK_NSRC
};
extern const char *const rank_src_names[RANK_NSRC];

/* How many candidates each source gives a blend, per result wanted: a
 * blend can lift an item that two sources rank fairly high. */
#define RANK_BLEND_DEPTH 3
#define RANK_WALK_LINKS 32 /* the walk follows an item's strongest links */

/* Blend weights, three per source: w[s] of its score scaled to [0, 1]
 * by its best, w[RANK_NSRC + s] of 1 / its rank (1 for its first), and
 * w[2 * RANK_NSRC + s] of its score as it is, s / (1 + s) (the strength
 * of its evidence); a source whose weights are all 0 is not asked. Then
 * one weight of the candidate's category matching one of the items the
 * request starts from (RANK_SAMECAT, of whatever source the candidate
 * came), and one of its brand matching one of theirs (RANK_SAMEBRAND). */
#define RANK_SAMECAT (3 * RANK_NSRC)
#define RANK_SAMEBRAND (3 * RANK_NSRC + 1)
#define RANK_NFEAT (3 * RANK_NSRC + 2)
/* The order of every list: higher score first; among equals, the lower
 * item index. */
static inline int
rank_better(float as, uint32_t ai, float bs, uint32_t bi)
{
	return as > bs || (as == bs && ai < bi);
}

/* The learned blend gives places RANK_TAIL_AT + 1 to RANK_TAIL_AT +
 * RANK_TAIL (18 to 20) of a list to the walk's best items that the
 * places before do not hold: the blend, trained to put the next item
 * first, fills the end of a list with more of what leads it, where items
 * a few steps away are likelier. */
#define RANK_TAIL_AT 17
#define RANK_TAIL 3
#define RANK_TAIL_MAX 1000 /* most places --weights' tail=N may give */

struct rank_weights {
	float w[RANK_NFEAT];
	unsigned tail;  /* places from RANK_TAIL_AT given to the walk */
};

/* A request. Items are model indices (model_item_find). */
struct rank_req {
	int64_t user;             /* the user's index, -1 if the model does
				   * not know the user (no MF candidates) */
	const uint32_t *recent;   /* the user's recent items, newest first */
	size_t nrecent;
	const uint32_t *context;  /* items of the page or cart */
	size_t ncontext;
	const uint32_t *exclude;  /* never recommended */
	size_t nexclude;
	size_t n;                 /* results wanted */
	struct rank_weights w;
	/* A business filter: an item is a candidate only if allow(ctx, item)
	 * returns non-zero; NULL lets every item through. It is asked only
	 * about items that would otherwise make a source's cut. */
	int (*allow)(const void *ctx, uint32_t item);
	const void *allow_ctx;
	/* Leave out every item of the (user, item) pairs the model has seen:
	 * user_hash is hash64 of the user's id (MODEL_ID_SEED). */
	int exclude_seen;
	uint64_t user_hash;
	/* The lists of a model that no longer changes (rank_index_new), or
	 * NULL: the same results, sooner. */
	const struct rank_index *ix;
};

struct rank_item {
	uint32_t item;
	float score;              /* the blended score */
	uint8_t reason;           /* the source that gave most of it */
};

/* What the last rank_top found out. */
struct rank_info {
	int cold;                 /* MF was asked for a user it does not know */
	size_t candidates;        /* candidates blended */
};

struct ranker;
struct rank_index;

/* rank.c */
int rank_weights_parse(struct rank_weights *w, const char *spec, char *err,
		       size_t errlen);
void rank_weights_hybrid(struct rank_weights *w);
int rank_weights_model(struct rank_weights *w, const struct model *m);
void rank_learn(struct model *m, uint64_t u, uint32_t target, uint64_t uh);
void rank_learn_free(struct model *m);
void rank_weights_only(struct rank_weights *w, int src);
int rank_src_parse(const char *name, size_t n);
struct ranker *ranker_new(void);
void ranker_free(struct ranker *r);
size_t rank_top(struct ranker *r, const struct model *m,
		const struct rank_req *q, struct rank_item *out);
unsigned rank_sources(const struct rank_weights *w);
void rank_gather(struct ranker *r, const struct model *m,
		 const struct rank_req *q, unsigned ask, size_t depth);
size_t rank_pick(struct ranker *r, const struct rank_weights *w, size_t n,
		 struct rank_item *out);
const struct rank_info *rank_last(const struct ranker *r);
struct rank_index *rank_index_new(const struct model *m, size_t depth);
void rank_index_free(struct rank_index *ix);

#endif
