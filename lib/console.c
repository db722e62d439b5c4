/* console.c: the JSON behind reco-serve's console: what each source alone recommends for a request, and an item's attributes, counts and neighbours. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"
#include "console.h"

/* An item of model m as a JSON object with its score. */
static void
put_item(struct buf *b, const struct model *m, uint32_t i, double score)
{
	struct str id = model_item_id(m, i);

	buf_puts(b, "{\"item\":");
	buf_json_str(b, id.p, id.n);
	buf_printf(b, ",\"score\":%.6g}", score);
}

void
console_sources(struct buf *b, struct serve_worker *w,
		const struct serve_snap *s, const struct profile *p,
		const struct serve_req *q, const struct serve_opts *o)
{
	struct serve_opts one = *o;
	struct serve_result r;

	one.weights_given = 1;
	buf_putc(b, '{');
	for (int src = 0; src < RANK_NSRC; src++) {
		rank_weights_only(&one.w, src);
		serve_begin(w, s, p, q, &one, &r);
		serve_finish(w, s, q, &one, &r);
		if (src)
			buf_putc(b, ',');
		buf_json_str(b, rank_src_names[src], strlen(rank_src_names[src]));
		buf_puts(b, ":[");
		for (size_t k = 0; k < r.n; k++) {
			if (k)
				buf_putc(b, ',');
			put_item(b, s->m, r.items[k].item, r.items[k].score);
		}
		buf_putc(b, ']');
	}
	buf_putc(b, '}');
}

/* The first n entries of list l (len entries) as a JSON array. */
static void
put_list(struct buf *b, const struct model *m, const struct model_nb *l,
	 size_t len, size_t n)
{
	buf_putc(b, '[');
	for (size_t k = 0; k < len && k < n; k++) {
		if (k)
			buf_putc(b, ',');
		put_item(b, m, l[k].item, l[k].score);
	}
	buf_putc(b, ']');
}

/* The n items nearest to item i by the cosine of their factors, best
 * first (ties: the smaller index), into near (room for n); how many. */
static size_t
nearest(const struct model *m, uint64_t i, size_t n, uint32_t *near,
	float *sim)
{
	const float *fi = model_item_vec(m, i);
	uint32_t dim = m->stride;
	float ni = sqrtf(model_dot(fi, fi, dim));
	size_t got = 0;

	if (!(ni > 0))
		return 0;
	for (uint64_t j = 0; j < m->nitems; j++) {
		if (j == i)
			continue;
		const float *fj = model_item_vec(m, j);
		float nj = sqrtf(model_dot(fj, fj, dim));
		if (!(nj > 0))
			continue;
		float c = model_dot(fi, fj, dim) / (ni * nj);
		if (!isfinite(c) || (got == n && !(c > sim[n - 1])))
			continue;
		size_t at = got < n ? got++ : n - 1;
		while (at > 0 && c > sim[at - 1]) {
			sim[at] = sim[at - 1];
			near[at] = near[at - 1];
			at--;
		}
		sim[at] = c;
		near[at] = (uint32_t)j;
	}
	return got;
}

int
console_item(struct buf *b, const struct serve_snap *s,
	     const struct table *items, const char *id, size_t idn, size_t n)
{
	const struct model *m = s->m;
	int64_t i = model_item_find(m, id, idn);
	struct table_cur cur;
	const struct model_nb *l = NULL;
	size_t len;

	if (i < 0 && !(items && table_find(items, id, idn, &cur)))
		return -1;
	buf_puts(b, "{\"item\":");
	buf_json_str(b, id, idn);
	buf_puts(b, ",\"attrs\":{");
	if (items && table_find(items, id, idn, &cur)) {
		size_t col, k = 0;
		struct str v;
		while (table_next(&cur, &col, &v)) {
			if (k++)
				buf_putc(b, ',');
			buf_json_str(b, items->cols[col], strlen(items->cols[col]));
			buf_putc(b, ':');
			buf_json_str(b, v.p, v.n);
		}
	}
	buf_putc(b, '}');
	if (i < 0) {
		buf_puts(b, ",\"known\":false}");
		return 0;
	}
	double pop_scale, trend_scale = model_trend_factor(m, &pop_scale);
	double ratio = (double)m->p.trend_half_life / (double)m->p.pop_half_life;
	double e = m->ipop[i] * pop_scale * ratio, o = m->ishort[i] * trend_scale;
	char iso[64];
	ts_format_iso(m->its[i], iso);
	buf_printf(b, ",\"known\":true,\"count\":%.6g,\"decayed_count\":%.6g,"
		      "\"trend\":%.6g,\"last_event\":\"%s\"",
		   (double)m->icount[i], m->ipop[i] * pop_scale,
		   o > e ? (o - e) / sqrt(e + 1) : 0.0, iso);
	len = model_list(&m->nb, (uint64_t)i, &l);
	buf_puts(b, ",\"cooc\":");
	put_list(b, m, l, len, n);
	len = model_list(&m->sq, (uint64_t)i, &l);
	buf_puts(b, ",\"next\":");
	put_list(b, m, l, len, n);
	uint32_t *near = xreallocarray(NULL, n ? n : 1, sizeof *near);
	float *sim = xreallocarray(NULL, n ? n : 1, sizeof *sim);
	size_t got = nearest(m, (uint64_t)i, n, near, sim);
	buf_puts(b, ",\"factors\":[");
	for (size_t k = 0; k < got; k++) {
		if (k)
			buf_putc(b, ',');
		put_item(b, m, near[k], sim[k]);
	}
	buf_puts(b, "]}");
	free(near);
	free(sim);
	return 0;
}
