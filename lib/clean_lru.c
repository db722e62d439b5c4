/* clean_lru.c: a bounded table of fixed-size records keyed by 64-bit hashes, evicting the least recently used. */
#include <stdlib.h>
#include <string.h>

#include "clean.h"

/* An empty table of at most max (1 to 2^32 - 2) records of rec_size bytes.
 * Memory grows with the records held, not with max. */
void
lru_init(struct lru *l, size_t max, size_t rec_size)
{
	memset(l, 0, sizeof *l);
	if (max < 1)
		max = 1;
	if (max > UINT32_MAX - 1)
		max = UINT32_MAX - 1;
	l->max = max;
	l->rec_size = rec_size;
	l->head = l->tail = LRU_NONE;
	htab_init(&l->h, 256);
}

/* Free the table; accepts NULL and a zeroed l. */
void
lru_free(struct lru *l)
{
	if (!l)
		return;
	if (l->h.keys)
		htab_free(&l->h);
	free(l->node);
	free(l->rec);
	memset(l, 0, sizeof *l);
	l->head = l->tail = LRU_NONE;
}

static void
unlink_node(struct lru *l, uint32_t i)
{
	struct lru_node *x = &l->node[i];

	if (x->prev != LRU_NONE)
		l->node[x->prev].next = x->next;
	else
		l->head = x->next;
	if (x->next != LRU_NONE)
		l->node[x->next].prev = x->prev;
	else
		l->tail = x->prev;
}

static void
push_front(struct lru *l, uint32_t i)
{
	struct lru_node *x = &l->node[i];

	x->prev = LRU_NONE;
	x->next = l->head;
	if (l->head != LRU_NONE)
		l->node[l->head].prev = i;
	l->head = i;
	if (l->tail == LRU_NONE)
		l->tail = i;
}

/*
 * Return the record of key, now the most recently used. A key not held gets
 * a zeroed record and *isnew = 1; if the table was full, the least recently
 * used record made room and *evicted = 1. The pointer is valid until the
 * next lru_get.
 */
void *
lru_get(struct lru *l, uint64_t key, int *isnew, int *evicted)
{
	uint32_t *v = htab_get(&l->h, key), i;

	*evicted = 0;
	if (v) {
		i = *v;
		*isnew = 0;
		if (l->head != i) {
			unlink_node(l, i);
			push_front(l, i);
		}
		return l->rec + (size_t)i * l->rec_size;
	}
	*isnew = 1;
	if (l->n == l->max) {
		i = l->tail;
		unlink_node(l, i);
		htab_del(&l->h, l->node[i].key);
		*evicted = 1;
	} else {
		if (l->n == l->cap) {
			size_t cap = l->cap ? l->cap * 2 : 256;
			if (cap > l->max)
				cap = l->max;
			l->node = xreallocarray(l->node, cap, sizeof *l->node);
			l->rec = xreallocarray(l->rec, cap, l->rec_size);
			l->cap = cap;
		}
		i = (uint32_t)l->n++;
	}
	l->node[i].key = key;
	int dummy;
	*htab_put(&l->h, key, &dummy) = i;
	push_front(l, i);
	memset(l->rec + (size_t)i * l->rec_size, 0, l->rec_size);
	return l->rec + (size_t)i * l->rec_size;
}

/* The least recently used record's index, or LRU_NONE. */
uint32_t
lru_oldest(const struct lru *l)
{
	return l->tail;
}

/* The index of the record used next after i, or LRU_NONE. */
uint32_t
lru_newer(const struct lru *l, uint32_t i)
{
	return l->node[i].prev;
}

/* The record at index i. */
void *
lru_rec(const struct lru *l, uint32_t i)
{
	return l->rec + (size_t)i * l->rec_size;
}

/* Bytes the table holds. */
size_t
lru_bytes(const struct lru *l)
{
	return htab_bytes(&l->h) + l->cap * (sizeof *l->node + l->rec_size);
}
