/* clean.h: bounded windows for stream cleaning: a reorder buffer, a de-duplication window and an LRU table. */
#ifndef RECO_CLEAN_H
#define RECO_CLEAN_H

#include <stddef.h>
#include <stdint.h>

#include "reco.h"

/* clean_reorder.c: events held back until the watermark passes them, put
 * out in (ts, seq) order: equal times leave in the order of seq. Events
 * that come in order queue in a FIFO, the others in a min-heap. Each held
 * event is kept Avro-encoded in a slot whose buffer is reused, so that a
 * warm buffer does not allocate. */
struct reorder_ent {
	int64_t ts;
	uint64_t seq;
	uint32_t slot;
	uint32_t plain;           /* the event was read in the canonical form:
				   * no string of it needs escaping in JSON */
};
struct reorder {
	size_t n;                 /* events held */
	struct reorder_ent *fifo; /* a ring, sorted by (ts, seq) */
	size_t fhead, nfifo, fcap;
	struct reorder_ent *heap; /* a binary min-heap by (ts, seq) */
	size_t nheap, heapcap;
	struct buf *slots;        /* encoded events, by slot */
	uint32_t *free;           /* free slots, last freed first */
	size_t nslots, nfree;
	size_t bytes;             /* encoded bytes held */
};
void reorder_init(struct reorder *r);
void reorder_push(struct reorder *r, const struct event *ev, uint64_t seq);
int reorder_push_raw(struct reorder *r, int64_t ts, uint64_t seq,
		     const char *p, size_t n);
int reorder_peek(const struct reorder *r, int64_t *ts);
int reorder_pop(struct reorder *r, struct event *ev, uint64_t *seq);
const struct reorder_ent *reorder_at(const struct reorder *r, size_t i,
				     struct str *bytes);
void reorder_free(struct reorder *r);

/* clean_dedupe.c: the 64-bit keys (hashes of ids) seen recently, with the
 * event time of each, forgotten in arrival order once older than a horizon
 * or when more than max are held. */
struct dedupe_ent {
	uint64_t key;
	int64_t ts;
};
struct dedupe {
	uint64_t *keys;           /* the keys held, a hash set (0 is empty) */
	size_t kcap, nkeys;
	struct dedupe_ent *ring;  /* the keys in arrival order */
	size_t cap, head, n, max;
};
void dedupe_init(struct dedupe *d, size_t max);
int dedupe_check(struct dedupe *d, uint64_t key, int64_t ts, int *evicted);
void dedupe_prefetch(const struct dedupe *d, uint64_t key);
size_t dedupe_expire(struct dedupe *d, int64_t horizon);
const struct dedupe_ent *dedupe_at(const struct dedupe *d, size_t i);
size_t dedupe_bytes(const struct dedupe *d);
void dedupe_free(struct dedupe *d);

/* clean_lru.c: at most max fixed-size records keyed by 64-bit hashes; a
 * new key past max takes the place of the least recently used one. */
#define LRU_NONE UINT32_MAX
struct lru_node {
	uint64_t key;
	uint32_t prev, next;      /* towards the newer and the older end */
};
struct lru {
	struct htab h;            /* key -> node index */
	struct lru_node *node;
	char *rec;                /* rec_size bytes per node */
	size_t rec_size, n, cap, max;
	uint32_t head, tail;      /* most and least recently used */
};
void lru_init(struct lru *l, size_t max, size_t rec_size);
void *lru_get(struct lru *l, uint64_t key, int *isnew, int *evicted);
uint32_t lru_oldest(const struct lru *l);
uint32_t lru_newer(const struct lru *l, uint32_t i);
void *lru_rec(const struct lru *l, uint32_t i);
size_t lru_bytes(const struct lru *l);
void lru_free(struct lru *l);

#endif
