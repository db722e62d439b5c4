/* event_json.c: canonical events from NDJSON, a lean path (jsmn) and a reference path (jansson). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS /* O(1) commas and closing brackets */
#include <jsmn.h>

#include "reco.h"

/* jansson's nesting limit: both paths reject deeper documents. */
#define MAX_DEPTH 2048

/*
 * Both parsers feed the fields they find through the same setters below, so
 * the checks and the messages of the event's rules exist once.
 */
enum jkind { J_NULL, J_BOOL, J_INT, J_REAL, J_STRING, J_OBJECT, J_ARRAY };

static int fail(char *err, size_t errlen, int why, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Write the message; return -why, the reject reason (RJ_*) negated. */
static int
fail(char *err, size_t errlen, int why, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -why;
}

enum {
	F_EVENT_ID = 1 << 0,
	F_TS = 1 << 1,
	F_USER = 1 << 2,
	F_TYPE = 1 << 3,
	F_V = 1 << 4
};

static const char *const field_names[] = {
	"event_id", "ts", "user", "type", "item", "session", "qty", "price",
	"query", "source", "attrs", "v"
};
enum { FI_EVENT_ID, FI_TS, FI_USER, FI_TYPE, FI_ITEM, FI_SESSION, FI_QTY,
       FI_PRICE, FI_QUERY, FI_SOURCE, FI_ATTRS, FI_V, FI_N };

/* The index of field k[0..n), or -1: dispatch on length and first byte. */
static int
field_index(const char *k, size_t n)
{
	int i = -1;

	switch (n) {
	case 1: i = FI_V; break;
	case 2: i = FI_TS; break;
	case 3: i = FI_QTY; break;
	case 4: i = k[0] == 'u' ? FI_USER : k[0] == 't' ? FI_TYPE : FI_ITEM; break;
	case 5: i = k[0] == 'p' ? FI_PRICE : k[0] == 'q' ? FI_QUERY : FI_ATTRS; break;
	case 6: i = FI_SOURCE; break;
	case 7: i = FI_SESSION; break;
	case 8: i = FI_EVENT_ID; break;
	default: return -1;
	}
	return memcmp(field_names[i], k, n) == 0 ? i : -1;
}

/* A scalar value handed to the setters. */
struct jval {
	enum jkind kind;
	struct str s;
	int64_t i;
	double d;
};

/* Apply one top-level field. Return 0, or -1 with the reason in err. */
static int
set_field(struct event *ev, unsigned *seen, const char *k, size_t kn,
	  const struct jval *v, char *err, size_t errlen)
{
	int fi = field_index(k, kn);
	struct str *sp = NULL;
	unsigned bit = 0;

	if (fi < 0) {
		if (ev->nunknown < sizeof ev->unknown / sizeof ev->unknown[0]) {
			const char *c = event_arena_copy(ev, k, kn);
			ev->unknown[ev->nunknown].p = c;
			ev->unknown[ev->nunknown].n = kn;
			ev->nunknown++;
		}
		return 0;
	}
	switch (fi) {
	case FI_EVENT_ID: sp = &ev->event_id; *seen |= F_EVENT_ID; break;
	case FI_USER: sp = &ev->user; *seen |= F_USER; break;
	case FI_ITEM: sp = &ev->item; bit = EV_ITEM; break;
	case FI_SESSION: sp = &ev->session; bit = EV_SESSION; break;
	case FI_QUERY: sp = &ev->query; bit = EV_QUERY; break;
	case FI_SOURCE: sp = &ev->source; bit = EV_SOURCE; break;
	case FI_TS:
		if (v->kind != J_INT)
			return fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected an integer", "ts");
		ev->ts = v->i;
		*seen |= F_TS;
		return 0;
	case FI_V:
		if (v->kind != J_INT)
			return fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected an integer", "v");
		ev->v = v->i >= INT_MIN && v->i <= INT_MAX ? (int)v->i : -1;
		*seen |= F_V;
		return 0;
	case FI_TYPE:
		if (v->kind != J_STRING)
			return fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected a string", "type");
		ev->type = event_type_parse(v->s.p, v->s.n);
		if (ev->type < 0) {
			char tmp[64];
			size_t n = v->s.n < 40 ? v->s.n : 40;
			memcpy(tmp, v->s.p, n);
			tmp[n] = '\0';
			return fail(err, errlen, RJ_UNKNOWN_TYPE, "unknown event type \"%s\"", tmp);
		}
		*seen |= F_TYPE;
		return 0;
	case FI_QTY:
		if (v->kind == J_NULL)
			return 0;
		if (v->kind != J_INT)
			return fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected an integer or null", "qty");
		ev->qty = v->i;
		ev->has |= EV_QTY;
		return 0;
	case FI_PRICE:
		if (v->kind == J_NULL)
			return 0;
		if (v->kind == J_INT)
			ev->price = (double)v->i;
		else if (v->kind == J_REAL)
			ev->price = v->d;
		else
			return fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected a number or null", "price");
		ev->has |= EV_PRICE;
		return 0;
	case FI_ATTRS:
		if (v->kind == J_NULL)
			return 0;
		return fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected an object or null", "attrs");
	}
	/* string fields */
	if (v->kind == J_NULL && bit) {
		*sp = (struct str){ NULL, 0 };
		ev->has &= ~bit;
		return 0;
	}
	if (v->kind != J_STRING)
		return bit ? fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected a string or null",
				  field_names[fi])
			   : fail(err, errlen, RJ_INVALID_EVENT, "field %s: expected a string",
				  field_names[fi]);
	*sp = v->s;
	ev->has |= bit;
	return 0;
}

static int
set_attr(struct event *ev, const char *k, size_t kn, const struct jval *v,
	 char *err, size_t errlen)
{
	if (v->kind != J_STRING) {
		char tmp[64];
		size_t n = kn < 40 ? kn : 40;
		memcpy(tmp, k, n);
		tmp[n] = '\0';
		return fail(err, errlen, RJ_INVALID_EVENT, "attrs.%s: expected a string", tmp);
	}
	event_append_attr(ev, k, kn, v->s.p, v->s.n);
	return 0;
}

static int
finish(struct event *ev, unsigned seen, char *err, size_t errlen)
{
	static const struct { unsigned bit; const char *name; } req[] = {
		{ F_EVENT_ID, "event_id" }, { F_TS, "ts" }, { F_USER, "user" },
		{ F_TYPE, "type" }, { F_V, "v" }
	};

	for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
		if (!(seen & req[i].bit))
			return fail(err, errlen, RJ_MISSING_FIELD, "missing field %s", req[i].name);
	if (ev->nattrs)
		ev->has |= EV_ATTRS;
	return event_validate(ev, err, errlen);
}

/* ---- the lean path ---- */

static jsmntok_t *toks;
static unsigned ntoks;
static struct buf scratch;

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned
hex4(const char *p)
{
	return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 |
			  hexval(p[2]) << 4 | hexval(p[3]));
}

static void
put_utf8(struct buf *b, unsigned cp)
{
	char t[4];
	size_t n;

	if (cp < 0x80) {
		t[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		t[0] = (char)(0xc0 | cp >> 6);
		t[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		t[0] = (char)(0xe0 | cp >> 12);
		t[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		t[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		t[0] = (char)(0xf0 | cp >> 18);
		t[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		t[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		t[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	buf_put(b, t, n);
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Nonzero if any byte of x is below 0x20, is a backslash, or is not ASCII
 * (the hasless and haszero bit tricks, exact as yes/no answers). */
static inline uint64_t
special8(uint64_t x)
{
	uint64_t bs = x ^ (ONES * '\\');

	return ((x - ONES * 0x20) & ~x & HIGHS) | ((bs - ONES) & ~bs & HIGHS) |
	       (x & HIGHS);
}

/*
 * Validate the body of a JSON string (between the quotes) by jansson's
 * rules; if out is not NULL, also append its decoded bytes. Return 0 if it
 * has no escapes, 1 if it has, -1 if it is invalid.
 */
static int
str_check(const char *p, size_t n, struct buf *out)
{
	size_t i = 0, run = 0;
	int ascii = 1, esc = 0;

	/* Plain ASCII without escapes is the common case: 8 bytes a step. */
	while (i + 8 <= n) {
		uint64_t x;
		memcpy(&x, p + i, 8);
		if (special8(x))
			break;
		i += 8;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20)
			return -1;
		if (c >= 0x80)
			ascii = 0;
		if (c != '\\')
			continue;
		esc = 1;
		if (out)
			buf_put(out, p + run, i - run);
		if (i + 1 >= n)
			return -1;
		char e = p[++i];
		char ch = 0;
		switch (e) {
		case '"': ch = '"'; break;
		case '\\': ch = '\\'; break;
		case '/': ch = '/'; break;
		case 'b': ch = '\b'; break;
		case 'f': ch = '\f'; break;
		case 'n': ch = '\n'; break;
		case 'r': ch = '\r'; break;
		case 't': ch = '\t'; break;
		case 'u': {
			if (i + 4 >= n)
				return -1;
			for (int k = 1; k <= 4; k++)
				if (hexval(p[i + k]) < 0)
					return -1;
			unsigned cp = hex4(p + i + 1);
			i += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return -1;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (i + 6 >= n || p[i + 1] != '\\' || p[i + 2] != 'u')
					return -1;
				for (int k = 3; k <= 6; k++)
					if (hexval(p[i + k]) < 0)
						return -1;
				unsigned lo = hex4(p + i + 3);
				if (lo < 0xdc00 || lo > 0xdfff)
					return -1;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				i += 6;
			}
			if (cp == 0)
				return -1;
			if (out)
				put_utf8(out, cp);
			run = i + 1;
			continue;
		}
		default:
			return -1;
		}
		if (out)
			buf_putc(out, ch);
		run = i + 1;
	}
	if (!ascii && !utf8_valid(p, n))
		return -1;
	if (out)
		buf_put(out, p + run, n - run);
	return esc;
}

/* Check a primitive token against the JSON grammar; classify it. */
static int
prim_check(const char *p, size_t n, struct jval *v)
{
	if (n == 4 && memcmp(p, "null", 4) == 0) {
		v->kind = J_NULL;
		return 0;
	}
	if ((n == 4 && memcmp(p, "true", 4) == 0) ||
	    (n == 5 && memcmp(p, "false", 5) == 0)) {
		v->kind = J_BOOL;
		return 0;
	}
	size_t i = 0;
	int real = 0;
	if (i < n && p[i] == '-')
		i++;
	if (i >= n)
		return -1;
	if (p[i] == '0')
		i++;
	else if (p[i] >= '1' && p[i] <= '9')
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	else
		return -1;
	if (i < n && p[i] == '.') {
		real = 1;
		i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return -1;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		real = 1;
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return -1;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if (i != n)
		return -1;
	/* Fast exact paths: integers of up to 18 digits, and decimals of up
	 * to 15 significant digits (one correctly rounded division, exact
	 * because both operands are exact doubles). */
	size_t digits = 0, fracd = 0;
	int neg = p[0] == '-', exp_part = 0, after_dot = 0;
	uint64_t mant = 0;
	for (size_t k = (size_t)neg; k < n; k++) {
		if (p[k] >= '0' && p[k] <= '9') {
			mant = mant * 10 + (uint64_t)(p[k] - '0');
			digits++;
			fracd += (size_t)after_dot;
			if (digits > 18)
				break;
		} else if (p[k] == '.')
			after_dot = 1;
		else {
			exp_part = 1;
			break;
		}
	}
	if (!exp_part && digits <= 18) {
		if (!real) {
			v->kind = J_INT;
			v->i = neg ? -(int64_t)mant : (int64_t)mant;
			return 0;
		}
		if (digits <= 15 && fracd <= 22) {
			static const double p10[] = {
				1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
				1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
			};
			v->kind = J_REAL;
			v->d = (double)mant / p10[fracd];
			if (neg)
				v->d = -v->d;
			return 0;
		}
	}
	char tmp[64];
	char *s = n < sizeof tmp ? tmp : xmalloc(n + 1);
	memcpy(s, p, n);
	s[n] = '\0';
	errno = 0;
	int rc = 0;
	if (!real) {
		v->kind = J_INT;
		v->i = strtoll(s, NULL, 10);
		if (errno == ERANGE)
			rc = -1; /* jansson: too big integer */
	} else {
		v->kind = J_REAL;
		v->d = strtod(s, NULL);
		if (errno == ERANGE && (v->d == HUGE_VAL || v->d == -HUGE_VAL))
			rc = -1; /* jansson: real number overflow */
	}
	if (s != tmp)
		free(s);
	return rc;
}

struct walk {
	const char *s;
	size_t n, pos;
	int i, nt;
	struct event *ev; /* for decoding keys in the duplicate check */
};

static int has_dup_keys(struct event *ev, const char *s, int i, int count);

static inline void
skip_ws(struct walk *w)
{
	while (w->pos < w->n && is_ws(w->s[w->pos]))
		w->pos++;
}

/* Validate the value at token w->i and the text between tokens. */
static int
check_value(struct walk *w, int depth)
{
	skip_ws(w);
	if (w->i >= w->nt)
		return -1;
	jsmntok_t *t = &toks[w->i];
	struct jval v;

	if (depth + 1 > MAX_DEPTH)
		return -1; /* jansson counts scalars too */
	switch (t->type) {
	case JSMN_STRING:
		if (t->start < 1 || (size_t)t->start - 1 != w->pos)
			return -1;
		if (str_check(w->s + t->start, (size_t)(t->end - t->start), NULL) < 0)
			return -1;
		w->pos = (size_t)t->end + 1;
		w->i++;
		return 0;
	case JSMN_PRIMITIVE:
		if ((size_t)t->start != w->pos)
			return -1;
		if (prim_check(w->s + t->start, (size_t)(t->end - t->start), &v))
			return -1;
		w->pos = (size_t)t->end;
		w->i++;
		return 0;
	case JSMN_OBJECT:
	case JSMN_ARRAY: {
		int obj = t->type == JSMN_OBJECT;
		int count = t->size;
		int first = w->i + 1;
		if ((size_t)t->start != w->pos || depth + 1 > MAX_DEPTH)
			return -1;
		w->pos++;
		w->i++;
		for (int k = 0; k < count; k++) {
			skip_ws(w);
			if (k > 0) {
				if (w->pos >= w->n || w->s[w->pos] != ',')
					return -1;
				w->pos++;
				skip_ws(w);
			}
			if (obj) {
				if (w->i >= w->nt)
					return -1;
				jsmntok_t *kt = &toks[w->i];
				if (kt->type != JSMN_STRING || kt->size != 1)
					return -1;
				if (check_value(w, depth + 1))
					return -1;
				skip_ws(w);
				if (w->pos >= w->n || w->s[w->pos] != ':')
					return -1;
				w->pos++;
			}
			if (check_value(w, depth + 1))
				return -1;
		}
		skip_ws(w);
		if (w->pos >= w->n || w->s[w->pos] != (obj ? '}' : ']'))
			return -1;
		w->pos++;
		if ((size_t)t->end != w->pos)
			return -1;
		/* Only now is the key/value structure known to be sound. */
		if (obj && w->ev && has_dup_keys(w->ev, w->s, first, count))
			return -1;
		return 0;
	}
	default:
		return -1;
	}
}

/* Skip the value at token i; return the index after it. */
static int
skip_tok(int i)
{
	int n = 1;

	while (n > 0) {
		jsmntok_t *t = &toks[i++];
		n--;
		if (t->type == JSMN_OBJECT)
			n += 2 * t->size;
		else if (t->type == JSMN_ARRAY)
			n += t->size;
	}
	return i;
}

/* The decoded text of string token t: in place, or copied to the arena. */
static struct str
tok_str(struct event *ev, const char *s, const jsmntok_t *t)
{
	const char *p = s + t->start;
	size_t n = (size_t)(t->end - t->start);

	if (!memchr(p, '\\', n))
		return (struct str){ p, n };
	scratch.n = 0;
	str_check(p, n, &scratch);
	return (struct str){ event_arena_copy(ev, scratch.p, scratch.n),
			     scratch.n };
}

static int
str_cmp(const void *a, const void *b)
{
	const struct str *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, n);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Keys of the object whose first member token is i, checked for repeats:
 * sorted, so that an object with many keys costs n log n, not n squared.
 * Call it only once the object's structure has been validated. */
static int
has_dup_keys(struct event *ev, const char *s, int i, int count)
{
	if (count < 2)
		return 0;
	struct str keys[64];
	struct str *k = count <= 64 ? keys : xcalloc((size_t)count, sizeof *k);
	int dup = 0;

	for (int m = 0; m < count; m++) {
		k[m] = tok_str(ev, s, &toks[i]);
		i = skip_tok(i + 1);
	}
	qsort(k, (size_t)count, sizeof *k, str_cmp);
	for (int m = 1; m < count && !dup; m++)
		dup = str_cmp(&k[m - 1], &k[m]) == 0;
	if (k != keys)
		free(k);
	return dup;
}

/* The decoded text of a string token already validated by str_check
 * (esc is what it returned). */
static struct str
tok_text(struct event *ev, const char *s, const jsmntok_t *t, int esc)
{
	const char *p = s + t->start;
	size_t n = (size_t)(t->end - t->start);

	if (!esc)
		return (struct str){ p, n };
	scratch.n = 0;
	str_check(p, n, &scratch);
	return (struct str){ event_arena_copy(ev, scratch.p, scratch.n),
			     scratch.n };
}

/* At w->pos (after optional space) the next token must start: a string
 * token's quote, or any other token's first byte. */
static inline int
at_token(struct walk *w, const jsmntok_t *t)
{
	skip_ws(w);
	size_t start = (size_t)t->start - (t->type == JSMN_STRING);
	return start == w->pos && t->start >= (t->type == JSMN_STRING);
}

static inline int
expect(struct walk *w, char c)
{
	skip_ws(w);
	if (w->pos >= w->n || w->s[w->pos] != c)
		return -1;
	w->pos++;
	return 0;
}

/* A scalar token's value: strings validated and decoded, primitives
 * checked against the grammar. Return 0 or -1 (invalid JSON). */
static int
scalar(struct walk *w, const jsmntok_t *t, struct jval *v)
{
	int esc;

	if (!at_token(w, t))
		return -1;
	memset(v, 0, sizeof *v);
	if (t->type == JSMN_STRING) {
		esc = str_check(w->s + t->start, (size_t)(t->end - t->start), NULL);
		if (esc < 0)
			return -1;
		v->kind = J_STRING;
		v->s = tok_text(w->ev, w->s, t, esc);
		w->pos = (size_t)t->end + 1;
	} else {
		if (prim_check(w->s + t->start, (size_t)(t->end - t->start), v))
			return -1;
		w->pos = (size_t)t->end;
	}
	w->i++;
	return 0;
}

/* A key token: validated, decoded, followed by its colon. */
static int
key(struct walk *w, struct str *k)
{
	const jsmntok_t *t = &toks[w->i];
	struct jval v;

	if (w->i >= w->nt || t->type != JSMN_STRING || t->size != 1 ||
	    scalar(w, t, &v) || expect(w, ':'))
		return -1;
	*k = v.s;
	return 0;
}

/* Whether brackets outside strings nest deeper than jansson allows; run
 * before jsmn on long lines, where its bracket handling would be slow. */
static int
too_deep(const char *p, size_t n)
{
	int depth = 0, in_str = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[') {
			if (++depth > MAX_DEPTH)
				return 1;
		} else if (c == '}' || c == ']')
			depth--;
	}
	return 0;
}

/* ---- the canonical form ---- */

/*
 * The body of a string that starts at p, up to the quote that ends it:
 * that quote, or NULL if the body would not be written back as it is (a
 * backslash, a control byte, invalid UTF-8) or no quote comes before e.
 */
static const char *
canon_str(const char *p, const char *e)
{
	int high;
	size_t run = json_plain_run(p, (size_t)(e - p), &high);

	if (p + run == e || p[run] != '"' || (high && !utf8_valid(p, run)))
		return NULL;
	return p + run;
}

/* A whole number as buf_put_i64 writes a non-negative one (no sign, no
 * leading zero, at most 18 digits, so exact); the end, or NULL. */
static const char *
canon_uint(const char *p, const char *e, int64_t *v)
{
	const char *s = p;
	uint64_t x = 0;

	while (p < e && *p >= '0' && *p <= '9' && p - s < 19)
		x = x * 10 + (uint64_t)(*p++ - '0');
	if (p == s || p - s > 18 || (*s == '0' && p - s > 1))
		return NULL;
	*v = (int64_t)x;
	return p;
}

/* The price at p, read as the full parse reads it, if buf_put_double
 * writes it back as the same bytes; the end, or NULL. */
static const char *
canon_price(const char *p, const char *e, double *d)
{
	const char *s = p;
	struct jval v;

	while (p < e && ((*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
			 *p == '+' || *p == 'e' || *p == 'E'))
		p++;
	if (p == s || prim_check(s, (size_t)(p - s), &v))
		return NULL;
	*d = v.kind == J_INT ? (double)v.i : v.d;
	scratch.n = 0;
	buf_put_double(&scratch, *d);
	if (scratch.n != (size_t)(p - s) || memcmp(scratch.p, s, scratch.n))
		return NULL;
	return p;
}

/* Attributes an object may have on the canonical path (their keys are
 * compared pairwise for repeats); more go the full way. */
#define CANON_ATTRS 16

/*
 * If line[0..n) is a valid event written exactly as event_write_json
 * writes it (the schema's order, no space, no escape, numbers in their
 * shortest form), fill ev from it and return 1: the full parse would
 * accept it and fill the same event, and writing the event gives the line
 * back, so ev->canon holds it. Return 0 for anything else, with ev in no
 * particular state: the full parse decides then, and words any reject.
 * Reads nothing outside line[0..n).
 */
int
event_scan_canonical(struct event *ev, const char *line, size_t n)
{
	const char *p = line, *e = line + n, *q;
	char err[8];

	event_reset(ev);
#define LIT(s) ((size_t)(e - p) >= sizeof(s) - 1 &&                     \
		memcmp(p, s, sizeof(s) - 1) == 0 && (p += sizeof(s) - 1, 1))
#define STR(f)                                                          \
	do {                                                            \
		if (!(q = canon_str(p, e)))                             \
			return 0;                                       \
		ev->f.p = p;                                            \
		ev->f.n = (size_t)(q - p);                              \
		p = q + 1;                                              \
	} while (0)
	if (!LIT("{\"event_id\":\""))
		return 0;
	STR(event_id);
	if (!LIT(",\"ts\":") || !(p = canon_uint(p, e, &ev->ts)) ||
	    !LIT(",\"user\":\""))
		return 0;
	STR(user);
	if (!LIT(",\"type\":\"") || !(q = memchr(p, '"', (size_t)(e - p))) ||
	    (ev->type = event_type_parse(p, (size_t)(q - p))) < 0)
		return 0;
	p = q + 1;
#define OPT_STR(f, bit)                                                 \
	do {                                                            \
		if (LIT(",\"" #f "\":\"")) {                               \
			STR(f);                                         \
			ev->has |= bit;                                 \
		}                                                       \
	} while (0)
	OPT_STR(item, EV_ITEM);
	OPT_STR(session, EV_SESSION);
	if (LIT(",\"qty\":")) {
		if (!(p = canon_uint(p, e, &ev->qty)))
			return 0;
		ev->has |= EV_QTY;
	}
	if (LIT(",\"price\":")) {
		if (!(p = canon_price(p, e, &ev->price)))
			return 0;
		ev->has |= EV_PRICE;
	}
	OPT_STR(query, EV_QUERY);
	OPT_STR(source, EV_SOURCE);
	if (LIT(",\"attrs\":{")) {
		ev->has |= EV_ATTRS;
		if (!LIT("}"))
			for (;;) {
				struct str k, v;
				if (!LIT("\"") || !(q = canon_str(p, e)))
					return 0;
				k = (struct str){ p, (size_t)(q - p) };
				p = q + 1;
				if (!LIT(":\"") || !(q = canon_str(p, e)))
					return 0;
				v = (struct str){ p, (size_t)(q - p) };
				p = q + 1;
				if (ev->nattrs == CANON_ATTRS)
					return 0;
				for (size_t i = 0; i < ev->nattrs; i++)
					if (ev->attrs[i].key.n == k.n &&
					    memcmp(ev->attrs[i].key.p, k.p, k.n) == 0)
						return 0; /* a repeated key */
				event_append_attr(ev, k.p, k.n, v.p, v.n);
				if (LIT("}"))
					break;
				if (!LIT(","))
					return 0;
			}
	}
	int64_t v;
	if (!LIT(",\"v\":") || !(p = canon_uint(p, e, &v)) || !LIT("}") ||
	    p != e)
		return 0;
#undef OPT_STR
#undef STR
#undef LIT
	ev->v = v <= INT_MAX ? (int)v : -1;
	if (event_validate(ev, err, sizeof err))
		return 0;
	ev->clean_lo = line;
	ev->clean_hi = e;
	ev->canon = (struct str){ line, n };
	return 1;
}

/*
 * Parse one NDJSON line (without its newline) into ev. Return 0 if it is a
 * valid event, -1 with the reason in err otherwise. Strings point into line
 * or into ev's arena.
 *
 * A line in the canonical form takes the short way (event_scan_canonical);
 * any other goes through event_parse_json_full.
 */
int
event_parse_json(struct event *ev, const char *line, size_t n, char *err,
		 size_t errlen)
{
	if (event_scan_canonical(ev, line, n))
		return 0;
	return event_parse_json_full(ev, line, n, err, errlen);
}

/*
 * The full parse of event_parse_json, for any line.
 *
 * One walk over jsmn's tokens checks the text between them (so the grammar
 * is enforced exactly), validates every string and number once, and fills
 * the event. A rule of the event broken before the end is reported only if
 * the whole line is valid JSON, as jansson would.
 */
int
event_parse_json_full(struct event *ev, const char *line, size_t n, char *err,
		      size_t errlen)
{
	jsmn_parser jp;
	int r;
	char sem[192];
	int have_sem = 0, dup_check_root = 0;
	unsigned seen = 0, known = 0;
	size_t nunk = 0;

	event_reset(ev);
	/* Decoded strings go to the arena; reserve enough for all of them up
	 * front (decoding never grows a string, and a key is decoded at most
	 * three times), so that no pointer into it moves during the parse. */
	buf_reserve(&ev->arena, 3 * n + 256);
	if (n > 4096 && too_deep(line, n))
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: maximum parsing depth reached");
	if (ntoks == 0) {
		ntoks = 256;
		toks = xreallocarray(NULL, ntoks, sizeof *toks);
	}
	for (;;) {
		jsmn_init(&jp);
		r = jsmn_parse(&jp, line, n, toks, ntoks);
		if (r != JSMN_ERROR_NOMEM)
			break;
		ntoks *= 2;
		toks = xreallocarray(toks, ntoks, sizeof *toks);
	}
	if (r <= 0)
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON%s",
			    r == JSMN_ERROR_PART ? ": unexpected end of line" : "");
	struct walk w = { line, n, 0, 0, r, ev };
	if (toks[0].type != JSMN_OBJECT) {
		if (check_value(&w, 0))
			return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
		skip_ws(&w);
		if (w.pos != n || w.i != r)
			return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: text after the value");
		return fail(err, errlen, RJ_BAD_JSON, "expected a JSON object");
	}
	if (!at_token(&w, &toks[0]))
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
	w.pos++;
	w.i++;
	for (int m = 0; m < toks[0].size; m++) {
		struct str k;
		struct jval v;
		if ((m > 0 && expect(&w, ',')) || key(&w, &k) || w.i >= r)
			return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
		int fi = field_index(k.p, k.n);
		if (fi >= 0) {
			if (known >> fi & 1)
				return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: duplicate object key");
			known |= 1u << fi;
		} else if (++nunk > 1)
			dup_check_root = 1; /* unknown keys: checked at the end */
		const jsmntok_t *vt = &toks[w.i];
		if (fi == FI_ATTRS && vt->type == JSMN_OBJECT) {
			if (!at_token(&w, vt))
				return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
			w.pos++;
			w.i++;
			int first = w.i;
			for (int a = 0; a < vt->size; a++) {
				struct str ak;
				if ((a > 0 && expect(&w, ',')) || key(&w, &ak) || w.i >= r)
					return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
				const jsmntok_t *at = &toks[w.i];
				if (at->type == JSMN_STRING || at->type == JSMN_PRIMITIVE) {
					if (scalar(&w, at, &v))
						return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
				} else {
					if (check_value(&w, 2))
						return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
					v.kind = at->type == JSMN_OBJECT ? J_OBJECT : J_ARRAY;
				}
				if (!have_sem)
					have_sem = -set_attr(ev, ak.p, ak.n, &v, sem, sizeof sem);
			}
			if (expect(&w, '}') || (size_t)vt->end != w.pos)
				return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
			if (has_dup_keys(ev, line, first, vt->size))
				return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: duplicate object key");
			ev->has |= EV_ATTRS;
			continue;
		}
		if (vt->type == JSMN_STRING || vt->type == JSMN_PRIMITIVE) {
			if (scalar(&w, vt, &v))
				return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
		} else {
			if (check_value(&w, 1))
				return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
			memset(&v, 0, sizeof v);
			v.kind = vt->type == JSMN_OBJECT ? J_OBJECT : J_ARRAY;
		}
		if (!have_sem)
			have_sem = -set_field(ev, &seen, k.p, k.n, &v, sem, sizeof sem);
	}
	if (expect(&w, '}') || (size_t)toks[0].end != w.pos)
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON");
	skip_ws(&w);
	if (w.pos != n || w.i != r)
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: text after the object");
	if (dup_check_root && has_dup_keys(ev, line, 1, toks[0].size))
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: duplicate object key");
	if (have_sem)
		return fail(err, errlen, have_sem, "%s", sem);
	int bad = finish(ev, seen, err, errlen);
	if (bad)
		return bad;
	ev->clean_lo = line;
	ev->clean_hi = line + n;
	return 0;
}

/* ---- the reference path ---- */

static void
jv_from(struct event *ev, json_t *j, struct jval *v)
{
	memset(v, 0, sizeof *v);
	switch (json_typeof(j)) {
	case JSON_NULL: v->kind = J_NULL; break;
	case JSON_TRUE:
	case JSON_FALSE: v->kind = J_BOOL; break;
	case JSON_INTEGER:
		v->kind = J_INT;
		v->i = json_integer_value(j);
		break;
	case JSON_REAL:
		v->kind = J_REAL;
		v->d = json_real_value(j);
		break;
	case JSON_STRING:
		v->kind = J_STRING;
		v->s.n = json_string_length(j);
		v->s.p = event_arena_copy(ev, json_string_value(j), v->s.n);
		break;
	case JSON_OBJECT: v->kind = J_OBJECT; break;
	case JSON_ARRAY: v->kind = J_ARRAY; break;
	}
}

/* The same as event_parse_json, through jansson's tree (slower); used to
 * check the lean path and where a tree is needed anyway. */
int
event_parse_jansson(struct event *ev, const char *line, size_t n, char *err,
		    size_t errlen)
{
	json_error_t je;
	json_t *root, *val;
	const char *key;
	int rc = -1;
	unsigned seen = 0;

	event_reset(ev);
	/* jansson stops at a NUL after a number and accepts the rest unseen. */
	if (memchr(line, '\0', n))
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: NUL byte");
	root = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return fail(err, errlen, RJ_BAD_JSON, "invalid JSON: %s", je.text);
	if (!json_is_object(root)) {
		rc = fail(err, errlen, RJ_BAD_JSON, "expected a JSON object%s", "");
		goto out;
	}
	/* Strings are copied to the arena: reserve once for all of them, so
	 * that none moves while others are added. */
	buf_reserve(&ev->arena, 3 * n + 256);
	json_object_foreach(root, key, val) {
		struct jval v;
		size_t kn = strlen(key);
		if (json_is_object(val) && field_index(key, kn) == FI_ATTRS) {
			const char *ak;
			json_t *av;
			json_object_foreach(val, ak, av) {
				const char *kc = event_arena_copy(ev, ak, strlen(ak));
				jv_from(ev, av, &v);
				if ((rc = set_attr(ev, kc, strlen(ak), &v, err, errlen)))
					goto out;
			}
			ev->has |= EV_ATTRS;
			continue;
		}
		jv_from(ev, val, &v);
		if ((rc = set_field(ev, &seen, key, kn, &v, err, errlen)))
			goto out;
	}
	rc = finish(ev, seen, err, errlen);
out:
	json_decref(root);
	return rc;
}
