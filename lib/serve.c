/* serve.c: recommendation requests (JSON or URL parameters), their ranking against a snapshot and a profile, and the answers and impressions written for them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reco.h"
#include "model.h"
#include "profile.h"
#include "rank.h"
#include "table.h"
#include "serve.h"

/* The limits of reco-serve(5). */
void
serve_limits_default(struct serve_limits *l)
{
	l->max_n = 1000;
	l->max_id = 256;
	l->max_items = 1000;
}

/* The defaults of reco-serve(1): the hybrid blend of reco-eval,
 * purchases and cart excluded, 10 results. */
void
serve_opts_default(struct serve_opts *o)
{
	memset(o, 0, sizeof *o);
	rank_weights_hybrid(&o->w);
	o->exclude_purchased = 1;
	o->exclude_cart = 1;
	o->default_n = 10;
}

/* ---- snapshots ---- */

static uint64_t
attr_hash(const char *p, size_t n)
{
	uint64_t h = hash64(p, n, MODEL_ID_SEED);
	return h ? h : 1;
}

/* Parse a price: a plain decimal number, else NaN. */
static float
parse_price(struct str v)
{
	char tmp[64], *end;

	if (v.n == 0 || v.n >= sizeof tmp)
		return NAN;
	memcpy(tmp, v.p, v.n);
	tmp[v.n] = '\0';
	double d = strtod(tmp, &end);
	if (*end || !isfinite(d))
		return NAN;
	return (float)d;
}

/* An in_stock value (true/false/1/0/yes/no) or a stock count: 1, 0, or -1
 * when it says neither. */
static int8_t
parse_stock(struct str v, int count)
{
	static const char *const yes[] = { "true", "yes", "y", "1" };
	static const char *const no[] = { "false", "no", "n", "0" };

	if (count) {
		char tmp[32], *end;
		if (v.n == 0 || v.n >= sizeof tmp)
			return -1;
		memcpy(tmp, v.p, v.n);
		tmp[v.n] = '\0';
		double d = strtod(tmp, &end);
		if (*end || !isfinite(d))
			return -1;
		return d > 0;
	}
	for (size_t k = 0; k < 4; k++) {
		if (strlen(yes[k]) == v.n && strncasecmp(yes[k], v.p, v.n) == 0)
			return 1;
		if (strlen(no[k]) == v.n && strncasecmp(no[k], v.p, v.n) == 0)
			return 0;
	}
	return -1;
}

/*
 * Load the snapshot at path (mapped, every checksum verified) and, with
 * an item table, the attributes of its items (columns category, brand,
 * price, and in_stock or else stock, a count). Return the snapshot with
 * one reference (the caller frees it with serve_snap_free), or NULL with
 * the reason in err.
 */
struct serve_snap *
serve_snap_load(const char *path, const struct table *items,
		size_t index_depth, char *err, size_t errlen)
{
	struct model *m = model_load(path, MODEL_MAP, err, errlen);
	struct serve_snap *s;

	if (!m)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->m = m;
	s->refs = 1;
	s->events = m->st.events;
	s->clock = m->clock;
	if (index_depth)
		s->ix = rank_index_new(m, index_depth);
	uint32_t crc = 0;
	if (m->map && m->maplen >= 256) {
		const unsigned char *h = (const unsigned char *)m->map + 252;
		crc = (uint32_t)h[0] | (uint32_t)h[1] << 8 |
		      (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
	}
	snprintf(s->version, sizeof s->version, "%08x", crc);
	if (!items)
		return s;
	int ccat = table_col_index(items, "category");
	int cbrand = table_col_index(items, "brand");
	int cprice = table_col_index(items, "price");
	int cstock = table_col_index(items, "in_stock"), count = 0;
	if (cstock < 0) {
		cstock = table_col_index(items, "stock");
		count = 1;
	}
	uint64_t n = m->nitems ? m->nitems : 1;
	s->cat = xcalloc(n, sizeof *s->cat);
	s->brand = xcalloc(n, sizeof *s->brand);
	s->price = xcalloc(n, sizeof *s->price);
	s->stock = xcalloc(n, sizeof *s->stock);
	for (uint64_t i = 0; i < m->nitems; i++) {
		struct str id = model_item_id(m, i), v;
		s->price[i] = NAN;
		s->stock[i] = -1;
		if (ccat >= 0 && table_value(items, id.p, id.n, (size_t)ccat, &v) && v.n)
			s->cat[i] = attr_hash(v.p, v.n);
		if (cbrand >= 0 && table_value(items, id.p, id.n, (size_t)cbrand, &v) && v.n)
			s->brand[i] = attr_hash(v.p, v.n);
		if (cprice >= 0 && table_value(items, id.p, id.n, (size_t)cprice, &v))
			s->price[i] = parse_price(v);
		if (cstock >= 0 && table_value(items, id.p, id.n, (size_t)cstock, &v))
			s->stock[i] = parse_stock(v, count);
		struct table_cur c;
		if (table_find(items, id.p, id.n, &c))
			s->attr_items++;
	}
	return s;
}

/* Free s and its model now, whatever its references; NULL is allowed. */
void
serve_snap_free(struct serve_snap *s)
{
	if (!s)
		return;
	rank_index_free(s->ix);
	model_free(s->m);
	free(s->cat);
	free(s->brand);
	free(s->price);
	free(s->stock);
	free(s);
}

/* ---- requests ---- */

void
serve_req_init(struct serve_req *q)
{
	memset(q, 0, sizeof *q);
	q->in_stock = -1;
}

/* Forget the request's fields, keep its allocations. */
void
serve_req_reset(struct serve_req *q)
{
	struct serve_req k = *q;

	serve_req_init(q);
	q->arena = k.arena;
	q->arena.n = 0;
	q->context = k.context;
	q->exclude = k.exclude;
	q->cats = k.cats;
	q->brands = k.brands;
	q->context.n = q->exclude.n = q->cats.n = q->brands.n = 0;
}

void
serve_req_free(struct serve_req *q)
{
	buf_free(&q->arena);
	free(q->context.v);
	free(q->exclude.v);
	free(q->cats.v);
	free(q->brands.v);
	serve_req_init(q);
}

static struct serve_str
put_str(struct serve_req *q, const char *p, size_t n)
{
	struct serve_str s = { (uint32_t)q->arena.n, (uint32_t)n };

	buf_put(&q->arena, p, n);
	return s;
}

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

/* A string the request may carry: valid UTF-8 without control
 * characters (NUL included), 1 to max bytes. */
static int
check_id(const char *what, const char *p, size_t n, size_t max, char *err,
	 size_t errlen)
{
	if (n == 0)
		FAIL("%s: empty string", what);
	if (n > max)
		FAIL("%s: longer than %zu bytes", what, max);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			FAIL("%s: a control character (byte %zu)", what, i + 1);
	if (!utf8_valid(p, n))
		FAIL("%s: not valid UTF-8 text", what);
	return 0;
}

static int
list_add(struct serve_req *q, struct serve_list *l, const char *what,
	 const char *p, size_t n, size_t maxn, size_t maxlen, char *err,
	 size_t errlen)
{
	if (check_id(what, p, n, maxlen, err, errlen))
		return -1;
	if (l->n >= maxn)
		FAIL("%s: more than %zu entries", what, maxn);
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	l->v[l->n++] = put_str(q, p, n);
	return 0;
}

/* A JSON string, or an array of strings, into l. */
static int
json_list(struct serve_req *q, struct serve_list *l, const char *what,
	  json_t *v, int scalar_ok, size_t maxn, size_t maxlen, char *err,
	  size_t errlen)
{
	size_t k;
	json_t *e;

	if (scalar_ok && json_is_string(v))
		return list_add(q, l, what, json_string_value(v),
				json_string_length(v), maxn, maxlen, err,
				errlen);
	if (!json_is_array(v))
		FAIL("%s: expected an array of strings", what);
	json_array_foreach(v, k, e) {
		if (!json_is_string(e))
			FAIL("%s: expected an array of strings", what);
		if (list_add(q, l, what, json_string_value(e),
			     json_string_length(e), maxn, maxlen, err, errlen))
			return -1;
	}
	return 0;
}

static int
json_price(json_t *v, const char *what, double *out, char *err,
	   size_t errlen)
{
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		FAIL("%s: expected a number", what);
	*out = json_number_value(v);
	return 0;
}

static int
parse_filter(struct serve_req *q, json_t *f, const struct serve_limits *l,
	     char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (!json_is_object(f))
		FAIL("filter: expected an object");
	json_object_foreach(f, k, v) {
		if (strcmp(k, "category") == 0) {
			if (json_list(q, &q->cats, "filter.category", v, 1,
				      SERVE_MAX_FILTER, l->max_id, err, errlen))
				return -1;
		} else if (strcmp(k, "brand") == 0) {
			if (json_list(q, &q->brands, "filter.brand", v, 1,
				      SERVE_MAX_FILTER, l->max_id, err, errlen))
				return -1;
		} else if (strcmp(k, "price_min") == 0) {
			if (json_price(v, "filter.price_min", &q->price_min, err, errlen))
				return -1;
			q->has_price_min = 1;
		} else if (strcmp(k, "price_max") == 0) {
			if (json_price(v, "filter.price_max", &q->price_max, err, errlen))
				return -1;
			q->has_price_max = 1;
		} else if (strcmp(k, "in_stock") == 0) {
			if (!json_is_boolean(v))
				FAIL("filter.in_stock: expected true or false");
			q->in_stock = json_is_true(v);
		} else
			FAIL("filter: unknown field \"%.64s\" (category, brand, price_min, price_max, in_stock)",
			     k);
	}
	return 0;
}

/*
 * Parse a request, one JSON object (reco-serve(5)), into q (reset
 * first). Return 0, or -1 with the reason in err; q keeps what was
 * parsed before the error (the id, if any, for the answer).
 */
int
serve_req_parse_json(struct serve_req *q, const char *p, size_t n,
		     const struct serve_limits *l, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root, *v, *idv;
	const char *k;
	int rc = -1;

	serve_req_reset(q);
	if (!(root = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je))) {
		snprintf(err, errlen, "malformed JSON at column %d: %s",
			 je.column, je.text);
		return -1;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "expected a JSON object");
		goto out;
	}
	/* The id first, so that an error answer can carry it. */
	if ((idv = json_object_get(root, "id"))) {
		if (!json_is_string(idv)) {
			snprintf(err, errlen, "id: expected a string");
			goto out;
		}
		if (check_id("id", json_string_value(idv),
			     json_string_length(idv), l->max_id, err, errlen))
			goto out;
		q->id = put_str(q, json_string_value(idv), json_string_length(idv));
		q->has_id = 1;
	}
	json_object_foreach(root, k, v) {
		if (strcmp(k, "id") == 0)
			continue;
		if (strcmp(k, "v") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    json_integer_value(v) > SERVE_VERSION) {
				snprintf(err, errlen, "v: this program reads request version %d",
					 SERVE_VERSION);
				goto out;
			}
		} else if (strcmp(k, "user") == 0) {
			if (!json_is_string(v)) {
				snprintf(err, errlen, "user: expected a string");
				goto out;
			}
			if (check_id("user", json_string_value(v),
				     json_string_length(v), l->max_id, err, errlen))
				goto out;
			q->user = put_str(q, json_string_value(v), json_string_length(v));
		} else if (strcmp(k, "n") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 1 ||
			    (uint64_t)json_integer_value(v) > l->max_n) {
				snprintf(err, errlen, "n: expected an integer from 1 to %zu",
					 l->max_n);
				goto out;
			}
			q->n = (size_t)json_integer_value(v);
		} else if (strcmp(k, "ts") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				snprintf(err, errlen, "ts: expected milliseconds since the epoch");
				goto out;
			}
			q->ts = json_integer_value(v);
			q->has_ts = 1;
		} else if (strcmp(k, "context") == 0) {
			const char *ck;
			json_t *cv;
			if (!json_is_object(v)) {
				snprintf(err, errlen, "context: expected an object");
				goto out;
			}
			json_object_foreach(v, ck, cv) {
				if (strcmp(ck, "items") != 0) {
					snprintf(err, errlen, "context: unknown field \"%.64s\" (items)", ck);
					goto out;
				}
				if (json_list(q, &q->context, "context.items", cv, 0,
					      l->max_items, l->max_id, err, errlen))
					goto out;
			}
		} else if (strcmp(k, "exclude") == 0) {
			if (json_list(q, &q->exclude, "exclude", v, 0,
				      l->max_items, l->max_id, err, errlen))
				goto out;
		} else if (strcmp(k, "filter") == 0) {
			if (parse_filter(q, v, l, err, errlen))
				goto out;
		} else if (strcmp(k, "strict") == 0) {
			if (!json_is_boolean(v)) {
				snprintf(err, errlen, "strict: expected true or false");
				goto out;
			}
			q->strict = json_is_true(v);
		} else {
			snprintf(err, errlen, "unknown field \"%.64s\" (v, id, user, n, ts, context, exclude, filter, strict)",
				 k);
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

static int
num_param(const char *what, const char *s, double *out, char *err,
	  size_t errlen)
{
	char *end;

	errno = 0;
	double d = strtod(s, &end);
	if (!*s || *end || errno || !isfinite(d))
		FAIL("%s: expected a number, not \"%.64s\"", what, s);
	*out = d;
	return 0;
}

static int
int_param(const char *what, const char *s, long long lo, long long hi,
	  long long *out, char *err, size_t errlen)
{
	char *end;

	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < lo || v > hi)
		FAIL("%s: expected an integer from %lld to %lld", what, lo, hi);
	*out = v;
	return 0;
}

/* A list parameter: repeated, or its values separated by commas. */
static int
csv_param(struct serve_req *q, struct serve_list *l, const char *what,
	  const char *val, size_t maxn, size_t maxlen, char *err,
	  size_t errlen)
{
	const char *s = val;

	for (;;) {
		const char *c = strchr(s, ',');
		size_t n = c ? (size_t)(c - s) : strlen(s);
		if (list_add(q, l, what, s, n, maxn, maxlen, err, errlen))
			return -1;
		if (!c)
			return 0;
		s = c + 1;
	}
}

/* The URL parameters that take one value: each may be given once. */
static const char *const scalar_params[] = {
	"user", "id", "n", "ts", "v", "price_min", "price_max", "in_stock",
	"strict"
};

/*
 * Add one URL parameter (already decoded, valn bytes: a NUL inside is
 * refused) to q: user, n, id, ts, strict, context and exclude
 * (comma-separated or repeated), category and brand (repeated),
 * price_min, price_max, in_stock. A parameter of one value given twice
 * is refused. Return 0, or -1 with the reason in err.
 */
int
serve_req_param(struct serve_req *q, const char *key, const char *val,
		size_t valn, const struct serve_limits *l, char *err,
		size_t errlen)
{
	long long v;
	double d;

	if (!val)
		val = "";
	else if (strlen(val) != valn)
		FAIL("%.64s: a control character (byte %zu)", key,
		     strlen(val) + 1);
	for (size_t k = 0; k < sizeof scalar_params / sizeof *scalar_params; k++)
		if (strcmp(key, scalar_params[k]) == 0) {
			if (q->seen & (1u << k))
				FAIL("%s: given twice", key);
			q->seen |= 1u << k;
		}
	if (strcmp(key, "user") == 0 || strcmp(key, "id") == 0) {
		int isuser = key[0] == 'u';
		if (check_id(key, val, strlen(val), l->max_id, err, errlen))
			return -1;
		if (isuser)
			q->user = put_str(q, val, strlen(val));
		else {
			q->id = put_str(q, val, strlen(val));
			q->has_id = 1;
		}
	} else if (strcmp(key, "n") == 0) {
		if (int_param("n", val, 1, (long long)l->max_n, &v, err, errlen))
			return -1;
		q->n = (size_t)v;
	} else if (strcmp(key, "ts") == 0) {
		if (int_param("ts", val, 0, INT64_MAX, &v, err, errlen))
			return -1;
		q->ts = v;
		q->has_ts = 1;
	} else if (strcmp(key, "v") == 0) {
		if (int_param("v", val, 1, SERVE_VERSION, &v, err, errlen))
			return -1;
	} else if (strcmp(key, "context") == 0) {
		return csv_param(q, &q->context, "context", val, l->max_items,
				 l->max_id, err, errlen);
	} else if (strcmp(key, "exclude") == 0) {
		return csv_param(q, &q->exclude, "exclude", val, l->max_items,
				 l->max_id, err, errlen);
	} else if (strcmp(key, "category") == 0) {
		return list_add(q, &q->cats, "category", val, strlen(val),
				SERVE_MAX_FILTER, l->max_id, err, errlen);
	} else if (strcmp(key, "brand") == 0) {
		return list_add(q, &q->brands, "brand", val, strlen(val),
				SERVE_MAX_FILTER, l->max_id, err, errlen);
	} else if (strcmp(key, "price_min") == 0) {
		if (num_param("price_min", val, &d, err, errlen))
			return -1;
		q->price_min = d;
		q->has_price_min = 1;
	} else if (strcmp(key, "price_max") == 0) {
		if (num_param("price_max", val, &d, err, errlen))
			return -1;
		q->price_max = d;
		q->has_price_max = 1;
	} else if (strcmp(key, "in_stock") == 0 || strcmp(key, "strict") == 0) {
		int *b = key[0] == 'i' ? &q->in_stock : &q->strict;
		if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
			*b = 1;
		else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
			*b = 0;
		else
			FAIL("%s: expected true or false", key);
	} else
		FAIL("unknown parameter \"%.64s\" (user, n, id, ts, strict, context, exclude, category, brand, price_min, price_max, in_stock)",
		     key);
	return 0;
}

/* What every request needs, however it came: a user; n defaults to
 * default_n. Return 0, or -1 with the reason in err. */
int
serve_req_check(struct serve_req *q, size_t default_n, char *err,
		size_t errlen)
{
	if (q->user.len == 0)
		FAIL("user: missing");
	if (q->n == 0)
		q->n = default_n;
	if (q->has_price_min && q->has_price_max && q->price_min > q->price_max)
		FAIL("filter: price_min above price_max");
	return 0;
}

/* ---- ranking ---- */

/* A request's business filters, asked about each candidate. */
struct filter {
	const struct serve_snap *s;
	uint64_t cats[SERVE_MAX_FILTER], brands[SERVE_MAX_FILTER];
	size_t ncat, nbrand;
	float lo, hi;
	int price, in_stock;
};

struct serve_worker {
	struct ranker *r;
	uint32_t *recent, *context, *excl;
	size_t nrecent, ncontext, nexcl, excl_cap;
	int64_t user;
	uint64_t user_hash;
	struct rank_item *out;
	size_t out_cap;
	struct filter filter;
};

struct serve_worker *
serve_worker_new(void)
{
	struct serve_worker *w = xcalloc(1, sizeof *w);

	w->r = ranker_new();
	w->recent = xcalloc(MODEL_MAX_RECENT, sizeof *w->recent);
	return w;
}

void
serve_worker_free(struct serve_worker *w)
{
	if (!w)
		return;
	ranker_free(w->r);
	free(w->recent);
	free(w->context);
	free(w->excl);
	free(w->out);
	free(w);
}

static void
excl_add(struct serve_worker *w, uint32_t i)
{
	if (w->nexcl == w->excl_cap) {
		w->excl_cap = w->excl_cap ? w->excl_cap * 2 : 1024;
		w->excl = xreallocarray(w->excl, w->excl_cap, sizeof *w->excl);
	}
	w->excl[w->nexcl++] = i;
}

static void
excl_id(struct serve_worker *w, const struct model *m, struct str id)
{
	int64_t i = model_item_find(m, id.p, id.n);

	if (i >= 0)
		excl_add(w, (uint32_t)i);
}

static int
in_list(const uint64_t *h, size_t n, uint64_t v)
{
	for (size_t k = 0; k < n; k++)
		if (h[k] == v)
			return 1;
	return 0;
}

static int
filter_allow(const void *ctx, uint32_t i)
{
	const struct filter *f = ctx;
	const struct serve_snap *s = f->s;

	if (!s->cat)
		return 0;
	if (f->ncat && !in_list(f->cats, f->ncat, s->cat[i]))
		return 0;
	if (f->nbrand && !in_list(f->brands, f->nbrand, s->brand[i]))
		return 0;
	if (f->price && !(s->price[i] >= f->lo && s->price[i] <= f->hi))
		return 0;
	return f->in_stock < 0 || s->stock[i] == f->in_stock;
}

/* Set f to q's business filters; return 0 if q has none. */
static int
filter_set(struct filter *f, const struct serve_snap *s,
	   const struct serve_req *q)
{
	f->s = s;
	f->ncat = q->cats.n;
	f->nbrand = q->brands.n;
	f->price = q->has_price_min || q->has_price_max;
	f->lo = q->has_price_min ? (float)q->price_min : -INFINITY;
	f->hi = q->has_price_max ? (float)q->price_max : INFINITY;
	f->in_stock = q->in_stock;
	if (!f->ncat && !f->nbrand && !f->price && f->in_stock < 0)
		return 0;
	for (size_t k = 0; k < f->ncat; k++) {
		struct str v = serve_req_str(q, q->cats.v[k]);
		f->cats[k] = attr_hash(v.p, v.n);
	}
	for (size_t k = 0; k < f->nbrand; k++) {
		struct str v = serve_req_str(q, q->brands.v[k]);
		f->brands[k] = attr_hash(v.p, v.n);
	}
	return 1;
}

/* Among results of equal score, the smaller item id first. */
static void
sort_ties(const struct model *m, struct rank_item *v, size_t n)
{
	for (size_t k = 1; k < n; k++) {
		struct rank_item x = v[k];
		struct str xi = model_item_id(m, x.item);
		size_t j = k;
		while (j > 0 && v[j - 1].score == x.score) {
			struct str yi = model_item_id(m, v[j - 1].item);
			size_t c = xi.n < yi.n ? xi.n : yi.n;
			int d = memcmp(xi.p, yi.p, c);
			if (d > 0 || (d == 0 && xi.n >= yi.n))
				break;
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/*
 * The first half of serve_rank, the part that reads the user's profile p
 * (NULL when the store has none): recent items from the profile (or else
 * the model's own), purchases and cart to exclude as o says. p is not
 * used after the call, so a caller may hold a lock on it just this long.
 */
void
serve_begin(struct serve_worker *w, const struct serve_snap *s,
	    const struct profile *p, const struct serve_req *q,
	    const struct serve_opts *o, struct serve_result *r)
{
	const struct model *m = s->m;
	size_t maxrec = m->p.recent ? m->p.recent : 1;

	if (maxrec > MODEL_MAX_RECENT)
		maxrec = MODEL_MAX_RECENT;
	memset(r, 0, sizeof *r);
	w->nrecent = w->ncontext = w->nexcl = 0;
	struct str user = serve_req_str(q, q->user);
	w->user = model_user_find(m, user.p, user.n);
	w->user_hash = hash64(user.p, user.n, MODEL_ID_SEED);
	r->profile = p != NULL;
	if (p) {
		for (uint32_t k = p->hist.n; k-- > 0 && w->nrecent < maxrec;) {
			const struct phist *h =
				&p->hist.v[(p->hist_head + k) % p->hist.cap];
			if (!h->item.len)
				continue;
			struct str id = profile_str(p, h->item);
			int64_t i = model_item_find(m, id.p, id.n);
			size_t j;
			if (i < 0)
				continue;
			for (j = 0; j < w->nrecent && w->recent[j] != (uint32_t)i; j++)
				;
			if (j == w->nrecent)
				w->recent[w->nrecent++] = (uint32_t)i;
		}
		/* Where users do not come back to what they have seen, the
		 * profile's history is left out too. */
		if (model_exclude_seen(m))
			for (uint32_t k = 0; k < p->hist.n; k++) {
				const struct phist *h = &p->hist.v[k];
				if (h->item.len)
					excl_id(w, m, profile_str(p, h->item));
			}
		if (o->exclude_purchased)
			for (uint32_t k = 0; k < p->buys.n; k++)
				excl_id(w, m, profile_str(p, p->buys.v[k].item));
		if (o->exclude_cart)
			for (uint32_t k = 0; k < p->cart.n; k++)
				excl_id(w, m, profile_str(p, p->cart.v[k].item));
	} else if (w->user >= 0)
		w->nrecent = model_user_recent(m, (uint64_t)w->user, w->recent,
					       maxrec);
}

/*
 * The second half of serve_rank: the context items, the request's
 * exclude list and business filters, all before the cut to q->n, then
 * the blend of rank_top (the ranking of reco-eval).
 */
void
serve_finish(struct serve_worker *w, const struct serve_snap *s,
	     const struct serve_req *q, const struct serve_opts *o,
	     struct serve_result *r)
{
	const struct model *m = s->m;
	struct rank_req rq;

	if (q->context.n) {
		w->context = xreallocarray(w->context, q->context.n,
					   sizeof *w->context);
		for (size_t k = 0; k < q->context.n; k++) {
			struct str id = serve_req_str(q, q->context.v[k]);
			int64_t i = model_item_find(m, id.p, id.n);
			if (i < 0)
				r->unknown_context++;
			else
				w->context[w->ncontext++] = (uint32_t)i;
		}
	}
	for (size_t k = 0; k < q->exclude.n; k++)
		excl_id(w, m, serve_req_str(q, q->exclude.v[k]));
	memset(&rq, 0, sizeof rq);
	if (filter_set(&w->filter, s, q)) {
		rq.allow = filter_allow;
		rq.allow_ctx = &w->filter;
	}
	rq.ix = s->ix;
	rq.user = w->user;
	rq.recent = w->recent;
	rq.nrecent = w->nrecent;
	rq.context = w->context;
	rq.ncontext = w->ncontext;
	rq.exclude = w->excl;
	rq.nexclude = w->nexcl;
	rq.n = q->n;
	if (o->weights_given)
		rq.w = o->w;
	else
		rank_weights_model(&rq.w, m);
	rq.user_hash = w->user_hash;
	rq.exclude_seen = model_exclude_seen(m);
	if (q->n > w->out_cap) {
		w->out_cap = q->n;
		w->out = xreallocarray(w->out, q->n, sizeof *w->out);
	}
	r->n = rank_top(w->r, m, &rq, w->out);
	r->items = w->out;
	r->cold = w->user < 0;
	r->candidates = rank_last(w->r)->candidates;
	sort_ties(m, w->out, r->n);
}

/*
 * Rank request q against snapshot s and the user's profile p (NULL when
 * the store has none): serve_begin then serve_finish. The results in r
 * point into w, valid until the next call.
 */
void
serve_rank(struct serve_worker *w, const struct serve_snap *s,
	   const struct profile *p, const struct serve_req *q,
	   const struct serve_opts *o, struct serve_result *r)
{
	serve_begin(w, s, p, q, o, r);
	serve_finish(w, s, q, o, r);
}

/* ---- answers ---- */

static void
put_score(struct buf *b, float s)
{
	char tmp[32];

	snprintf(tmp, sizeof tmp, "%.6g", (double)s);
	buf_puts(b, tmp);
}

/* Append the answer to q (one line, without the newline): its id, the
 * user, the variant, the model version, the items with score and reason. */
void
serve_write_answer(struct buf *b, const struct serve_req *q, const char *id,
		   const char *variant, const struct serve_snap *s,
		   const struct serve_result *r)
{
	struct str user = serve_req_str(q, q->user);

	buf_puts(b, "{\"v\":1,\"id\":");
	buf_json_str(b, id, strlen(id));
	buf_puts(b, ",\"user\":");
	buf_json_str(b, user.p, user.n);
	buf_puts(b, ",\"variant\":");
	buf_json_str(b, variant, strlen(variant));
	buf_puts(b, ",\"model\":\"");
	buf_puts(b, s->version);
	buf_puts(b, "\",\"items\":[");
	for (size_t k = 0; k < r->n; k++) {
		struct str it = model_item_id(s->m, r->items[k].item);
		if (k)
			buf_putc(b, ',');
		buf_puts(b, "{\"item\":");
		buf_json_str(b, it.p, it.n);
		buf_puts(b, ",\"score\":");
		put_score(b, r->items[k].score);
		buf_puts(b, ",\"reason\":\"");
		buf_puts(b, rank_src_names[r->items[k].reason]);
		buf_puts(b, "\"}");
	}
	buf_puts(b, "]");
	if (r->cold)
		buf_puts(b, ",\"cold\":true");
	if (r->unknown_context) {
		buf_puts(b, ",\"unknown_context\":");
		buf_put_u64(b, r->unknown_context);
	}
	if (r->profile_unavailable)
		buf_puts(b, ",\"profile\":\"unavailable\"");
	buf_putc(b, '}');
}

/* Append an error answer (one line, without the newline); id may be NULL. */
void
serve_write_error(struct buf *b, const char *id, size_t idn, int code,
		  const char *msg)
{
	buf_puts(b, "{\"v\":1");
	if (id) {
		buf_puts(b, ",\"id\":");
		buf_json_str(b, id, idn);
	}
	buf_puts(b, ",\"error\":{\"code\":");
	buf_put_u64(b, (uint64_t)code);
	buf_puts(b, ",\"message\":");
	/* Messages quote the input: keep them valid UTF-8. */
	size_t n = strlen(msg);
	if (utf8_valid(msg, n))
		buf_json_str(b, msg, n);
	else
		buf_puts(b, "\"bad input\"");
	buf_puts(b, "}}");
}

/*
 * Append one impression event (reco.Event, a line each) per result of
 * the answer to q: the user, the item, the time ts, and the attributes
 * variant, request (the request id) and rank (1 for the first).
 */
void
serve_write_impressions(struct buf *b, const struct serve_req *q,
			const char *id, const char *variant, int64_t ts,
			const struct serve_snap *s,
			const struct serve_result *r)
{
	struct event ev;
	char eid[24], rank[24];
	size_t idn = strlen(id);

	event_init(&ev);
	for (size_t k = 0; k < r->n; k++) {
		struct str it = model_item_id(s->m, r->items[k].item);
		uint64_t h = hash64(id, idn, MODEL_ID_SEED);
		h = hash64(it.p, it.n, h);
		event_reset(&ev);
		memcpy(eid, "imp-", 4);
		hash_hex16(h, eid + 4);
		ev.event_id.p = eid;
		ev.event_id.n = strlen(eid);
		ev.ts = ts;
		ev.user = serve_req_str(q, q->user);
		ev.type = ET_IMPRESSION;
		ev.item = it;
		ev.has = EV_ITEM;
		snprintf(rank, sizeof rank, "%zu", k + 1);
		event_append_attr(&ev, "variant", 7, variant, strlen(variant));
		event_append_attr(&ev, "request", 7, id, idn);
		event_append_attr(&ev, "rank", 4, rank, strlen(rank));
		ev.has |= EV_ATTRS;
		event_write_json(b, &ev);
		buf_putc(b, '\n');
	}
	event_free(&ev);
}

/* The user's bucket from 0 to 99, stable across runs and machines. */
int
serve_variant_bucket(const char *user, size_t n)
{
	return (int)(hash64(user, n, SERVE_VARIANT_SEED) % 100);
}
