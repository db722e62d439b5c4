/* serve.h: recommendation requests and answers (reco.Request, reco.Response, reco-serve(5)) and the ranking of one request against a model snapshot and a profile. */
#ifndef SERVE_H
#define SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "reco.h"
#include "model.h"
#include "profile.h"
#include "rank.h"
#include "table.h"

#define SERVE_VERSION 1        /* of the request and response schemas */
#define SERVE_VARIANT_SEED 0x7265636f2d766172ULL /* hash64 seed: variants */
#define SERVE_MAX_FILTER 64    /* values of one filter list, at most */
#define SERVE_INDEX_DEPTH 4096 /* trending and popular items listed per snapshot,
				 * by default */

/* Limits on what a request may ask for. */
struct serve_limits {
	size_t max_n;          /* results */
	size_t max_id;         /* bytes of a user, item or request id */
	size_t max_items;      /* entries of the context and exclude lists */
};
void serve_limits_default(struct serve_limits *l);

/*
 * A model snapshot ready to serve: the mapped model, its version (the
 * CRC-32 of its header, so that the same file gives the same version
 * anywhere) and, with an item table, the attributes the business filters
 * read, one entry per model item. The snapshot is shared by reference
 * counting (refs); serve_snap_free frees it.
 */
struct serve_snap {
	struct model *m;
	char version[9];       /* 8 hex digits */
	uint64_t events;       /* events learned */
	int64_t clock;         /* the newest event time learned */
	uint64_t *cat, *brand; /* hash64 of the value, 0: none */
	float *price;          /* NaN: none */
	int8_t *stock;         /* 1 in stock, 0 not, -1 unknown */
	uint64_t attr_items;   /* model items found in the table */
	struct rank_index *ix; /* its lists that do not depend on the user */
	int refs;              /* atomic */
};

struct serve_snap *serve_snap_load(const char *path, const struct table *items,
				   size_t index_depth, char *err, size_t errlen);
void serve_snap_free(struct serve_snap *s);

/* A string of a request, in its arena. */
struct serve_str {
	uint32_t off, len;
};

/* A list of strings of a request. */
struct serve_list {
	struct serve_str *v;
	size_t n, cap;
};

/* A parsed request. Strings live in arena; serve_req_str reads one. */
struct serve_req {
	struct buf arena;
	int has_id, has_ts;
	struct serve_str id, user;
	size_t n;
	int64_t ts;
	struct serve_list context, exclude;
	struct serve_list cats, brands;  /* filter: any of these */
	int has_price_min, has_price_max;
	double price_min, price_max;
	int in_stock;                    /* -1: no filter */
	int strict;                      /* 503 rather than an answer
					  * without the profile */
	unsigned seen;                   /* URL parameters given, a bit
					  * each: a scalar once only */
};

static inline struct str
serve_req_str(const struct serve_req *q, struct serve_str s)
{
	struct str r = { q->arena.p ? q->arena.p + s.off : "", s.len };
	return r;
}

void serve_req_init(struct serve_req *q);
void serve_req_reset(struct serve_req *q);
void serve_req_free(struct serve_req *q);
int serve_req_parse_json(struct serve_req *q, const char *p, size_t n,
			 const struct serve_limits *l, char *err,
			 size_t errlen);
int serve_req_param(struct serve_req *q, const char *key, const char *val,
		    size_t valn, const struct serve_limits *l, char *err,
		    size_t errlen);
int serve_req_check(struct serve_req *q, size_t default_n, char *err,
		    size_t errlen);

/* What serve_rank does by default. */
struct serve_opts {
	struct rank_weights w;
	int weights_given;        /* w set by --weights; else the model's blend */
	int exclude_purchased;
	int exclude_cart;
	size_t default_n;
};
void serve_opts_default(struct serve_opts *o);

/* The outcome of one request. */
struct serve_result {
	struct rank_item *items;    /* n results, best first */
	size_t n;
	int cold;                   /* the model does not know the user */
	int profile;                /* the store had a profile of the user */
	int profile_unavailable;    /* the store could not be asked: answered
				     * without the profile */
	size_t unknown_context;     /* context items the model does not know */
	size_t candidates;
};

/* Per-thread scratch memory for serve_rank. */
struct serve_worker;
struct serve_worker *serve_worker_new(void);
void serve_worker_free(struct serve_worker *w);
void serve_begin(struct serve_worker *w, const struct serve_snap *s,
		 const struct profile *p, const struct serve_req *q,
		 const struct serve_opts *o, struct serve_result *r);
void serve_finish(struct serve_worker *w, const struct serve_snap *s,
		  const struct serve_req *q, const struct serve_opts *o,
		  struct serve_result *r);
void serve_rank(struct serve_worker *w, const struct serve_snap *s,
		const struct profile *p, const struct serve_req *q,
		const struct serve_opts *o, struct serve_result *r);

void serve_write_answer(struct buf *b, const struct serve_req *q,
			const char *id, const char *variant,
			const struct serve_snap *s,
			const struct serve_result *r);
void serve_write_error(struct buf *b, const char *id, size_t idn, int code,
		       const char *msg);
void serve_write_impressions(struct buf *b, const struct serve_req *q,
			     const char *id, const char *variant,
			     int64_t ts, const struct serve_snap *s,
			     const struct serve_result *r);
int serve_variant_bucket(const char *user, size_t n);

#endif
