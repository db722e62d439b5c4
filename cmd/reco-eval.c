/* reco-eval: prequential next-item evaluation of the models side by side, and A/B results from impressions and what followed them. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reco.h"
#include "model.h"
#include "rank.h"

static const char usage_head[] =
"usage: reco-eval [options] [file ...]\n"
"       reco-eval --tune [--tune-configs n] [--tune-split x] [file ...]\n"
"       reco-eval --ab [--window dur] [--control variant] [file ...]\n"
"Evaluate recommenders on an event stream, test-then-train: for each item\n"
"event of a user with history, each model ranks its top 20 before it\n"
"learns the event. Or, with --ab, measure the variants of an A/B test from\n"
"impressions and the clicks and purchases that followed them.\n"
"\n"
"Evaluation:\n"
"      --models LIST        models side by side (default\n"
"                           pop,dpop,cooc,seq,sknn,walk,mf,hybrid; also\n"
"                           trend, next, seen, cat)\n"
"      --weights SPEC       a fixed blend for the hybrid, SOURCE=WEIGHT,...\n"
"                           with sources mf, cooc, trend, dpop, pop, seen,\n"
"                           cat, sknn, seq, next, walk, and tail=N: places\n"
"                           18 on for the walk's new items (default: the\n"
"                           blend the model learns as it goes, tail=3)\n"
"      --eval-types T,...   event types evaluated (default\n"
"                           view,click,add_to_cart,purchase)\n"
"      --model FILE         start from the snapshot FILE (reco-train -o)\n"
"      --json               one JSON object instead of the table\n"
"      --timing             add the speed (requests and events per second,\n"
"                           which vary from run to run) to the report\n"
"Tuning:\n"
"      --tune               search the model's main parameters on a prefix of\n"
"                           the stream (successive halving), check the winner\n"
"                           on the rest, and print its flags (for --params)\n"
"      --tune-configs N     parameter sets tried (default 16)\n"
"      --tune-split X       the share of the stream searched on (default 0.7)\n"
"      --tune-metric M      hr@20 (default), mrr@20 or ndcg@10\n"
"      --tune-max-events N  events held in memory, at most (default 2000000)\n"
"A/B:\n"
"      --ab                 A/B mode\n"
"      --window DUR         attribution window after an impression (default 30m)\n"
"      --control NAME       the control variant (default: the first by name)\n"
"      --click-types T,...  what counts as a click-through (default\n"
"                           click,add_to_cart,purchase)\n"
"      --max-pending N      impressions awaiting attribution, at most\n"
"                           (default 1000000)\n"
"\n";

enum {
	OPT_MODELS = OPT_TOOL_FIRST,
	OPT_WEIGHTS,
	OPT_EVAL_TYPES,
	OPT_MODEL,
	OPT_JSON,
	OPT_AB,
	OPT_WINDOW,
	OPT_CONTROL,
	OPT_CLICK_TYPES,
	OPT_MAX_PENDING,
	OPT_TIMING,
	OPT_TUNE,
	OPT_TUNE_CONFIGS,
	OPT_TUNE_SPLIT,
	OPT_TUNE_METRIC,
	OPT_TUNE_MAX_EVENTS
};

static const struct option own_opts[] = {
	{ "models", required_argument, NULL, OPT_MODELS },
	{ "weights", required_argument, NULL, OPT_WEIGHTS },
	{ "eval-types", required_argument, NULL, OPT_EVAL_TYPES },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "ab", no_argument, NULL, OPT_AB },
	{ "window", required_argument, NULL, OPT_WINDOW },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "click-types", required_argument, NULL, OPT_CLICK_TYPES },
	{ "max-pending", required_argument, NULL, OPT_MAX_PENDING },
	{ "timing", no_argument, NULL, OPT_TIMING },
	{ "tune", no_argument, NULL, OPT_TUNE },
	{ "tune-configs", required_argument, NULL, OPT_TUNE_CONFIGS },
	{ "tune-split", required_argument, NULL, OPT_TUNE_SPLIT },
	{ "tune-metric", required_argument, NULL, OPT_TUNE_METRIC },
	{ "tune-max-events", required_argument, NULL, OPT_TUNE_MAX_EVENTS },
	{ NULL, 0, NULL, 0 }
};

#define TOPN 20
#define MAXMODELS 16
#define SEED_AB 0x7265636f2d616220ULL

static struct {
	const char *models;
	struct rank_weights hybrid;
	unsigned eval_types, click_types;
	const char *model;
	int json;
	int timing;
	int ab;
	int64_t window;
	const char *control;
	long long max_pending;
	int weights_given;
	int tune;
	long long tune_configs, tune_max;
	double tune_split;
	int tune_metric;          /* 0 hr@20, 1 mrr@20, 2 ndcg@10 */
	struct model_params p;
} O = {
	.tune_configs = 16,
	.tune_max = 2000000,
	.tune_split = 0.7,
	.models = "pop,dpop,cooc,seq,sknn,walk,mf,hybrid",
	.eval_types = 1u << ET_VIEW | 1u << ET_CLICK | 1u << ET_ADD_TO_CART |
		      1u << ET_PURCHASE,
	.click_types = 1u << ET_CLICK | 1u << ET_ADD_TO_CART | 1u << ET_PURCHASE,
	.window = 1800000,
	.max_pending = 1000000,
};

static struct tool T;
static char usage[8192];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned
types_arg(const char *opt, const char *arg)
{
	const char *p = arg;
	unsigned set = 0;

	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int t = event_type_parse(p, n);
		if (t < 0)
			tool_usage_error(&T, "%s: unknown event type \"%.*s\" (view, click, search, add_to_cart, remove_from_cart, purchase, impression)",
					 opt, (int)n, p);
		set |= 1u << t;
		if (!e)
			return set;
		p = e + 1;
	}
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	char err[512];
	int r;
	char *end;

	(void)t;
	if ((r = model_option(&O.p, c, arg, err, sizeof err)) < 0)
		tool_usage_error(&T, "%s", err);
	if (r == 0)
		return 0;
	switch (c) {
	case OPT_MODELS:
		O.models = arg;
		return 0;
	case OPT_WEIGHTS:
		if (rank_weights_parse(&O.hybrid, arg, err, sizeof err))
			tool_usage_error(&T, "--weights: %s", err);
		O.weights_given = 1;
		return 0;
	case OPT_EVAL_TYPES:
		O.eval_types = types_arg("--eval-types", arg);
		return 0;
	case OPT_CLICK_TYPES:
		O.click_types = types_arg("--click-types", arg);
		return 0;
	case OPT_MODEL:
		O.model = arg;
		return 0;
	case OPT_JSON:
		O.json = 1;
		return 0;
	case OPT_TIMING:
		O.timing = 1;
		return 0;
	case OPT_AB:
		O.ab = 1;
		return 0;
	case OPT_TUNE:
		O.tune = 1;
		return 0;
	case OPT_TUNE_CONFIGS:
		errno = 0;
		O.tune_configs = strtoll(arg, &end, 10);
		if (*arg < '0' || *arg > '9' || *end || errno || O.tune_configs < 1 ||
		    O.tune_configs > 256)
			tool_usage_error(&T, "--tune-configs: expected a whole number from 1 to 256, not \"%s\"", arg);
		return 0;
	case OPT_TUNE_MAX_EVENTS:
		errno = 0;
		O.tune_max = strtoll(arg, &end, 10);
		if (*arg < '0' || *arg > '9' || *end || errno || O.tune_max < 100 ||
		    O.tune_max > (1LL << 32))
			tool_usage_error(&T, "--tune-max-events: expected a whole number from 100 to %lld, not \"%s\"",
					 1LL << 32, arg);
		return 0;
	case OPT_TUNE_SPLIT:
		errno = 0;
		O.tune_split = strtod(arg, &end);
		if (end == arg || *end || errno || !(O.tune_split >= 0.1 && O.tune_split <= 0.95))
			tool_usage_error(&T, "--tune-split: expected a number from 0.1 to 0.95, not \"%s\"", arg);
		return 0;
	case OPT_TUNE_METRIC:
		if (strcmp(arg, "hr@20") == 0)
			O.tune_metric = 0;
		else if (strcmp(arg, "mrr@20") == 0)
			O.tune_metric = 1;
		else if (strcmp(arg, "ndcg@10") == 0)
			O.tune_metric = 2;
		else
			tool_usage_error(&T, "--tune-metric: expected hr@20, mrr@20 or ndcg@10, not \"%s\"", arg);
		return 0;
	case OPT_WINDOW:
		if (duration_parse(arg, &O.window) || O.window < 1 ||
		    O.window > 3650LL * 86400000)
			tool_usage_error(&T, "--window: expected a duration such as 30m, not \"%s\"", arg);
		return 0;
	case OPT_CONTROL:
		O.control = arg;
		return 0;
	case OPT_MAX_PENDING:
		errno = 0;
		O.max_pending = strtoll(arg, &end, 10);
		if (*arg < '0' || *arg > '9' || *end || errno || O.max_pending < 1 ||
		    O.max_pending > (1LL << 31))
			tool_usage_error(&T, "--max-pending: expected a whole number from 1 to %lld, not \"%s\"",
					 1LL << 31, arg);
		return 0;
	}
	return 1;
}

/* Output through the tool's output, checked. */
static struct buf ob;

static void
out_flush(void)
{
	tool_emit_line(&T, ob.p, ob.n);
	ob.n = 0;
}

/* ---- prequential evaluation ---- */

struct emodel {
	char name[32];
	struct rank_weights w;
	int learned;              /* the model's own blend, as it learns */
	uint64_t n, hit10, hit20, cold, empty;
	double mrr20, ndcg10;
	struct htab covered;      /* hashes of the items recommended */
	uint8_t *known;           /* by item number: already in covered */
	size_t known_n;
	double secs;
};

static struct emodel E[MAXMODELS];
static size_t nE;

static void
models_arg(void)
{
	const char *p = O.models;

	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		struct emodel *m;
		int src;

		if (nE == MAXMODELS)
			tool_usage_error(&T, "--models: at most %d models", MAXMODELS);
		m = &E[nE];
		if (n == 0 || n >= sizeof m->name)
			tool_usage_error(&T, "--models: bad list \"%s\"", O.models);
		memcpy(m->name, p, n);
		m->name[n] = '\0';
		if (strcmp(m->name, "hybrid") == 0) {
			m->w = O.hybrid;
			m->learned = !O.weights_given;
		}
		else if ((src = rank_src_parse(p, n)) >= 0)
			rank_weights_only(&m->w, src);
		else {
			char names[256] = "";
			for (int k = 0; k < RANK_NSRC; k++) {
				strcat(names, rank_src_names[k]);
				strcat(names, ", ");
			}
			tool_usage_error(&T, "--models: unknown model \"%s\" (%shybrid)",
					 m->name, names);
		}
		for (size_t k = 0; k < nE; k++)
			if (strcmp(E[k].name, m->name) == 0)
				tool_usage_error(&T, "--models: \"%s\" twice", m->name);
		htab_init(&m->covered, 1024);
		nE++;
		if (!e)
			return;
		p = e + 1;
	}
}

static void
put_num(struct buf *b, double v)
{
	buf_printf(b, "%.6f", v);
}

static void
eval_report(struct model *m, uint64_t learned, uint64_t evaluated,
	    uint64_t unknown, const struct htab *catalogue, double secs)
{
	uint64_t events = *T.in - *T.rejected;
	double rate = secs > 0 ? (double)events / secs : 0;

	ob.n = 0;
	if (O.json) {
		buf_puts(&ob, "{\"events\":");
		buf_put_u64(&ob, events);
		buf_puts(&ob, ",\"learned\":");
		buf_put_u64(&ob, learned);
		buf_puts(&ob, ",\"evaluated\":");
		buf_put_u64(&ob, evaluated);
		buf_puts(&ob, ",\"target_unknown\":");
		buf_put_u64(&ob, unknown);
		buf_puts(&ob, ",\"items\":");
		buf_put_u64(&ob, catalogue->n);
		buf_puts(&ob, ",\"users\":");
		buf_put_u64(&ob, m->nusers);
		buf_puts(&ob, ",\"n\":");
		buf_put_u64(&ob, TOPN);
		buf_puts(&ob, ",\"models\":[");
		for (size_t k = 0; k < nE; k++) {
			struct emodel *e = &E[k];
			double n = e->n ? (double)e->n : 1;
			if (k)
				buf_putc(&ob, ',');
			buf_puts(&ob, "{\"model\":");
			buf_json_str(&ob, e->name, strlen(e->name));
			buf_puts(&ob, ",\"weights\":{");
			int first = 1;
			for (int s = 0; s < RANK_NFEAT; s++) {
				if (e->w.w[s] == 0)
					continue;
				if (!first)
					buf_putc(&ob, ',');
				first = 0;
				if (s == RANK_SAMECAT)
					buf_printf(&ob, "\"category_match\":%.6g", (double)e->w.w[s]);
				else if (s == RANK_SAMEBRAND)
					buf_printf(&ob, "\"brand_match\":%.6g", (double)e->w.w[s]);
				else
					buf_printf(&ob, "\"%s%s\":%.6g", rank_src_names[s % RANK_NSRC],
						   s < RANK_NSRC ? "" : s < 2 * RANK_NSRC ? "@rank" : "@raw",
						   (double)e->w.w[s]);
			}
			if (e->w.tail)
				buf_printf(&ob, "%s\"tail\":%u", first ? "" : ",", e->w.tail);
			buf_puts(&ob, "},\"evaluated\":");
			buf_put_u64(&ob, e->n);
			buf_puts(&ob, ",\"hr@10\":");
			put_num(&ob, (double)e->hit10 / n);
			buf_puts(&ob, ",\"hr@20\":");
			put_num(&ob, (double)e->hit20 / n);
			buf_puts(&ob, ",\"mrr@20\":");
			put_num(&ob, e->mrr20 / n);
			buf_puts(&ob, ",\"ndcg@10\":");
			put_num(&ob, e->ndcg10 / n);
			buf_puts(&ob, ",\"coverage\":");
			put_num(&ob, catalogue->n ? (double)e->covered.n / (double)catalogue->n : 0);
			buf_puts(&ob, ",\"items_recommended\":");
			buf_put_u64(&ob, e->covered.n);
			buf_puts(&ob, ",\"cold\":");
			buf_put_u64(&ob, e->cold);
			buf_puts(&ob, ",\"empty\":");
			buf_put_u64(&ob, e->empty);
			if (O.timing) {
				buf_puts(&ob, ",\"requests_per_second\":");
				buf_printf(&ob, "%.0f", e->secs > 0 ? (double)e->n / e->secs : 0.0);
			}
			buf_putc(&ob, '}');
		}
		buf_putc(&ob, ']');
		if (O.timing) {
			buf_puts(&ob, ",\"seconds\":");
			buf_printf(&ob, "%.3f", secs);
			buf_puts(&ob, ",\"events_per_second\":");
			buf_printf(&ob, "%.0f", rate);
		}
		buf_puts(&ob, "}\n");
		out_flush();
		return;
	}
	buf_printf(&ob, "%-8s %9s %7s %7s %7s %7s %8s %7s %7s", "model",
		   "evaluated", "HR@10", "HR@20", "MRR@20", "NDCG@10",
		   "coverage", "cold", "empty");
	buf_puts(&ob, O.timing ? "     req/s\n" : "\n");
	for (size_t k = 0; k < nE; k++) {
		struct emodel *e = &E[k];
		double n = e->n ? (double)e->n : 1;
		buf_printf(&ob, "%-8s %9llu %7.4f %7.4f %7.4f %7.4f %8.4f %7llu %7llu",
			   e->name, (unsigned long long)e->n,
			   (double)e->hit10 / n, (double)e->hit20 / n,
			   e->mrr20 / n, e->ndcg10 / n,
			   catalogue->n ? (double)e->covered.n / (double)catalogue->n : 0.0,
			   (unsigned long long)e->cold, (unsigned long long)e->empty);
		if (O.timing)
			buf_printf(&ob, " %9.0f", e->secs > 0 ? (double)e->n / e->secs : 0.0);
		buf_putc(&ob, '\n');
	}
	buf_printf(&ob, "events %llu, learned %llu, evaluated %llu (target unknown to the model %llu); %llu items, %llu users",
		   (unsigned long long)events, (unsigned long long)learned,
		   (unsigned long long)evaluated, (unsigned long long)unknown,
		   (unsigned long long)catalogue->n,
		   (unsigned long long)m->nusers);
	if (O.timing)
		buf_printf(&ob, "; %.3f s, %.0f events/s", secs, rate);
	buf_putc(&ob, '\n');
	out_flush();
}

/*
 * Whether ev is evaluated: an event of an evaluated type with an item, of
 * a user the model knows, whose item is not the user's last one. If so,
 * fill q for the top TOPN (rec is room for MODEL_MAX_RECENT items, and
 * the last item is excluded: repeating it is not a recommendation) and
 * *target (-1 when the model does not know the item), and return 1.
 */
static int
eval_request(const struct model *m, const struct event *ev, uint32_t *rec,
	     struct rank_req *q, int64_t *target)
{
	int64_t u;

	if (!(O.eval_types >> ev->type & 1) || !(ev->has & EV_ITEM) || !ev->item.n ||
	    (u = model_user_find(m, ev->user.p, ev->user.n)) < 0 || m->unrec[u] == 0)
		return 0;
	size_t nr = model_user_recent(m, (uint64_t)u, rec, MODEL_MAX_RECENT);
	struct str prev = model_item_id(m, rec[0]);
	if (prev.n == ev->item.n && memcmp(prev.p, ev->item.p, prev.n) == 0)
		return 0;
	*target = model_item_find(m, ev->item.p, ev->item.n);
	memset(q, 0, sizeof *q);
	q->user = u;
	q->recent = rec;
	q->nrecent = nr;
	q->exclude = rec;
	q->nexclude = 1;
	q->n = TOPN;
	q->user_hash = hash64(ev->user.p, ev->user.n, MODEL_ID_SEED);
	q->exclude_seen = model_exclude_seen(m);
	return 1;
}

/* Count item i of model m as recommended by e: its id's hash goes into
 * e's set the first time the item's number is seen (until evictions
 * renumber the items). */
static void
cover(struct emodel *e, const struct model *m, uint32_t i)
{
	if (i >= e->known_n) {
		size_t n = e->known_n ? e->known_n : 1024;
		while (n <= i)
			n *= 2;
		e->known = xrealloc(e->known, n);
		memset(e->known + e->known_n, 0, n - e->known_n);
		e->known_n = n;
	}
	if (e->known[i])
		return;
	struct str id = model_item_id(m, i);
	int isnew;
	htab_put(&e->covered, hash64(id.p, id.n, MODEL_ID_SEED), &isnew);
	e->known[i] = 1;
}

static void
run_eval(void)
{
	struct model *m;
	struct ranker *r = ranker_new();
	struct rank_item res[TOPN];
	uint32_t rec[MODEL_MAX_RECENT];
	struct event ev;
	struct evin *in;
	struct htab catalogue;
	uint64_t learned = 0, evaluated = 0, unknown = 0;
	char err[512];
	double t0;

	models_arg();
	if (O.model) {
		if (!(m = model_load(O.model, 0, err, sizeof err)))
			die(errno == EINVAL ? EXIT_DATA : EXIT_IO,
			    "%s", err);
		if (model_retune(m, &O.p, err, sizeof err))
			tool_usage_error(&T, "%s: %s", O.model, err);
	} else
		m = model_new(&O.p);
	htab_init(&catalogue, 1024);
	tool_open(&T);
	uint64_t *m_eval = metric(&T.m, "reco_eval_evaluated_total", NULL,
				  "Events evaluated.");
	uint64_t *m_learn = metric(&T.m, "reco_eval_learned_total", NULL,
				   "Events the models learned.");
	event_init(&ev);
	in = evin_new(&T);
	t0 = now();
	while (evin_next(in, &ev)) {
		struct rank_req q;
		int64_t target;
		if (eval_request(m, &ev, rec, &q, &target)) {
			evaluated++;
			(*m_eval)++;
			if (target < 0)
				unknown++;
			/* One request: the sources of every model asked once,
			 * then each model's blend of them. */
			unsigned ask = 0;
			size_t depth = TOPN;
			for (size_t k = 0; k < nE; k++) {
				unsigned a;
				if (E[k].learned)
					rank_weights_model(&E[k].w, m);
				a = rank_sources(&E[k].w);
				ask |= a;
				if (a & (a - 1))
					depth = TOPN * RANK_BLEND_DEPTH;
			}
			double t0g = now();
			rank_gather(r, m, &q, ask, depth);
			double share = (now() - t0g) / (double)nE;
			for (size_t k = 0; k < nE; k++) {
				struct emodel *e = &E[k];
				double t = now();
				size_t n = rank_pick(r, &e->w, TOPN, res);
				e->secs += now() - t + share;
				e->n++;
				if ((rank_sources(&e->w) >> RANK_MF & 1) && rank_last(r)->cold)
					e->cold++;
				if (n == 0)
					e->empty++;
				for (size_t j = 0; j < n; j++) {
					cover(e, m, res[j].item);
					if ((int64_t)res[j].item != target)
						continue;
					e->hit20++;
					e->mrr20 += 1.0 / (double)(j + 1);
					if (j < 10) {
						e->hit10++;
						e->ndcg10 += 1.0 / log2((double)j + 2);
					}
				}
			}
		}
		uint64_t evicted = m->st.items_evicted;
		if (model_learn(m, &ev)) {
			int isnew;
			learned++;
			(*m_learn)++;
			(*T.out_n)++;
			htab_put(&catalogue, hash64(ev.item.p, ev.item.n, MODEL_ID_SEED), &isnew);
		} else
			tool_drop(&T, (ev.has & EV_ITEM) && ev.item.n ? "type" : "no_item");
		/* Evictions renumber the items: what the numbers knew goes. */
		if (m->st.items_evicted != evicted)
			for (size_t k = 0; k < nE; k++)
				memset(E[k].known, 0, E[k].known_n);
	}
	/* The report is not records: the accounting counts events learned. */
	uint64_t out_n = *T.out_n;
	double secs = now() - t0;
	eval_report(m, learned, evaluated, unknown, &catalogue, secs);
	*T.out_n = out_n;
	if (T.stats) {
		fprintf(stderr, "reco-eval: %llu events, %llu evaluated in %.3f s: %.0f events/s\n",
			(unsigned long long)(*T.in - *T.rejected),
			(unsigned long long)evaluated, secs,
			secs > 0 ? (double)(*T.in - *T.rejected) / secs : 0.0);
		for (size_t k = 0; k < nE; k++)
			fprintf(stderr, "reco-eval:   %s: %.0f requests/s\n", E[k].name,
				E[k].secs > 0 ? (double)E[k].n / E[k].secs : 0.0);
	}
	evin_free(in);
	event_free(&ev);
	ranker_free(r);
	model_free(m);
	htab_free(&catalogue);
	for (size_t k = 0; k < nE; k++) {
		htab_free(&E[k].covered);
		free(E[k].known);
	}
}

/* ---- tuning ---- */

/* The parameters searched, each with the values tried; the values are
 * given as on the command line, so the winner prints as flags. */
static const struct tdim {
	const char *flag;
	int opt;
	const char *v[4];
} tdims[] = {
	{ "--neighbours", MOPT_NEIGHBOURS, { "50", "100", "200", NULL } },
	{ "--recent", MOPT_RECENT, { "4", "8", "16", NULL } },
	{ "--session-gap", MOPT_SESSION_GAP, { "10m", "30m", "2h", NULL } },
	{ "--cooc-half-life", MOPT_COOC_HL, { "1d", "7d", "60d", NULL } },
	{ "--sknn-k", MOPT_SKNN_K, { "50", "100", "200", NULL } },
	{ "--sknn-sample", MOPT_SKNN_SAMPLE, { "50", "100", "400", NULL } },
	{ "--walk-steps", MOPT_WALK_STEPS, { "2", "3", "4", NULL } },
	{ "--forget", MOPT_FORGET, { "0", "7d", NULL, NULL } },
	{ "--lr", MOPT_LR, { "0.05", "0.2", NULL, NULL } },
};
#define NTDIM (sizeof tdims / sizeof tdims[0])

struct tcfg {
	int pick[NTDIM];          /* index into each dimension's values; -1:
				   * the command line's own */
	double score;
	int alive;
};

/* The events, kept as canonical NDJSON lines. */
static struct buf tev;
static size_t *toff, ntev;

/* The flags of config c; the command line's own values written out. */
static void
tune_flags(const struct tcfg *c, struct buf *b)
{
	const struct model_params *p = &O.p;

	for (size_t d = 0; d < NTDIM; d++) {
		buf_printf(b, "%s%s ", d ? " " : "", tdims[d].flag);
		if (c->pick[d] >= 0) {
			buf_puts(b, tdims[d].v[c->pick[d]]);
			continue;
		}
		switch (tdims[d].opt) {
		case MOPT_NEIGHBOURS: buf_printf(b, "%u", p->neighbours); break;
		case MOPT_RECENT: buf_printf(b, "%u", p->recent); break;
		case MOPT_SESSION_GAP: buf_printf(b, "%lldms", (long long)p->session_gap); break;
		case MOPT_COOC_HL: buf_printf(b, "%lldms", (long long)p->cooc_half_life); break;
		case MOPT_SKNN_K: buf_printf(b, "%u", p->sk.k); break;
		case MOPT_SKNN_SAMPLE: buf_printf(b, "%u", p->sk.per_item); break;
		case MOPT_WALK_STEPS: buf_printf(b, "%u", p->walk_steps); break;
		case MOPT_FORGET: buf_printf(b, "%lldms", (long long)p->forget); break;
		case MOPT_LR: buf_printf(b, "%g", (double)p->lr); break;
		}
	}
}

/* The metric of config c, test-then-train over the events [0, to),
 * counting those from `from` on. */
static double
tune_run(const struct tcfg *c, size_t from, size_t to)
{
	struct model_params p = O.p;
	struct model *m;
	struct ranker *r = ranker_new();
	struct rank_item res[TOPN];
	uint32_t rec[MODEL_MAX_RECENT];
	struct event ev;
	char err[512];
	double sum = 0;
	uint64_t n = 0;

	for (size_t d = 0; d < NTDIM; d++)
		if (c->pick[d] >= 0 &&
		    model_option(&p, tdims[d].opt, tdims[d].v[c->pick[d]], err, sizeof err))
			die(EXIT_USAGE, "--tune: %s", err);
	m = model_new(&p);
	event_init(&ev);
	for (size_t k = 0; k < to; k++) {
		struct rank_req q;
		int64_t target;
		if (event_parse_json(&ev, tev.p + toff[k], toff[k + 1] - toff[k] - 1,
				     err, sizeof err))
			die(EXIT_IO, "--tune: internal error: %s", err);
		if (k >= from && eval_request(m, &ev, rec, &q, &target)) {
			n++;
			if (O.weights_given)
				q.w = O.hybrid;
			else
				rank_weights_model(&q.w, m);
			size_t got = rank_top(r, m, &q, res);
			for (size_t j = 0; j < got; j++) {
				if ((int64_t)res[j].item != target)
					continue;
				sum += O.tune_metric == 0 ? 1.0 :
				       O.tune_metric == 1 ? 1.0 / (double)(j + 1) :
				       j < 10 ? 1.0 / log2((double)j + 2) : 0.0;
				break;
			}
		}
		model_learn(m, &ev);
	}
	event_free(&ev);
	ranker_free(r);
	model_free(m);
	return n ? sum / (double)n : 0;
}

static int
tcfg_cmp(const void *a, const void *b)
{
	const struct tcfg *x = *(const struct tcfg *const *)a;
	const struct tcfg *y = *(const struct tcfg *const *)b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * --tune: keep the events in memory, draw --tune-configs parameter sets
 * (the first is the command line's own), and race them by successive
 * halving on a growing prefix of the --tune-split share of the stream:
 * each round keeps the better half and doubles the prefix. The winner and
 * the command line's set then run over the whole stream, scored on the
 * rest only (events no round has seen scored), and the winner's flags go
 * to the output, for --params.
 */
static void
run_tune(void)
{
	static const char *const mname[] = { "hr@20", "mrr@20", "ndcg@10" };
	struct evin *in;
	struct event ev;
	struct rng rng;
	size_t nc = (size_t)O.tune_configs;
	struct tcfg *c = xcalloc(nc, sizeof *c);
	struct tcfg **order = xcalloc(nc, sizeof *order);
	struct buf flags = { 0 };

	tool_open(&T);
	event_init(&ev);
	in = evin_new(&T);
	toff = xmalloc(sizeof *toff);
	toff[0] = 0;
	while (evin_next(in, &ev)) {
		if (ntev == (size_t)O.tune_max)
			die(EXIT_DATA, "--tune: more than %lld events (--tune-max-events)",
			    O.tune_max);
		event_write_json(&tev, &ev);
		buf_putc(&tev, '\n');
		toff = xreallocarray(toff, ntev + 2, sizeof *toff);
		toff[++ntev] = tev.n;
		(*T.out_n)++;
	}
	evin_free(in);
	event_free(&ev);
	size_t split = (size_t)((double)ntev * O.tune_split);
	if (split < 100 || ntev - split < 100)
		die(EXIT_DATA, "--tune: %zu events are too few to search on and check (at least 100 each side of --tune-split)",
		    ntev);
	rng_seed(&rng, O.p.seed ^ 0x74756e65ULL);
	for (size_t k = 0; k < nc; k++) {
		for (size_t d = 0; d < NTDIM; d++) {
			size_t nv = 0;
			while (nv < 4 && tdims[d].v[nv])
				nv++;
			c[k].pick[d] = k == 0 ? -1 : (int)rng_below(&rng, nv);
		}
		c[k].alive = 1;
		order[k] = &c[k];
	}
	/* The rounds: all the sets on a prefix, then the better half on
	 * twice as much, until two are left, raced on the whole share. */
	size_t alive = nc, len = split;
	for (size_t k = nc; k > 2; k = (k + 1) / 2)
		len = (len + 1) / 2;
	for (int round = 1; alive > 1; round++) {
		for (size_t k = 0; k < alive; k++)
			order[k]->score = tune_run(order[k], 0, len);
		qsort(order, alive, sizeof *order, tcfg_cmp);
		if (verbosity >= 0) {
			fprintf(stderr, "reco-eval: tune round %d: %zu sets on %zu events, %s:",
				round, alive, len, mname[O.tune_metric]);
			for (size_t k = 0; k < alive; k++)
				fprintf(stderr, " %.4f", order[k]->score);
			fputc('\n', stderr);
		}
		if (verbosity > 0)
			for (size_t k = 0; k < alive; k++) {
				struct buf b = { 0 };
				tune_flags(order[k], &b);
				fprintf(stderr, "reco-eval:   %.4f %.*s\n", order[k]->score,
					(int)b.n, b.p);
				buf_free(&b);
			}
		alive = alive == 2 ? 1 : (alive + 1) / 2;
		len = len * 2 > split ? split : len * 2;
	}
	struct tcfg *win = order[0];
	double held_win = tune_run(win, split, ntev);
	double held_def = win == &c[0] ? held_win : tune_run(&c[0], split, ntev);
	/* The command line's set unless the winner also wins on the rest. */
	if (held_win <= held_def)
		win = &c[0];
	if (verbosity >= 0)
		fprintf(stderr, "reco-eval: tune: on the last %zu events, %s %.4f with the winner, %.4f with the command line's parameters%s\n",
			ntev - split, mname[O.tune_metric], held_win, held_def,
			win == &c[0] ? ": keeping them" : "");
	tune_flags(win, &flags);
	buf_putc(&flags, '\n');
	ob.n = 0;
	buf_put(&ob, flags.p, flags.n);
	out_flush();
	buf_free(&flags);
	buf_free(&tev);
	free(toff);
	free(order);
	free(c);
}

/* ---- A/B ---- */

struct variant {
	char *name;
	uint64_t impressions, clicks, conversions, orders, priced;
	double revenue, revenue2;  /* sums of order values and of squares */
};

struct pend {
	uint64_t key;              /* user and item */
	uint64_t req;              /* request id, 0 if none */
	int64_t ts;
	uint32_t variant;
	uint8_t clicked, converted;
};

static struct variant *V;
static size_t nV;
static struct pend *P;             /* a ring, oldest first */
static size_t p_head, p_n, p_cap;
static struct htab pidx;           /* key -> the latest pending impression */
static struct {
	uint64_t *no_variant, *clicks_unattributed, *orders_unattributed;
	uint64_t *expired_early, *pending;
} A;

static uint32_t
variant_of(const struct str *s)
{
	for (size_t k = 0; k < nV; k++)
		if (strlen(V[k].name) == s->n && memcmp(V[k].name, s->p, s->n) == 0)
			return (uint32_t)k;
	if (nV >= 1000)
		die(EXIT_DATA, "more than 1000 variants: is attrs.variant a variant name?");
	V = xreallocarray(V, nV + 1, sizeof *V);
	memset(&V[nV], 0, sizeof V[nV]);
	V[nV].name = xstrndup(s->p, s->n);
	return (uint32_t)nV++;
}

static uint64_t
pair_key(const struct event *ev)
{
	uint64_t h = hash64(ev->user.p, ev->user.n, SEED_AB);

	return hash64(ev->item.p, ev->item.n, h);
}

static uint64_t
req_key(const struct event *ev)
{
	const struct str *r = event_get_attr(ev, "request");

	return r && r->n ? hash64(r->p, r->n, SEED_AB) | 1 : 0;
}

/* Forget the impressions older than the window, and, past --max-pending,
 * the oldest ones. */
static void
expire(int64_t clock)
{
	while (p_n && (P[p_head].ts < clock - O.window ||
		       p_n >= (size_t)O.max_pending)) {
		struct pend *p = &P[p_head];
		uint32_t *v = htab_get(&pidx, p->key);
		if (p->ts >= clock - O.window)
			(*A.expired_early)++;
		if (v && *v == p_head)
			htab_del(&pidx, p->key);
		p_head = (p_head + 1) % p_cap;
		p_n--;
	}
}

static void
add_impression(const struct event *ev, uint32_t variant)
{
	if (p_n == p_cap) {
		size_t cap = p_cap ? p_cap * 2 : 1024;
		struct pend *np = xreallocarray(NULL, cap, sizeof *np);
		for (size_t k = 0; k < p_n; k++)
			np[k] = P[(p_head + k) % p_cap];
		free(P);
		P = np;
		p_cap = cap;
		p_head = 0;
		htab_free(&pidx);
		htab_init(&pidx, p_n);
		for (size_t k = 0; k < p_n; k++) {
			int isnew;
			*htab_put(&pidx, P[k].key, &isnew) = (uint32_t)k;
		}
	}
	size_t at = (p_head + p_n) % p_cap;
	struct pend *p = &P[at];
	int isnew;
	p->key = pair_key(ev);
	p->req = req_key(ev);
	p->ts = ev->ts;
	p->variant = variant;
	p->clicked = p->converted = 0;
	p_n++;
	*htab_put(&pidx, p->key, &isnew) = (uint32_t)at;
}

/* The pending impression that an event of the user on the item answers:
 * the latest one within the window, of the same request if the event
 * names one. */
static struct pend *
attributed(const struct event *ev)
{
	uint32_t *v = htab_get(&pidx, pair_key(ev));
	uint64_t req = req_key(ev);

	if (!v)
		return NULL;
	struct pend *p = &P[*v];
	if (ev->ts < p->ts || ev->ts - p->ts > O.window || (req && p->req && req != p->req))
		return NULL;
	return p;
}

static int
cmp_variant(const void *a, const void *b)
{
	const struct variant *x = a, *y = b;

	return strcmp(x->name, y->name);
}

/* Wilson score interval, 95%. */
static void
wilson(uint64_t k, uint64_t n, double *lo, double *hi)
{
	const double z = 1.959963984540054;

	if (n == 0) {
		*lo = *hi = 0;
		return;
	}
	double p = (double)k / (double)n, nn = (double)n;
	double d = 1 + z * z / nn;
	double c = (p + z * z / (2 * nn)) / d;
	double h = z * sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / d;
	*lo = c - h < 0 ? 0 : c - h;
	*hi = c + h > 1 ? 1 : c + h;
}

struct stat3 {
	double v, lo, hi;
	int ok;                    /* a value (and an interval) exists */
};

/* The mean order value with a normal-approximation interval. */
static struct stat3
aov(const struct variant *v)
{
	struct stat3 s = { 0, 0, 0, 0 };
	double n = (double)v->priced;

	if (v->priced == 0)
		return s;
	s.v = v->revenue / n;
	s.lo = s.hi = s.v;
	s.ok = 1;
	if (v->priced >= 2) {
		double var = (v->revenue2 - n * s.v * s.v) / (n - 1);
		double h = 1.959963984540054 * sqrt(var > 0 ? var / n : 0);
		s.lo = s.v - h;
		s.hi = s.v + h;
	}
	return s;
}

/* The relative uplift of b over the control a, with the 95% interval of
 * the difference (normal approximation) over a's value. */
static struct stat3
uplift(double a, double va, double b, double vb)
{
	struct stat3 s = { 0, 0, 0, 0 };

	if (!(a > 0))
		return s;
	double h = 1.959963984540054 * sqrt(va + vb);
	s.v = b / a - 1;
	s.lo = (b - a - h) / a;
	s.hi = (b - a + h) / a;
	s.ok = 1;
	return s;
}

static double
rate_var(uint64_t k, uint64_t n)
{
	double p;

	if (n == 0)
		return 0;
	p = (double)k / (double)n;
	return p * (1 - p) / (double)n;
}

static double
mean_var(const struct variant *v)
{
	double n = (double)v->priced, m;

	if (v->priced < 2)
		return 0;
	m = v->revenue / n;
	double var = (v->revenue2 - n * m * m) / (n - 1);
	return var > 0 ? var / n : 0;
}

static void
json_stat(struct buf *b, const char *name, struct stat3 s)
{
	buf_printf(b, ",\"%s\":", name);
	if (!s.ok) {
		buf_printf(b, "null,\"%s_ci\":null", name);
		return;
	}
	put_num(b, s.v);
	buf_printf(b, ",\"%s_ci\":[", name);
	put_num(b, s.lo);
	buf_putc(b, ',');
	put_num(b, s.hi);
	buf_putc(b, ']');
}

static void
ab_report(void)
{
	size_t c = 0;

	if (nV > 1)
		qsort(V, nV, sizeof *V, cmp_variant);
	if (O.control) {
		for (c = 0; c < nV && strcmp(V[c].name, O.control) != 0; c++)
			;
		if (c == nV && nV)
			warn("--control %s: no impressions of that variant", O.control);
	}
	const struct variant *cv = c < nV ? &V[c] : NULL;
	ob.n = 0;
	if (O.json) {
		buf_puts(&ob, "{\"control\":");
		if (cv)
			buf_json_str(&ob, cv->name, strlen(cv->name));
		else
			buf_puts(&ob, "null");
		buf_puts(&ob, ",\"window_ms\":");
		buf_put_i64(&ob, O.window);
		buf_puts(&ob, ",\"variants\":[");
	} else {
		buf_printf(&ob, "%-10s %11s %7s %7s %17s %6s %7s %17s %6s %9s %21s %11s\n",
			   "variant", "impressions", "clicks", "CTR", "95% CI",
			   "conv", "rate", "95% CI", "orders", "AOV", "95% CI",
			   "revenue");
	}
	for (size_t k = 0; k < nV; k++) {
		const struct variant *v = &V[k];
		struct stat3 ctr = { 0, 0, 0, v->impressions > 0 };
		struct stat3 cr = ctr;
		if (v->impressions) {
			ctr.v = (double)v->clicks / (double)v->impressions;
			wilson(v->clicks, v->impressions, &ctr.lo, &ctr.hi);
			cr.v = (double)v->conversions / (double)v->impressions;
			wilson(v->conversions, v->impressions, &cr.lo, &cr.hi);
		}
		struct stat3 a = aov(v);
		if (O.json) {
			if (k)
				buf_putc(&ob, ',');
			buf_puts(&ob, "{\"variant\":");
			buf_json_str(&ob, v->name, strlen(v->name));
			buf_puts(&ob, ",\"impressions\":");
			buf_put_u64(&ob, v->impressions);
			buf_puts(&ob, ",\"clicks\":");
			buf_put_u64(&ob, v->clicks);
			buf_puts(&ob, ",\"conversions\":");
			buf_put_u64(&ob, v->conversions);
			buf_puts(&ob, ",\"orders\":");
			buf_put_u64(&ob, v->orders);
			buf_puts(&ob, ",\"revenue\":");
			buf_printf(&ob, "%.2f", v->revenue);
			json_stat(&ob, "ctr", ctr);
			json_stat(&ob, "conversion", cr);
			json_stat(&ob, "aov", a);
			if (cv && v != cv) {
				buf_puts(&ob, ",\"uplift\":{\"against\":");
				buf_json_str(&ob, cv->name, strlen(cv->name));
				struct stat3 a0 = aov(cv);
				json_stat(&ob, "ctr", uplift(
					cv->impressions ? (double)cv->clicks / (double)cv->impressions : 0,
					rate_var(cv->clicks, cv->impressions), ctr.v,
					rate_var(v->clicks, v->impressions)));
				json_stat(&ob, "conversion", uplift(
					cv->impressions ? (double)cv->conversions / (double)cv->impressions : 0,
					rate_var(cv->conversions, cv->impressions), cr.v,
					rate_var(v->conversions, v->impressions)));
				json_stat(&ob, "aov", a0.ok && a.ok ? uplift(a0.v, mean_var(cv), a.v, mean_var(v))
								    : (struct stat3){ 0, 0, 0, 0 });
				buf_putc(&ob, '}');
			}
			buf_putc(&ob, '}');
			continue;
		}
		char ci1[64], ci2[64], ci3[64], aovs[32];
		snprintf(ci1, sizeof ci1, "[%.4f, %.4f]", ctr.lo, ctr.hi);
		snprintf(ci2, sizeof ci2, "[%.4f, %.4f]", cr.lo, cr.hi);
		if (a.ok) {
			snprintf(aovs, sizeof aovs, "%.2f", a.v);
			snprintf(ci3, sizeof ci3, "[%.2f, %.2f]", a.lo, a.hi);
		} else {
			snprintf(aovs, sizeof aovs, "-");
			snprintf(ci3, sizeof ci3, "-");
		}
		buf_printf(&ob, "%-10s %11llu %7llu %7.4f %17s %6llu %7.4f %17s %6llu %9s %21s %11.2f\n",
			   v->name, (unsigned long long)v->impressions,
			   (unsigned long long)v->clicks, ctr.v, ci1,
			   (unsigned long long)v->conversions, cr.v, ci2,
			   (unsigned long long)v->orders, aovs, ci3, v->revenue);
	}
	if (O.json) {
		buf_puts(&ob, "]}\n");
		out_flush();
		return;
	}
	if (cv && nV > 1) {
		buf_printf(&ob, "uplift against %s (95%% CI of the difference, relative to %s):\n",
			   cv->name, cv->name);
		for (size_t k = 0; k < nV; k++) {
			const struct variant *v = &V[k];
			if (v == cv)
				continue;
			struct stat3 a0 = aov(cv), a = aov(v);
			struct stat3 u[3] = {
				uplift(cv->impressions ? (double)cv->clicks / (double)cv->impressions : 0,
				       rate_var(cv->clicks, cv->impressions),
				       v->impressions ? (double)v->clicks / (double)v->impressions : 0,
				       rate_var(v->clicks, v->impressions)),
				uplift(cv->impressions ? (double)cv->conversions / (double)cv->impressions : 0,
				       rate_var(cv->conversions, cv->impressions),
				       v->impressions ? (double)v->conversions / (double)v->impressions : 0,
				       rate_var(v->conversions, v->impressions)),
				a0.ok && a.ok ? uplift(a0.v, mean_var(cv), a.v, mean_var(v))
					      : (struct stat3){ 0, 0, 0, 0 },
			};
			static const char *const what[3] = { "CTR", "conversion", "AOV" };
			buf_printf(&ob, "%-10s", v->name);
			for (int j = 0; j < 3; j++) {
				if (!u[j].ok) {
					buf_printf(&ob, "  %s -", what[j]);
					continue;
				}
				buf_printf(&ob, "  %s %+.1f%% [%+.1f%%, %+.1f%%]%s", what[j],
					   100 * u[j].v, 100 * u[j].lo, 100 * u[j].hi,
					   u[j].lo > 0 || u[j].hi < 0 ? " *" : "");
			}
			buf_putc(&ob, '\n');
		}
		buf_puts(&ob, "(* the interval excludes no change)\n");
	}
	out_flush();
}

static void
run_ab(void)
{
	struct event ev;
	struct evin *in;
	int have_clock = 0;
	int64_t clock = 0;

	tool_open(&T);
	A.no_variant = metric(&T.m, "reco_eval_ab_no_variant_total", NULL,
		"Impressions without attrs.variant, left out.");
	A.clicks_unattributed = metric(&T.m, "reco_eval_ab_clicks_unattributed_total", NULL,
		"Click-throughs that follow no impression within the window.");
	A.orders_unattributed = metric(&T.m, "reco_eval_ab_orders_unattributed_total", NULL,
		"Purchases that follow no impression within the window.");
	A.expired_early = metric(&T.m, "reco_eval_ab_expired_early_total", NULL,
		"Impressions forgotten before the end of the window because of --max-pending.");
	A.pending = metric_gauge(&T.m, "reco_eval_ab_pending", NULL,
		"Impressions awaiting attribution.");
	htab_init(&pidx, 1024);
	event_init(&ev);
	in = evin_new(&T);
	while (evin_next(in, &ev)) {
		if (!have_clock || ev.ts > clock) {
			clock = ev.ts;
			have_clock = 1;
			expire(clock);
		}
		(*T.out_n)++;
		if (!(ev.has & EV_ITEM) || !ev.item.n)
			continue;
		if (ev.type == ET_IMPRESSION) {
			const struct str *vn = event_get_attr(&ev, "variant");
			if (!vn || !vn->n) {
				(*T.out_n)--;
				tool_drop(&T, "no_variant");
				(*A.no_variant)++;
				continue;
			}
			uint32_t v = variant_of(vn);
			V[v].impressions++;
			expire(clock);
			add_impression(&ev, v);
			*A.pending = p_n;
			continue;
		}
		int click = O.click_types >> ev.type & 1;
		int buy = ev.type == ET_PURCHASE;
		if (!click && !buy)
			continue;
		struct pend *p = attributed(&ev);
		if (!p) {
			if (click)
				(*A.clicks_unattributed)++;
			if (buy)
				(*A.orders_unattributed)++;
			continue;
		}
		struct variant *v = &V[p->variant];
		if (click && !p->clicked) {
			p->clicked = 1;
			v->clicks++;
		}
		if (buy) {
			if (!p->converted) {
				p->converted = 1;
				v->conversions++;
			}
			v->orders++;
			if (ev.has & EV_PRICE) {
				double val = ev.price * (double)((ev.has & EV_QTY) && ev.qty > 0 ? ev.qty : 1);
				v->priced++;
				v->revenue += val;
				v->revenue2 += val * val;
			}
		}
	}
	uint64_t out_n = *T.out_n;
	ab_report();
	*T.out_n = out_n;
	evin_free(in);
	event_free(&ev);
	for (size_t k = 0; k < nV; k++)
		free(V[k].name);
	free(V);
	free(P);
	htab_free(&pidx);
}

int
main(int argc, char **argv)
{
	static struct option opts[64];
	size_t k = 0;

	tool_init(&T, "reco-eval", usage_head);
	T.writes = "a report";
	snprintf(usage, sizeof usage, "%s%s", usage_head, model_usage);
	T.usage = usage;
	model_params_default(&O.p);
	rank_weights_hybrid(&O.hybrid);
	for (size_t i = 0; own_opts[i].name; i++)
		opts[k++] = own_opts[i];
	for (size_t i = 0; model_options[i].name; i++)
		opts[k++] = model_options[i];
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	if (O.ab)
		run_ab();
	else if (O.tune)
		run_tune();
	else
		run_eval();
	buf_free(&ob);
	return tool_finish(&T);
}
