/* sknn.h: session-based nearest neighbours (V-SKNN and STAN), bounded, incremental and deterministic. */
#ifndef SKNN_H
#define SKNN_H

#include <stddef.h>
#include <stdint.h>

/*
 * Past sessions live in a ring of `sessions` slots (the oldest session goes
 * first); each keeps its `items` most recent items. An index maps every item
 * to the `per_item` most recent sessions that contain it. A request scores
 * the past sessions that share an item with the current session (position
 * decay w1 on the current session, optional IDF on the shared item and
 * cosine normalisation, time decay w2 of the neighbour), keeps the k most
 * similar, and scores their items by similarity times w3, the decay with
 * the distance to the neighbour's most recent shared item.
 *
 * Memory (sknn_bytes counts it): per session, a slot of 24 bytes
 * (allocated as the ring fills, doubling), 4 bytes per item it holds (in
 * pools of blocks of each size) and 5 to 11 bytes of the key table; per
 * item, 16 bytes and 4 bytes per indexed session (lists grown on demand,
 * at most per_item entries and at most 4 slots per entry). Measured
 * (sknn-check --synth): 1M sessions of 2 to 9 items over 1M items take
 * 104 MB (155 MB when every slot had room for 16 items and the keys were
 * a struct htab); the default 200000 sessions over the same items 43 MB
 * (54 MB); the 183647 sessions of 45000 items of a 1M-event reco-gen
 * stream (--regime sessions --items 50000) 13.0 MB, 71 bytes per session
 * all told (14.6 MB with slots of 32 bytes, 24.2 MB before the pools).
 *
 * Use: sknn_add(s, key, item, ts) for every learned item event, key a hash
 * of the user and the session (a new key per session, also when sessions
 * are cut by inactivity); sknn_score with that session's items, newest
 * first, and self = its key; the callback gets every candidate, so the
 * caller drops what it excludes before it cuts its top N. Current-session
 * items come back too and should not be dropped wholesale: revisits are
 * frequent (dropping them cost a third of HR@20 on the real stream).
 * sknn_remap after the model renumbers its items; the blob goes into the
 * snapshot and sknn_blob_read takes the model's item count.
 *
 * Threads: sknn_score only reads the index, so several threads may score at
 * once, each with its own scratch, as long as no sknn_add, sknn_remap or
 * sknn_free runs meanwhile.
 */
struct sknn_params {
	uint32_t sessions;   /* past sessions kept (a ring; the oldest go first) */
	uint32_t per_item;   /* most recent sessions indexed per item (V-SKNN's
			      * sample m), at most SKNN_MAX_PER_ITEM */
	uint32_t items;      /* items kept per session (the most recent), at
			      * most SKNN_MAX_ITEMS; also the most items of the
			      * current session a request uses */
	uint32_t k;          /* neighbour sessions used per request */
	float l1;            /* STAN λ1: position decay in the current session
			      * (items); 0 = none */
	int64_t l2;          /* STAN λ2: time decay of neighbour sessions (ms);
			      * 0 = none */
	float l3;            /* STAN λ3: position decay inside a neighbour
			      * (items); 0 = none */
	float idf;           /* weight of a shared item in the similarity:
			      * 1 + idf * log(sessions seen / sessions with the
			      * item); 0 = V-SKNN/STAN's plain count */
	int norm;            /* 1: cosine, divide the similarity by the square
			      * root of the neighbour's length (STAN); 0: the
			      * plain dot product (V-SKNN) */
};

#define SKNN_MAX_ITEMS 255
#define SKNN_MAX_PER_ITEM 65535
#define SKNN_MAX_SESSIONS 1000000000u
#define SKNN_MAX_K 100000

struct sknn;
struct sknn_scratch;

struct sknn_stats {
	uint64_t sessions;         /* sessions started */
	uint64_t sessions_evicted; /* sessions pushed out of the ring */
	uint64_t index_evicted;    /* live index entries pushed out of an
				    * item's list by a newer session */
	uint64_t items_dropped;    /* items pushed out of a session (full) */
	uint64_t adds;             /* sknn_add calls */
	uint64_t repeats;          /* adds of the session's last item, ignored */
	uint64_t live;             /* sessions in the ring now */
	uint64_t items;            /* item index entries (items known) */
	uint64_t entries;          /* index entries, stale ones included */
	uint64_t remapped_out;     /* items dropped by sknn_remap */
};

/* sknn.c */
void sknn_params_default(struct sknn_params *p);
int sknn_params_check(const struct sknn_params *p, char *err, size_t errlen);
int sknn_params_parse(struct sknn_params *p, const char *spec, char *err,
		      size_t errlen);
struct sknn *sknn_new(const struct sknn_params *p);
void sknn_free(struct sknn *s);
const struct sknn_params *sknn_get_params(const struct sknn *s);
int sknn_retune(struct sknn *s, const struct sknn_params *p, char *err,
		size_t errlen);
void sknn_add(struct sknn *s, uint64_t key, uint32_t item, int64_t ts);
/* Ask for the memory sknn_add(s, key, item, ...) will read first (a
 * cache miss): the item's entry in the index. */
void sknn_prefetch(const struct sknn *s, uint32_t item);
void sknn_remap(struct sknn *s, const uint32_t *newidx, uint64_t n);

struct sknn_scratch *sknn_scratch_new(void);
void sknn_scratch_free(struct sknn_scratch *sc);
typedef void (*sknn_fn)(void *ctx, uint32_t item, float score);
size_t sknn_score(const struct sknn *s, struct sknn_scratch *sc,
		  const uint32_t *cur, size_t ncur, int64_t now, uint64_t self,
		  uint32_t nitems, sknn_fn fn, void *ctx);

size_t sknn_blob_size(const struct sknn *s);
typedef void (*sknn_put_fn)(void *ctx, const void *p, size_t n);
void sknn_blob_emit(const struct sknn *s, sknn_put_fn put, void *ctx);
void sknn_blob_write(const struct sknn *s, unsigned char *out);
struct sknn *sknn_blob_read(const unsigned char *p, size_t n, uint32_t nitems,
			    char *err, size_t errlen);
void sknn_stats(const struct sknn *s, struct sknn_stats *st);
size_t sknn_bytes(const struct sknn *s);

#endif
