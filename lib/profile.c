/* profile.c: reco.Profile: the update rules, the JSON form, the compact binary (Avro) form and Avro container files of profiles. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <zlib.h>

#include "reco.h"
#include "profile.h"


/* Set the defaults the man page documents. */
void
profile_opts_default(struct profile_opts *o)
{
	static char *cat_attrs[] = { "category", "category_code" };
	static char *brand_attrs[] = { "brand" };

	memset(o, 0, sizeof *o);
	o->weight[ET_VIEW] = 1;
	o->weight[ET_CLICK] = 1;
	o->weight[ET_ADD_TO_CART] = 4;
	o->weight[ET_REMOVE_FROM_CART] = -2;
	o->weight[ET_PURCHASE] = 8;
	o->half_life = 7 * 86400000LL;
	o->max_items = 50;
	o->max_categories = 20;
	o->max_brands = 20;
	o->history = 20;
	o->max_cart = 50;
	o->max_purchases = 50;
	o->session_gap = 30 * 60000LL;
	o->count_norm = PNORM_LOG;
	o->category_attrs = cat_attrs;
	o->ncategory_attrs = 2;
	o->brand_attrs = brand_attrs;
	o->nbrand_attrs = 1;
}

/* ---- the string arena ---- */

/* Room for n more bytes at the end of the arena (which may move). */
static void
pstr_room(struct profile *p, size_t n)
{
	if (n > UINT32_MAX / 4 || (size_t)p->nstrs + n > UINT32_MAX / 2)
		die(EXIT_IO, "profile: string arena too large");
	if (p->nstrs + n > p->capstrs) {
		size_t cap = p->capstrs ? p->capstrs : 64;
		while (cap < p->nstrs + n)
			cap *= 2;
		p->strs = xrealloc(p->strs, cap);
		p->capstrs = (uint32_t)cap;
	}
}

/* Append s[0..n) to the arena; s must not point into it (pstr_dup). */
static struct pstr
pstr_add(struct profile *p, const char *s, size_t n)
{
	struct pstr r;

	pstr_room(p, n);
	r.off = p->nstrs;
	r.len = (uint32_t)n;
	if (n)
		memcpy(p->strs + p->nstrs, s, n);
	p->nstrs += (uint32_t)n;
	return r;
}

/* A copy of p's own string s, at the end of its arena. */
static struct pstr
pstr_dup(struct profile *p, struct pstr s)
{
	struct pstr r = { p->nstrs, s.len };

	pstr_room(p, s.len);
	if (s.len)
		memcpy(p->strs + r.off, p->strs + s.off, s.len);
	p->nstrs += s.len;
	return r;
}

static void
pstr_drop(struct profile *p, struct pstr s)
{
	p->garbage += s.len;
}

/* Replace *dst (if has) by s[0..n), in place when it fits. */
static void
pstr_set(struct profile *p, struct pstr *dst, int has, const char *s,
	 size_t n)
{
	if (has && dst->len >= n) {
		memmove(p->strs + dst->off, s, n);
		p->garbage += dst->len - (uint32_t)n;
		dst->len = (uint32_t)n;
		return;
	}
	if (has)
		pstr_drop(p, *dst);
	*dst = pstr_add(p, s, n);
}

static int
pstr_eq(const struct profile *p, struct pstr a, const char *s, size_t n)
{
	return a.len == n && (n == 0 || memcmp(p->strs + a.off, s, n) == 0);
}

static int
pstr_cmp(const struct profile *p, struct pstr a, struct pstr b)
{
	size_t n = a.len < b.len ? a.len : b.len;
	int c = n ? memcmp(p->strs + a.off, p->strs + b.off, n) : 0;

	if (c)
		return c;
	return a.len < b.len ? -1 : a.len > b.len;
}

static void
move_str(struct profile *p, char *to, uint32_t *n, struct pstr *s)
{
	if (s->len)
		memcpy(to + *n, p->strs + s->off, s->len);
	s->off = *n;
	*n += s->len;
}

/* Copy the live strings into a fresh arena once half of it is garbage. */
static void
compact(struct profile *p)
{
	struct pscores *lists[] = { &p->items, &p->cats, &p->brands };
	uint32_t live, n = 0;
	char stack[4096], *to = stack;

	if (p->garbage < 256 || p->garbage * 2 < p->nstrs)
		return;
	live = p->nstrs - p->garbage;
	if (live > sizeof stack)
		to = xmalloc(live);
	move_str(p, to, &n, &p->user);
	if (p->has_session)
		move_str(p, to, &n, &p->last_session);
	if (p->has_source)
		move_str(p, to, &n, &p->source);
	for (int l = 0; l < 3; l++)
		for (uint32_t i = 0; i < lists[l]->n; i++)
			move_str(p, to, &n, &lists[l]->v[i].key);
	for (uint32_t i = 0; i < p->cart.n; i++)
		move_str(p, to, &n, &p->cart.v[i].item);
	for (uint32_t i = 0; i < p->buys.n; i++)
		move_str(p, to, &n, &p->buys.v[i].item);
	for (uint32_t i = 0; i < p->hist.n; i++) {
		struct phist *h = &p->hist.v[(p->hist_head + i) % p->hist.cap];
		move_str(p, to, &n, &h->item);
		move_str(p, to, &n, &h->query);
	}
	/* Back into the same arena: no allocation in the common case. */
	memcpy(p->strs, to, n);
	if (to != stack)
		free(to);
	p->nstrs = n;
	p->garbage = 0;
}

/* ---- life cycle ---- */

/* A new empty profile of user; the caller frees it (profile_free). */
struct profile *
profile_new(const char *user, size_t n)
{
	struct profile *p = xcalloc(1, sizeof *p);

	p->user = pstr_add(p, user, n);
	return p;
}

/* Empty p and give it to user (which must not point into p), keeping its
 * allocations. */
void
profile_reset(struct profile *p, const char *user, size_t n)
{
	char *strs = p->strs;
	uint32_t cap = p->capstrs;
	struct pscores items = p->items, cats = p->cats, brands = p->brands;
	struct pcarts cart = p->cart;
	struct pbuys buys = p->buys;
	struct phists hist = p->hist;

	memset(p, 0, sizeof *p);
	p->strs = strs;
	p->capstrs = cap;
	p->items = items;
	p->cats = cats;
	p->brands = brands;
	p->cart = cart;
	p->buys = buys;
	p->hist = hist;
	p->items.n = p->cats.n = p->brands.n = p->cart.n = p->buys.n = 0;
	p->hist.n = 0;
	p->user = pstr_add(p, user, n);
}

void
profile_free(struct profile *p)
{
	if (!p)
		return;
	free(p->items.v);
	free(p->cats.v);
	free(p->brands.v);
	free(p->cart.v);
	free(p->buys.v);
	free(p->hist.v);
	free(p->strs);
	free(p);
}

/* Bytes of memory p holds (allocations, without the allocator's own). */
size_t
profile_bytes(const struct profile *p)
{
	return sizeof *p + p->capstrs +
	       (p->items.cap + p->cats.cap + p->brands.cap) * sizeof(struct pscore) +
	       p->cart.cap * sizeof(struct pcart) +
	       p->buys.cap * sizeof(struct pbuy) +
	       p->hist.cap * sizeof(struct phist);
}

/* Order profiles by user, bytewise. */
int
profile_user_cmp(const struct profile *a, const struct profile *b)
{
	size_t n = a->user.len < b->user.len ? a->user.len : b->user.len;
	int c = n ? memcmp(a->strs + a->user.off, b->strs + b->user.off, n) : 0;

	if (c)
		return c;
	return a->user.len < b->user.len ? -1 : a->user.len > b->user.len;
}

#define GROW(a)                                                            \
	do {                                                               \
		if ((a)->n == (a)->cap) {                                  \
			(a)->cap = (a)->cap ? (a)->cap * 2 : 4;            \
			(a)->v = xreallocarray((a)->v, (a)->cap,           \
					       sizeof *(a)->v);            \
		}                                                          \
	} while (0)

static uint32_t
key_hash(const char *s, size_t n)
{
	return (uint32_t)hash64(s, n, 0);
}

/* ---- the update rules ---- */

/*
 * Doubles in JSON are rounded to 6 decimal places: that is what buf_put_double
 * writes fast and exactly, and a profile restored from its JSON writes the
 * same JSON again (norms are computed from the rounded scores, and lists are ordered
 * by them).
 */
static double
q6(double x)
{
	if (!(fabs(x) < 1e9))
		return x;
	return (double)llround(x * 1e6) / 1e6;
}

/* a comes before b in a written list: higher score (as written) first,
 * then the key. Eviction uses the same order. */
static int
score_before(const struct profile *p, const struct pscore *a,
	     const struct pscore *b)
{
	double x = q6(a->score), y = q6(b->score);

	if (x != y)
		return x > y;
	return pstr_cmp(p, a->key, b->key) < 0;
}

static void
decay(struct pscores *l, double f)
{
	for (uint32_t i = 0; i < l->n; i++)
		l->v[i].score *= f;
}

/* Add v to key's score; a new key takes the place of the lowest entry
 * when the list is full, unless it would itself be the lowest. */
static void
score_add(struct profile *p, struct pscores *l, uint32_t max, const char *k,
	  size_t kn, double v, int64_t t)
{
	uint32_t h = key_hash(k, kn);
	struct pscore *e;

	if (max == 0)
		return;
	for (uint32_t i = 0; i < l->n; i++) {
		e = &l->v[i];
		if (e->hash == h && pstr_eq(p, e->key, k, kn)) {
			e->score += v;
			e->n++;
			if (t > e->last)
				e->last = t;
			return;
		}
	}
	if (l->n >= max) {
		uint32_t lo = 0;
		for (uint32_t i = 1; i < l->n; i++)
			if (score_before(p, &l->v[lo], &l->v[i]))
				lo = i;
		e = &l->v[lo];
		/* Compare the newcomer with the lowest as the writer would. */
		if (q6(v) < q6(e->score))
			return;
		if (q6(v) == q6(e->score)) {
			struct str ek = profile_str(p, e->key);
			size_t m = ek.n < kn ? ek.n : kn;
			int c = m ? memcmp(k, ek.p, m) : 0;
			if (c > 0 || (c == 0 && kn >= ek.n))
				return;
		}
		pstr_drop(p, e->key);
	} else {
		GROW(l);
		e = &l->v[l->n++];
	}
	e->key = pstr_add(p, k, kn);
	e->hash = h;
	e->n = 1;
	e->score = v;
	e->last = t;
}

static const struct str *
first_attr(const struct event *ev, char **names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct str *s = event_get_attr(ev, names[i]);
		if (s && s->n)
			return s;
	}
	return NULL;
}

static struct pcart *
cart_find(struct profile *p, const char *k, size_t kn, uint32_t h)
{
	for (uint32_t i = 0; i < p->cart.n; i++)
		if (p->cart.v[i].hash == h && pstr_eq(p, p->cart.v[i].item, k, kn))
			return &p->cart.v[i];
	return NULL;
}

static void
cart_remove(struct profile *p, struct pcart *c)
{
	uint32_t i = (uint32_t)(c - p->cart.v);

	pstr_drop(p, c->item);
	memmove(c, c + 1, (p->cart.n - i - 1) * sizeof *c);
	p->cart.n--;
}

static void
cart_update(struct profile *p, const struct event *ev,
	    const struct profile_opts *o)
{
	const char *k = ev->item.p;
	size_t kn = ev->item.n;
	uint32_t h = key_hash(k, kn);
	int64_t qty = (ev->has & EV_QTY) && ev->qty > 0 ? ev->qty : 1;
	struct pcart *c;

	switch (ev->type) {
	case ET_ADD_TO_CART:
		if (o->max_cart == 0)
			return;
		if ((c = cart_find(p, k, kn, h))) {
			c->qty += qty;
		} else {
			if (p->cart.n >= o->max_cart) {
				/* Full: the line changed longest ago goes. */
				struct pcart *old = &p->cart.v[0];
				for (uint32_t i = 1; i < p->cart.n; i++)
					if (p->cart.v[i].ts < old->ts)
						old = &p->cart.v[i];
				cart_remove(p, old);
			}
			GROW(&p->cart);
			c = &p->cart.v[p->cart.n++];
			memset(c, 0, sizeof *c);
			c->item = pstr_add(p, k, kn);
			c->hash = h;
			c->qty = qty;
		}
		if (ev->has & EV_PRICE) {
			c->price = ev->price;
			c->has_price = 1;
		}
		c->ts = ev->ts;
		break;
	case ET_REMOVE_FROM_CART:
		if (!(c = cart_find(p, k, kn, h)))
			return;
		if ((ev->has & EV_QTY) && ev->qty > 0 && ev->qty < c->qty) {
			c->qty -= ev->qty;
			c->ts = ev->ts;
		} else
			cart_remove(p, c);
		break;
	case ET_PURCHASE:
		if (o->purchase_clears_cart) {
			while (p->cart.n)
				cart_remove(p, &p->cart.v[p->cart.n - 1]);
		} else if ((c = cart_find(p, k, kn, h)))
			cart_remove(p, c);
		break;
	}
}

static void
buy_add(struct profile *p, const struct event *ev, uint32_t max)
{
	struct pbuy *b;

	if (max == 0)
		return;
	while (p->buys.n >= max) {
		pstr_drop(p, p->buys.v[0].item);
		memmove(p->buys.v, p->buys.v + 1, (p->buys.n - 1) * sizeof *b);
		p->buys.n--;
	}
	GROW(&p->buys);
	b = &p->buys.v[p->buys.n++];
	memset(b, 0, sizeof *b);
	b->item = pstr_add(p, ev->item.p, ev->item.n);
	b->qty = (ev->has & EV_QTY) && ev->qty > 0 ? ev->qty : 1;
	if (ev->has & EV_PRICE) {
		b->price = ev->price;
		b->has_price = 1;
	}
	b->ts = ev->ts;
}

static struct phist *
hist_at(struct profile *p, uint32_t i)
{
	return &p->hist.v[(p->hist_head + i) % p->hist.cap];
}

/* Append a history entry (strings set by the caller), dropping the oldest
 * past max. */
static struct phist *
hist_push(struct profile *p, uint32_t max)
{
	struct phist *h;

	while (p->hist.n >= max) {
		h = hist_at(p, 0);
		pstr_drop(p, h->item);
		pstr_drop(p, h->query);
		p->hist_head = (p->hist_head + 1) % p->hist.cap;
		p->hist.n--;
	}
	if (p->hist.n == p->hist.cap) {
		/* Unroll the ring into a larger array. */
		uint32_t cap = p->hist.cap ? p->hist.cap * 2 : max < 32 ? max : 8;
		if (cap > max)
			cap = max;
		struct phist *v = xreallocarray(NULL, cap, sizeof *v);
		for (uint32_t i = 0; i < p->hist.n; i++)
			v[i] = *hist_at(p, i);
		free(p->hist.v);
		p->hist.v = v;
		p->hist.cap = cap;
		p->hist_head = 0;
	}
	h = hist_at(p, p->hist.n++);
	memset(h, 0, sizeof *h);
	return h;
}

static double
activity_of(const struct profile *p, const struct profile_opts *o,
	    const struct profile_stats *st)
{
	switch (o->count_norm) {
	case PNORM_LOG:
		return log1p((double)p->events);
	case PNORM_PERCENTILE:
		return st ? profile_stats_percentile(st, p->events) : p->activity;
	default:
		return 1;
	}
}

/*
 * Apply one event to p (whose user it is) under the rules o; st, if not
 * NULL, is the population the percentile normalisation ranks in, and is
 * updated. Everything runs on event time. Return 0 (the profile changed).
 */
int
profile_apply(struct profile *p, const struct event *ev,
	      const struct profile_opts *o, struct profile_stats *st)
{
	int64_t t = ev->ts, prev = p->last_seen;
	int first = p->events == 0;
	double w = o->weight[ev->type], g = 1;
	int has_item = (ev->has & EV_ITEM) && ev->item.n;

	p->half_life = o->half_life;
	if (first) {
		p->first_seen = p->last_seen = t;
	} else {
		if (t < p->first_seen)
			p->first_seen = t;
		if (t > p->last_seen) {
			if (o->half_life > 0) {
				double f = exp2(-(double)(t - p->last_seen) /
						(double)o->half_life);
				decay(&p->items, f);
				decay(&p->cats, f);
				decay(&p->brands, f);
			}
			p->last_seen = t;
		} else if (t < p->last_seen && o->half_life > 0)
			g = exp2(-(double)(p->last_seen - t) / (double)o->half_life);
	}

	/* Sessions: a new session id, or, without one, a gap. */
	if ((ev->has & EV_SESSION) && ev->session.n) {
		if (!p->has_session ||
		    !pstr_eq(p, p->last_session, ev->session.p, ev->session.n)) {
			p->sessions++;
			pstr_set(p, &p->last_session, p->has_session,
				 ev->session.p, ev->session.n);
			p->has_session = 1;
		}
	} else if (first || t - prev > o->session_gap)
		p->sessions++;

	if (ev->has & EV_SOURCE) {
		pstr_set(p, &p->source, p->has_source, ev->source.p,
			 ev->source.n);
		p->has_source = 1;
	}

	if (st && o->count_norm == PNORM_PERCENTILE) {
		if (!first)
			profile_stats_add(st, p->events, -1);
		profile_stats_add(st, p->events + 1, 1);
	}
	p->counts[ev->type]++;
	p->events++;
	p->activity = activity_of(p, o, st);

	if (has_item && w != 0) {
		const struct str *a;
		score_add(p, &p->items, o->max_items, ev->item.p, ev->item.n,
			  w * g, t);
		if ((a = first_attr(ev, o->category_attrs, o->ncategory_attrs)))
			score_add(p, &p->cats, o->max_categories, a->p, a->n,
				  w * g, t);
		if ((a = first_attr(ev, o->brand_attrs, o->nbrand_attrs)))
			score_add(p, &p->brands, o->max_brands, a->p, a->n,
				  w * g, t);
	}
	if (has_item && (ev->type == ET_ADD_TO_CART ||
			 ev->type == ET_REMOVE_FROM_CART ||
			 ev->type == ET_PURCHASE))
		cart_update(p, ev, o);
	if (has_item && ev->type == ET_PURCHASE)
		buy_add(p, ev, o->max_purchases);
	if (ev->type != ET_IMPRESSION && o->history > 0) {
		struct phist *h = hist_push(p, o->history);
		h->ts = t;
		h->type = ev->type;
		if (has_item)
			h->item = pstr_add(p, ev->item.p, ev->item.n);
		if ((ev->has & EV_QUERY) && ev->query.n)
			h->query = pstr_add(p, ev->query.p, ev->query.n);
	}
	compact(p);
	return 0;
}

static void
sort_scores(const struct profile *p, struct pscores *l)
{
	/* Insertion sort: lists are short and mostly in order already. */
	for (uint32_t i = 1; i < l->n; i++) {
		struct pscore e = l->v[i];
		uint32_t j = i;
		while (j > 0 && score_before(p, &e, &l->v[j - 1])) {
			l->v[j] = l->v[j - 1];
			j--;
		}
		l->v[j] = e;
	}
}

/* Put the score lists in their written order: score descending, then key.
 * The writers call it; the update rules do not depend on the order. */
void
profile_sort(struct profile *p)
{
	sort_scores(p, &p->items);
	sort_scores(p, &p->cats);
	sort_scores(p, &p->brands);
}

static double
positive_sum(const struct pscores *l)
{
	double s = 0;

	for (uint32_t i = 0; i < l->n; i++)
		if (l->v[i].score > 0)
			s += l->v[i].score;
	return s;
}

/* ---- JSON ---- */

static void
json_pstr(struct buf *b, const struct profile *p, struct pstr s)
{
	buf_json_str(b, p->strs + s.off, s.len);
}

static void
json_scores(struct buf *b, const struct profile *p, const char *name,
	    const struct pscores *l)
{
	double sum = 0;

	for (uint32_t i = 0; i < l->n; i++)
		if (q6(l->v[i].score) > 0)
			sum += q6(l->v[i].score);

	buf_puts(b, name);
	buf_putc(b, '[');
	for (uint32_t i = 0; i < l->n; i++) {
		const struct pscore *e = &l->v[i];
		if (i)
			buf_putc(b, ',');
		buf_puts(b, "{\"id\":");
		json_pstr(b, p, e->key);
		buf_puts(b, ",\"score\":");
		buf_put_double(b, q6(e->score));
		buf_puts(b, ",\"norm\":");
		buf_put_double(b, sum > 0 ? q6(q6(e->score) / sum) : 0);
		buf_puts(b, ",\"n\":");
		buf_put_u64(b, e->n);
		buf_puts(b, ",\"last\":");
		buf_put_i64(b, e->last);
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
}

/*
 * Append p as one compact JSON object (no newline), keys in schema order.
 * The score lists of p are sorted first (profile_sort).
 */
void
profile_write_json(struct buf *b, struct profile *p)
{
	int any = 0;

	profile_sort(p);
	buf_puts(b, "{\"user\":");
	json_pstr(b, p, p->user);
	buf_puts(b, ",\"first_seen\":");
	buf_put_i64(b, p->first_seen);
	buf_puts(b, ",\"last_seen\":");
	buf_put_i64(b, p->last_seen);
	buf_puts(b, ",\"events\":");
	buf_put_u64(b, p->events);
	buf_puts(b, ",\"sessions\":");
	buf_put_u64(b, p->sessions);
	if (p->has_session) {
		buf_puts(b, ",\"last_session\":");
		json_pstr(b, p, p->last_session);
	}
	buf_puts(b, ",\"counts\":{");
	for (int i = 0; i < ET_NTYPES; i++) {
		if (!p->counts[i])
			continue;
		if (any++)
			buf_putc(b, ',');
		buf_putc(b, '"');
		buf_puts(b, event_type_names[i]);
		buf_puts(b, "\":");
		buf_put_u64(b, p->counts[i]);
	}
	buf_puts(b, "},\"activity\":");
	buf_put_double(b, q6(p->activity));
	buf_puts(b, ",\"half_life\":");
	buf_put_i64(b, p->half_life);
	json_scores(b, p, ",\"items\":", &p->items);
	json_scores(b, p, ",\"categories\":", &p->cats);
	json_scores(b, p, ",\"brands\":", &p->brands);
	buf_puts(b, ",\"cart\":[");
	for (uint32_t i = 0; i < p->cart.n; i++) {
		const struct pcart *c = &p->cart.v[i];
		if (i)
			buf_putc(b, ',');
		buf_puts(b, "{\"item\":");
		json_pstr(b, p, c->item);
		buf_puts(b, ",\"qty\":");
		buf_put_i64(b, c->qty);
		if (c->has_price) {
			buf_puts(b, ",\"price\":");
			buf_put_double(b, c->price);
		}
		buf_puts(b, ",\"ts\":");
		buf_put_i64(b, c->ts);
		buf_putc(b, '}');
	}
	buf_puts(b, "],\"purchases\":[");
	for (uint32_t i = 0; i < p->buys.n; i++) {
		const struct pbuy *c = &p->buys.v[i];
		if (i)
			buf_putc(b, ',');
		buf_puts(b, "{\"item\":");
		json_pstr(b, p, c->item);
		buf_puts(b, ",\"qty\":");
		buf_put_i64(b, c->qty);
		if (c->has_price) {
			buf_puts(b, ",\"price\":");
			buf_put_double(b, c->price);
		}
		buf_puts(b, ",\"ts\":");
		buf_put_i64(b, c->ts);
		buf_putc(b, '}');
	}
	buf_puts(b, "],\"history\":[");
	for (uint32_t i = 0; i < p->hist.n; i++) {
		const struct phist *h = hist_at(p, i);
		if (i)
			buf_putc(b, ',');
		buf_puts(b, "{\"ts\":");
		buf_put_i64(b, h->ts);
		buf_puts(b, ",\"type\":\"");
		buf_puts(b, event_type_names[h->type]);
		buf_putc(b, '"');
		if (h->item.len) {
			buf_puts(b, ",\"item\":");
			json_pstr(b, p, h->item);
		}
		if (h->query.len) {
			buf_puts(b, ",\"query\":");
			json_pstr(b, p, h->query);
		}
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
	if (p->has_source) {
		buf_puts(b, ",\"source\":");
		json_pstr(b, p, p->source);
	}
	buf_puts(b, ",\"v\":1}");
}

/* ---- JSON parsing (jansson) ---- */

struct jctx {
	char *err;
	size_t errlen;
	int failed;
};

static int jfail(struct jctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
jfail(struct jctx *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->failed) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	c->failed = 1;
	return -1;
}

static int64_t
jint(struct jctx *c, json_t *o, const char *k, int required, int64_t min)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v)) {
		if (required)
			jfail(c, "missing field %s", k);
		return 0;
	}
	if (!json_is_integer(v))
		return jfail(c, "field %s: not an integer", k), 0;
	if (json_integer_value(v) < min)
		return jfail(c, "field %s: out of range", k), 0;
	return json_integer_value(v);
}

static double
jnum(struct jctx *c, json_t *o, const char *k, int *has)
{
	json_t *v = json_object_get(o, k);

	if (has)
		*has = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return jfail(c, "field %s: not a number", k), 0;
	if (has)
		*has = 1;
	return json_number_value(v);
}

/* A string field as a pstr of p; *has says whether it was there. */
static struct pstr
jstr(struct jctx *c, struct profile *p, json_t *o, const char *k,
     int required, int *has)
{
	json_t *v = json_object_get(o, k);
	struct pstr r = { 0, 0 };

	if (has)
		*has = 0;
	if (!v || json_is_null(v)) {
		if (required)
			jfail(c, "missing field %s", k);
		return r;
	}
	if (!json_is_string(v))
		return jfail(c, "field %s: not a string", k), r;
	if (has)
		*has = 1;
	return pstr_add(p, json_string_value(v), json_string_length(v));
}

static json_t *
jarray(struct jctx *c, json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_array(v))
		return jfail(c, "field %s: not an array", k), NULL;
	return v;
}

static void
jscores(struct jctx *c, struct profile *p, json_t *o, const char *k,
	struct pscores *l)
{
	json_t *a = jarray(c, o, k), *e;
	size_t i;

	if (!a)
		return;
	json_array_foreach(a, i, e) {
		struct pscore *s;
		if (!json_is_object(e)) {
			jfail(c, "field %s: an entry is not an object", k);
			return;
		}
		GROW(l);
		s = &l->v[l->n++];
		memset(s, 0, sizeof *s);
		s->key = jstr(c, p, e, "id", 1, NULL);
		s->hash = key_hash(p->strs + s->key.off, s->key.len);
		s->score = jnum(c, e, "score", NULL);
		s->n = (uint32_t)jint(c, e, "n", 0, 0);
		s->last = jint(c, e, "last", 0, INT64_MIN);
	}
}

/*
 * Parse one profile in JSON into p (reset first; its user is the one of
 * the JSON). Unknown fields are ignored; derived fields (norm) are
 * recomputed. Return 0, or -1 with the reason in err.
 */
int
profile_parse_json(struct profile *p, const char *s, size_t n, char *err,
		   size_t errlen)
{
	json_error_t je;
	json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je), *a, *e, *v;
	struct jctx c = { err, errlen, 0 };
	const char *k;
	size_t i;
	int has;

	if (!o) {
		snprintf(err, errlen, "invalid JSON: %s", je.text);
		return -1;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	profile_reset(p, "", 0);
	p->user = jstr(&c, p, o, "user", 1, NULL);
	if (!c.failed && p->user.len == 0)
		jfail(&c, "empty %s", "user");
	v = json_object_get(o, "v");
	if (v && !(json_is_integer(v) && json_integer_value(v) >= 1 &&
		   json_integer_value(v) <= PROFILE_VERSION))
		jfail(&c, "field %s: unknown profile version", "v");
	p->first_seen = jint(&c, o, "first_seen", 1, INT64_MIN);
	p->last_seen = jint(&c, o, "last_seen", 1, INT64_MIN);
	p->events = (uint64_t)jint(&c, o, "events", 1, 0);
	p->sessions = (uint64_t)jint(&c, o, "sessions", 0, 0);
	p->last_session = jstr(&c, p, o, "last_session", 0, &p->has_session);
	p->source = jstr(&c, p, o, "source", 0, &p->has_source);
	p->activity = jnum(&c, o, "activity", NULL);
	p->half_life = jint(&c, o, "half_life", 0, 0);
	if ((v = json_object_get(o, "counts")) && !json_is_null(v)) {
		if (!json_is_object(v))
			jfail(&c, "field %s: not an object", "counts");
		else
			json_object_foreach(v, k, e) {
				int t = event_type_parse(k, strlen(k));
				if (t < 0) {
					jfail(&c, "counts: unknown event type %s", k);
					break;
				}
				if (!json_is_integer(e) || json_integer_value(e) < 0) {
					jfail(&c, "counts: %s is not a count", k);
					break;
				}
				p->counts[t] = (uint64_t)json_integer_value(e);
			}
	}
	jscores(&c, p, o, "items", &p->items);
	jscores(&c, p, o, "categories", &p->cats);
	jscores(&c, p, o, "brands", &p->brands);
	if ((a = jarray(&c, o, "cart")))
		json_array_foreach(a, i, e) {
			struct pcart *x;
			if (!json_is_object(e)) {
				jfail(&c, "field %s: an entry is not an object", "cart");
				break;
			}
			GROW(&p->cart);
			x = &p->cart.v[p->cart.n++];
			memset(x, 0, sizeof *x);
			x->item = jstr(&c, p, e, "item", 1, NULL);
			x->hash = key_hash(p->strs + x->item.off, x->item.len);
			x->qty = jint(&c, e, "qty", 0, INT64_MIN);
			x->price = jnum(&c, e, "price", &x->has_price);
			x->ts = jint(&c, e, "ts", 0, INT64_MIN);
		}
	if ((a = jarray(&c, o, "purchases")))
		json_array_foreach(a, i, e) {
			struct pbuy *x;
			if (!json_is_object(e)) {
				jfail(&c, "field %s: an entry is not an object", "purchases");
				break;
			}
			GROW(&p->buys);
			x = &p->buys.v[p->buys.n++];
			memset(x, 0, sizeof *x);
			x->item = jstr(&c, p, e, "item", 1, NULL);
			x->qty = jint(&c, e, "qty", 0, INT64_MIN);
			x->price = jnum(&c, e, "price", &x->has_price);
			x->ts = jint(&c, e, "ts", 0, INT64_MIN);
		}
	if ((a = jarray(&c, o, "history")))
		json_array_foreach(a, i, e) {
			struct phist *h;
			json_t *ty;
			if (!json_is_object(e)) {
				jfail(&c, "field %s: an entry is not an object", "history");
				break;
			}
			ty = json_object_get(e, "type");
			if (!json_is_string(ty) ||
			    event_type_parse(json_string_value(ty),
					     json_string_length(ty)) < 0) {
				jfail(&c, "history: bad %s", "type");
				break;
			}
			h = hist_push(p, UINT32_MAX);
			h->type = event_type_parse(json_string_value(ty),
						   json_string_length(ty));
			h->ts = jint(&c, e, "ts", 1, INT64_MIN);
			h->item = jstr(&c, p, e, "item", 0, &has);
			h->query = jstr(&c, p, e, "query", 0, &has);
		}
	json_decref(o);
	return c.failed ? -1 : 0;
}

/* ---- the binary form: the Avro binary encoding of reco.Profile ---- */

/* The writers below assume the room profile_encode reserved up front. */
static inline void
w_long(struct buf *b, int64_t v)
{
	b->n = (size_t)(varint_put(b->p + b->n, v) - b->p);
}

static inline void
w_bytes(struct buf *b, const char *p, size_t n)
{
	w_long(b, (int64_t)n);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static inline void
w_str(struct buf *b, const struct profile *p, struct pstr s)
{
	w_bytes(b, p->strs + s.off, s.len);
}

static inline void
w_double(struct buf *b, double d)
{
	uint64_t u;

	memcpy(&u, &d, 8);
	for (int i = 0; i < 8; i++)
		b->p[b->n++] = (char)(u >> (8 * i));
}

static void
w_opt_str(struct buf *b, const struct profile *p, int has, struct pstr s)
{
	w_long(b, has ? 1 : 0);
	if (has)
		w_str(b, p, s);
}

static void
w_scores(struct buf *b, const struct profile *p, const struct pscores *l)
{
	double sum = positive_sum(l);

	if (l->n) {
		w_long(b, l->n);
		for (uint32_t i = 0; i < l->n; i++) {
			const struct pscore *e = &l->v[i];
			w_str(b, p, e->key);
			w_double(b, e->score);
			w_double(b, sum > 0 ? e->score / sum : 0);
			w_long(b, e->n);
			w_long(b, e->last);
		}
	}
	w_long(b, 0);
}

/*
 * Append p in the compact binary form: the Avro binary encoding of one
 * reco.Profile record (schema/profile.avsc). The score lists of p are
 * sorted first, so equal profiles give equal bytes.
 */
void
profile_encode(struct buf *b, struct profile *p)
{
	int nc = 0;
	size_t entries = (size_t)p->items.n + p->cats.n + p->brands.n +
			 p->cart.n + p->buys.n + p->hist.n;

	profile_sort(p);
	/* Every string once at most (they are all in the arena), 50 bytes
	 * of numbers an entry at most, the counts and the rest. */
	buf_reserve(b, (size_t)p->nstrs + 50 * entries + 7 * 40 + 256);
	w_str(b, p, p->user);
	w_long(b, p->first_seen);
	w_long(b, p->last_seen);
	w_long(b, (int64_t)p->events);
	w_long(b, (int64_t)p->sessions);
	w_opt_str(b, p, p->has_session, p->last_session);
	for (int i = 0; i < ET_NTYPES; i++)
		nc += p->counts[i] != 0;
	if (nc) {
		w_long(b, nc);
		for (int i = 0; i < ET_NTYPES; i++)
			if (p->counts[i]) {
				w_bytes(b, event_type_names[i],
					strlen(event_type_names[i]));
				w_long(b, (int64_t)p->counts[i]);
			}
	}
	w_long(b, 0);
	w_double(b, p->activity);
	w_long(b, p->half_life);
	w_scores(b, p, &p->items);
	w_scores(b, p, &p->cats);
	w_scores(b, p, &p->brands);
	if (p->cart.n) {
		w_long(b, p->cart.n);
		for (uint32_t i = 0; i < p->cart.n; i++) {
			const struct pcart *c = &p->cart.v[i];
			w_str(b, p, c->item);
			w_long(b, c->qty);
			w_long(b, c->has_price);
			if (c->has_price)
				w_double(b, c->price);
			w_long(b, c->ts);
		}
	}
	w_long(b, 0);
	if (p->buys.n) {
		w_long(b, p->buys.n);
		for (uint32_t i = 0; i < p->buys.n; i++) {
			const struct pbuy *c = &p->buys.v[i];
			w_str(b, p, c->item);
			w_long(b, c->qty);
			w_long(b, c->has_price);
			if (c->has_price)
				w_double(b, c->price);
			w_long(b, c->ts);
		}
	}
	w_long(b, 0);
	if (p->hist.n) {
		w_long(b, p->hist.n);
		for (uint32_t i = 0; i < p->hist.n; i++) {
			const struct phist *h = hist_at(p, i);
			w_long(b, h->ts);
			w_long(b, h->type);
			w_opt_str(b, p, h->item.len > 0, h->item);
			w_opt_str(b, p, h->query.len > 0, h->query);
		}
	}
	w_long(b, 0);
	w_opt_str(b, p, p->has_source, p->source);
	w_long(b, PROFILE_VERSION);
}

/*
 * The packed form, for the state file and the profiles a writer keeps
 * packed in memory: what profile_encode writes, less what can be told
 * again. The first byte is PROFILE_PACKED; times are differences from
 * last_seen (the last event's time is near the others); the counts follow
 * a bit set of the types that have one; a score list's entries carry no
 * norm (profile_decode derives it again, as from reco.Profile); and an item
 * of the history or the cart that is in the item list is the number of
 * its entry there, not its id again. About 0.57 times the bytes of the
 * encoding on long-tail traffic; profile_decode reads both forms.
 */
static inline void
w_since(struct buf *b, int64_t last_seen, int64_t ts)
{
	/* In unsigned arithmetic: a difference of any two times wraps
	 * back exactly. */
	w_long(b, (int64_t)((uint64_t)last_seen - (uint64_t)ts));
}

/* Item s: k * mul + low, where k is 1 with the id after it, or 2 + the
 * number of its entry in the item list. */
static void
w_item(struct buf *b, const struct profile *p, struct pstr s, int64_t mul,
       int64_t low)
{
	uint32_t h = key_hash(p->strs + s.off, s.len);

	for (uint32_t i = 0; i < p->items.n; i++) {
		const struct pscore *e = &p->items.v[i];
		if (e->hash == h && pstr_eq(p, e->key, p->strs + s.off, s.len)) {
			w_long(b, (int64_t)(2 + i) * mul + low);
			return;
		}
	}
	w_long(b, mul + low);
	w_str(b, p, s);
}

static void
w_pscores(struct buf *b, const struct profile *p, const struct pscores *l)
{
	w_long(b, l->n);
	for (uint32_t i = 0; i < l->n; i++) {
		const struct pscore *e = &l->v[i];
		w_str(b, p, e->key);
		w_double(b, e->score);
		w_long(b, e->n);
		w_since(b, p->last_seen, e->last);
	}
}

/* A line of the cart or of the purchases. */
static void
w_line(struct buf *b, const struct profile *p, struct pstr item, int has_price,
       int64_t qty, double price, int64_t ts)
{
	w_item(b, p, item, 2, has_price);
	w_long(b, qty);
	if (has_price)
		w_double(b, price);
	w_since(b, p->last_seen, ts);
}

void
profile_pack(struct buf *b, struct profile *p)
{
	size_t entries = (size_t)p->items.n + p->cats.n + p->brands.n +
			 p->cart.n + p->buys.n + p->hist.n;
	int64_t types = 0;

	profile_sort(p);
	buf_reserve(b, (size_t)p->nstrs + 50 * entries + 12 * ET_NTYPES + 256);
	b->p[b->n++] = PROFILE_PACKED;
	w_str(b, p, p->user);
	w_long(b, p->last_seen);
	w_since(b, p->last_seen, p->first_seen);
	w_long(b, (int64_t)p->events);
	w_long(b, (int64_t)p->sessions);
	w_opt_str(b, p, p->has_session, p->last_session);
	for (int i = 0; i < ET_NTYPES; i++)
		if (p->counts[i])
			types |= (int64_t)1 << i;
	w_long(b, types);
	for (int i = 0; i < ET_NTYPES; i++)
		if (p->counts[i])
			w_long(b, (int64_t)p->counts[i]);
	w_double(b, p->activity);
	w_long(b, p->half_life);
	w_pscores(b, p, &p->items);
	w_pscores(b, p, &p->cats);
	w_pscores(b, p, &p->brands);
	w_long(b, p->cart.n);
	for (uint32_t i = 0; i < p->cart.n; i++) {
		const struct pcart *c = &p->cart.v[i];
		w_line(b, p, c->item, c->has_price, c->qty, c->price, c->ts);
	}
	w_long(b, p->buys.n);
	for (uint32_t i = 0; i < p->buys.n; i++) {
		const struct pbuy *c = &p->buys.v[i];
		w_line(b, p, c->item, c->has_price, c->qty, c->price, c->ts);
	}
	w_long(b, p->hist.n);
	for (uint32_t i = 0; i < p->hist.n; i++) {
		const struct phist *h = hist_at(p, i);
		int64_t low = h->type + (int64_t)ET_NTYPES * (h->query.len > 0);
		w_since(b, p->last_seen, h->ts);
		if (h->item.len)
			w_item(b, p, h->item, 2 * ET_NTYPES, low);
		else
			w_long(b, low);
		if (h->query.len)
			w_str(b, p, h->query);
	}
	w_opt_str(b, p, p->has_source, p->source);
}

struct dec {
	const char *p, *e;
	int bad;
};

static int64_t
d_long(struct dec *d)
{
	int64_t v = 0;

	if (!d->bad && get_varint(&d->p, d->e, &v))
		d->bad = 1;
	return d->bad ? 0 : v;
}

static double
d_double(struct dec *d)
{
	uint64_t u = 0;
	double x;

	if (d->bad || d->e - d->p < 8) {
		d->bad = 1;
		return 0;
	}
	for (int i = 0; i < 8; i++)
		u |= (uint64_t)(unsigned char)d->p[i] << (8 * i);
	d->p += 8;
	memcpy(&x, &u, 8);
	return x;
}

static int64_t
d_since(struct dec *d, int64_t last_seen)
{
	return (int64_t)((uint64_t)last_seen - (uint64_t)d_long(d));
}

static struct pstr
d_str(struct dec *d, struct profile *p)
{
	struct str s = { NULL, 0 };
	struct pstr r = { 0, 0 };

	if (d->bad || get_bytes(&d->p, d->e, &s)) {
		d->bad = 1;
		return r;
	}
	return pstr_add(p, s.p, s.n);
}

static int
d_opt(struct dec *d)
{
	int64_t u = d_long(d);

	if (u != 0 && u != 1)
		d->bad = 1;
	return u == 1 && !d->bad;
}

/* The count of the next array or map block (0 at the end); a negative
 * count is followed by the block's size in bytes, which we skip. */
static int64_t
d_block(struct dec *d)
{
	int64_t n = d_long(d);

	if (n < 0) {
		n = -n;
		d_long(d);
	}
	/* Every entry takes a byte at least. */
	if (n > d->e - d->p)
		d->bad = 1;
	return d->bad ? 0 : n;
}

/* Room for k more entries in one allocation. */
static void
reserve(void **v, uint32_t *cap, uint32_t n, int64_t k, size_t size)
{
	if (n + (uint64_t)k > *cap) {
		*cap = (uint32_t)(n + (uint64_t)k);
		*v = xreallocarray(*v, *cap, size);
	}
}
#define RESERVE(a, k) \
	reserve((void **)&(a)->v, &(a)->cap, (a)->n, (k), sizeof *(a)->v)

/* n entries of a score list: reco.Profile's (with the norm, which is
 * derived, and the time itself) or, packed, the packed form's. */
static void
d_entries(struct dec *d, struct profile *p, struct pscores *l, int64_t n,
	  int packed)
{
	RESERVE(l, n);
	while (n-- > 0 && !d->bad) {
		struct pscore *s;
		GROW(l);
		s = &l->v[l->n++];
		s->key = d_str(d, p);
		s->hash = key_hash(p->strs + s->key.off, s->key.len);
		s->score = d_double(d);
		if (!packed)
			d_double(d); /* norm: derived */
		s->n = (uint32_t)d_long(d);
		s->last = packed ? d_since(d, p->last_seen) : d_long(d);
	}
}

static void
d_scores(struct dec *d, struct profile *p, struct pscores *l)
{
	int64_t n;

	while ((n = d_block(d)) > 0)
		d_entries(d, p, l, n, 0);
}

static int
decode_one(struct profile *p, struct dec *d)
{
	int64_t n, v;

	profile_reset(p, "", 0);
	/* The strings take less room than the record. */
	if (p->capstrs < (size_t)(d->e - d->p) && d->e - d->p < (1 << 30)) {
		p->capstrs = (uint32_t)(d->e - d->p);
		p->strs = xrealloc(p->strs, p->capstrs);
	}
	p->user = d_str(d, p);
	p->first_seen = d_long(d);
	p->last_seen = d_long(d);
	p->events = (uint64_t)d_long(d);
	p->sessions = (uint64_t)d_long(d);
	if ((p->has_session = d_opt(d)))
		p->last_session = d_str(d, p);
	while ((n = d_block(d)) > 0)
		while (n-- > 0 && !d->bad) {
			struct str k = { NULL, 0 };
			if (get_bytes(&d->p, d->e, &k)) {
				d->bad = 1;
				break;
			}
			int t = event_type_parse(k.p, k.n);
			v = d_long(d);
			if (t < 0 || v < 0)
				d->bad = 1;
			else
				p->counts[t] = (uint64_t)v;
		}
	p->activity = d_double(d);
	p->half_life = d_long(d);
	d_scores(d, p, &p->items);
	d_scores(d, p, &p->cats);
	d_scores(d, p, &p->brands);
	while ((n = d_block(d)) > 0)
		for (RESERVE(&p->cart, n); n-- > 0 && !d->bad;) {
			struct pcart *c;
			GROW(&p->cart);
			c = &p->cart.v[p->cart.n++];
			memset(c, 0, sizeof *c);
			c->item = d_str(d, p);
			c->hash = key_hash(p->strs + c->item.off, c->item.len);
			c->qty = d_long(d);
			if ((c->has_price = d_opt(d)))
				c->price = d_double(d);
			c->ts = d_long(d);
		}
	while ((n = d_block(d)) > 0)
		for (RESERVE(&p->buys, n); n-- > 0 && !d->bad;) {
			struct pbuy *c;
			GROW(&p->buys);
			c = &p->buys.v[p->buys.n++];
			memset(c, 0, sizeof *c);
			c->item = d_str(d, p);
			c->qty = d_long(d);
			if ((c->has_price = d_opt(d)))
				c->price = d_double(d);
			c->ts = d_long(d);
		}
	while ((n = d_block(d)) > 0)
		while (n-- > 0 && !d->bad) {
			struct phist *h = hist_push(p, UINT32_MAX);
			h->ts = d_long(d);
			v = d_long(d);
			if (v < 0 || v >= ET_NTYPES)
				d->bad = 1;
			h->type = (int)v;
			if (d_opt(d))
				h->item = d_str(d, p);
			if (d_opt(d))
				h->query = d_str(d, p);
		}
	if ((p->has_source = d_opt(d)))
		p->source = d_str(d, p);
	v = d_long(d);
	if (v < 1 || v > PROFILE_VERSION)
		d->bad = 1;
	return d->bad ? -1 : 0;
}

/* The count of a list of the packed form: each entry takes a byte at
 * least. */
static int64_t
d_count(struct dec *d)
{
	int64_t n = d_long(d);

	if (n < 0 || n > d->e - d->p)
		d->bad = 1;
	return d->bad ? 0 : n;
}

/* An item of w_item's form, given its k: the id after it, or a copy of
 * an entry's of the item list. */
static struct pstr
d_item(struct dec *d, struct profile *p, int64_t k)
{
	struct pstr none = { 0, 0 };

	if (k == 1)
		return d_str(d, p);
	if (k < 2 || k - 2 >= (int64_t)p->items.n) {
		d->bad = 1;
		return none;
	}
	return pstr_dup(p, p->items.v[k - 2].key);
}

/* A line of w_line's form. */
static void
d_line(struct dec *d, struct profile *p, struct pstr *item, int *has_price,
       int64_t *qty, double *price, int64_t *ts)
{
	int64_t v = d_long(d);

	*has_price = (int)(v & 1);
	*item = d_item(d, p, v >> 1);
	*qty = d_long(d);
	if (*has_price)
		*price = d_double(d);
	*ts = d_since(d, p->last_seen);
}

static void
d_pscores(struct dec *d, struct profile *p, struct pscores *l)
{
	d_entries(d, p, l, d_count(d), 1);
}

/* profile_pack's form, after its first byte. */
static int
decode_packed(struct profile *p, struct dec *d)
{
	int64_t n, v;

	profile_reset(p, "", 0);
	p->user = d_str(d, p);
	p->last_seen = d_long(d);
	p->first_seen = d_since(d, p->last_seen);
	p->events = (uint64_t)d_long(d);
	p->sessions = (uint64_t)d_long(d);
	if ((p->has_session = d_opt(d)))
		p->last_session = d_str(d, p);
	int64_t types = d_long(d);
	if (types < 0 || types >= (int64_t)1 << ET_NTYPES)
		d->bad = 1;
	for (int i = 0; i < ET_NTYPES && !d->bad; i++)
		if (types >> i & 1) {
			v = d_long(d);
			if (v <= 0)
				d->bad = 1;
			p->counts[i] = (uint64_t)v;
		}
	p->activity = d_double(d);
	p->half_life = d_long(d);
	d_pscores(d, p, &p->items);
	d_pscores(d, p, &p->cats);
	d_pscores(d, p, &p->brands);
	n = d_count(d);
	for (RESERVE(&p->cart, n); n-- > 0 && !d->bad;) {
		struct pcart *c;
		GROW(&p->cart);
		c = &p->cart.v[p->cart.n++];
		memset(c, 0, sizeof *c);
		d_line(d, p, &c->item, &c->has_price, &c->qty, &c->price, &c->ts);
		c->hash = key_hash(p->strs + c->item.off, c->item.len);
	}
	n = d_count(d);
	for (RESERVE(&p->buys, n); n-- > 0 && !d->bad;) {
		struct pbuy *c;
		GROW(&p->buys);
		c = &p->buys.v[p->buys.n++];
		memset(c, 0, sizeof *c);
		d_line(d, p, &c->item, &c->has_price, &c->qty, &c->price, &c->ts);
	}
	n = d_count(d);
	while (n-- > 0 && !d->bad) {
		struct phist *h = hist_push(p, UINT32_MAX);
		h->ts = d_since(d, p->last_seen);
		v = d_long(d);
		if (v < 0)
			d->bad = 1;
		h->type = (int)(v % ET_NTYPES);
		int64_t k = v / (2 * ET_NTYPES);
		if (k)
			h->item = d_item(d, p, k);
		if (v / ET_NTYPES % 2)
			h->query = d_str(d, p);
	}
	if ((p->has_source = d_opt(d)))
		p->source = d_str(d, p);
	return d->bad ? -1 : 0;
}

/*
 * Decode one profile in the binary form from s[0..n) (all of it) into p:
 * reco.Profile's encoding (profile_encode) or the packed form
 * (profile_pack).
 * Return 0, or -1 with the reason in err (p is then half filled).
 */
int
profile_decode(struct profile *p, const char *s, size_t n, char *err,
	       size_t errlen)
{
	struct dec d = { s, s + n, 0 };
	int r;

	if (n > 0 && (unsigned char)s[0] == PROFILE_PACKED) {
		d.p++;
		r = decode_packed(p, &d);
	} else
		r = decode_one(p, &d);
	if (r || d.p != d.e) {
		snprintf(err, errlen, "corrupt profile record");
		return -1;
	}
	return 0;
}

/* ---- the population, for percentiles ---- */

static unsigned
bucket_of(uint64_t n)
{
	unsigned e;

	if (n < 128)
		return (unsigned)n;
	e = 63 - (unsigned)__builtin_clzll(n);
	return 128 + (e - 7) * 16 + (unsigned)((n >> (e - 4)) & 15);
}

static uint64_t
prefix(const struct profile_stats *st, unsigned b)
{
	uint64_t s = 0;

	for (unsigned i = b + 1; i > 0; i -= i & -i)
		s += st->tree[i];
	return s;
}

/* Count a user with events events in (delta 1) or out (delta -1). */
void
profile_stats_add(struct profile_stats *st, uint64_t events, int delta)
{
	uint64_t d = (uint64_t)(int64_t)delta;

	if (events == 0)
		return;
	for (unsigned i = bucket_of(events) + 1; i <= PSTATS_BUCKETS; i += i & -i)
		st->tree[i] += d;
	st->users += d;
}

/* The fraction of users with at most events events (0 if none). */
double
profile_stats_percentile(const struct profile_stats *st, uint64_t events)
{
	if (st->users == 0)
		return 0;
	return (double)prefix(st, bucket_of(events)) / (double)st->users;
}

/* Append st: the number of non-empty buckets, then (bucket, users) pairs. */
void
profile_stats_encode(struct buf *b, const struct profile_stats *st)
{
	uint64_t below = 0, c;
	int64_t n = 0;

	for (unsigned i = 0; i < PSTATS_BUCKETS; i++) {
		c = prefix(st, i);
		n += c != below;
		below = c;
	}
	buf_put_varint(b, n);
	below = 0;
	for (unsigned i = 0; i < PSTATS_BUCKETS; i++) {
		c = prefix(st, i);
		if (c != below) {
			buf_put_varint(b, i);
			buf_put_varint(b, (int64_t)(c - below));
		}
		below = c;
	}
}

/* Read what profile_stats_encode wrote (all of s[0..n)). Return 0 or -1. */
int
profile_stats_decode(struct profile_stats *st, const char *s, size_t n)
{
	const char *p = s, *e = s + n;
	int64_t k, b, c;

	memset(st, 0, sizeof *st);
	if (get_varint(&p, e, &k) || k < 0 || k > PSTATS_BUCKETS)
		return -1;
	while (k-- > 0) {
		if (get_varint(&p, e, &b) || get_varint(&p, e, &c) || b < 0 ||
		    b >= PSTATS_BUCKETS || c < 0)
			return -1;
		for (unsigned i = (unsigned)b + 1; i <= PSTATS_BUCKETS; i += i & -i)
			st->tree[i] += (uint64_t)c;
		st->users += (uint64_t)c;
	}
	return p == e ? 0 : -1;
}

/* ---- Avro object container files of profiles ---- */

/* A file of profiles, read through avro.c's container reader. */
struct profile_avro_in {
	struct avro_file f;
	struct dec d;
};

/*
 * Open the Avro object container file of profiles at the current file of
 * s (its magic not yet consumed). Its schema must be reco.Profile as this
 * version writes it. Return a reader (free with profile_avro_in_free), or
 * NULL with the reason in err.
 */
struct profile_avro_in *
profile_avro_in_open(struct src *s, char *err, size_t errlen)
{
	struct profile_avro_in *a = xcalloc(1, sizeof *a);

	if (avro_file_open(&a->f, s, err, errlen))
		goto fail;
	if (strcmp(a->f.schema, profile_avsc) != 0) {
		snprintf(err, errlen, "not a file of reco.Profile version %d",
			 PROFILE_VERSION);
		goto fail;
	}
	return a;
fail:
	profile_avro_in_free(a);
	return NULL;
}

/* Read the next profile into p. Return 1, 0 at the end of the file, or -1
 * with the reason in err (the rest of the file is then unreadable). */
int
profile_avro_in_next(struct profile_avro_in *a, struct profile *p, char *err,
		     size_t errlen)
{
	while (a->f.left == 0) {
		int r = avro_file_block(&a->f, err, errlen);
		if (r <= 0)
			return r < 0 ? -1 : 0;
		a->d.p = (const char *)a->f.p;
		a->d.e = (const char *)a->f.e;
		a->d.bad = 0;
	}
	if (decode_one(p, &a->d)) {
		snprintf(err, errlen, "corrupt profile record");
		a->f.left = 0;
		return -1;
	}
	a->f.left--;
	return 1;
}

void
profile_avro_in_free(struct profile_avro_in *a)
{
	if (!a)
		return;
	avro_file_free(&a->f);
	free(a);
}
