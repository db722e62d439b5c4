/* clean_reorder.c: a reorder buffer of Avro-encoded events, leaving in (event time, arrival) order: a FIFO for events in order, a min-heap for the rest. */
#include <stdlib.h>
#include <string.h>

#include "clean.h"

#define SLOT_KEEP 4096 /* bytes a free slot may keep for reuse */

static inline int
before(const struct reorder_ent *a, const struct reorder_ent *b)
{
	return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

/* An empty buffer. */
void
reorder_init(struct reorder *r)
{
	memset(r, 0, sizeof *r);
}

/* Free every slot; r may be reused after reorder_init. Accepts a zeroed r. */
void
reorder_free(struct reorder *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nslots; i++)
		buf_free(&r->slots[i]);
	free(r->slots);
	free(r->free);
	free(r->heap);
	free(r->fifo);
	memset(r, 0, sizeof *r);
}

static uint32_t
take_slot(struct reorder *r)
{
	if (r->nfree)
		return r->free[--r->nfree];
	/* Slots and the free list grow together: a freed slot always has
	 * room in the free list. */
	if ((r->nslots & (r->nslots - 1)) == 0) {
		size_t cap = r->nslots ? r->nslots * 2 : 64;
		r->slots = xreallocarray(r->slots, cap, sizeof *r->slots);
		memset(r->slots + r->nslots, 0,
		       (cap - r->nslots) * sizeof *r->slots);
		r->free = xreallocarray(r->free, cap, sizeof *r->free);
	}
	return (uint32_t)r->nslots++;
}

static void
heap_add(struct reorder *r, struct reorder_ent e)
{
	size_t i;

	if (r->nheap == r->heapcap) {
		r->heapcap = r->heapcap ? r->heapcap * 2 : 64;
		r->heap = xreallocarray(r->heap, r->heapcap, sizeof *r->heap);
	}
	for (i = r->nheap++; i > 0; ) {
		size_t up = (i - 1) / 2;
		if (!before(&e, &r->heap[up]))
			break;
		r->heap[i] = r->heap[up];
		i = up;
	}
	r->heap[i] = e;
}

static struct reorder_ent
heap_take(struct reorder *r)
{
	struct reorder_ent top = r->heap[0], last = r->heap[--r->nheap];
	size_t i, n = r->nheap;

	for (i = 0;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && before(&r->heap[c + 1], &r->heap[c]))
			c++;
		if (!before(&r->heap[c], &last))
			break;
		r->heap[i] = r->heap[c];
		i = c;
	}
	if (n)
		r->heap[i] = last;
	return top;
}

static inline struct reorder_ent *
fifo_at(const struct reorder *r, size_t i)
{
	size_t j = r->fhead + i;

	return &r->fifo[j >= r->fcap ? j - r->fcap : j];
}

/* Events that come in order (the most) queue in the FIFO, in O(1); the
 * others go to the heap. Both are sorted by (ts, seq), so the earliest
 * event is the earlier of the two heads. */
static void
add(struct reorder *r, int64_t ts, uint64_t seq, uint32_t slot, int plain)
{
	struct reorder_ent e = { ts, seq, slot, (uint32_t)plain };

	r->n++;
	if (r->nfifo && before(&e, fifo_at(r, r->nfifo - 1))) {
		heap_add(r, e);
		return;
	}
	if (r->nfifo == r->fcap) {
		size_t cap = r->fcap ? r->fcap * 2 : 64;
		struct reorder_ent *f = xreallocarray(NULL, cap, sizeof *f);
		for (size_t i = 0; i < r->nfifo; i++)
			f[i] = *fifo_at(r, i);
		free(r->fifo);
		r->fifo = f;
		r->fcap = cap;
		r->fhead = 0;
	}
	*fifo_at(r, r->nfifo++) = e;
}

/* The earliest entry: 0 from the FIFO, 1 from the heap, -1 if empty. */
static int
first(const struct reorder *r)
{
	if (r->nfifo && (!r->nheap || before(&r->fifo[r->fhead], &r->heap[0])))
		return 0;
	return r->nheap ? 1 : -1;
}

/* Hold a copy of ev under arrival number seq. The caller keeps the buffer
 * under 2^32 events. Dies (status 3, xmalloc) only when memory is exhausted. */
void
reorder_push(struct reorder *r, const struct event *ev, uint64_t seq)
{
	uint32_t s = take_slot(r);

	/* A slot keeps its buffer for the next event, unless a big event
	 * made it big: memory follows the events held, not the largest
	 * events ever seen. */
	if (r->slots[s].cap > SLOT_KEEP)
		buf_free(&r->slots[s]);
	r->slots[s].n = 0;
	avro_encode_event(&r->slots[s], ev);
	r->bytes += r->slots[s].n;
	add(r, ev->ts, seq, s, ev->canon.p != NULL);
}

/* Hold the encoded event p[0..n) (as reorder_bytes gave it) with time ts.
 * Return 0, or -1 if p is not an event of time ts (nothing is held then). */
int
reorder_push_raw(struct reorder *r, int64_t ts, uint64_t seq, const char *p,
		 size_t n)
{
	struct event ev;
	size_t used;
	int ok;

	event_init(&ev);
	ok = avro_decode_event(p, n, &used, &ev) == 0 && used == n &&
	     ev.ts == ts;
	event_free(&ev);
	if (!ok)
		return -1;
	uint32_t s = take_slot(r);
	if (r->slots[s].cap > SLOT_KEEP)
		buf_free(&r->slots[s]);
	r->slots[s].n = 0;
	buf_put(&r->slots[s], p, n);
	r->bytes += n;
	add(r, ts, seq, s, 0);
	return 0;
}

/* Return 1 and the earliest time held in *ts, or 0 if the buffer is empty. */
int
reorder_peek(const struct reorder *r, int64_t *ts)
{
	switch (first(r)) {
	case 0:
		*ts = r->fifo[r->fhead].ts;
		return 1;
	case 1:
		*ts = r->heap[0].ts;
		return 1;
	}
	return 0;
}

/*
 * Take the earliest event out into ev (and its arrival number into seq, if
 * not NULL). ev's strings point into the buffer and stay valid until the
 * next push. Return 1, 0 if the buffer is empty, or -1 if the bytes held
 * do not decode (which reorder_push and reorder_push_raw never let in).
 */
int
reorder_pop(struct reorder *r, struct event *ev, uint64_t *seq)
{
	struct reorder_ent top;
	size_t used;

	switch (first(r)) {
	case 0:
		top = r->fifo[r->fhead];
		if (++r->fhead == r->fcap)
			r->fhead = 0;
		r->nfifo--;
		break;
	case 1:
		top = heap_take(r);
		break;
	default:
		return 0;
	}
	r->n--;
	r->free[r->nfree++] = top.slot;
	r->bytes -= r->slots[top.slot].n;
	if (seq)
		*seq = top.seq;
	if (avro_decode_event(r->slots[top.slot].p, r->slots[top.slot].n, &used,
			      ev))
		return -1;
	if (top.plain) {
		/* Its strings, in the slot, are written as they are. */
		ev->clean_lo = r->slots[top.slot].p;
		ev->clean_hi = r->slots[top.slot].p + r->slots[top.slot].n;
	}
	return 1;
}

/* The i-th entry held (0 <= i < r->n), in no particular order, and its
 * encoded bytes in *bytes. */
const struct reorder_ent *
reorder_at(const struct reorder *r, size_t i, struct str *bytes)
{
	const struct reorder_ent *e = i < r->nfifo ? fifo_at(r, i)
						   : &r->heap[i - r->nfifo];
	const struct buf *b = &r->slots[e->slot];

	bytes->p = b->p;
	bytes->n = b->n;
	return e;
}
