/* clean_dedupe.c: a de-duplication window: the keys of recent ids in arrival order, bounded by time and by count. */
#include <stdlib.h>
#include <string.h>

#include "clean.h"

/*
 * The set of keys: open addressing with linear probing and backward-shift
 * deletion, like htab but with no values, so that a lookup touches one
 * array (one cache miss on a large window, not two).
 */
static inline uint64_t
norm(uint64_t key)
{
	return key ? key : 1;
}

static void
set_alloc(struct dedupe *d, size_t cap)
{
	d->keys = xcalloc(cap, sizeof *d->keys);
	d->kcap = cap;
}

/* Insert key; return 1 if it was already there. */
static int
set_put(struct dedupe *d, uint64_t key)
{
	size_t mask, i;

	if ((d->nkeys + 1) * 2 > d->kcap) {
		uint64_t *old = d->keys;
		size_t ocap = d->kcap;
		set_alloc(d, ocap * 2);
		mask = d->kcap - 1;
		for (size_t j = 0; j < ocap; j++)
			if (old[j]) {
				for (i = old[j] & mask; d->keys[i]; i = (i + 1) & mask)
					;
				d->keys[i] = old[j];
			}
		free(old);
	}
	mask = d->kcap - 1;
	key = norm(key);
	for (i = key & mask; d->keys[i]; i = (i + 1) & mask)
		if (d->keys[i] == key)
			return 1;
	d->keys[i] = key;
	d->nkeys++;
	return 0;
}

static void
set_del(struct dedupe *d, uint64_t key)
{
	size_t mask = d->kcap - 1, i, j;

	key = norm(key);
	for (i = key & mask; d->keys[i]; i = (i + 1) & mask)
		if (d->keys[i] == key)
			break;
	if (!d->keys[i])
		return;
	for (j = (i + 1) & mask; d->keys[j]; j = (j + 1) & mask) {
		if (probe_moves_back(i, j, d->keys[j] & mask)) {
			d->keys[i] = d->keys[j];
			i = j;
		}
	}
	d->keys[i] = 0;
	d->nkeys--;
}

/* An empty window that holds at most max (at least 1) keys. Memory grows
 * with the keys held, not with max. */
void
dedupe_init(struct dedupe *d, size_t max)
{
	memset(d, 0, sizeof *d);
	d->max = max ? max : 1;
	set_alloc(d, 1024);
}

/* Free the window; accepts NULL and a zeroed d. */
void
dedupe_free(struct dedupe *d)
{
	if (!d)
		return;
	free(d->keys);
	free(d->ring);
	memset(d, 0, sizeof *d);
}

static void
forget_oldest(struct dedupe *d)
{
	set_del(d, d->ring[d->head].key);
	if (++d->head == d->cap)
		d->head = 0;
	d->n--;
}

static void
grow(struct dedupe *d)
{
	size_t cap = d->cap ? d->cap * 2 : 1024;
	struct dedupe_ent *ring;

	if (cap > d->max)
		cap = d->max;
	ring = xreallocarray(NULL, cap, sizeof *ring);
	for (size_t i = 0; i < d->n; i++)
		ring[i] = d->ring[(d->head + i) % d->cap];
	free(d->ring);
	d->ring = ring;
	d->cap = cap;
	d->head = 0;
}

/*
 * Return 1 if key is held. Else hold it with time ts and return 0; if the
 * window was full, the oldest key is forgotten to make room and *evicted is
 * set to 1 (else 0).
 */
int
dedupe_check(struct dedupe *d, uint64_t key, int64_t ts, int *evicted)
{
	*evicted = 0;
	if (set_put(d, key))
		return 1;
	if (d->n == d->max) {
		forget_oldest(d);
		*evicted = 1;
	}
	if (d->n == d->cap)
		grow(d);
	size_t i = d->head + d->n;
	if (i >= d->cap)
		i -= d->cap;
	d->ring[i].key = key;
	d->ring[i].ts = ts;
	d->n++;
	return 0;
}

/* Start loading the memory that a check of key will touch (a hint). */
void
dedupe_prefetch(const struct dedupe *d, uint64_t key)
{
	__builtin_prefetch(&d->keys[norm(key) & (d->kcap - 1)], 1);
}

/* Forget the keys at the old end whose time is before horizon; stop at the
 * first that is not (keys leave in arrival order). Return how many left. */
size_t
dedupe_expire(struct dedupe *d, int64_t horizon)
{
	size_t k = 0;

	while (d->n && d->ring[d->head].ts < horizon) {
		forget_oldest(d);
		k++;
	}
	/* The next key to leave is known: have its slot ready. */
	if (d->n)
		dedupe_prefetch(d, d->ring[d->head].key);
	return k;
}

/* The i-th key held, oldest first (0 <= i < d->n). */
const struct dedupe_ent *
dedupe_at(const struct dedupe *d, size_t i)
{
	size_t j = d->head + i;

	if (j >= d->cap)
		j -= d->cap;
	return &d->ring[j];
}

/* Bytes the window holds. */
size_t
dedupe_bytes(const struct dedupe *d)
{
	return d->kcap * sizeof *d->keys + d->cap * sizeof *d->ring;
}
