/* profile.h: reco.Profile, the per-user profile: update rules, JSON and the compact binary form. */
#ifndef PROFILE_H
#define PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "reco.h"

#define PROFILE_VERSION 1

/* schema_text.c (generated from schema/): the profile schemas, as text. */
extern const char profile_avsc[];
extern const char profile_json_schema[];

/* How interaction counts are damped into a profile's activity. */
enum { PNORM_LOG, PNORM_PERCENTILE, PNORM_NONE };

/* The update rules; profile_opts_default sets the documented defaults. */
struct profile_opts {
	double weight[ET_NTYPES]; /* score of one interaction, by type */
	int64_t half_life;        /* ms; 0: scores do not decay */
	uint32_t max_items, max_categories, max_brands;
	uint32_t history;         /* recent events kept */
	uint32_t max_cart, max_purchases;
	int64_t session_gap;      /* ms, for events without a session */
	int count_norm;           /* PNORM_* */
	int purchase_clears_cart; /* a purchase empties the whole cart */
	char **category_attrs;    /* attrs naming the category, first found wins */
	size_t ncategory_attrs;
	char **brand_attrs;
	size_t nbrand_attrs;
};
void profile_opts_default(struct profile_opts *o);

/* A string in a profile's arena (p->strs). */
struct pstr {
	uint32_t off, len;
};

/* An item, category or brand with its time-decayed score. */
struct pscore {
	struct pstr key;
	uint32_t hash;  /* of the key, to find it fast */
	uint32_t n;     /* interactions */
	double score;   /* decayed to the profile's last_seen */
	int64_t last;   /* time of the last interaction */
};

struct pcart {
	struct pstr item;
	uint32_t hash;
	int has_price;
	int64_t qty, ts;
	double price;
};

struct pbuy {
	struct pstr item;
	int has_price;
	int64_t qty, ts;
	double price;
};

struct phist {
	int64_t ts;
	int type;
	struct pstr item, query; /* len 0: none */
};

/* Growing arrays of n entries (cap allocated). */
struct pscores {
	struct pscore *v;
	uint32_t n, cap;
};
struct pcarts {
	struct pcart *v;
	uint32_t n, cap;
};
struct pbuys {
	struct pbuy *v;
	uint32_t n, cap;
};
struct phists {
	struct phist *v;
	uint32_t n, cap;
};

/*
 * A profile. Every string lives in the arena strs; read one with
 * profile_str. Score lists are in no particular order until a writer
 * (profile_sort) sorts them by score.
 */
struct profile {
	struct pstr user, last_session, source;
	int has_session, has_source;
	int64_t first_seen, last_seen, half_life;
	uint64_t events, sessions;
	uint64_t counts[ET_NTYPES];
	double activity;
	struct pscores items, cats, brands;
	struct pcarts cart;
	struct pbuys buys;
	struct phists hist;        /* a ring: the oldest at hist_head */
	uint32_t hist_head;
	char *strs;
	uint32_t nstrs, capstrs, garbage;
};

static inline struct str
profile_str(const struct profile *p, struct pstr s)
{
	struct str r = { p->strs ? p->strs + s.off : "", s.len };
	return r;
}

/*
 * The population of users by their number of events, for the percentile
 * normalisation (counts up to 128 exactly, then 16 buckets per power of
 * two). A Fenwick tree, so that an update and a rank cost O(log buckets).
 */
#define PSTATS_BUCKETS 1056
struct profile_stats {
	uint64_t users;
	uint64_t tree[PSTATS_BUCKETS + 1];
};

/* profile.c */
struct profile *profile_new(const char *user, size_t n);
void profile_free(struct profile *p);
void profile_reset(struct profile *p, const char *user, size_t n);
int profile_apply(struct profile *p, const struct event *ev,
		  const struct profile_opts *o, struct profile_stats *st);
void profile_sort(struct profile *p);
size_t profile_bytes(const struct profile *p);
int profile_user_cmp(const struct profile *a, const struct profile *b);

void profile_write_json(struct buf *b, struct profile *p);
int profile_parse_json(struct profile *p, const char *s, size_t n, char *err,
		       size_t errlen);
void profile_encode(struct buf *b, struct profile *p);
void profile_pack(struct buf *b, struct profile *p);
int profile_decode(struct profile *p, const char *s, size_t n, char *err,
		   size_t errlen);
/* The first byte of profile_pack's form: a string length of -1 (zigzag),
 * which no reco.Profile encoding starts with. */
#define PROFILE_PACKED 0x01

void profile_stats_add(struct profile_stats *st, uint64_t events, int delta);
double profile_stats_percentile(const struct profile_stats *st,
				uint64_t events);
void profile_stats_encode(struct buf *b, const struct profile_stats *st);
int profile_stats_decode(struct profile_stats *st, const char *s, size_t n);

/* Avro object container files of profiles: written with lib/avro.c's
 * avro_out_new_schema(w, codec, profile_avsc) and profile_encode; read with
 * the reader below. */
struct profile_avro_in;
struct profile_avro_in *profile_avro_in_open(struct src *s, char *err,
					     size_t errlen);
int profile_avro_in_next(struct profile_avro_in *a, struct profile *p,
			 char *err, size_t errlen);
void profile_avro_in_free(struct profile_avro_in *a);

#endif
