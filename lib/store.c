/* store.c: profile stores: the API, the table of profiles in memory, the source positions kept atomically with them, and the backends behind them (memory only here; store_file.c, store_redis.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_impl.h"

/* The defaults the man page documents. */
void
store_opts_default(struct store_opts *o)
{
	memset(o, 0, sizeof *o);
	o->max_users = 10000000;
	o->cache_users = 100000;
	o->hot_users = 8192;
	o->checkpoint_every = 1000000;
	o->checkpoint_auto = 1;
	o->prefix = "reco:";
	o->retries = 5;
	o->timeout = 10000;
	o->backoff = 100;
	o->positions = 1;
	o->window = 1 << 20;
	o->max_streams = 1024;
	o->max_jump = LEDGER_MAX_JUMP_DEFAULT;
	o->lease_ms = 30000;
}

/* ---- the table of profiles ---- */

uint64_t
store_user_hash(const char *u, size_t n)
{
	return hash64(u, n, 0x70726f66);
}

int
store_user_is(const struct profile *p, const char *u, size_t n)
{
	return p->user.len == n && memcmp(p->strs + p->user.off, u, n) == 0;
}

/* ---- packed profiles ---- */

/*
 * A packed profile is its encoding after its length (a zigzag varint), as
 * the state file has it: in the loaded state file itself (the arena) or,
 * once packed here, in an allocation of its own (pk_owned).
 */
static struct str
pk_enc(const unsigned char *pk)
{
	const char *p = (const char *)pk;
	struct str x = { "", 0 };
	int64_t n;

	if (get_varint(&p, p + 10, &n) == 0 && n >= 0) {
		x.p = p;
		x.n = (size_t)n;
	}
	return x;
}

/* The bytes an owned packed profile holds. */
static size_t
pk_size(const unsigned char *pk)
{
	struct str x = pk_enc(pk);

	return (size_t)(x.p - (const char *)pk) + x.n;
}

/* The user of a profile's encoding, either form: its first field, a
 * string. */
static struct str
enc_user(const char *p, size_t n)
{
	struct str u = { "", 0 };
	int64_t len;
	const char *e = p + n;

	if (n > 0 && (unsigned char)*p == PROFILE_PACKED)
		p++;

	if (get_varint(&p, e, &len) == 0 && len >= 0 && len <= e - p) {
		u.p = p;
		u.n = (size_t)len;
	}
	return u;
}

/* The user of slot i, packed or not. */
struct str
store_slot_user(const struct store *s, uint32_t i)
{
	const struct slot *e = &s->slots[i];

	if (e->p)
		return profile_str(e->p, e->p->user);
	struct str x = pk_enc(e->pk);

	return enc_user(x.p, x.n);
}

/* Take slot i out of list k (LIST_LRU or LIST_HOT). */
static void
list_unlink(struct store *s, int k, uint32_t i)
{
	struct slot_link *e = &s->slots[i].link[k];
	struct slot_list *l = &s->lists[k];

	if (e->prev != NIL)
		s->slots[e->prev].link[k].next = e->next;
	else
		l->head = e->next;
	if (e->next != NIL)
		s->slots[e->next].link[k].prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NIL;
	l->n--;
}

/* Put slot i at the end of list k, the most recently used. */
static void
list_append(struct store *s, int k, uint32_t i)
{
	struct slot_link *e = &s->slots[i].link[k];
	struct slot_list *l = &s->lists[k];

	e->prev = l->tail;
	e->next = NIL;
	if (l->tail != NIL)
		s->slots[l->tail].link[k].next = i;
	else
		l->head = i;
	l->tail = i;
	l->n++;
}

/* The encoding of slot i's profile appended to b. */
void
store_slot_encode(struct store *s, uint32_t i, struct buf *b)
{
	const struct slot *e = &s->slots[i];

	if (e->p)
		profile_pack(b, e->p);
	else {
		struct str x = pk_enc(e->pk);
		buf_put(b, x.p, x.n);
	}
}

/* Give slot e profile p's packed form, in an allocation of its own. */
static void
own_packed(struct store *s, struct slot *e, struct profile *p)
{
	char len[10];
	size_t ln;

	s->pkbuf.n = 0;
	profile_pack(&s->pkbuf, p);
	ln = (size_t)(varint_put(len, (int64_t)s->pkbuf.n) - len);
	e->pk = xmalloc(ln + s->pkbuf.n);
	memcpy(e->pk, len, ln);
	memcpy(e->pk + ln, s->pkbuf.p, s->pkbuf.n);
	e->pk_owned = 1;
	s->packed_bytes += ln + s->pkbuf.n;
}

/* Pack slot i (unpacked, not changed in the current batch). */
static void
pack(struct store *s, uint32_t i)
{
	struct slot *e = &s->slots[i];

	own_packed(s, e, e->p);
	profile_free(e->p);
	e->p = NULL;
	list_unlink(s, LIST_HOT, i);
}

/* The profile of slot i, unpacked if it was packed (it is then among the
 * most recently used). NULL if its encoding does not decode, which the
 * load made sure of. */
struct profile *
store_slot_profile(struct store *s, uint32_t i)
{
	struct slot *e = &s->slots[i];
	char err[128];

	if (e->p) {
		if (s->pack && e->link[LIST_HOT].next != NIL) {
			list_unlink(s, LIST_HOT, i);
			list_append(s, LIST_HOT, i);
		}
		return e->p;
	}
	struct profile *p = profile_new("", 0);
	struct str x = pk_enc(e->pk);
	if (profile_decode(p, x.p, x.n, err, sizeof err)) {
		profile_free(p);
		return NULL;
	}
	if (e->pk_owned) {
		s->packed_bytes -= pk_size(e->pk);
		free(e->pk);
	}
	e->pk = NULL;
	e->pk_owned = 0;
	e->p = p;
	list_append(s, LIST_HOT, i);
	return p;
}

/* Pack the least recently used unpacked profiles beyond --hot-users
 * (none of them changed: the batch is committed). */
static void
pack_cold(struct store *s)
{
	struct slot_list *l = &s->lists[LIST_HOT];

	while (l->n > s->o.hot_users && l->head != NIL && !s->slots[l->head].changed)
		pack(s, l->head);
}

uint32_t
store_table_find(const struct store *s, const char *u, size_t n, uint64_t h)
{
	uint32_t *v = htab_get(&s->idx, h);

	for (uint32_t i = v ? *v : NIL; i != NIL; i = s->slots[i].same) {
		struct str x = store_slot_user(s, i);
		if (x.n == n && memcmp(x.p, u, n) == 0)
			return i;
	}
	return NIL;
}

void
store_lru_unlink(struct store *s, uint32_t i)
{
	list_unlink(s, LIST_LRU, i);
}

void
store_lru_append(struct store *s, uint32_t i)
{
	list_append(s, LIST_LRU, i);
}

static uint32_t table_slot(struct store *s, uint64_t h);

/* Take p (its user not yet in the table) in; return its slot. */
uint32_t
store_table_insert(struct store *s, struct profile *p)
{
	struct str u = profile_str(p, p->user);
	uint32_t i = table_slot(s, store_user_hash(u.p, u.n));

	s->slots[i].p = p;
	if (s->pack)
		list_append(s, LIST_HOT, i);
	return i;
}

/* Take the profile packed at pk (its length, then its encoding, in the
 * loaded state file, which outlives the slot; its user, of hash h, not
 * yet in the table) in; return its slot. */
uint32_t
store_table_insert_packed(struct store *s, const char *pk, uint64_t h)
{
	uint32_t i = table_slot(s, h);

	s->slots[i].pk = (unsigned char *)(uintptr_t)pk;
	return i;
}

/* A new slot for profile p (of hash h), packed in an allocation of its
 * own (p stays the caller's): a state file of an older version, whose
 * profiles are in reco.Profile's encoding, is kept as a new one would be. */
uint32_t
store_table_insert_repacked(struct store *s, struct profile *p, uint64_t h)
{
	uint32_t i = table_slot(s, h);

	own_packed(s, &s->slots[i], p);
	return i;
}

/* A new slot for a user of hash h, in the index and the LRU list, its
 * profile still to set. */
static uint32_t
table_slot(struct store *s, uint64_t h)
{
	uint32_t i, *v;
	int isnew;

	if (s->free_slot != NIL) {
		i = s->free_slot;
		s->free_slot = s->slots[i].same;
	} else {
		if (s->nslots == s->capslots) {
			s->capslots = s->capslots ? s->capslots * 2 : 1024;
			s->slots = xreallocarray(s->slots, s->capslots,
						 sizeof *s->slots);
		}
		i = s->nslots++;
	}
	memset(&s->slots[i], 0, sizeof s->slots[i]);
	s->slots[i].h = h;
	for (int k = 0; k < 2; k++)
		s->slots[i].link[k].prev = s->slots[i].link[k].next = NIL;
	v = htab_put(&s->idx, h, &isnew);
	s->slots[i].same = isnew ? NIL : *v;
	*v = i;
	if (s->be->lru)
		store_lru_append(s, i);
	s->nusers++;
	return i;
}

/* Take slot i out and free its profile. */
void
store_table_remove(struct store *s, uint32_t i)
{
	struct slot *e = &s->slots[i];
	uint32_t *v = htab_get(&s->idx, e->h);

	if (*v == i) {
		if (e->same == NIL)
			htab_del(&s->idx, e->h);
		else
			*v = e->same;
	} else {
		uint32_t j = *v;
		while (s->slots[j].same != i)
			j = s->slots[j].same;
		s->slots[j].same = e->same;
	}
	if (s->be->lru)
		store_lru_unlink(s, i);
	if (e->p && s->pack)
		list_unlink(s, LIST_HOT, i);
	if (e->pk_owned) {
		s->packed_bytes -= pk_size(e->pk);
		free(e->pk);
	}
	profile_free(e->p);
	e->p = NULL;
	e->pk = NULL;
	e->pk_owned = 0;
	e->same = s->free_slot;
	s->free_slot = i;
	s->nusers--;
}

static void
mark_changed(struct store *s, uint32_t i)
{
	s->clean = 0;
	if (s->slots[i].changed)
		return;
	s->slots[i].changed = 1;
	if (s->nchanged == s->capchanged) {
		s->capchanged = s->capchanged ? s->capchanged * 2 : 1024;
		s->changed = xreallocarray(s->changed, s->capchanged,
					   sizeof *s->changed);
	}
	s->changed[s->nchanged++] = i;
}

/* Profiles in the order of their users. */
int
store_profile_cmp(const void *a, const void *b)
{
	return profile_user_cmp(*(struct profile *const *)a,
				*(struct profile *const *)b);
}

static const struct store *sort_store; /* qsort has no context */

static int
slot_cmp(const void *a, const void *b)
{
	struct str x = store_slot_user(sort_store, *(const uint32_t *)a);
	struct str y = store_slot_user(sort_store, *(const uint32_t *)b);
	size_t n = x.n < y.n ? x.n : y.n;
	int c = n ? memcmp(x.p, y.p, n) : 0;

	return c ? c : x.n < y.n ? -1 : x.n > y.n;
}

/* The slots of every profile in memory with events (a packed one has
 * some), sorted by user, in s->order. */
size_t
store_sorted(struct store *s)
{
	size_t n = 0;

	s->order = xreallocarray(s->order, s->nusers ? s->nusers : 1, sizeof *s->order);
	for (uint32_t i = 0; i < s->nslots; i++)
		if ((s->slots[i].p && s->slots[i].p->events) || s->slots[i].pk)
			s->order[n++] = i;
	sort_store = s;
	if (n > 1)
		qsort(s->order, n, sizeof *s->order, slot_cmp);
	return n;
}

/* ---- source positions ---- */

/* See ledger_source_parse. */
int
store_source_parse(struct str src, struct str *stream, int64_t *pos)
{
	return ledger_source_parse(src, stream, pos);
}

/*
 * Look up the position of an event's source (see ledger_check): STORE_NEW
 * (also for an event without a position, or with --no-positions),
 * STORE_REPLAYED, STORE_BEYOND_WINDOW, STORE_JUMP (a poison position: the
 * event is refused, nothing moves), or -1 past max_streams. sp is what
 * store_advance takes once the event is applied.
 */
int
store_check(struct store *s, struct str source, struct ledger_pos *sp)
{
	sp->stream = NIL;
	if (!s->o.positions)
		return STORE_NEW;
	return ledger_check(&s->L, source, sp);
}

/* Record that the event at sp (STORE_NEW from store_check) is applied. */
void
store_advance(struct store *s, const struct ledger_pos *sp)
{
	if (sp->stream == NIL)
		return;
	ledger_advance(&s->L, sp);
	if (s->L.streams[sp->stream].moved) {
		s->meta_dirty = 1;
		s->clean = 0;
	}
}

/* For --restore: a profile's last source says its position was applied;
 * which others were is not known, so every position up to the highest
 * such one counts as applied. Return 0, or -1 past max_streams. */
static int
advance_from(struct store *s, const struct profile *p)
{
	struct ledger_pos sp;
	uint64_t jump = s->L.max_jump;
	int r;

	if (!p->has_source)
		return 0;
	/* A changelog's positions are taken as they are. */
	s->L.max_jump = 0;
	r = store_check(s, profile_str(p, p->source), &sp);
	s->L.max_jump = jump;
	if (r < 0)
		return -1;
	if (sp.stream == NIL)
		return 0;
	if (r == STORE_NEW || s->L.streams[sp.stream].pos < sp.pos) {
		ledger_raise_all(&s->L, &sp);
		s->meta_dirty = 1;
		s->clean = 0;
	}
	return 0;
}

/* The population the percentile normalisation ranks users in. */
struct profile_stats *
store_stats(struct store *s)
{
	s->meta_dirty = 1;
	return &s->stats;
}

/* ---- memory only ---- */

/* The profiles' updates are written out; past --max-users the least
 * recently used go. */
static void
memory_settle(struct store *s, uint64_t commits)
{
	(void)commits;
	ledger_clean(&s->L);
	if (s->o.max_users)
		while (s->nusers > s->o.max_users && s->lists[LIST_LRU].head != NIL) {
			store_table_remove(s, s->lists[LIST_LRU].head);
			s->c.users_evicted++;
		}
}

const struct store_backend store_memory_backend = {
	.kind = STORE_MEMORY,
	.lru = 1,
	.refuse_put = 1,
	.settle = memory_settle,
};

/* ---- the API ---- */

/*
 * Open the store named by spec for reading (STORE_READ) or writing
 * (STORE_WRITE) under the options o (NULL: the defaults). An embedded file
 * is loaded whole; a missing file is an empty store when writing and an
 * error when reading. Return the store (store_close frees it), or NULL
 * with the reason in err.
 */
struct store *
store_open(const char *spec, int mode, const struct store_opts *o,
	   char *err, size_t errlen)
{
	struct store *s = xcalloc(1, sizeof *s);

	if (o)
		s->o = *o;
	else
		store_opts_default(&s->o);
	if (!s->o.prefix)
		s->o.prefix = "reco:";
	s->mode = mode;
	s->spec = xstrdup(spec ? spec : "");
	s->free_slot = NIL;
	for (int k = 0; k < 2; k++)
		s->lists[k].head = s->lists[k].tail = NIL;
	htab_init(&s->idx, 1024);
	ledger_init(&s->L, s->o.window, s->o.max_streams, s->o.max_jump,
		    mode == STORE_WRITE);
	s->be = &store_memory_backend;
	if (spec && *spec) {
		int kind = store_spec_kind(spec);
		if (kind < 0) {
			snprintf(err, errlen, "%s: unknown scheme: a store is a state file's path or a Redis URL "
				 "(redis://, unix://, redis+unix://); write ./%s for a file of that name",
				 spec, spec);
			goto fail;
		}
		s->be = kind == STORE_REDIS ? &store_redis_backend : &store_file_backend;
	}
	s->kind = s->be->kind;
	/* A writer packs its cold profiles, except in Redis's cache. */
	s->pack = mode == STORE_WRITE && s->kind != STORE_REDIS;
	if (s->be->open && s->be->open(s, err, errlen))
		goto fail;
	return s;
fail:
	store_close(s);
	return NULL;
}

/* Free the store without writing anything (store_commit first). */
void
store_close(struct store *s)
{
	if (!s)
		return;
	if (s->be->close)
		s->be->close(s);
	for (uint32_t i = 0; i < s->nslots; i++) {
		profile_free(s->slots[i].p);
		if (s->slots[i].pk_owned)
			free(s->slots[i].pk);
	}
	free(s->slots);
	free(s->order);
	profile_free(s->each);
	buf_free(&s->pkbuf);
	buf_free(&s->arena);
	htab_free(&s->idx);
	ledger_free(&s->L);
	free(s->changed);
	free(s->list);
	free(s->spec);
	free(s);
}

/* STORE_MEMORY, STORE_FILE or STORE_REDIS. */
int
store_kind(const struct store *s)
{
	return s->kind;
}

/*
 * Find user's profile. Return 1 with *p set (owned by the store, valid
 * until the next call on s), 0 if the store has no such user, -1 with the
 * reason in err.
 */
int
store_get(struct store *s, const char *user, size_t n, struct profile **p,
	  char *err, size_t errlen)
{
	uint32_t i = store_table_find(s, user, n, store_user_hash(user, n));

	if (i != NIL) {
		if (!(*p = store_slot_profile(s, i))) {
			snprintf(err, errlen, "corrupt profile in memory");
			return -1;
		}
		return (*p)->events > 0;
	}
	return s->be->get ? s->be->get(s, user, n, p, err, errlen) : 0;
}

/*
 * For a reader of an embedded store: reload the file if it was replaced
 * since it was loaded (a writer's checkpoint). Return 1 if reloaded, 0 if
 * unchanged (always for Redis), -1 with the reason in err (the profiles
 * loaded before stay).
 */
int
store_refresh(struct store *s, char *err, size_t errlen)
{
	return s->be->refresh ? s->be->refresh(s, err, errlen) : 0;
}

/* Call fn on every profile, sorted by user, until it returns non-zero.
 * Return 0, or -1 (fn stopped, or an error in err). */
int
store_each(struct store *s, int (*fn)(struct profile *, void *), void *ctx,
	   char *err, size_t errlen)
{
	size_t n;

	if (s->be->each)
		return s->be->each(s, fn, ctx, err, errlen);
	n = store_sorted(s);
	for (size_t i = 0; i < n; i++) {
		const struct slot *e = &s->slots[s->order[i]];
		struct profile *p = e->p;
		if (!p) {
			/* Read a packed one without unpacking it for good. */
			if (!s->each)
				s->each = profile_new("", 0);
			struct str x = pk_enc(e->pk);
			if (profile_decode(s->each, x.p, x.n, err, errlen))
				return -1;
			p = s->each;
		}
		if (fn(p, ctx)) {
			snprintf(err, errlen, "stopped");
			return -1;
		}
	}
	return 0;
}

/*
 * Bring the profiles of users (duplicates allowed) into memory, so that
 * store_touch finds them without a round trip (Redis: one MGET per 1000
 * users not in memory yet; the others have them all). Return 0, or -1
 * with the reason in err.
 */
int
store_fetch(struct store *s, const struct str *users, size_t n, char *err,
	    size_t errlen)
{
	return s->be->fetch ? s->be->fetch(s, users, n, err, errlen) : 0;
}

/* The slot of user (hash h), fetched by the backend if it is not in the
 * table; NIL if the store has none, or on an error (-1 in *rc). */
static uint32_t
find_or_fetch(struct store *s, struct str u, uint64_t h, int *rc, char *err,
	      size_t errlen)
{
	uint32_t i = store_table_find(s, u.p, u.n, h);

	*rc = 0;
	if (i == NIL && s->be->fetch) {
		if (s->be->fetch(s, &u, 1, err, errlen)) {
			*rc = -1;
			return NIL;
		}
		i = store_table_find(s, u.p, u.n, h);
	}
	return i;
}

/*
 * The profile of user, to update: found in memory, fetched (Redis), or
 * created empty (events 0). It counts as changed in this batch. Return
 * NULL with the reason in err past --max-users (embedded) or on a Redis
 * error.
 */
struct profile *
store_touch(struct store *s, const char *user, size_t n, char *err,
	    size_t errlen)
{
	struct str u = { user, n };
	uint64_t h = store_user_hash(user, n);
	int rc;
	uint32_t i = find_or_fetch(s, u, h, &rc, err, errlen);

	if (rc)
		return NULL;
	if (i == NIL) {
		if (s->be->refuse_new && s->o.max_users &&
		    s->nusers >= s->o.max_users) {
			snprintf(err, errlen, "more than --max-users %llu users",
				 (unsigned long long)s->o.max_users);
			return NULL;
		}
		i = store_table_insert(s, profile_new(user, n));
	} else {
		if (s->be->lru) {
			store_lru_unlink(s, i);
			store_lru_append(s, i);
		}
		if (!store_slot_profile(s, i)) {
			snprintf(err, errlen, "corrupt profile in memory");
			return NULL;
		}
	}
	mark_changed(s, i);
	s->since_checkpoint++;
	return s->slots[i].p;
}

/*
 * Replace (or add) the profile of p's user by p, which the store takes
 * over; the positions rise to p's source, every position up to it
 * counting as applied, and the population follows (for --restore).
 * Return 0, or -1 with the reason in err (p is then freed, the store
 * unchanged).
 */
int
store_put(struct store *s, struct profile *p, char *err, size_t errlen)
{
	struct str u = profile_str(p, p->user);
	uint64_t h = store_user_hash(u.p, u.n);
	int rc;
	uint32_t i = find_or_fetch(s, u, h, &rc, err, errlen);

	if (rc) {
		profile_free(p);
		return -1;
	}
	if (i == NIL && s->be->refuse_put && s->o.max_users &&
	    s->nusers >= s->o.max_users) {
		snprintf(err, errlen, "more than --max-users %llu users",
			 (unsigned long long)s->o.max_users);
		profile_free(p);
		return -1;
	}
	if (advance_from(s, p)) {
		snprintf(err, errlen, "more than --max-sources %llu sources",
			 (unsigned long long)s->o.max_streams);
		profile_free(p);
		return -1;
	}
	if (i == NIL)
		i = store_table_insert(s, p);
	else {
		struct profile *old = store_slot_profile(s, i);
		if (!old) {
			snprintf(err, errlen, "corrupt profile in memory");
			profile_free(p);
			return -1;
		}
		profile_stats_add(&s->stats, old->events, -1);
		profile_free(old);
		s->slots[i].p = p;
	}
	profile_stats_add(&s->stats, p->events, 1);
	s->meta_dirty = 1;
	mark_changed(s, i);
	s->since_checkpoint++;
	return 0;
}

/* The profiles changed since the last commit, in the order of their first
 * change; *list is valid until the next call on s. Return their number. */
size_t
store_changed(struct store *s, struct profile ***list)
{
	if (s->caplist < s->nchanged) {
		s->caplist = s->nchanged;
		s->list = xreallocarray(s->list, s->caplist, sizeof *s->list);
	}
	for (size_t i = 0; i < s->nchanged; i++)
		s->list[i] = s->slots[s->changed[i]].p;
	*list = s->list;
	return s->nchanged;
}

/*
 * Whether store_commit(s, checkpoint_now) would make anything durable (a
 * state file, a Redis transaction): the writer flushes its output first,
 * so that the output covers what the store says is applied.
 */
int
store_commit_due(const struct store *s, int checkpoint_now)
{
	if (s->mode != STORE_WRITE || !s->be->commit_due)
		return 0;
	return s->be->commit_due(s, checkpoint_now);
}

/*
 * End a batch: make what it changed durable together with the source
 * positions. Redis: one MULTI/EXEC, then the cache shrinks back to
 * cache_users. Embedded: the state file is written when checkpoint_every
 * events have passed since the last one, or when checkpoint is set.
 * Return 0, or -1 with the reason in err (the batch is then not durable:
 * a restart applies it again).
 */
int
store_commit(struct store *s, int checkpoint_now, char *err, size_t errlen)
{
	uint64_t commits = s->c.commits;

	if (s->mode != STORE_WRITE)
		return 0;
	if (s->be->commit && s->be->commit(s, checkpoint_now, err, errlen))
		return -1;
	for (size_t i = 0; i < s->nchanged; i++)
		s->slots[s->changed[i]].changed = 0;
	s->nchanged = 0;
	s->meta_dirty = 0;
	s->be->settle(s, commits);
	if (s->pack)
		pack_cold(s);
	return 0;
}

/* Users in memory (all of them for an embedded store). */
uint64_t
store_users(const struct store *s)
{
	return s->nusers;
}

/* Bytes of memory the profiles in memory and their table hold. */
size_t
store_bytes(const struct store *s)
{
	size_t b = htab_bytes(&s->idx) + s->capslots * sizeof *s->slots +
		   s->packed_bytes + s->arena.n;

	for (uint32_t i = 0; i < s->nslots; i++)
		if (s->slots[i].p)
			b += profile_bytes(s->slots[i].p);
	return b;
}

const struct store_counts *
store_counts(const struct store *s)
{
	return &s->c;
}
