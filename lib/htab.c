/* htab.c: open addressing with linear probing and backward-shift deletion, keyed by 64-bit hashes. */
#include <stdlib.h>
#include <string.h>

#include "reco.h"

static inline uint64_t
norm(uint64_t key)
{
	return key ? key : 1;
}

/* An empty table sized for about hint entries. */
void
htab_init(struct htab *h, size_t hint)
{
	size_t cap = 16;

	while (cap < hint * 2)
		cap *= 2;
	h->cap = cap;
	h->n = 0;
	h->keys = xcalloc(cap, sizeof *h->keys);
	h->vals = xcalloc(cap, sizeof *h->vals);
}

void
htab_free(struct htab *h)
{
	if (!h)
		return;
	free(h->keys);
	free(h->vals);
	h->keys = NULL;
	h->vals = NULL;
	h->cap = h->n = 0;
}

/* Bytes the table holds. */
size_t
htab_bytes(const struct htab *h)
{
	return h->cap * (sizeof *h->keys + sizeof *h->vals);
}

/* The value of key, or NULL. */
uint32_t *
htab_get(const struct htab *h, uint64_t key)
{
	size_t mask = h->cap - 1, i;

	key = norm(key);
	for (i = key & mask; h->keys[i]; i = (i + 1) & mask)
		if (h->keys[i] == key)
			return &h->vals[i];
	return NULL;
}

static void
grow(struct htab *h)
{
	struct htab g;

	htab_init(&g, h->cap);
	for (size_t i = 0; i < h->cap; i++)
		if (h->keys[i]) {
			int isnew;
			*htab_put(&g, h->keys[i], &isnew) = h->vals[i];
		}
	htab_free(h);
	*h = g;
}

/* The value slot of key, inserted (value 0, *isnew set) if absent. The
 * pointer is valid until the next put or del. */
uint32_t *
htab_put(struct htab *h, uint64_t key, int *isnew)
{
	size_t mask, i;

	if ((h->n + 1) * 4 > h->cap * 3)
		grow(h);
	mask = h->cap - 1;
	key = norm(key);
	for (i = key & mask; h->keys[i]; i = (i + 1) & mask)
		if (h->keys[i] == key) {
			*isnew = 0;
			return &h->vals[i];
		}
	h->keys[i] = key;
	h->vals[i] = 0;
	h->n++;
	*isnew = 1;
	return &h->vals[i];
}

/* Remove key; return 1 if it was there. Later entries of the probe run
 * shift back, so no tombstones accumulate. */
int
htab_del(struct htab *h, uint64_t key)
{
	size_t mask = h->cap - 1, i, j;

	key = norm(key);
	for (i = key & mask; h->keys[i]; i = (i + 1) & mask)
		if (h->keys[i] == key)
			break;
	if (!h->keys[i])
		return 0;
	for (j = (i + 1) & mask; h->keys[j]; j = (j + 1) & mask) {
		if (probe_moves_back(i, j, h->keys[j] & mask)) {
			h->keys[i] = h->keys[j];
			h->vals[i] = h->vals[j];
			i = j;
		}
	}
	h->keys[i] = 0;
	h->n--;
	return 1;
}
