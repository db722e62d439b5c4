/* event.c: the canonical event reco.Event v1: types, validation, NDJSON output. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

const char *const event_type_names[ET_NTYPES] = {
	"view", "click", "search", "add_to_cart", "remove_from_cart",
	"purchase", "impression"
};

/* Return the ET_* value of the type named p[0..n), or -1. */
int
event_type_parse(const char *p, size_t n)
{
	int i;

	/* The names differ in length: one compare checks. */
	switch (n) {
	case 4: i = ET_VIEW; break;
	case 5: i = ET_CLICK; break;
	case 6: i = ET_SEARCH; break;
	case 8: i = ET_PURCHASE; break;
	case 10: i = ET_IMPRESSION; break;
	case 11: i = ET_ADD_TO_CART; break;
	case 16: i = ET_REMOVE_FROM_CART; break;
	default: return -1;
	}
	return memcmp(event_type_names[i], p, n) == 0 ? i : -1;
}

/* Every type but search is about an item. */
int
event_type_needs_item(int type)
{
	return type != ET_SEARCH;
}

void
event_init(struct event *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->v = EVENT_VERSION;
}

/* Forget the fields but keep the allocations for the next record. */
void
event_reset(struct event *ev)
{
	/* Field by field: the names of unknown fields are not cleared, only
	 * their count (once per record, this shows in a profile). */
	ev->event_id = ev->user = ev->item = ev->session = ev->query =
		ev->source = (struct str){ NULL, 0 };
	ev->ts = ev->qty = 0;
	ev->price = 0;
	ev->type = 0;
	ev->has = 0;
	ev->nattrs = 0;
	ev->arena.n = 0;
	ev->clean_lo = ev->clean_hi = NULL;
	ev->canon = (struct str){ NULL, 0 };
	ev->nunknown = 0;
	ev->v = EVENT_VERSION;
}

void
event_free(struct event *ev)
{
	if (!ev)
		return;
	free(ev->attrs);
	buf_free(&ev->arena);
	ev->attrs = NULL;
	ev->attrs_cap = ev->nattrs = 0;
}

/*
 * Copy p[0..n) into the event's arena and return the copy. Earlier pointers
 * into the arena stay valid only if no reallocation happens, so callers
 * reserve first (event_arena_copy reserves generously) or store offsets.
 */
const char *
event_arena_copy(struct event *ev, const char *p, size_t n)
{
	size_t off = ev->arena.n;
	char *old = ev->arena.p;

	buf_reserve(&ev->arena, n + 1);
	if (old && ev->arena.p != old) {
		/* The arena moved: rebase every string that pointed into it. */
		struct str *f[] = { &ev->event_id, &ev->user, &ev->item,
				    &ev->session, &ev->query, &ev->source };
		for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
			if (f[i]->p >= old && f[i]->p < old + off)
				f[i]->p = ev->arena.p + (f[i]->p - old);
		for (size_t i = 0; i < ev->nattrs; i++) {
			struct str *s[] = { &ev->attrs[i].key, &ev->attrs[i].val };
			for (int j = 0; j < 2; j++)
				if (s[j]->p >= old && s[j]->p < old + off)
					s[j]->p = ev->arena.p + (s[j]->p - old);
		}
		for (size_t i = 0; i < ev->nunknown; i++)
			if (ev->unknown[i].p >= old && ev->unknown[i].p < old + off)
				ev->unknown[i].p =
					ev->arena.p + (ev->unknown[i].p - old);
	}
	memcpy(ev->arena.p + off, p, n);
	ev->arena.p[off + n] = '\0';
	ev->arena.n = off + n + 1;
	return ev->arena.p + off;
}

/* Append an attribute; the strings are referenced, not copied. A key that is
 * already present gets the new value. */
void
event_add_attr(struct event *ev, const char *k, size_t kn, const char *v,
	       size_t vn)
{
	for (size_t i = 0; i < ev->nattrs; i++)
		if (ev->attrs[i].key.n == kn &&
		    memcmp(ev->attrs[i].key.p, k, kn) == 0) {
			event_changed(ev);
			ev->attrs[i].val.p = v;
			ev->attrs[i].val.n = vn;
			return;
		}
	event_append_attr(ev, k, kn, v, vn);
}

/* Append an attribute whose key the caller knows is new (the parsers,
 * which reject repeated keys): no search. */
void
event_append_attr(struct event *ev, const char *k, size_t kn, const char *v,
		  size_t vn)
{
	if (ev->nattrs == ev->attrs_cap) {
		ev->attrs_cap = ev->attrs_cap ? ev->attrs_cap * 2 : 8;
		ev->attrs = xreallocarray(ev->attrs, ev->attrs_cap,
					  sizeof *ev->attrs);
	}
	event_changed(ev);
	ev->attrs[ev->nattrs].key.p = k;
	ev->attrs[ev->nattrs].key.n = kn;
	ev->attrs[ev->nattrs].val.p = v;
	ev->attrs[ev->nattrs].val.n = vn;
	ev->nattrs++;
	ev->has |= EV_ATTRS;
}

/* Return the value of attribute k, or NULL. */
const struct str *
event_get_attr(const struct event *ev, const char *k)
{
	return event_get_attr_n(ev, k, strlen(k));
}

const struct str *
event_get_attr_n(const struct event *ev, const char *k, size_t kn)
{
	for (size_t i = 0; i < ev->nattrs; i++)
		if (ev->attrs[i].key.n == kn &&
		    memcmp(ev->attrs[i].key.p, k, kn) == 0)
			return &ev->attrs[i].val;
	return NULL;
}

/* Earliest and latest accepted event times: 1970 to the year 9999. */
#define TS_MAX 253402300799999LL

/*
 * Check the rules that the schema cannot express. Return 0 if the event is
 * valid, else -RJ_* (the reject reason, negated) with a message in err.
 */
int
event_validate(const struct event *ev, char *err, size_t errlen)
{
	if (ev->event_id.n == 0) {
		snprintf(err, errlen, "empty event_id");
		return -RJ_INVALID_EVENT;
	}
	if (ev->user.n == 0) {
		snprintf(err, errlen, "empty user");
		return -RJ_INVALID_EVENT;
	}
	if (ev->ts < 0 || ev->ts > TS_MAX) {
		snprintf(err, errlen, "timestamp out of range %lld",
			 (long long)ev->ts);
		return -RJ_INVALID_EVENT;
	}
	if (ev->type < 0 || ev->type >= ET_NTYPES) {
		snprintf(err, errlen, "unknown event type");
		return -RJ_UNKNOWN_TYPE;
	}
	if (event_type_needs_item(ev->type) &&
	    (!(ev->has & EV_ITEM) || ev->item.n == 0)) {
		snprintf(err, errlen, "missing item for %s event",
			 event_type_names[ev->type]);
		return -RJ_MISSING_ITEM;
	}
	if ((ev->has & EV_PRICE) && !isfinite(ev->price)) {
		snprintf(err, errlen, "price is not a finite number");
		return -RJ_INVALID_EVENT;
	}
	/* A return or a refund is an event of its own kind, never a negative
	 * purchase: negative amounts would subtract from scores and totals. */
	if ((ev->has & EV_QTY) && ev->qty < 0) {
		snprintf(err, errlen, "negative qty %lld", (long long)ev->qty);
		return -RJ_NEGATIVE;
	}
	if ((ev->has & EV_PRICE) && ev->price < 0) {
		snprintf(err, errlen, "negative price %g", ev->price);
		return -RJ_NEGATIVE;
	}
	if (ev->v < 1 || ev->v > EVENT_VERSION) {
		snprintf(err, errlen, "unsupported schema version %d", ev->v);
		return -RJ_INVALID_EVENT;
	}
	return 0;
}

/* A string field at o: copied as it is when the lean parser saw it
 * unescaped in the line (no quote, backslash or control byte), else
 * escaped. */
static inline char *
put_str(char *o, const struct event *ev, const struct str *s)
{
	if (s->p >= ev->clean_lo && s->p + s->n <= ev->clean_hi && ev->clean_lo) {
		*o++ = '"';
		memcpy(o, s->p, s->n);
		o += s->n;
		*o++ = '"';
		return o;
	}
	return json_str_put(o, s->p, s->n);
}

/* Append the event as one compact JSON object (no newline). Fields come in
 * schema order and absent optional fields are left out, so equal events
 * always give equal bytes. */
void
event_write_json(struct buf *b, const struct event *ev)
{
	const struct str *f[] = { &ev->event_id, &ev->user, &ev->item,
				  &ev->session, &ev->query, &ev->source };
	size_t room = 256; /* the keys, punctuation and numbers */
	char *o;

	if (ev->canon.p) {
		buf_put(b, ev->canon.p, ev->canon.n);
		return;
	}
	/* Room for the worst case, reserved once: every string byte
	 * escaped as \u00XX. */
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		room += 6 * f[i]->n + 2;
	for (size_t i = 0; i < ev->nattrs; i++)
		room += 6 * (ev->attrs[i].key.n + ev->attrs[i].val.n) + 6;
	buf_reserve(b, room);
	o = b->p + b->n;
#define K(s) (memcpy(o, s, sizeof(s) - 1), o += sizeof(s) - 1)
	K("{\"event_id\":");
	o = put_str(o, ev, &ev->event_id);
	K(",\"ts\":");
	o = i64_put(o, ev->ts);
	K(",\"user\":");
	o = put_str(o, ev, &ev->user);
	K(",\"type\":\"");
	/* Only a rejected record can have no known type. */
	{
		const char *t = ev->type >= 0 && ev->type < ET_NTYPES
					? event_type_names[ev->type] : "?";
		size_t tn = strlen(t);
		memcpy(o, t, tn);
		o += tn;
	}
	*o++ = '"';
	if (ev->has & EV_ITEM) {
		K(",\"item\":");
		o = put_str(o, ev, &ev->item);
	}
	if (ev->has & EV_SESSION) {
		K(",\"session\":");
		o = put_str(o, ev, &ev->session);
	}
	if (ev->has & EV_QTY) {
		K(",\"qty\":");
		o = i64_put(o, ev->qty);
	}
	if (ev->has & EV_PRICE) {
		K(",\"price\":");
		b->n = (size_t)(o - b->p);
		buf_put_double(b, ev->price);
		o = b->p + b->n;
	}
	if (ev->has & EV_QUERY) {
		K(",\"query\":");
		o = put_str(o, ev, &ev->query);
	}
	if (ev->has & EV_SOURCE) {
		K(",\"source\":");
		o = put_str(o, ev, &ev->source);
	}
	if (ev->has & EV_ATTRS) {
		K(",\"attrs\":{");
		for (size_t i = 0; i < ev->nattrs; i++) {
			if (i)
				*o++ = ',';
			o = put_str(o, ev, &ev->attrs[i].key);
			*o++ = ':';
			o = put_str(o, ev, &ev->attrs[i].val);
		}
		*o++ = '}';
	}
	K(",\"v\":");
	o = i64_put(o, ev->v);
	*o++ = '}';
#undef K
	b->n = (size_t)(o - b->p);
}

/*
 * Append the text of field name (a top-level string field, ts, type, or
 * attrs.KEY) to out. Return 0, or -1 if the event has no such value.
 */
int
event_field(const struct event *ev, const char *name, struct buf *out)
{
	const struct str *s = NULL;

	if (strcmp(name, "event_id") == 0)
		s = &ev->event_id;
	else if (strcmp(name, "user") == 0)
		s = &ev->user;
	else if (strcmp(name, "item") == 0)
		s = ev->has & EV_ITEM ? &ev->item : NULL;
	else if (strcmp(name, "session") == 0)
		s = ev->has & EV_SESSION ? &ev->session : NULL;
	else if (strcmp(name, "query") == 0)
		s = ev->has & EV_QUERY ? &ev->query : NULL;
	else if (strcmp(name, "source") == 0)
		s = ev->has & EV_SOURCE ? &ev->source : NULL;
	else if (strcmp(name, "type") == 0) {
		buf_puts(out, event_type_names[ev->type]);
		return 0;
	} else if (strcmp(name, "ts") == 0) {
		buf_put_i64(out, ev->ts);
		return 0;
	} else if (strncmp(name, "attrs.", 6) == 0)
		s = event_get_attr(ev, name + 6);
	if (!s)
		return -1;
	buf_put(out, s->p, s->n);
	return 0;
}

/* Make dst a deep copy of src (dst's strings live in dst's arena). */
void
event_copy(struct event *dst, const struct event *src)
{
	size_t need = src->event_id.n + src->user.n + src->item.n +
		      src->session.n + src->query.n + src->source.n + 6;

	for (size_t i = 0; i < src->nattrs; i++)
		need += src->attrs[i].key.n + src->attrs[i].val.n + 2;
	event_reset(dst);
	buf_reserve(&dst->arena, need);
#define C(f) dst->f.p = event_arena_copy(dst, src->f.p ? src->f.p : "", src->f.n), dst->f.n = src->f.n
	C(event_id);
	C(user);
	C(item);
	C(session);
	C(query);
	C(source);
#undef C
	for (size_t i = 0; i < src->nattrs; i++) {
		const char *k = event_arena_copy(dst, src->attrs[i].key.p,
						 src->attrs[i].key.n);
		const char *v = event_arena_copy(dst, src->attrs[i].val.p,
						 src->attrs[i].val.n);
		event_add_attr(dst, k, src->attrs[i].key.n, v,
			       src->attrs[i].val.n);
	}
	dst->ts = src->ts;
	dst->qty = src->qty;
	dst->price = src->price;
	dst->type = src->type;
	dst->v = src->v;
	dst->has = src->has;
}
