/* reco-train: learn a recommendation model from events, one event at a time, and write snapshots of it. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reco.h"
#include "ledger.h"
#include "lock.h"
#include "model.h"
#include "rank.h"

static const char usage_head[] =
"usage: reco-train [options] [file ...]\n"
"       reco-train --inspect snapshot [--item id] [--user id] [--top n]\n"
"Learn a recommendation model from events, one event at a time: streaming\n"
"matrix factorisation, session co-occurrence, sequences, session\n"
"neighbours, a walk on the neighbour lists, decayed popularity, trending\n"
"and the blend of them all. Write snapshots of it (reco-model(5)).\n"
"\n"
"Snapshots:\n"
"  -o, --output FILE        write the snapshot to FILE, atomically (default:\n"
"                           standard output, once, at the end)\n"
"      --snapshot-every N|DUR  also write it every N events learned, or every\n"
"                           DUR of event time (such as 10m)\n"
"      --resume FILE        continue from the snapshot FILE\n"
"      --epochs N           after the input, N-1 more passes of the matrix\n"
"                           factorisation over it, shuffled (default 1)\n"
"Source positions (kept in the snapshot: a replay is not learned twice):\n"
LEDGER_USAGE
"      --no-positions       learn every event; keep no source positions\n"
"Inspection:\n"
"      --inspect FILE       print what the snapshot FILE holds, and exit\n"
"      --item ID            with --inspect: an item's neighbours and look-alikes\n"
"      --user ID            with --inspect: a user's recent items and\n"
"                           recommendations\n"
"      --top N              with --inspect: list lengths (default 10)\n"
"\n";

enum {
	OPT_SNAPSHOT_EVERY = OPT_TOOL_FIRST,
	OPT_RESUME,
	OPT_EPOCHS,
	OPT_INSPECT,
	OPT_ITEM,
	OPT_USER,
	OPT_TOP,
	OPT_POSITION_WINDOW,
	OPT_MAX_SOURCES,
	OPT_MAX_POSITION_JUMP,
	OPT_NO_POSITIONS
};

static const struct option own_opts[] = {
	{ "snapshot-every", required_argument, NULL, OPT_SNAPSHOT_EVERY },
	{ "resume", required_argument, NULL, OPT_RESUME },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "inspect", required_argument, NULL, OPT_INSPECT },
	{ "item", required_argument, NULL, OPT_ITEM },
	{ "user", required_argument, NULL, OPT_USER },
	{ "top", required_argument, NULL, OPT_TOP },
	{ "position-window", required_argument, NULL, OPT_POSITION_WINDOW },
	{ "max-sources", required_argument, NULL, OPT_MAX_SOURCES },
	{ "max-position-jump", required_argument, NULL, OPT_MAX_POSITION_JUMP },
	{ "no-positions", no_argument, NULL, OPT_NO_POSITIONS },
	{ NULL, 0, NULL, 0 }
};

static struct {
	const char *output;
	long long every_n;        /* 0: off */
	int64_t every_ms;         /* 0: off */
	const char *resume;
	long long epochs;
	const char *inspect;
	const char *item, *user;
	long long top;
	struct model_params p;
	long long window, max_sources, max_jump;
	int no_positions;
} O = { .epochs = 1, .top = 10, .window = (long long)LEDGER_WINDOW_DEFAULT,
	.max_sources = LEDGER_MAX_STREAMS_DEFAULT,
	.max_jump = (long long)LEDGER_MAX_JUMP_DEFAULT };

static struct tool T;
static struct model *M;
static struct model_stats st0;    /* the counters at the start of the run */
static struct ledger L;           /* the source positions learned */
static struct buf lbuf;
static struct {
	uint64_t *users, *items, *users_evicted, *items_evicted, *evictions;
	uint64_t *mf, *pairs, *replaced, *snapshots, *snap_bytes, *bytes;
	uint64_t *clock, *learned;
} G;
static char usage[8192];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long
count_arg(const char *opt, const char *arg, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (*arg < '0' || *arg > '9' || *end || errno || v < min || v > max)
		tool_usage_error(&T, "%s: expected a whole number from %lld to %lld, not \"%s\"",
				 opt, min, max, arg);
	return v;
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	char err[512];
	int r;

	(void)t;
	if ((r = model_option(&O.p, c, arg, err, sizeof err)) < 0)
		tool_usage_error(&T, "%s", err);
	if (r == 0)
		return 0;
	switch (c) {
	case 'o':
		O.output = arg;
		return 0;
	case OPT_SNAPSHOT_EVERY: {
		const char *s = arg;
		while (*s >= '0' && *s <= '9')
			s++;
		if (*s == '\0' && s != arg) {
			O.every_n = count_arg("--snapshot-every", arg, 1, (long long)(~0ULL >> 2));
			O.every_ms = 0;
		} else if (duration_parse(arg, &O.every_ms) || O.every_ms < 1) {
			tool_usage_error(&T, "--snapshot-every: expected a number of events or a duration such as 10m, not \"%s\"", arg);
		} else
			O.every_n = 0;
		return 0;
	}
	case OPT_RESUME:
		O.resume = arg;
		return 0;
	case OPT_EPOCHS:
		O.epochs = count_arg("--epochs", arg, 1, 1000000);
		return 0;
	case OPT_INSPECT:
		O.inspect = arg;
		return 0;
	case OPT_ITEM:
		O.item = arg;
		return 0;
	case OPT_USER:
		O.user = arg;
		return 0;
	case OPT_TOP:
		O.top = count_arg("--top", arg, 1, 100000);
		return 0;
	case OPT_POSITION_WINDOW:
		O.window = count_arg("--position-window", arg, 8, 1LL << 32);
		if (O.window % 8)
			tool_usage_error(&T, "--position-window: must be a multiple of 8");
		return 0;
	case OPT_MAX_SOURCES:
		O.max_sources = count_arg("--max-sources", arg, 1, 1000000);
		return 0;
	case OPT_MAX_POSITION_JUMP:
		O.max_jump = count_arg("--max-position-jump", arg, 0, 1LL << 60);
		return 0;
	case OPT_NO_POSITIONS:
		O.no_positions = 1;
		return 0;
	}
	return 1;
}

/* ---- --inspect ---- */

static void
fmt_dur(int64_t ms, char *out, size_t n)
{
	if (ms == 0)
		snprintf(out, n, "0");
	else if (ms % 86400000 == 0)
		snprintf(out, n, "%lldd", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0)
		snprintf(out, n, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(out, n, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, n, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, n, "%lldms", (long long)ms);
}

static void
put_id(FILE *f, struct str s)
{
	/* Ids are printed as they are, but never with control characters. */
	for (size_t k = 0; k < s.n; k++) {
		unsigned char c = (unsigned char)s.p[k];
		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			putc(c, f);
	}
}

static int
cmp_desc(float a, uint64_t ai, float b, uint64_t bi)
{
	if (a != b)
		return a > b ? -1 : 1;
	return ai < bi ? -1 : ai > bi;
}

/* The top n items by v (a per-item score), best first, into out. */
static size_t
top_by(const struct model *m, const float *v, size_t n, uint32_t *out)
{
	size_t k = 0;

	for (uint64_t i = 0; i < m->nitems; i++) {
		if (!(v[i] > 0))
			continue;
		size_t j = k < n ? k++ : n;
		if (j == n) {
			if (cmp_desc(v[i], i, v[out[n - 1]], out[n - 1]) >= 0)
				continue;
			j = n - 1;
		}
		while (j > 0 && cmp_desc(v[i], i, v[out[j - 1]], out[j - 1]) < 0) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = (uint32_t)i;
	}
	return k;
}

static void
print_items(FILE *f, const struct model *m, const struct rank_item *r,
	    size_t n)
{
	for (size_t k = 0; k < n; k++) {
		fprintf(f, "  %3zu  ", k + 1);
		put_id(f, model_item_id(m, r[k].item));
		fprintf(f, "  %.6g  %s\n", (double)r[k].score,
			rank_src_names[r[k].reason]);
	}
}

static float
norm(const float *v, uint32_t n)
{
	return sqrtf(model_dot(v, v, n));
}

static void
inspect_item(FILE *f, const struct model *m, const char *id)
{
	int64_t i = model_item_find(m, id, strlen(id));
	const struct model_nb *l;
	char iso[64];

	if (i < 0) {
		fprintf(f, "item %s: not in the model\n", id);
		return;
	}
	ts_format_iso(m->its[i], iso);
	fprintf(f, "item ");
	put_id(f, model_item_id(m, (uint64_t)i));
	fprintf(f, ": index %lld, count %.6g, dpop %.6g, last event %s\n",
		(long long)i, (double)m->icount[i], (double)m->ipop[i], iso);
	size_t n = model_neighbours(m, (uint64_t)i, &l);
	fprintf(f, "neighbours (%zu held)\n", n);
	for (size_t k = 0; k < n && k < (size_t)O.top; k++) {
		fprintf(f, "  %3zu  ", k + 1);
		put_id(f, model_item_id(m, l[k].item));
		fprintf(f, "  %.6g\n", (double)l[k].score);
	}
	/* Its category's or community's most popular items. */
	int64_t cm = model_item_community(m, (uint64_t)i);
	if (m->icat[i]) {
		n = model_cat_items(m, m->icat[i] - 1, &l);
		if (cm >= 0)
			fprintf(f, "community %lld (of items without a category): %zu listed\n",
				(long long)cm, n);
		else
			fprintf(f, "category %016llx (the hash of its name): %zu listed\n",
				(unsigned long long)m->chash[m->icat[i] - 1], n);
		for (size_t k = 0; k < n && k < (size_t)O.top; k++) {
			fprintf(f, "  %3zu  ", k + 1);
			put_id(f, model_item_id(m, l[k].item));
			fprintf(f, "  %.6g\n", (double)l[k].score);
		}
	} else
		fprintf(f, "category none\n");
	/* Look-alikes: cosine of the factors. */
	uint32_t *best = xreallocarray(NULL, (size_t)O.top, sizeof *best);
	float *cs = xreallocarray(NULL, m->nitems ? m->nitems : 1, sizeof *cs);
	const float *q = model_item_vec(m, (uint64_t)i);
	float qn = norm(q, m->stride);
	for (uint64_t j = 0; j < m->nitems; j++) {
		const float *r = model_item_vec(m, j);
		float d = qn * norm(r, m->stride);
		cs[j] = j == (uint64_t)i || !(d > 0) ? 0 : model_dot(q, r, m->stride) / d;
	}
	size_t nb = top_by(m, cs, (size_t)O.top, best);
	fprintf(f, "look-alikes by factors (cosine)\n");
	for (size_t k = 0; k < nb; k++) {
		fprintf(f, "  %3zu  ", k + 1);
		put_id(f, model_item_id(m, best[k]));
		fprintf(f, "  %.4f\n", (double)cs[best[k]]);
	}
	free(best);
	free(cs);
}

static void
inspect_user(FILE *f, const struct model *m, const char *id)
{
	int64_t u = model_user_find(m, id, strlen(id));
	uint32_t rec[MODEL_MAX_RECENT];
	char iso[64];

	if (u < 0) {
		fprintf(f, "user %s: not in the model\n", id);
		return;
	}
	ts_format_iso(m->uts[u], iso);
	size_t nr = model_user_recent(m, (uint64_t)u, rec, MODEL_MAX_RECENT);
	fprintf(f, "user ");
	put_id(f, model_user_id(m, (uint64_t)u));
	fprintf(f, ": index %lld, last event %s, %zu recent items (%u in the current session)\n",
		(long long)u, iso, nr, m->unsess[u]);
	for (size_t k = 0; k < nr; k++) {
		fprintf(f, "  %3zu  ", k + 1);
		put_id(f, model_item_id(m, rec[k]));
		putc('\n', f);
	}
	struct ranker *r = ranker_new();
	struct rank_item *out = xreallocarray(NULL, (size_t)O.top, sizeof *out);
	struct rank_req q = { 0 };
	q.user = u;
	q.recent = rec;
	q.nrecent = nr;
	q.n = (size_t)O.top;
	q.user_hash = hash64(id, strlen(id), MODEL_ID_SEED);
	q.exclude_seen = model_exclude_seen(m);
	static const struct {
		const char *title;
		int src;
	} rows[] = {
		{ "recommendations (hybrid, the learned blend)", -1 },
		{ "by factors (mf)", RANK_MF },
		{ "by co-occurrence (cooc)", RANK_COOC },
		{ "by sequence (seq)", RANK_SEQ },
		{ "by the newest item's sequence (next)", RANK_NEXT },
		{ "by session neighbours (sknn)", RANK_SKNN },
		{ "by a walk on the neighbour lists (walk)", RANK_WALK },
		{ "by category (cat)", RANK_CAT },
	};
	for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
		if (rows[k].src < 0)
			rank_weights_model(&q.w, m);
		else
			rank_weights_only(&q.w, rows[k].src);
		size_t n = rank_top(r, m, &q, out);
		fprintf(f, "%s\n", rows[k].title);
		print_items(f, m, out, n);
	}
	free(out);
	ranker_free(r);
}

/* Print what the snapshot holds. Exits: 0, 1 for a bad snapshot, 3 for an
 * unreadable one or a failed write. */
static int
inspect(void)
{
	char err[512], iso[64], d1[32], d2[32], d3[32], d4[32], d5[32];
	struct model *m = model_load(O.inspect, MODEL_MAP, err, sizeof err);
	FILE *f = stdout;

	if (!m)
		die(errno == EINVAL ? EXIT_DATA : EXIT_IO,
		    "%s", err);
	const struct model_params *p = &m->p;
	const struct model_stats *s = &m->st;
	fprintf(f, "snapshot     %s\n", O.inspect);
	const unsigned char *hv = (const unsigned char *)m->map + 8;
	fprintf(f, "format       %s version %u, %zu bytes\n", MODEL_MAGIC,
		hv[0] | hv[1] << 8 | hv[2] << 16 | (unsigned)hv[3] << 24, m->maplen);
	if (m->have_clock) {
		ts_format_iso(m->clock, iso);
		fprintf(f, "clock        %s (%lld)\n", iso, (long long)m->clock);
	} else
		fprintf(f, "clock        none (no event learned)\n");
	fprintf(f, "events       %llu offered, %llu learned, %llu ignored (type), %llu ignored (no item)\n",
		(unsigned long long)s->events, (unsigned long long)s->learned,
		(unsigned long long)s->ignored_type,
		(unsigned long long)s->ignored_item);
	fprintf(f, "users        %llu (max %llu; %llu added, %llu evicted)\n",
		(unsigned long long)m->nusers, (unsigned long long)p->max_users,
		(unsigned long long)s->users_added,
		(unsigned long long)s->users_evicted);
	fprintf(f, "items        %llu (max %llu; %llu added, %llu evicted)\n",
		(unsigned long long)m->nitems, (unsigned long long)p->max_items,
		(unsigned long long)s->items_added,
		(unsigned long long)s->items_evicted);
	fprintf(f, "factors      %u (rows of %u floats), lr %.6g, reg %.6g, init %.6g, %u negatives\n",
		p->dim, m->stride, (double)p->lr, (double)p->reg,
		(double)p->init, p->negatives);
	uint64_t pairs = m->nitems ? m->nb.off[m->nitems] : 0;
	fprintf(f, "neighbours   %u per item, %llu held; %u recent items per user\n",
		p->neighbours, (unsigned long long)pairs, p->recent);
	fmt_dur(p->forget, d1, sizeof d1);
	fmt_dur(p->cooc_half_life, d2, sizeof d2);
	fmt_dur(p->pop_half_life, d3, sizeof d3);
	fmt_dur(p->trend_half_life, d4, sizeof d4);
	fmt_dur(p->session_gap, d5, sizeof d5);
	fprintf(f, "half-lives   factors %s, co-occurrence %s, popularity %s, trending %s; session gap %s\n",
		d1, d2, d3, d4, d5);
	fprintf(f, "weights     ");
	for (int t = 0; t < ET_NTYPES; t++)
		fprintf(f, " %s=%.6g", event_type_names[t], (double)p->type_w[t]);
	fprintf(f, "\nupdates      %llu SGD steps, %llu co-occurrence increments (%llu replacing), %llu extra epochs\n",
		(unsigned long long)s->mf_updates, (unsigned long long)s->cooc_pairs,
		(unsigned long long)s->cooc_replaced, (unsigned long long)s->epochs);
	fprintf(f, "blend       ");
	for (int k = 0; k < RANK_NSRC; k++)
		fprintf(f, " %s=%.3g/%.3g/%.3g", rank_src_names[k], (double)m->blend.w[k],
			(double)m->blend.w[RANK_NSRC + k], (double)m->blend.w[2 * RANK_NSRC + k]);
	fprintf(f, " (scaled score/rank/score); category match %.3g; brand match %.3g",
		(double)m->blend.w[RANK_SAMECAT], (double)m->blend.w[RANK_SAMEBRAND]);
	{
		struct rank_weights rw;
		int pick = rank_weights_model(&rw, m);
		fprintf(f, "\n             next item in the top 20, lately:");
		for (int k = 0; k < RANK_NSRC; k++)
			if (m->blend.hit[k] > 0)
				fprintf(f, " %s %.3f", rank_src_names[k], (double)m->blend.hit[k]);
		fprintf(f, ", the blend %.3f: ranking by %s%s", (double)m->blend.hit[RANK_NSRC],
			pick < 0 ? "the blend" : rank_src_names[pick],
			pick < 0 ? "" : " first, then the blend");
	}
	fprintf(f, "\n             learned from %llu events (%llu without the item among the candidates), %llu item scores (budget %u per event)\n",
		(unsigned long long)s->blend_events, (unsigned long long)s->blend_missed,
		(unsigned long long)s->blend_work, p->blend_budget);
	fprintf(f, "seen         %llu of %llu events came back to an item the user had seen; %s (--exclude-seen %s); %llu pairs kept (max %llu, %llu pushed out)\n",
		(unsigned long long)s->repeat_events, (unsigned long long)s->repeat_asked,
		model_exclude_seen(m) ? "seen items left out" : "seen items recommended",
		model_seen_names[p->exclude_seen], (unsigned long long)m->seen_n,
		(unsigned long long)p->seen_max, (unsigned long long)s->seen_evicted);
	if (m->sknn) {
		struct sknn_stats ss;
		const struct sknn_params *sp = sknn_get_params(m->sknn);
		sknn_stats(m->sknn, &ss);
		fprintf(f, "sessions     %llu kept (max %u, %llu pushed out), %u items each, %u indexed per item, k %u; %llu started\n",
			(unsigned long long)ss.live, sp->sessions,
			(unsigned long long)ss.sessions_evicted, sp->items, sp->per_item,
			sp->k, (unsigned long long)ss.sessions);
	} else
		fprintf(f, "sessions     none (--sknn-sessions 0)\n");
	if (p->walk_steps)
		fprintf(f, "walk         %u steps, %u items carried per step, %d links followed from each\n",
			p->walk_steps, p->walk_width, RANK_WALK_LINKS);
	else
		fprintf(f, "walk         none (--walk-steps 0)\n");
	fprintf(f, "categories   %llu, %u items listed each (attribute %s; brand %s)\n",
		(unsigned long long)m->ncats, p->cat_items,
		p->cat_attr[0] ? p->cat_attr : "category, category_code or category_id",
		*model_brand_attrs(p) ? model_brand_attrs(p) : "none");
	fprintf(f, "communities  %llu of items without a category (found %llu times, next after %llu events learned)\n",
		(unsigned long long)model_communities(m),
		(unsigned long long)s->comm_passes, (unsigned long long)s->comm_next);
	fprintf(f, "sections\n");
	for (int k = 0;; k++) {
		const char *name;
		uint64_t off, size;
		uint32_t crc;
		if (model_section(m, k, &name, &off, &size, &crc))
			break;
		fprintf(f, "  %-13s offset %10llu  size %10llu  crc32 %08x\n", name,
			(unsigned long long)off, (unsigned long long)size, crc);
	}
	size_t ln;
	const char *lp = model_ledger(m, &ln);
	if (lp) {
		struct ledger l;
		ledger_init(&l, 0, 0, 0, 0);
		if (ledger_decode(&lp, lp + ln, &l, 1) == 0) {
			fprintf(f, "positions    %zu sources (highest applied)\n", l.nstreams);
			for (size_t k = 0; k < l.nstreams; k++) {
				fprintf(f, "  ");
				put_id(f, (struct str){ l.streams[k].name, l.streams[k].n });
				fprintf(f, "  %lld\n", (long long)l.streams[k].pos);
			}
		}
		ledger_free(&l);
	}
	uint32_t *best = xreallocarray(NULL, (size_t)O.top, sizeof *best);
	static const struct {
		const char *title;
		int which;
	} lists[] = { { "top items by decayed popularity (dpop)", 0 },
		      { "top items by count (pop)", 1 } };
	for (size_t k = 0; k < 2; k++) {
		const float *v = lists[k].which ? m->icount : m->ipop;
		size_t n = top_by(m, v, (size_t)O.top, best);
		fprintf(f, "%s\n", lists[k].title);
		for (size_t j = 0; j < n; j++) {
			fprintf(f, "  %3zu  ", j + 1);
			put_id(f, model_item_id(m, best[j]));
			fprintf(f, "  %.6g\n", (double)v[best[j]]);
		}
	}
	free(best);
	struct ranker *r = ranker_new();
	struct rank_item *out = xreallocarray(NULL, (size_t)O.top, sizeof *out);
	struct rank_req q = { 0 };
	q.user = -1;
	q.n = (size_t)O.top;
	rank_weights_only(&q.w, RANK_TREND);
	size_t n = rank_top(r, m, &q, out);
	fprintf(f, "trending (recent count above the long-run rate, in standard deviations)\n");
	print_items(f, m, out, n);
	free(out);
	ranker_free(r);
	if (O.item)
		inspect_item(f, m, O.item);
	if (O.user)
		inspect_user(f, m, O.user);
	model_free(m);
	if (fflush(f) || ferror(f))
		die(EXIT_IO, "standard output: write error:");
	return EXIT_OK;
}

/* ---- training ---- */

static void
init_metrics(void)
{
	struct metrics *m = &T.m;

	G.learned = metric(m, "reco_train_events_learned_total", NULL,
		"Events learned by the model (counted as records out).");
	G.users = metric_gauge(m, "reco_train_users", NULL, "Users in the model.");
	G.items = metric_gauge(m, "reco_train_items", NULL, "Items in the model.");
	G.users_evicted = metric(m, "reco_train_users_evicted_total", NULL,
		"Least recently active users dropped because of --max-users.");
	G.items_evicted = metric(m, "reco_train_items_evicted_total", NULL,
		"Least recently active items dropped because of --max-items.");
	G.evictions = metric(m, "reco_train_evictions_total", NULL,
		"Eviction rounds (each drops 1/16 of a full table).");
	G.mf = metric(m, "reco_train_mf_updates_total", NULL,
		"Matrix-factorisation SGD steps, positive and negative.");
	G.pairs = metric(m, "reco_train_cooc_updates_total", NULL,
		"Co-occurrence increments (each updates two neighbour lists).");
	G.replaced = metric(m, "reco_train_cooc_replaced_total", NULL,
		"Neighbours pushed out of a full list (--neighbours).");
	G.snapshots = metric(m, "reco_train_snapshots_total", NULL,
		"Snapshots written.");
	G.snap_bytes = metric_gauge(m, "reco_train_snapshot_bytes", NULL,
		"Size of the last snapshot written.");
	G.bytes = metric_gauge(m, "reco_train_model_bytes", NULL,
		"Bytes the model holds in memory.");
	G.clock = metric_gauge_ms(m, "reco_train_clock_seconds", NULL,
		"Event time of the newest event learned, in seconds since the epoch.");
}

static void
gauges(void)
{
	const struct model_stats *s = &M->st;

	*G.learned = s->learned - st0.learned;
	*G.users = M->nusers;
	*G.items = M->nitems;
	*G.users_evicted = s->users_evicted - st0.users_evicted;
	*G.items_evicted = s->items_evicted - st0.items_evicted;
	*G.evictions = s->evictions - st0.evictions;
	*G.mf = s->mf_updates - st0.mf_updates;
	*G.pairs = s->cooc_pairs - st0.cooc_pairs;
	*G.replaced = s->cooc_replaced - st0.cooc_replaced;
	*G.bytes = model_bytes(M);
	*G.clock = M->have_clock && M->clock > 0 ? (uint64_t)M->clock : 0;
}

/* Put the source positions into the model, for its snapshot. */
static void
keep_ledger(void)
{
	lbuf.n = 0;
	if (L.nstreams)
		ledger_encode(&lbuf, &L);
	model_set_ledger(M, lbuf.p, lbuf.n);
}

/* Write the snapshot to -o. Dies (status 3) if it cannot. */
static void
snapshot(void)
{
	char err[512];

	gauges();
	keep_ledger();
	if (model_save(M, O.output, err, sizeof err))
		die(EXIT_IO, "%s", err);
	(*G.snapshots)++;
	*G.snap_bytes = 0;
	FILE *f = fopen(O.output, "rb");
	if (f) {
		if (fseek(f, 0, SEEK_END) == 0) {
			long sz = ftell(f);
			if (sz > 0)
				*G.snap_bytes = (uint64_t)sz;
		}
		fclose(f);
	}
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Whether to learn ev, by its source position: a replay of what the model
 * has learned is dropped, a poison position rejected. sp is what
 * ledger_advance takes once it is learned. */
static int
learn_position(struct evin *in, const struct event *ev, struct ledger_pos *sp)
{
	int r = ledger_check(&L, ev->source, sp);
	struct pos at;
	const char *raw;
	size_t rawn;
	char msg[512];

	if (r == LEDGER_NEW)
		return 1;
	if (r == LEDGER_FULL) {
		/* Keep what was learned, then stop. */
		if (O.output)
			snapshot();
		die(EXIT_IO, "more than --max-sources %lld sources", O.max_sources);
	}
	if (r != LEDGER_JUMP) {
		tool_drop(&T, ledger_reason(r));
		return 0;
	}
	evin_pos(in, &at);
	evin_raw(in, ev, &raw, &rawn);
	snprintf(msg, sizeof msg, "source position \"%.*s\" is more than --max-position-jump %lld beyond its source's highest",
		 (int)(ev->source.n > 300 ? 300 : ev->source.n), ev->source.p,
		 O.max_jump);
	tool_reject(&T, &at, RJ_POSITION_JUMP, msg, raw, rawn);
	return 0;
}

int
main(int argc, char **argv)
{
	static struct option opts[64];
	struct event ev;
	struct evin *in;
	char err[512];
	size_t k = 0;

	tool_init(&T, "reco-train", usage_head);
	T.writes = "model snapshots";
	snprintf(usage, sizeof usage, "%s%s", usage_head, model_usage);
	T.usage = usage;
	model_params_default(&O.p);
	for (size_t i = 0; own_opts[i].name; i++)
		opts[k++] = own_opts[i];
	for (size_t i = 0; model_options[i].name; i++)
		opts[k++] = model_options[i];
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	if (O.inspect) {
		if (T.nfiles)
			tool_usage_error(&T, "--inspect reads a snapshot, not events");
		return inspect();
	}
	if (O.item || O.user)
		tool_usage_error(&T, "--item and --user go with --inspect");
	if ((O.every_n || O.every_ms) && !O.output)
		tool_usage_error(&T, "--snapshot-every needs -o FILE");
	if (!O.output && isatty(1))
		tool_usage_error(&T, "a snapshot is binary: not writing it to a terminal (use -o FILE)");
	/* One writer per snapshot file. */
	struct lock *lk = NULL;
	if (O.output && !(lk = lock_take(O.output, err, sizeof err)))
		die(EXIT_IO, "%s", err);
	ledger_init(&L, (uint64_t)O.window, (uint64_t)O.max_sources,
		    (uint64_t)O.max_jump, 1);
	if (O.resume) {
		M = model_load(O.resume, 0, err, sizeof err);
		if (!M)
			die(errno == EINVAL ? EXIT_DATA : EXIT_IO,
			    "%s", err);
		if (model_retune(M, &O.p, err, sizeof err))
			tool_usage_error(&T, "%s: %s", O.resume, err);
		size_t ln;
		const char *lp = model_ledger(M, &ln);
		if (lp && ledger_decode(&lp, lp + ln, &L, 1))
			die(EXIT_DATA, "%s: corrupt snapshot: bad ledger", O.resume);
	} else
		M = model_new(&O.p);
	if (O.output) {
		/* Find out now, not after the whole input, that the snapshot
		 * cannot be written. */
		struct statew *w = state_begin(O.output, err, sizeof err);
		if (!w)
			die(EXIT_IO, "%s", err);
		state_abort(w);
	}
	st0 = M->st;
	if (O.epochs > 1)
		model_log_start(M);
	tool_open(&T);
	init_metrics();
	event_init(&ev);
	in = evin_new(&T);
	int64_t bucket = O.every_ms && M->have_clock ? floor_div(M->clock, O.every_ms) : 0;
	int have_bucket = O.every_ms && M->have_clock;
	double t_learn = now();
	while (evin_next(in, &ev)) {
		struct ledger_pos sp = { LEDGER_NIL, 0 };
		if ((ev.has & EV_SOURCE) && !O.no_positions &&
		    !learn_position(in, &ev, &sp))
			continue;
		int learned = model_learn(M, &ev);
		ledger_advance(&L, &sp);
		if (!learned) {
			tool_drop(&T, (ev.has & EV_ITEM) && ev.item.n ? "type" : "no_item");
			continue;
		}
		(*T.out_n)++;
		if ((M->st.learned & 1023) == 0)
			gauges();
		if (O.every_n && M->st.learned % (uint64_t)O.every_n == 0)
			snapshot();
		if (O.every_ms) {
			int64_t b = floor_div(M->clock, O.every_ms);
			if (!have_bucket) {
				bucket = b;
				have_bucket = 1;
			} else if (b > bucket) {
				bucket = b;
				snapshot();
			}
		}
	}
	t_learn = now() - t_learn;
	uint64_t learned = M->st.learned - st0.learned;
	if (T.stats)
		fprintf(stderr, "reco-train: pass 1: %llu events learned in %.3f s (%.0f per second, reading included)\n",
			(unsigned long long)learned, t_learn,
			t_learn > 0 ? (double)learned / t_learn : 0.0);
	for (long long e = 1; e < O.epochs && !reco_stop; e++) {
		uint64_t steps = M->st.mf_updates;
		double t = now();
		model_epoch(M);
		t = now() - t;
		steps = M->st.mf_updates - steps;
		if (T.stats)
			fprintf(stderr, "reco-train: epoch %lld: %zu events, %llu SGD steps in %.3f s (%.0f events, %.0f steps per second)\n",
				e + 1, M->nlog, (unsigned long long)steps, t,
				t > 0 ? (double)M->nlog / t : 0.0,
				t > 0 ? (double)steps / t : 0.0);
	}
	gauges();
	double t_save = now();
	keep_ledger();
	if (M->st.learned == 0) {
		/* An empty model would replace a good one downstream. */
		if (!reco_stop) {
			warn("no event learned from the input: no snapshot written");
			tool_fail(&T, EXIT_DATA);
		}
	} else if (O.output)
		snapshot();
	else if (model_write(M, T.out, err, sizeof err))
		tool_output_failed(&T, T.out); /* quiet on a broken pipe */
	t_save = now() - t_save;
	if (T.stats) {
		char iso[64] = "none";
		if (M->have_clock)
			ts_format_iso(M->clock, iso);
		fprintf(stderr, "reco-train: model: %llu users, %llu items, clock %s, %.1f MB in memory; snapshot written in %.3f s\n",
			(unsigned long long)M->nusers, (unsigned long long)M->nitems,
			iso, (double)model_bytes(M) / 1048576.0, t_save);
	}
	evin_free(in);
	event_free(&ev);
	model_free(M);
	ledger_free(&L);
	buf_free(&lbuf);
	lock_free(lk);
	return tool_finish(&T);
}
