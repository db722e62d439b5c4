/* sknn.c: session-based nearest neighbours (V-SKNN, STAN): a ring of past sessions, an item index of recent sessions, scoring and snapshots. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"
#include "sknn.h"

/*
 * Sessions are numbered by a serial that grows by one per new session and
 * wraps at a multiple of the ring size, so that a session's slot is always
 * serial % sessions. The item index holds serials: an entry is stale when
 * its slot has since been given to a newer session (the slot's serial
 * differs), and is then skipped, and dropped when the item's list grows.
 */

struct slot {
	uint64_t key;    /* the session's key */
	uint32_t ts;     /* its latest event time, in whole seconds (ts_sec) */
	uint32_t serial;
	uint32_t blk;    /* the block of its items in pool cls */
	uint16_t n;      /* items held, oldest first in the item block */
	uint8_t used;    /* 0: never used */
	uint8_t cls;     /* the block's room (its pool), 0: no block */
};

/* A slot's time: an event time (ms) in whole seconds since 1970, held
 * in 4 bytes (24 a slot, not 32), which λ2's decay over minutes or days
 * does not miss; times before 1970 or after 2106 hold the nearest end. */
static uint32_t
ts_sec(int64_t ms)
{
	if (ms <= 0)
		return 0;
	return ms / 1000 >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)(ms / 1000);
}

/*
 * A session's items live in a block of the pool of its size: pool c
 * hands out blocks of c items, POOL_CHUNK blocks to a chunk, and keeps
 * the ones given back in a list threaded through their first item. A
 * session that gains an item moves to the next pool, so that a session
 * costs 4 bytes per item it holds and not the room of the longest one
 * (sessions of a shop hold 5 items in the mean, 16 at most).
 */
#define POOL_CHUNK 256

struct pool {
	uint32_t **chunk;
	uint32_t nchunk;
	uint32_t used;   /* blocks handed out from the chunks, freed or not */
	uint32_t free;   /* the first block given back + 1, 0: none */
};

struct iidx {
	uint32_t *e;     /* serials of the sessions with the item, oldest first */
	uint16_t n, cap;
	uint32_t df;     /* sessions that ever held the item (saturating) */
};

struct sknn {
	struct sknn_params p;
	struct slot *slot;
	struct pool pool[SKNN_MAX_ITEMS + 1];
	uint64_t pooled;     /* bytes of the pools' chunks */
	uint32_t nslot;      /* slots in the used region (grows to sessions) */
	uint32_t capslot;
	uint32_t next;       /* serial of the next session */
	uint32_t wrap;       /* serials lie in [0, wrap) */
	uint64_t smod;       /* 2^64 / sessions, rounded up: slot_of */
	/* The live sessions by key: slot + 1, 0 empty, in kcap places (a
	 * power of two) probed from the mixed key (the key is the slot's:
	 * 4 bytes a place, not the 12 of a struct htab). */
	uint32_t *kslot;
	uint32_t kcap, kn;
	struct iidx *idx;
	uint32_t nidx, capidx;
	uint64_t entries;    /* index entries, stale ones included */
	uint64_t ecap;       /* index entries allocated */
	uint64_t live;
	struct sknn_stats st;
	float w1[SKNN_MAX_ITEMS];     /* position decay in the current session */
	float w3[SKNN_MAX_ITEMS + 2]; /* decay with the distance in a neighbour */
};

/*
 * The defaults, measured with tests/tools/sknn-check (prequential HR@20 and
 * MRR@20 on a real retail clickstream and on reco-gen streams of several
 * seeds and shapes). The real stream rewards order (a current-session
 * decay, λ1 4 items, and a decay with the distance inside a neighbour, λ3
 * 12 items); the generated sessions are unordered bags and are hurt by
 * sharper decays, so both stay gentle. V-SKNN's plain dot product beat the
 * cosine and IDF did not help on either; a time decay λ2 only hurt (the
 * ring already forgets). k 100 and 100 sessions per item: k 200 gained
 * under 0.005 HR@20 for twice the scoring time, 50 per item lost 0.003.
 * 200000 sessions: on a 300000-event stream 50000 lost 0.019 HR@20.
 */
void
sknn_params_default(struct sknn_params *p)
{
	memset(p, 0, sizeof *p);
	p->sessions = 200000;
	p->per_item = 100;
	p->items = 16;
	p->k = 100;
	p->l1 = 4;
	p->l2 = 0;
	p->l3 = 12;
	p->idf = 0;
	p->norm = 0;
}

/* Return 0 if p is usable, else -1 with the reason in err. */
int
sknn_params_check(const struct sknn_params *p, char *err, size_t errlen)
{
	const char *why = NULL;

	if (p->sessions < 1 || p->sessions > SKNN_MAX_SESSIONS)
		why = "sessions must be 1 to 1000000000";
	else if (p->per_item < 1 || p->per_item > SKNN_MAX_PER_ITEM)
		why = "per_item must be 1 to 65535";
	else if (p->items < 1 || p->items > SKNN_MAX_ITEMS)
		why = "items must be 1 to 255";
	else if (p->k < 1 || p->k > SKNN_MAX_K)
		why = "k must be 1 to 100000";
	else if (!(p->l1 >= 0 && p->l1 <= 1e9f))
		why = "l1 must be 0 to 1e9";
	else if (p->l2 < 0)
		why = "l2 must not be negative";
	else if (!(p->l3 >= 0 && p->l3 <= 1e9f))
		why = "l3 must be 0 to 1e9";
	else if (!(p->idf >= 0 && p->idf <= 1e6f))
		why = "idf must be 0 to 1e6";
	else if (p->norm != 0 && p->norm != 1)
		why = "norm must be 0 or 1";
	if (!why)
		return 0;
	snprintf(err, errlen, "sknn: %s", why);
	return -1;
}

static const char *const settings[] = {
	"sessions", "per_item", "items", "k", "l1", "l2", "l3", "idf", "norm"
};
#define NSETTINGS (int)(sizeof settings / sizeof settings[0])

/*
 * Set the fields of p named in spec, "name=value,..." with the names
 * sessions, per_item, items, k, l1, l2, l3, idf and norm (l2 a duration:
 * 30m, 1d, 0 for none). The others keep their values. Returns 0, or -1 with
 * the reason in err (p may then be partly set); the result is then checked
 * by sknn_params_check.
 */
int
sknn_params_parse(struct sknn_params *p, const char *spec, char *err,
		  size_t errlen)
{
	const char *q = spec;

	while (*q) {
		const char *e = strchr(q, ','), *eq = strchr(q, '=');
		size_t n = e ? (size_t)(e - q) : strlen(q);
		char name[16], val[32], *end;
		if (!eq || eq > q + n || (size_t)(eq - q) >= sizeof name ||
		    n - (size_t)(eq - q) - 1 >= sizeof val) {
			snprintf(err, errlen, "sknn: \"%.*s\" is not name=value", (int)n, q);
			return -1;
		}
		memcpy(name, q, (size_t)(eq - q));
		name[eq - q] = '\0';
		memcpy(val, eq + 1, n - (size_t)(eq - q) - 1);
		val[n - (size_t)(eq - q) - 1] = '\0';
		double v = strtod(val, &end);
		int num = val[0] && !*end && v >= 0 && v <= 4e9;
		int whole = num && v == (double)(uint32_t)v, which;
		for (which = 0; which < NSETTINGS && strcmp(name, settings[which]); which++)
			;
		switch (which) {
		case 0: num = whole; p->sessions = (uint32_t)v; break;
		case 1: num = whole; p->per_item = (uint32_t)v; break;
		case 2: num = whole; p->items = (uint32_t)v; break;
		case 3: num = whole; p->k = (uint32_t)v; break;
		case 4: p->l1 = (float)v; break;
		case 5: num = strcmp(val, "0") == 0 ? (p->l2 = 0, 1) : !duration_parse(val, &p->l2); break;
		case 6: p->l3 = (float)v; break;
		case 7: p->idf = (float)v; break;
		case 8: num = whole && v <= 1; p->norm = (int)v; break;
		default:
			snprintf(err, errlen, "sknn: unknown setting \"%s\" (sessions, per_item, items, k, l1, l2, l3, idf, norm)", name);
			return -1;
		}
		if (!num) {
			snprintf(err, errlen, "sknn: %s: bad value \"%s\"", name, val);
			return -1;
		}
		if (!e)
			break;
		q = e + 1;
	}
	return sknn_params_check(p, err, errlen);
}

static void
tables(struct sknn *s)
{
	for (int r = 0; r < SKNN_MAX_ITEMS; r++)
		s->w1[r] = s->p.l1 > 0 ? (float)exp(-(double)r / s->p.l1) : 1;
	for (int d = 0; d < SKNN_MAX_ITEMS + 2; d++)
		s->w3[d] = s->p.l3 > 0 ? (float)exp(-(double)d / s->p.l3) : 1;
}

/* A new empty index with parameters p (copied), or NULL if p fails
 * sknn_params_check. Free it with sknn_free. */
struct sknn *
sknn_new(const struct sknn_params *p)
{
	char err[128];
	struct sknn *s;

	if (sknn_params_check(p, err, sizeof err))
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->p = *p;
	s->wrap = (uint32_t)(UINT32_MAX / p->sessions * p->sessions);
	s->smod = UINT64_MAX / p->sessions + 1;
	s->kcap = 128;
	s->kslot = xcalloc(s->kcap, sizeof *s->kslot);
	tables(s);
	return s;
}

/* Free s and everything it holds; NULL is fine. */
void
sknn_free(struct sknn *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nidx; i++)
		free(s->idx[i].e);
	free(s->idx);
	free(s->slot);
	for (int c = 0; c <= SKNN_MAX_ITEMS; c++) {
		for (uint32_t k = 0; k < s->pool[c].nchunk; k++)
			free(s->pool[c].chunk[k]);
		free(s->pool[c].chunk);
	}
	free(s->kslot);
	free(s);
}

/*
 * Change the scoring settings of s (k, l1, l2, l3, idf, norm) to those of
 * p. The bounds (sessions, per_item, items) shape the stored state and
 * must be those of s. Returns 0, or -1 with the reason in err and s as it
 * was.
 */
int
sknn_retune(struct sknn *s, const struct sknn_params *p, char *err,
	    size_t errlen)
{
	if (sknn_params_check(p, err, errlen))
		return -1;
	if (p->sessions != s->p.sessions || p->per_item != s->p.per_item ||
	    p->items != s->p.items) {
		snprintf(err, errlen,
			 "sknn: the index holds sessions=%u, per_item=%u, items=%u: these cannot change",
			 s->p.sessions, s->p.per_item, s->p.items);
		return -1;
	}
	s->p = *p;
	tables(s);
	return 0;
}

/* The parameters s runs with (owned by s). */
const struct sknn_params *
sknn_get_params(const struct sknn *s)
{
	return &s->p;
}

/* The key table probes linearly from the key's low bits: keys that are
 * not hashes (counters) would form one long run, so they are mixed first
 * (a bijection, so no two keys meet). */
static inline uint64_t
mix(uint64_t k)
{
	k ^= k >> 30;
	k *= 0xbf58476d1ce4e5b9ULL;
	k ^= k >> 27;
	k *= 0x94d049bb133111ebULL;
	return k ^ (k >> 31);
}

/* The slot of the live session of key, or UINT32_MAX. */
static uint32_t
key_find(const struct sknn *s, uint64_t key)
{
	uint32_t mask = s->kcap - 1, j, v;

	for (j = (uint32_t)mix(key) & mask; (v = s->kslot[j]) != 0; j = (j + 1) & mask)
		if (s->slot[v - 1].key == key)
			return v - 1;
	return UINT32_MAX;
}

static void
key_place(uint32_t *t, uint32_t mask, uint64_t key, uint32_t sl)
{
	uint32_t j;

	for (j = (uint32_t)mix(key) & mask; t[j]; j = (j + 1) & mask)
		;
	t[j] = sl + 1;
}

/* Slot sl, whose key is in no other live slot, becomes findable by it. */
static void
key_put(struct sknn *s, uint32_t sl)
{
	if ((uint64_t)(s->kn + 1) * 4 > (uint64_t)s->kcap * 3) {
		uint32_t cap = s->kcap * 2, *t = xcalloc(cap, sizeof *t);
		for (uint32_t j = 0; j < s->kcap; j++)
			if (s->kslot[j])
				key_place(t, cap - 1, s->slot[s->kslot[j] - 1].key,
					  s->kslot[j] - 1);
		free(s->kslot);
		s->kslot = t;
		s->kcap = cap;
	}
	key_place(s->kslot, s->kcap - 1, s->slot[sl].key, sl);
	s->kn++;
}

/* Slot sl leaves the key table. Later places of its probe run shift
 * back, so no tombstones accumulate. */
static void
key_del(struct sknn *s, uint32_t sl)
{
	uint32_t mask = s->kcap - 1, i, j;

	for (i = (uint32_t)mix(s->slot[sl].key) & mask; s->kslot[i] != sl + 1;
	     i = (i + 1) & mask)
		;
	for (j = (i + 1) & mask; s->kslot[j]; j = (j + 1) & mask) {
		if (probe_moves_back(i, j, (uint32_t)mix(s->slot[s->kslot[j] - 1].key) & mask)) {
			s->kslot[i] = s->kslot[j];
			i = j;
		}
	}
	s->kslot[i] = 0;
	s->kn--;
}

/* The slot of serial e, e % sessions, by a multiplication rather than a
 * division (Lemire, Kaser and Kurz 2019: exact for 32-bit operands):
 * the scoring pass takes it for every entry of the index it reads. */
static inline uint32_t
slot_of(const struct sknn *s, uint32_t e)
{
	return (uint32_t)(((unsigned __int128)(s->smod * e) * s->p.sessions) >> 64);
}

static inline int
live_serial(const struct sknn *s, uint32_t e)
{
	uint32_t sl;

	if (e >= s->wrap)
		return 0;
	sl = slot_of(s, e);
	return sl < s->nslot && s->slot[sl].used && s->slot[sl].serial == e;
}

/* Block b of pool c. */
static inline uint32_t *
blk_at(const struct sknn *s, unsigned c, uint32_t b)
{
	return s->pool[c].chunk[b / POOL_CHUNK] + (size_t)(b % POOL_CHUNK) * c;
}

/* The items of slot x (NULL if it has room for none). */
static inline uint32_t *
slot_items(const struct sknn *s, const struct slot *x)
{
	return x->cls ? blk_at(s, x->cls, x->blk) : NULL;
}

/* A block of pool c (c > 0). */
static uint32_t
blk_new(struct sknn *s, unsigned c)
{
	struct pool *p = &s->pool[c];
	uint32_t b;

	if (p->free) {
		b = p->free - 1;
		p->free = *blk_at(s, c, b);
		return b;
	}
	if (p->used == p->nchunk * POOL_CHUNK) {
		p->chunk = xreallocarray(p->chunk, p->nchunk + 1, sizeof *p->chunk);
		p->chunk[p->nchunk++] = xreallocarray(NULL, POOL_CHUNK, c * sizeof(uint32_t));
		s->pooled += POOL_CHUNK * c * sizeof(uint32_t);
	}
	return p->used++;
}

/* Give slot x's block back to its pool. */
static void
blk_free(struct sknn *s, struct slot *x)
{
	if (!x->cls)
		return;
	*blk_at(s, x->cls, x->blk) = s->pool[x->cls].free;
	s->pool[x->cls].free = x->blk + 1;
	x->cls = 0;
	x->blk = 0;
}

/* Room for c items in slot x, keeping the n it holds; the items. */
static uint32_t *
slot_room(struct sknn *s, struct slot *x, unsigned c)
{
	uint32_t b = blk_new(s, c), *it = blk_at(s, c, b);

	if (x->n)
		memcpy(it, slot_items(s, x), x->n * sizeof *it);
	blk_free(s, x);
	x->cls = (uint8_t)c;
	x->blk = b;
	return it;
}

/* Make slot sl exist (the region below it too, unused). The slots past
 * nslot are never read, so they are zeroed as they are reached: the room
 * grown for later is not resident until the ring fills it. */
static void
slots_reach(struct sknn *s, uint32_t sl)
{
	if (sl >= s->capslot) {
		uint64_t cap = s->capslot ? (uint64_t)s->capslot * 2 : 64;
		while (cap <= sl)
			cap *= 2;
		if (cap > s->p.sessions)
			cap = s->p.sessions;
		s->slot = xreallocarray(s->slot, cap, sizeof *s->slot);
		s->capslot = (uint32_t)cap;
	}
	if (sl >= s->nslot) {
		memset(s->slot + s->nslot, 0, (sl + 1 - s->nslot) * sizeof *s->slot);
		s->nslot = sl + 1;
	}
}

static void
items_reach(struct sknn *s, uint32_t item)
{
	if (item < s->nidx)
		return;
	if (item >= s->capidx) {
		uint64_t cap = s->capidx ? (uint64_t)s->capidx * 2 : 256;
		while (cap <= item)
			cap *= 2;
		if (cap > UINT32_MAX)
			cap = UINT32_MAX;
		s->idx = xreallocarray(s->idx, cap, sizeof *s->idx);
		s->capidx = (uint32_t)cap;
	}
	memset(s->idx + s->nidx, 0, ((uint64_t)item + 1 - s->nidx) * sizeof *s->idx);
	s->nidx = item + 1;
}

/* Drop the stale entries of x, keeping the order. */
static void
purge(struct sknn *s, struct iidx *x)
{
	uint16_t w = 0;

	for (uint16_t r = 0; r < x->n; r++)
		if (live_serial(s, x->e[r]))
			x->e[w++] = x->e[r];
	s->entries -= x->n - w;
	x->n = w;
}

/* The capacity of an item's list that a purge has left with n entries:
 * room for n more before the next purge (so purges cost O(1) per add), at
 * most 4n, so a list shrinks when most of it was stale. */
static uint32_t
list_cap(const struct sknn *s, uint32_t n)
{
	uint32_t c = 2;

	while (c < 2 * n)
		c *= 2;
	return c < s->p.per_item ? c : s->p.per_item;
}

/* Index serial under item, the newest entry of the item's list. A full
 * list below per_item is purged of its stale entries and resized; a full
 * list at per_item drops its oldest entry. */
static void
index_add(struct sknn *s, uint32_t item, uint32_t serial)
{
	struct iidx *x;

	items_reach(s, item);
	x = &s->idx[item];
	if (x->df < UINT32_MAX)
		x->df++;
	if (x->n && x->e[x->n - 1] == serial)
		return;
	if (x->n == x->cap) {
		if (x->cap < s->p.per_item) {
			purge(s, x);
			uint32_t cap = list_cap(s, x->n);
			if (cap != x->cap) {
				x->e = xreallocarray(x->e, cap, sizeof *x->e);
				s->ecap = s->ecap + cap - x->cap;
				x->cap = (uint16_t)cap;
			}
		}
		if (x->n == x->cap) {
			if (live_serial(s, x->e[0]))
				s->st.index_evicted++;
			memmove(x->e, x->e + 1, (x->n - 1) * sizeof *x->e);
			x->n--;
			s->entries--;
		}
	}
	x->e[x->n++] = serial;
	s->entries++;
}

/*
 * item joins the current session of key at time ts. A key not seen (or
 * whose session left the ring) starts a new session in the oldest slot. An
 * item equal to the session's last item is ignored; an item the session
 * already holds moves to its newest place (a session holds an item once);
 * a full session drops its oldest item. Item indices are dense (the
 * index grows to item + 1). Key 0 is reserved (self 0 means none).
 */
void
sknn_prefetch(const struct sknn *s, uint32_t item)
{
	if (item < s->nidx)
		__builtin_prefetch(&s->idx[item], 1);
}

void
sknn_add(struct sknn *s, uint64_t key, uint32_t item, int64_t ts)
{
	uint32_t sl, *it;
	struct slot *x;

	/* The tail of the item's list, which index_add reads last. */
	if (item < s->nidx && s->idx[item].n)
		__builtin_prefetch(&s->idx[item].e[s->idx[item].n - 1], 1);
	sl = key_find(s, key);

	s->st.adds++;
	if (sl != UINT32_MAX) {
		uint16_t n, j;
		x = &s->slot[sl];
		it = slot_items(s, x);
		n = x->n;
		uint32_t t = ts_sec(ts);
		if (t > x->ts)
			x->ts = t;
		if (n && it[n - 1] == item) {
			s->st.repeats++;
			return;
		}
		for (j = 0; j < n && it[j] != item; j++)
			;
		if (j < n) {
			memmove(it + j, it + j + 1, (n - 1 - j) * sizeof *it);
			it[n - 1] = item;
			return;
		}
		if (n == s->p.items) {
			memmove(it, it + 1, (n - 1) * sizeof *it);
			s->st.items_dropped++;
			n--;
		} else if (n == x->cls)
			it = slot_room(s, x, n + 1u);
		it[n] = item;
		x->n = n + 1;
		index_add(s, item, x->serial);
		return;
	}
	uint32_t serial = s->next;
	s->next = s->next + 1 >= s->wrap ? 0 : s->next + 1;
	sl = slot_of(s, serial);
	slots_reach(s, sl);
	x = &s->slot[sl];
	if (x->used) {
		key_del(s, sl);
		s->st.sessions_evicted++;
		s->live--;
	}
	x->n = 0;
	x->key = key;
	x->ts = ts_sec(ts);
	x->serial = serial;
	x->used = 1;
	slot_room(s, x, 1)[0] = item;
	x->n = 1;
	key_put(s, sl);
	s->st.sessions++;
	s->live++;
	index_add(s, item, serial);
}

/*
 * Renumber the items: newidx[old] is the new index of old item old, or
 * UINT32_MAX if it is gone; n is the number of old items (items from n on
 * are gone too). Sessions lose their gone items; the index follows the new
 * numbering. Two old items given the same new index keep the first.
 */
void
sknn_remap(struct sknn *s, const uint32_t *newidx, uint64_t n)
{
	uint64_t nn = 0;

	for (uint32_t sl = 0; sl < s->nslot; sl++) {
		uint32_t *it = slot_items(s, &s->slot[sl]);
		uint16_t w = 0;
		for (uint16_t r = 0; r < s->slot[sl].n; r++) {
			uint32_t v = it[r] < n ? newidx[it[r]] : UINT32_MAX;
			if (v != UINT32_MAX)
				it[w++] = v;
		}
		s->slot[sl].n = w;
	}
	for (uint64_t i = 0; i < n && i < s->nidx; i++)
		if (newidx[i] != UINT32_MAX && (uint64_t)newidx[i] + 1 > nn)
			nn = (uint64_t)newidx[i] + 1;
	struct iidx *idx = xcalloc(nn ? nn : 1, sizeof *idx);
	for (uint32_t i = 0; i < s->nidx; i++) {
		struct iidx *x = &s->idx[i];
		uint32_t v = i < n ? newidx[i] : UINT32_MAX;
		if (v != UINT32_MAX && idx[v].cap == 0 && idx[v].df == 0) {
			idx[v] = *x;
			continue;
		}
		s->entries -= x->n;
		s->ecap -= x->cap;
		free(x->e);
		s->st.remapped_out++;
	}
	free(s->idx);
	s->idx = idx;
	s->nidx = s->capidx = (uint32_t)nn;
	if (!nn)
		s->capidx = 1;
}

/* How far ahead the candidate loop asks for the slots it will read. */
#define PREFETCH 8

/* The scratch of requests: small open-addressing maps from a 32-bit key to
 * a score and a tag, cleared by the list of the places they filled. */
struct smap {
	uint32_t *key;   /* key + 1; 0 is empty */
	float *val;
	uint32_t *tag;
	uint32_t *pos;   /* places filled, in order */
	uint32_t cap, n;
};

struct sknn_scratch {
	struct smap sess, item, cur;
	uint32_t *nb;    /* chosen neighbours: places in sess, a heap */
	float *nbs;
	uint32_t nbcap;
};

static void
smap_alloc(struct smap *m, uint32_t cap)
{
	m->cap = cap;
	m->n = 0;
	m->key = xcalloc(cap, sizeof *m->key);
	m->val = xcalloc(cap, sizeof *m->val);
	m->tag = xcalloc(cap, sizeof *m->tag);
	m->pos = xcalloc(cap, sizeof *m->pos);
}

static void
smap_free(struct smap *m)
{
	free(m->key);
	free(m->val);
	free(m->tag);
	free(m->pos);
}

static void
smap_clear(struct smap *m)
{
	for (uint32_t i = 0; i < m->n; i++)
		m->key[m->pos[i]] = 0;
	m->n = 0;
}

static inline uint32_t
smap_home(uint32_t k, uint32_t mask)
{
	return (uint32_t)(((uint64_t)k * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
}

/* The place of key k, inserted (val 0, tag 0) if absent. Places stay valid
 * until the map grows, which only a put of a new key can do. */
static uint32_t
smap_put(struct smap *m, uint32_t k)
{
	uint32_t mask, i;

	k++;
	if ((m->n + 1) * 2 > m->cap) {
		struct smap g;
		smap_alloc(&g, m->cap * 2);
		for (uint32_t j = 0; j < m->n; j++) {
			uint32_t p = m->pos[j], q = smap_home(m->key[p], g.cap - 1);
			while (g.key[q])
				q = (q + 1) & (g.cap - 1);
			g.key[q] = m->key[p];
			g.val[q] = m->val[p];
			g.tag[q] = m->tag[p];
			g.pos[g.n++] = q;
		}
		smap_free(m);
		*m = g;
	}
	mask = m->cap - 1;
	for (i = smap_home(k, mask); m->key[i]; i = (i + 1) & mask)
		if (m->key[i] == k)
			return i;
	m->key[i] = k;
	m->val[i] = 0;
	m->tag[i] = 0;
	m->pos[m->n++] = i;
	return i;
}

/* The place of key k, or UINT32_MAX. */
static uint32_t
smap_get(const struct smap *m, uint32_t k)
{
	uint32_t mask = m->cap - 1, i;

	k++;
	for (i = smap_home(k, mask); m->key[i]; i = (i + 1) & mask)
		if (m->key[i] == k)
			return i;
	return UINT32_MAX;
}

/* A scratch for sknn_score, for one thread at a time; free it with
 * sknn_scratch_free. It grows with the requests it serves. */
struct sknn_scratch *
sknn_scratch_new(void)
{
	struct sknn_scratch *sc = xcalloc(1, sizeof *sc);

	smap_alloc(&sc->sess, 1024);
	smap_alloc(&sc->item, 1024);
	smap_alloc(&sc->cur, 64);
	return sc;
}

/* Free sc; NULL is fine. */
void
sknn_scratch_free(struct sknn_scratch *sc)
{
	if (!sc)
		return;
	smap_free(&sc->sess);
	smap_free(&sc->item);
	smap_free(&sc->cur);
	free(sc->nb);
	free(sc->nbs);
	free(sc);
}

/* Is neighbour a (score sa, serial ka) worse than b? Lower score, then the
 * older session (lower serial), so that ties are broken the same way
 * every time. */
static inline int
worse(float sa, uint32_t ka, float sb, uint32_t kb)
{
	return sa < sb || (sa == sb && ka < kb);
}

static void
heap_down(float *hs, uint32_t *hk, const struct smap *m, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, w = i;
		if (l < n && worse(hs[l], m->key[hk[l]], hs[w], m->key[hk[w]]))
			w = l;
		if (r < n && worse(hs[r], m->key[hk[r]], hs[w], m->key[hk[w]]))
			w = r;
		if (w == i)
			return;
		float ts = hs[i];
		uint32_t tk = hk[i];
		hs[i] = hs[w];
		hk[i] = hk[w];
		hs[w] = ts;
		hk[w] = tk;
		i = w;
	}
}

/*
 * Score the items of the k past sessions most similar to the current
 * session cur[0..ncur) (item indices, newest first; the first `items` of
 * them count, repeats once) at time now. self is the key of the current
 * session when it is in the index (it is no neighbour of itself), or 0.
 * Neighbour items from nitems on are skipped. fn(ctx, item, score) is
 * called once for each scored item, in a deterministic order, with a
 * positive score; the current session's own items may be among them (the
 * caller excludes what it must before it cuts its top N). Returns the
 * number of calls. sc is the calling thread's scratch.
 */
size_t
sknn_score(const struct sknn *s, struct sknn_scratch *sc, const uint32_t *cur,
	   size_t ncur, int64_t now, uint64_t self, uint32_t nitems, sknn_fn fn,
	   void *ctx)
{
	uint32_t selfserial = UINT32_MAX, nc = 0, h;
	double logn = s->p.idf > 0 ? log((double)s->st.sessions + 1) : 0;

	if (self && (h = key_find(s, self)) != UINT32_MAX)
		selfserial = s->slot[h].serial;
	smap_clear(&sc->sess);
	smap_clear(&sc->item);
	smap_clear(&sc->cur);

	/* Candidates: the indexed sessions of each current item, with the
	 * weighted count of the items they share. */
	for (size_t r = 0; r < ncur && nc < s->p.items; r++) {
		uint32_t c = cur[r], pc;
		if (c >= s->nidx)
			continue;
		pc = smap_put(&sc->cur, c);
		if (sc->cur.tag[pc])
			continue;
		sc->cur.tag[pc] = ++nc;
		const struct iidx *x = &s->idx[c];
		if (!x->n)
			continue;
		float w = s->w1[nc - 1];
		if (s->p.idf > 0 && logn > log((double)x->df + 1))
			w *= (float)(1 + s->p.idf * (logn - log((double)x->df + 1)));
		for (uint32_t j = x->n; j-- > 0;) {
			uint32_t e = x->e[j];
			/* The slots are cache misses: ask for them ahead. */
			if (j >= PREFETCH) {
				uint32_t ahead = slot_of(s, x->e[j - PREFETCH]);
				if (ahead < s->nslot)
					__builtin_prefetch(&s->slot[ahead]);
			}
			if (e == selfserial || !live_serial(s, e))
				continue;
			uint32_t q = smap_put(&sc->sess, e);
			if (sc->sess.tag[q] == nc)
				continue;
			sc->sess.tag[q] = nc;
			sc->sess.val[q] += w;
		}
	}
	if (sc->sess.n == 0)
		return 0;

	/* The k best: a min-heap on (similarity, serial). */
	uint32_t k = s->p.k < sc->sess.n ? s->p.k : sc->sess.n, nb = 0;
	if (k > sc->nbcap) {
		sc->nb = xreallocarray(sc->nb, k, sizeof *sc->nb);
		sc->nbs = xreallocarray(sc->nbs, k, sizeof *sc->nbs);
		sc->nbcap = k;
	}
	for (uint32_t j = 0; j < sc->sess.n; j++) {
		uint32_t q = sc->sess.pos[j], e = sc->sess.key[q] - 1;
		const struct slot *x = &s->slot[slot_of(s, e)];
		float sim = sc->sess.val[q];
		if (s->p.norm)
			sim /= sqrtf((float)(x->n ? x->n : 1));
		int64_t at = (int64_t)x->ts * 1000;
		if (s->p.l2 > 0 && now > at)
			sim *= (float)exp(-(double)(now - at) / (double)s->p.l2);
		if (nb < k) {
			sc->nbs[nb] = sim;
			sc->nb[nb++] = q;
			if (nb == k)
				for (uint32_t i = k / 2; i-- > 0;)
					heap_down(sc->nbs, sc->nb, &sc->sess, k, i);
		} else if (worse(sc->nbs[0], sc->sess.key[sc->nb[0]], sim, sc->sess.key[q])) {
			sc->nbs[0] = sim;
			sc->nb[0] = q;
			heap_down(sc->nbs, sc->nb, &sc->sess, k, 0);
		}
	}

	/* Their items, weighted by the distance to the newest shared item. */
	for (uint32_t j = 0; j < nb; j++)
		__builtin_prefetch(&s->slot[slot_of(s, sc->sess.key[sc->nb[j]] - 1)]);
	for (uint32_t j = 0; j < nb; j++)
		__builtin_prefetch(slot_items(s, &s->slot[slot_of(s, sc->sess.key[sc->nb[j]] - 1)]));
	for (uint32_t j = 0; j < nb; j++) {
		uint32_t e = sc->sess.key[sc->nb[j]] - 1;
		float sim = sc->nbs[j];
		const struct slot *x = &s->slot[slot_of(s, e)];
		const uint32_t *it = slot_items(s, x);
		int star = -1;
		if (!(sim > 0))
			continue;
		for (int r = x->n; r-- > 0;)
			if (smap_get(&sc->cur, it[r]) != UINT32_MAX) {
				star = r;
				break;
			}
		for (int r = 0; r < x->n; r++) {
			if (it[r] >= nitems)
				continue;
			uint32_t q = smap_put(&sc->item, it[r]);
			sc->item.val[q] += sim * s->w3[r > star ? r - star : star - r];
		}
	}
	for (uint32_t j = 0; j < sc->item.n; j++) {
		uint32_t q = sc->item.pos[j];
		fn(ctx, sc->item.key[q] - 1, sc->item.val[q]);
	}
	return sc->item.n;
}

/* Counters and sizes of s into st. */
void
sknn_stats(const struct sknn *s, struct sknn_stats *st)
{
	*st = s->st;
	st->live = s->live;
	st->items = s->nidx;
	st->entries = s->entries;
}

/* Bytes of memory s holds (scratches not included). */
size_t
sknn_bytes(const struct sknn *s)
{
	size_t b = sizeof *s + (size_t)s->kcap * sizeof *s->kslot;

	b += (size_t)s->capslot * sizeof *s->slot + s->pooled;
	b += (size_t)s->capidx * sizeof *s->idx;
	return b + s->ecap * sizeof *s->idx->e;
}

/*
 * The snapshot blob, little-endian: "SKNN", version, the parameters, the
 * serial state and counters, the used slots (key, time, serial, items),
 * then per item its df, the capacity and length of its list and its
 * entries (the capacity decides when the list is next purged). The key
 * table is rebuilt on load, so the same state always gives the same bytes.
 */
#define BLOB_MAGIC "SKNN"
#define BLOB_VERSION 1
#define BLOB_HEAD (4 + 4 + 4 * 4 + 4 + 8 + 4 + 4 + 4 + 4 * 3 + 8 * 7 + 4)
#define SLOT_HEAD (8 + 8 + 4 + 2 + 2)

/* The size of sknn_blob_write's blob of s. */
size_t
sknn_blob_size(const struct sknn *s)
{
	size_t b = BLOB_HEAD;

	for (uint32_t sl = 0; sl < s->nslot; sl++)
		b += SLOT_HEAD + 4 * (size_t)s->slot[sl].n;
	for (uint32_t i = 0; i < s->nidx; i++)
		b += 8 + 4 * (size_t)s->idx[i].n;
	return b;
}

static unsigned char *
w32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> 8 * i);
	return p + 4;
}

static unsigned char *
w64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> 8 * i);
	return p + 8;
}

static unsigned char *
wf(unsigned char *p, float f)
{
	uint32_t v;

	memcpy(&v, &f, 4);
	return w32(p, v);
}

/* The blob goes out through a buffer of this many bytes at a time,
 * so that writing a snapshot costs no copy of the index in memory. */
#define EMIT_BUF 8192

struct emit {
	sknn_put_fn put;
	void *ctx;
	unsigned char *p;
	unsigned char b[EMIT_BUF];
};

/* Room for n bytes (at most 64) at e->p. */
static unsigned char *
room(struct emit *e, size_t n)
{
	if ((size_t)(e->b + sizeof e->b - e->p) < n) {
		e->put(e->ctx, e->b, (size_t)(e->p - e->b));
		e->p = e->b;
	}
	return e->p;
}

/*
 * Give s's blob, exactly sknn_blob_size(s) bytes, to put in pieces of at
 * most EMIT_BUF bytes, in order.
 */
void
sknn_blob_emit(const struct sknn *s, sknn_put_fn put, void *ctx)
{
	struct emit *e = xmalloc(sizeof *e);
	unsigned char *p;

	e->put = put;
	e->ctx = ctx;
	e->p = p = e->b;
	memcpy(p, BLOB_MAGIC, 4);
	p = w32(p + 4, BLOB_VERSION);
	p = w32(p, s->p.sessions);
	p = w32(p, s->p.per_item);
	p = w32(p, s->p.items);
	p = w32(p, s->p.k);
	p = wf(p, s->p.l1);
	p = w64(p, (uint64_t)s->p.l2);
	p = wf(p, s->p.l3);
	p = wf(p, s->p.idf);
	p = w32(p, (uint32_t)s->p.norm);
	p = w32(p, s->next);
	p = w32(p, s->wrap);
	p = w32(p, s->nslot);
	p = w64(p, s->st.sessions);
	p = w64(p, s->st.sessions_evicted);
	p = w64(p, s->st.index_evicted);
	p = w64(p, s->st.items_dropped);
	p = w64(p, s->st.adds);
	p = w64(p, s->st.repeats);
	p = w64(p, s->st.remapped_out);
	e->p = w32(p, s->nidx);
	for (uint32_t sl = 0; sl < s->nslot; sl++) {
		const struct slot *x = &s->slot[sl];
		const uint32_t *it = slot_items(s, x);
		p = room(e, SLOT_HEAD);
		p = w64(p, x->key);
		p = w64(p, (uint64_t)x->ts * 1000);
		p = w32(p, x->serial);
		p[0] = (unsigned char)x->n;
		p[1] = (unsigned char)(x->n >> 8);
		p[2] = (unsigned char)x->used;
		p[3] = 0;
		e->p = p + 4;
		for (uint16_t r = 0; r < x->n; r++)
			e->p = w32(room(e, 4), it[r]);
	}
	for (uint32_t i = 0; i < s->nidx; i++) {
		const struct iidx *x = &s->idx[i];
		p = w32(room(e, 8), x->df);
		e->p = w32(p, (uint32_t)x->cap << 16 | x->n);
		for (uint16_t r = 0; r < x->n; r++)
			e->p = w32(room(e, 4), x->e[r]);
	}
	put(ctx, e->b, (size_t)(e->p - e->b));
	free(e);
}

static void
put_mem(void *ctx, const void *p, size_t n)
{
	unsigned char **out = ctx;

	memcpy(*out, p, n);
	*out += n;
}

/* Write s's blob, exactly sknn_blob_size(s) bytes, to out. */
void
sknn_blob_write(const struct sknn *s, unsigned char *out)
{
	sknn_blob_emit(s, put_mem, &out);
}

struct rd {
	const unsigned char *p, *e;
};

static int
r32(struct rd *r, uint32_t *v)
{
	if (r->e - r->p < 4)
		return -1;
	*v = 0;
	for (int i = 0; i < 4; i++)
		*v |= (uint32_t)r->p[i] << 8 * i;
	r->p += 4;
	return 0;
}

static int
r64(struct rd *r, uint64_t *v)
{
	uint32_t lo, hi;

	if (r32(r, &lo) || r32(r, &hi))
		return -1;
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

static int
rf(struct rd *r, float *f)
{
	uint32_t v;

	if (r32(r, &v))
		return -1;
	memcpy(f, &v, 4);
	return 0;
}

/*
 * A new index from the blob p[0..n) of sknn_blob_write, whose item indices
 * must lie below nitems. Every field is checked: on a truncated, corrupt
 * or inconsistent blob, returns NULL with the reason in err. The caller
 * owns the result (sknn_free).
 */
struct sknn *
sknn_blob_read(const unsigned char *p, size_t n, uint32_t nitems, char *err,
	       size_t errlen)
{
	struct rd r = { p, p + n };
	struct sknn_params q;
	struct sknn *s = NULL;
	uint32_t version, norm, next, wrap, nslot, nidx;
	uint64_t l2;
	const char *why = "truncated";

	memset(&q, 0, sizeof q);
	if (n < 4 || memcmp(p, BLOB_MAGIC, 4) != 0) {
		why = "not a session index (bad magic)";
		goto bad;
	}
	r.p += 4;
	if (r32(&r, &version))
		goto bad;
	if (version != BLOB_VERSION) {
		why = "unknown version";
		goto bad;
	}
	if (r32(&r, &q.sessions) || r32(&r, &q.per_item) || r32(&r, &q.items) ||
	    r32(&r, &q.k) || rf(&r, &q.l1) || r64(&r, &l2) || rf(&r, &q.l3) ||
	    rf(&r, &q.idf) || r32(&r, &norm))
		goto bad;
	q.l2 = (int64_t)l2;
	q.norm = norm > 1 ? 2 : (int)norm;
	if (sknn_params_check(&q, err, errlen))
		return NULL;
	s = sknn_new(&q);
	if (r32(&r, &next) || r32(&r, &wrap) || r32(&r, &nslot) ||
	    r64(&r, &s->st.sessions) || r64(&r, &s->st.sessions_evicted) ||
	    r64(&r, &s->st.index_evicted) || r64(&r, &s->st.items_dropped) ||
	    r64(&r, &s->st.adds) || r64(&r, &s->st.repeats) ||
	    r64(&r, &s->st.remapped_out) || r32(&r, &nidx))
		goto bad;
	if (wrap != s->wrap || next >= wrap || nslot > q.sessions) {
		why = "bad serial state";
		goto bad;
	}
	/* Sizes are checked against the bytes left before anything is
	 * allocated for them. */
	if (nslot > (size_t)(r.e - r.p) / SLOT_HEAD) {
		why = "truncated slots";
		goto bad;
	}
	s->next = next;
	if (nslot)
		slots_reach(s, nslot - 1);
	for (uint32_t sl = 0; sl < nslot; sl++) {
		struct slot *x = &s->slot[sl];
		uint32_t *it;
		uint32_t nu;
		if (r64(&r, &x->key) || r64(&r, &l2) || r32(&r, &x->serial) ||
		    r32(&r, &nu))
			goto bad;
		x->ts = ts_sec((int64_t)l2);
		/* Slots fill in serial order: all below nslot are used. */
		if ((nu >> 16) != 1 || (nu & 0xffff) > q.items ||
		    x->serial >= wrap || x->serial % q.sessions != sl) {
			why = "bad session slot";
			goto bad;
		}
		x->used = 1;
		x->n = 0;
		it = nu & 0xffff ? slot_room(s, x, nu & 0xffff) : NULL;
		x->n = (uint16_t)(nu & 0xffff);
		for (uint16_t j = 0; j < x->n; j++) {
			if (r32(&r, &it[j]))
				goto bad;
			if (it[j] >= nitems) {
				why = "session item out of range";
				goto bad;
			}
		}
		if (key_find(s, x->key) != UINT32_MAX) {
			why = "two sessions with one key";
			goto bad;
		}
		key_put(s, sl);
		s->live++;
	}
	if (nidx > nitems || nidx > (size_t)(r.e - r.p) / 8) {
		why = "bad item count";
		goto bad;
	}
	if (nidx)
		items_reach(s, nidx - 1);
	for (uint32_t i = 0; i < nidx; i++) {
		struct iidx *x = &s->idx[i];
		uint32_t ne, cap;
		if (r32(&r, &x->df) || r32(&r, &ne))
			goto bad;
		cap = ne >> 16;
		ne &= 0xffff;
		/* The capacity is state (it decides the next purge) but is
		 * at most 4 entries per entry held (see list_cap), so that a
		 * blob cannot make the loader allocate much more than its
		 * size. */
		if (ne > cap || cap > q.per_item || cap > (ne > 0 ? 4 * ne : 2) ||
		    ne > (size_t)(r.e - r.p) / 4) {
			why = "bad index list";
			goto bad;
		}
		if (cap) {
			x->e = xcalloc(cap, sizeof *x->e);
			x->cap = (uint16_t)cap;
			x->n = (uint16_t)ne;
			s->ecap += cap;
		}
		for (uint32_t j = 0; j < ne; j++) {
			if (r32(&r, &x->e[j]))
				goto bad;
			if (x->e[j] >= wrap) {
				why = "bad index entry";
				goto bad;
			}
		}
		s->entries += ne;
	}
	if (r.p != r.e) {
		why = "trailing bytes";
		goto bad;
	}
	return s;
bad:
	snprintf(err, errlen, "sknn: %s", why);
	sknn_free(s);
	return NULL;
}
