/* model.c: the recommendation model: per-event learning, bounded tables with eviction, and snapshot files (reco-model(5)). */
#define _GNU_SOURCE /* mremap */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "reco.h"
#include "model.h"
#include "rank.h"

/* ---- options ---- */

const struct option model_options[] = {
	{ "dim", required_argument, NULL, MOPT_DIM },
	{ "factors", required_argument, NULL, MOPT_DIM },
	{ "neighbours", required_argument, NULL, MOPT_NEIGHBOURS },
	{ "neighbors", required_argument, NULL, MOPT_NEIGHBOURS },
	{ "recent", required_argument, NULL, MOPT_RECENT },
	{ "negatives", required_argument, NULL, MOPT_NEGATIVES },
	{ "lr", required_argument, NULL, MOPT_LR },
	{ "reg", required_argument, NULL, MOPT_REG },
	{ "init", required_argument, NULL, MOPT_INIT },
	{ "type-weights", required_argument, NULL, MOPT_TYPE_W },
	{ "forget", required_argument, NULL, MOPT_FORGET },
	{ "cooc-half-life", required_argument, NULL, MOPT_COOC_HL },
	{ "pop-half-life", required_argument, NULL, MOPT_POP_HL },
	{ "trend-half-life", required_argument, NULL, MOPT_TREND_HL },
	{ "session-gap", required_argument, NULL, MOPT_SESSION_GAP },
	{ "max-users", required_argument, NULL, MOPT_MAX_USERS },
	{ "max-items", required_argument, NULL, MOPT_MAX_ITEMS },
	{ "seed", required_argument, NULL, MOPT_SEED },
	{ "cooc-memory", required_argument, NULL, MOPT_COOC_MEMORY },
	{ "seen-max", required_argument, NULL, MOPT_SEEN_MAX },
	{ "category-items", required_argument, NULL, MOPT_CAT_ITEMS },
	{ "category-attr", required_argument, NULL, MOPT_CAT_ATTR },
	{ "brand-attr", required_argument, NULL, MOPT_BRAND_ATTR },
	{ "blend-budget", required_argument, NULL, MOPT_BLEND_BUDGET },
	{ "blend-lr", required_argument, NULL, MOPT_BLEND_LR },
	{ "exclude-seen", required_argument, NULL, MOPT_EXCLUDE_SEEN },
	{ "sknn-sessions", required_argument, NULL, MOPT_SKNN_SESSIONS },
	{ "sknn-sample", required_argument, NULL, MOPT_SKNN_SAMPLE },
	{ "sknn-k", required_argument, NULL, MOPT_SKNN_K },
	{ "sknn-items", required_argument, NULL, MOPT_SKNN_ITEMS },
	{ "walk-steps", required_argument, NULL, MOPT_WALK_STEPS },
	{ "walk-width", required_argument, NULL, MOPT_WALK_WIDTH },
	{ "params", required_argument, NULL, MOPT_PARAMS },
	{ NULL, 0, NULL, 0 }
};

const char model_usage[] =
"Model:\n"
"      --dim N              factors of the matrix factorisation (default 32)\n"
"      --lr X               SGD learning rate (default 0.2)\n"
"      --reg X              L2 penalty (default 0.01)\n"
"      --negatives N        negative samples per event (default 4)\n"
"      --init X             scale of new factors (default 0.1)\n"
"      --type-weights T=W,...  weight of each event type (default view=1,\n"
"                           click=1,add_to_cart=2,purchase=3, others 0)\n"
"      --forget DUR         half-life of the factors (default 7d; 0: never)\n"
"      --neighbours N       co-occurrence neighbours per item, at most\n"
"                           (default 100)\n"
"      --cooc-memory SIZE   bytes of all neighbour lists, at most (default 1G)\n"
"      --recent N           recent items per user (default 8)\n"
"      --session-gap DUR    inactivity that ends a session without an id\n"
"                           (default 30m)\n"
"      --cooc-half-life DUR half-life of co-occurrence counts (default 7d)\n"
"      --pop-half-life DUR  half-life of popularity (default 1d)\n"
"      --trend-half-life DUR  half-life of the trending window (default 1h)\n"
"      --max-users N        users kept at most (default 1000000)\n"
"      --max-items N        items kept at most (default 1000000)\n"
"      --seed N             seed of the random choices (default 1)\n"
"      --category-attr A,...  attrs naming an item's category, the first an\n"
"                           event has (default category,category_code,\n"
"                           category_id)\n"
"      --brand-attr A,...   attrs naming its brand, for the blend's brand\n"
"                           match (default brand; '': none)\n"
"      --category-items N   most popular items kept per category (default 50)\n"
"      --seen-max N         (user, item) pairs remembered, at most\n"
"                           (default 16777216)\n"
"      --exclude-seen P     auto (default), none, purchased or all\n"
"      --blend-budget N     item scores the blend's learning may cost per\n"
"                           event (default 32; 0: keep the starting weights)\n"
"      --blend-lr X         step of the blend's updates (default 0.05)\n"
"      --sknn-sessions N    past sessions kept for session neighbours\n"
"                           (default 200000; 0: none)\n"
"      --sknn-sample N      most recent sessions indexed per item (default 100)\n"
"      --sknn-k N           neighbour sessions per request (default 100)\n"
"      --sknn-items N       items kept per session (default 16)\n"
"      --walk-steps N       steps of the random walk on the neighbour lists\n"
"                           (default 3; 0: none)\n"
"      --walk-width N       items the walk carries from step to step, at\n"
"                           most (default 256)\n"
"      --params FILE        the model options in FILE (as reco-eval --tune\n"
"                           writes them), in place on the command line\n";

/* ---- the attributes of an item's category and brand ---- */

/* The brand list of a packed cat_attr (model.h), after the category
 * list's NUL. */
const char *
model_brand_attrs(const struct model_params *p)
{
	return p->cat_attr + strlen(p->cat_attr) + 1;
}

/* Pack the category list cat and the brand list brand into out (64
 * bytes, the rest zero); -1 if they do not fit, out unchanged. Both are
 * read before out is written: they may point into it. */
static int
attrs_pack(char *out, const char *cat, const char *brand)
{
	char t[sizeof ((struct model_params *)0)->cat_attr];
	size_t nc = strlen(cat), nb = strlen(brand);

	if (nc + nb + 2 > sizeof t)
		return -1;
	memset(t, 0, sizeof t);
	memcpy(t, cat, nc);
	memcpy(t + nc + 1, brand, nb);
	memcpy(out, t, sizeof t);
	return 0;
}

/* Whether list is names separated by commas, none of them empty. */
static int
attrs_ok(const char *list)
{
	size_t n = strlen(list);

	return n > 0 && list[0] != ',' && list[n - 1] != ',' && !strstr(list, ",,");
}

/* The value of the first attribute of list (names separated by commas)
 * that ev has and that is not empty, or NULL. */
static const struct str *
attrs_first(const struct event *ev, const char *list)
{
	while (*list) {
		const char *e = strchr(list, ',');
		size_t n = e ? (size_t)(e - list) : strlen(list);
		const struct str *v = event_get_attr_n(ev, list, n);
		if (v && v->n)
			return v;
		list += n + (e != NULL);
	}
	return NULL;
}

/* Fill p with the defaults. */
void
model_params_default(struct model_params *p)
{
	memset(p, 0, sizeof *p);
	attrs_pack(p->cat_attr, "", "brand");
	p->dim = 32;
	p->neighbours = 100;
	p->recent = 8;
	p->negatives = 4;
	p->lr = 0.2f;
	p->reg = 0.01f;
	p->init = 0.1f;
	p->type_w[ET_VIEW] = 1;
	p->type_w[ET_CLICK] = 1;
	p->type_w[ET_ADD_TO_CART] = 2;
	p->type_w[ET_PURCHASE] = 3;
	p->forget = 7 * 86400000LL;
	p->cooc_half_life = 7 * 86400000LL;
	p->pop_half_life = 86400000LL;
	p->trend_half_life = 3600000LL;
	p->session_gap = 1800000LL;
	p->max_users = 1000000;
	p->max_items = 1000000;
	p->seed = 1;
	p->cooc_memory = 1ULL << 30;
	p->seen_max = 1ULL << 24;
	p->cat_items = 50;
	p->blend_budget = 32;
	p->blend_lr = 0.05f;
	p->walk_steps = 3;
	p->walk_width = 256;
	p->exclude_seen = MODEL_SEEN_AUTO;
	sknn_params_default(&p->sk);
}

/* The names of MODEL_SEEN_*. */
const char *const model_seen_names[] = { "auto", "none", "purchased", "all" };

static int
num_u64(const char *arg, uint64_t min, uint64_t max, uint64_t *v)
{
	char *end;
	unsigned long long x;

	if (*arg < '0' || *arg > '9')
		return -1;
	errno = 0;
	x = strtoull(arg, &end, 10);
	if (*end || errno || x < min || x > max)
		return -1;
	*v = x;
	return 0;
}

static int
num_float(const char *arg, double min, double max, float *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(arg, &end);
	if (end == arg || *end || errno || !isfinite(x) || x < min || x > max)
		return -1;
	*v = (float)x;
	return 0;
}

static int
type_weights(struct model_params *p, const char *arg)
{
	const char *s = arg;

	for (;;) {
		const char *eq = strchr(s, '='), *comma = strchr(s, ',');
		char num[64];
		float w;
		int t;

		if (!eq || (comma && comma < eq))
			return -1;
		if ((t = event_type_parse(s, (size_t)(eq - s))) < 0)
			return -1;
		size_t n = comma ? (size_t)(comma - eq - 1) : strlen(eq + 1);
		if (n == 0 || n >= sizeof num)
			return -1;
		memcpy(num, eq + 1, n);
		num[n] = '\0';
		if (num_float(num, 0, 1000, &w))
			return -1;
		p->type_w[t] = w;
		if (!comma)
			return 0;
		s = comma + 1;
	}
}

static int
half_life(const char *arg, int64_t min, int64_t *v)
{
	if (duration_parse(arg, v) || *v > 3650LL * 86400000)
		return -1;
	return *v < min ? -1 : 0;
}

/*
 * --params FILE: the model options written in FILE as on a command line
 * (--name value, whitespace between, # to the end of a line a comment),
 * taken in order. Return 0, or -1 with the reason in err.
 */
static int
params_file(struct model_params *p, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char tok[2][512], msg[512];
	int n = 0, c, line = 1, r = 0;
	size_t len = 0;

	if (!f) {
		snprintf(err, errlen, "--params: %s: %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		c = getc(f);
		if (c == '#')
			while ((c = getc(f)) != EOF && c != '\n')
				;
		if (c == EOF || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
			if (len) {
				tok[n][len] = '\0';
				len = 0;
				if (n == 0 && strncmp(tok[0], "--", 2) != 0) {
					snprintf(err, errlen, "--params: %s:%d: expected an option such as --neighbours, not \"%s\"",
						 path, line, tok[0]);
					r = -1;
					break;
				}
				if (++n == 2) {
					const struct option *o = model_options;
					while (o->name && strcmp(o->name, tok[0] + 2) != 0)
						o++;
					if (!o->name || o->val == MOPT_PARAMS) {
						snprintf(err, errlen, "--params: %s:%d: %s is not a model option",
							 path, line, tok[0]);
						r = -1;
						break;
					}
					if (model_option(p, o->val, tok[1], msg, sizeof msg) != 0) {
						snprintf(err, errlen, "--params: %s:%d: %s", path, line, msg);
						r = -1;
						break;
					}
					n = 0;
				}
			}
			if (c == '\n')
				line++;
			if (c == EOF)
				break;
			continue;
		}
		if (len + 1 >= sizeof tok[0]) {
			snprintf(err, errlen, "--params: %s:%d: a word of more than %zu bytes",
				 path, line, sizeof tok[0] - 1);
			r = -1;
			break;
		}
		tok[n][len++] = (char)c;
	}
	if (r == 0 && n == 1) {
		snprintf(err, errlen, "--params: %s: %s has no value", path, tok[0]);
		r = -1;
	}
	if (r == 0 && ferror(f)) {
		snprintf(err, errlen, "--params: %s: %s", path, strerror(errno));
		r = -1;
	}
	fclose(f);
	return r;
}

/*
 * Take model option c (MOPT_*) with its argument. Return 0, 1 if c is
 * not a model option, or -1 with a message in err.
 */
int
model_option(struct model_params *p, int c, const char *arg, char *err,
	     size_t errlen)
{
	uint64_t u;

#define NB_BYTES (sizeof(struct model_nb) + 1) /* a list entry and its tag (nb_tag) */
#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
	switch (c) {
	case MOPT_DIM:
		if (num_u64(arg, 1, MODEL_MAX_DIM, &u))
			BAD("--dim: expected a number from 1 to %d, not \"%s\"",
			    MODEL_MAX_DIM, arg);
		p->dim = (uint32_t)u;
		p->given |= MP_DIM;
		return 0;
	case MOPT_NEIGHBOURS:
		if (num_u64(arg, 0, MODEL_MAX_NEIGHBOURS, &u))
			BAD("--neighbours: expected a number from 0 to %d, not \"%s\"",
			    MODEL_MAX_NEIGHBOURS, arg);
		p->neighbours = (uint32_t)u;
		p->given |= MP_NEIGHBOURS;
		return 0;
	case MOPT_RECENT:
		if (num_u64(arg, 1, MODEL_MAX_RECENT, &u))
			BAD("--recent: expected a number from 1 to %d, not \"%s\"",
			    MODEL_MAX_RECENT, arg);
		p->recent = (uint32_t)u;
		p->given |= MP_RECENT;
		return 0;
	case MOPT_NEGATIVES:
		if (num_u64(arg, 0, 1000, &u))
			BAD("--negatives: expected a number from 0 to 1000, not \"%s\"", arg);
		p->negatives = (uint32_t)u;
		p->given |= MP_NEGATIVES;
		return 0;
	case MOPT_LR:
		if (num_float(arg, 0, 10, &p->lr))
			BAD("--lr: expected a number from 0 to 10, not \"%s\"", arg);
		p->given |= MP_LR;
		return 0;
	case MOPT_REG:
		if (num_float(arg, 0, 10, &p->reg))
			BAD("--reg: expected a number from 0 to 10, not \"%s\"", arg);
		p->given |= MP_REG;
		return 0;
	case MOPT_INIT:
		if (num_float(arg, 0, 10, &p->init))
			BAD("--init: expected a number from 0 to 10, not \"%s\"", arg);
		p->given |= MP_INIT;
		return 0;
	case MOPT_TYPE_W:
		if (type_weights(p, arg))
			BAD("--type-weights: expected TYPE=WEIGHT,... such as view=1,purchase=3 (types view, click, search, add_to_cart, remove_from_cart, purchase, impression; weights 0 to 1000), not \"%s\"",
			    arg);
		p->given |= MP_TYPE_W;
		return 0;
	case MOPT_FORGET:
		if (half_life(arg, 0, &p->forget) || (p->forget > 0 && p->forget < 16))
			BAD("--forget: expected 0 or a duration such as 7d (at least 16ms), not \"%s\"", arg);
		p->given |= MP_FORGET;
		return 0;
	case MOPT_COOC_HL:
		if (half_life(arg, 1000, &p->cooc_half_life))
			BAD("--cooc-half-life: expected a duration of at least 1s, such as 7d, not \"%s\"", arg);
		p->given |= MP_COOC_HL;
		return 0;
	case MOPT_POP_HL:
		if (half_life(arg, 1000, &p->pop_half_life))
			BAD("--pop-half-life: expected a duration of at least 1s, such as 1d, not \"%s\"", arg);
		p->given |= MP_POP_HL;
		return 0;
	case MOPT_TREND_HL:
		if (half_life(arg, 1000, &p->trend_half_life))
			BAD("--trend-half-life: expected a duration of at least 1s, such as 1h, not \"%s\"", arg);
		p->given |= MP_TREND_HL;
		return 0;
	case MOPT_SESSION_GAP:
		if (half_life(arg, 0, &p->session_gap))
			BAD("--session-gap: expected a duration such as 30m, not \"%s\"", arg);
		p->given |= MP_SESSION_GAP;
		return 0;
	case MOPT_MAX_USERS:
		if (num_u64(arg, 1, UINT32_MAX - 1, &u))
			BAD("--max-users: expected a number from 1 to %u, not \"%s\"",
			    UINT32_MAX - 1, arg);
		p->max_users = u;
		p->given |= MP_MAX_USERS;
		return 0;
	case MOPT_MAX_ITEMS:
		if (num_u64(arg, 1, UINT32_MAX - 1, &u))
			BAD("--max-items: expected a number from 1 to %u, not \"%s\"",
			    UINT32_MAX - 1, arg);
		p->max_items = u;
		p->given |= MP_MAX_ITEMS;
		return 0;
	case MOPT_SEED:
		if (num_u64(arg, 0, UINT64_MAX, &u))
			BAD("--seed: expected a whole number, not \"%s\"", arg);
		p->seed = u;
		p->given |= MP_SEED;
		return 0;
	case MOPT_COOC_MEMORY:
		if (size_parse(arg, &u) || u < 1024)
			BAD("--cooc-memory: expected a size of at least 1K, such as 512M, not \"%s\"", arg);
		p->cooc_memory = u;
		p->given |= MP_COOC_MEMORY;
		return 0;
	case MOPT_SEEN_MAX:
		if (num_u64(arg, 0, 1ULL << 34, &u))
			BAD("--seen-max: expected a number from 0 to %llu, not \"%s\"",
			    1ULL << 34, arg);
		p->seen_max = u;
		p->given |= MP_SEEN_MAX;
		return 0;
	case MOPT_CAT_ITEMS:
		if (num_u64(arg, 0, MODEL_MAX_CAT_ITEMS, &u))
			BAD("--category-items: expected a number from 0 to %d, not \"%s\"",
			    MODEL_MAX_CAT_ITEMS, arg);
		p->cat_items = (uint32_t)u;
		p->given |= MP_CAT_ITEMS;
		return 0;
	case MOPT_CAT_ATTR:
		if (!attrs_ok(arg) ||
		    attrs_pack(p->cat_attr, arg, model_brand_attrs(p)))
			BAD("--category-attr: expected attribute names separated by commas, of %zu bytes at most with --brand-attr's, not \"%s\"",
			    sizeof p->cat_attr - 2, arg);
		p->given |= MP_CAT_ATTR;
		return 0;
	case MOPT_BRAND_ATTR:
		if ((*arg && !attrs_ok(arg)) || attrs_pack(p->cat_attr, p->cat_attr, arg))
			BAD("--brand-attr: expected attribute names separated by commas (or nothing), of %zu bytes at most with --category-attr's, not \"%s\"",
			    sizeof p->cat_attr - 2, arg);
		p->given |= MP_BRAND_ATTR;
		return 0;
	case MOPT_BLEND_BUDGET:
		if (num_u64(arg, 0, 1000000, &u))
			BAD("--blend-budget: expected a number from 0 to 1000000, not \"%s\"", arg);
		p->blend_budget = (uint32_t)u;
		p->given |= MP_BLEND_BUDGET;
		return 0;
	case MOPT_BLEND_LR:
		if (num_float(arg, 0, 10, &p->blend_lr))
			BAD("--blend-lr: expected a number from 0 to 10, not \"%s\"", arg);
		p->given |= MP_BLEND_LR;
		return 0;
	case MOPT_WALK_STEPS:
		if (num_u64(arg, 0, MODEL_MAX_WALK_STEPS, &u))
			BAD("--walk-steps: expected a number from 0 to %d, not \"%s\"",
			    MODEL_MAX_WALK_STEPS, arg);
		p->walk_steps = (uint32_t)u;
		p->given |= MP_WALK_STEPS;
		return 0;
	case MOPT_WALK_WIDTH:
		if (num_u64(arg, 1, MODEL_MAX_WALK_WIDTH, &u))
			BAD("--walk-width: expected a number from 1 to %d, not \"%s\"",
			    MODEL_MAX_WALK_WIDTH, arg);
		p->walk_width = (uint32_t)u;
		p->given |= MP_WALK_WIDTH;
		return 0;
	case MOPT_EXCLUDE_SEEN:
		for (int k = 0; k < 4; k++)
			if (strcmp(arg, model_seen_names[k]) == 0) {
				p->exclude_seen = k;
				p->given |= MP_EXCLUDE_SEEN;
				return 0;
			}
		BAD("--exclude-seen: expected auto, none, purchased or all, not \"%s\"", arg);
	case MOPT_SKNN_SESSIONS:
		if (num_u64(arg, 0, SKNN_MAX_SESSIONS, &u))
			BAD("--sknn-sessions: expected a number from 0 to %u, not \"%s\"",
			    SKNN_MAX_SESSIONS, arg);
		p->sk.sessions = (uint32_t)u;
		p->given |= MP_SKNN;
		return 0;
	case MOPT_SKNN_SAMPLE:
		if (num_u64(arg, 1, SKNN_MAX_PER_ITEM, &u))
			BAD("--sknn-sample: expected a number from 1 to %u, not \"%s\"",
			    SKNN_MAX_PER_ITEM, arg);
		p->sk.per_item = (uint32_t)u;
		p->given |= MP_SKNN;
		return 0;
	case MOPT_SKNN_K:
		if (num_u64(arg, 1, SKNN_MAX_K, &u))
			BAD("--sknn-k: expected a number from 1 to %u, not \"%s\"",
			    SKNN_MAX_K, arg);
		p->sk.k = (uint32_t)u;
		p->given |= MP_SKNN;
		return 0;
	case MOPT_PARAMS:
		return params_file(p, arg, err, errlen);
	case MOPT_SKNN_ITEMS:
		if (num_u64(arg, 1, SKNN_MAX_ITEMS, &u))
			BAD("--sknn-items: expected a number from 1 to %u, not \"%s\"",
			    SKNN_MAX_ITEMS, arg);
		p->sk.items = (uint32_t)u;
		p->given |= MP_SKNN;
		return 0;
	}
#undef BAD
	return 1;
}

/*
 * Resuming: snap holds a snapshot's parameters, cmd the command line's.
 * The shape (--dim, --neighbours, --recent) must agree where cmd sets it;
 * every other parameter that cmd sets replaces the snapshot's (the seed
 * only seeds a new model: a resumed one continues its own sequence).
 * Return 0, or -1 with the conflict in err.
 */
int
model_params_merge(struct model_params *snap, const struct model_params *cmd,
		   char *err, size_t errlen)
{
	if ((cmd->given & MP_DIM) && cmd->dim != snap->dim) {
		snprintf(err, errlen, "--dim %u: the snapshot has %u factors",
			 cmd->dim, snap->dim);
		return -1;
	}
	if ((cmd->given & MP_NEIGHBOURS) && cmd->neighbours != snap->neighbours) {
		snprintf(err, errlen, "--neighbours %u: the snapshot keeps %u",
			 cmd->neighbours, snap->neighbours);
		return -1;
	}
	if ((cmd->given & MP_RECENT) && cmd->recent != snap->recent) {
		snprintf(err, errlen, "--recent %u: the snapshot keeps %u",
			 cmd->recent, snap->recent);
		return -1;
	}
	if (cmd->given & MP_NEGATIVES)
		snap->negatives = cmd->negatives;
	if (cmd->given & MP_LR)
		snap->lr = cmd->lr;
	if (cmd->given & MP_REG)
		snap->reg = cmd->reg;
	if (cmd->given & MP_INIT)
		snap->init = cmd->init;
	if (cmd->given & MP_TYPE_W)
		memcpy(snap->type_w, cmd->type_w, sizeof snap->type_w);
	if (cmd->given & MP_FORGET)
		snap->forget = cmd->forget;
	if (cmd->given & MP_COOC_HL)
		snap->cooc_half_life = cmd->cooc_half_life;
	if (cmd->given & MP_POP_HL)
		snap->pop_half_life = cmd->pop_half_life;
	if (cmd->given & MP_TREND_HL)
		snap->trend_half_life = cmd->trend_half_life;
	if (cmd->given & MP_SESSION_GAP)
		snap->session_gap = cmd->session_gap;
	if (cmd->given & MP_MAX_USERS)
		snap->max_users = cmd->max_users;
	if (cmd->given & MP_MAX_ITEMS)
		snap->max_items = cmd->max_items;
	if (cmd->given & MP_COOC_MEMORY)
		snap->cooc_memory = cmd->cooc_memory;
	if (cmd->given & MP_SEEN_MAX)
		snap->seen_max = cmd->seen_max;
	if ((cmd->given & MP_CAT_ITEMS) && cmd->cat_items != snap->cat_items) {
		snprintf(err, errlen, "--category-items %u: the snapshot keeps %u",
			 cmd->cat_items, snap->cat_items);
		return -1;
	}
	if (cmd->given & (MP_CAT_ATTR | MP_BRAND_ATTR)) {
		const char *cat = (cmd->given & MP_CAT_ATTR ? cmd : snap)->cat_attr;
		const char *brand = model_brand_attrs(cmd->given & MP_BRAND_ATTR ? cmd : snap);
		if (attrs_pack(snap->cat_attr, cat, brand)) {
			snprintf(err, errlen, "--category-attr %s, --brand-attr %s: more than %zu bytes together",
				 cat, brand, sizeof snap->cat_attr - 2);
			return -1;
		}
	}
	if (cmd->given & MP_BLEND_BUDGET)
		snap->blend_budget = cmd->blend_budget;
	if (cmd->given & MP_BLEND_LR)
		snap->blend_lr = cmd->blend_lr;
	if (cmd->given & MP_EXCLUDE_SEEN)
		snap->exclude_seen = cmd->exclude_seen;
	if (cmd->given & MP_WALK_STEPS)
		snap->walk_steps = cmd->walk_steps;
	if (cmd->given & MP_WALK_WIDTH)
		snap->walk_width = cmd->walk_width;
	if (cmd->given & MP_SKNN) {
		/* The bounds are the index's shape; k may change. */
		if (cmd->sk.sessions != snap->sk.sessions ||
		    cmd->sk.per_item != snap->sk.per_item ||
		    cmd->sk.items != snap->sk.items) {
			snprintf(err, errlen, "--sknn-sessions, --sknn-sample, --sknn-items: the snapshot keeps %u sessions, %u per item, %u items each",
				 snap->sk.sessions, snap->sk.per_item, snap->sk.items);
			return -1;
		}
		snap->sk.k = cmd->sk.k;
	}
	snap->given = cmd->given;
	return 0;
}

/* ---- memory ---- */

#define SEEN_BLK 64 /* slots of the seen set per block (see seen_store) */

/* The blocks of cap slots of the seen set. */
static inline uint64_t
seen_nblk(uint64_t cap)
{
	return (cap + SEEN_BLK - 1) / SEEN_BLK;
}

static void seen_free(struct model *m);

/* A table of slots kept in blocks of 64 (the seen set's): a bit per slot
 * in use and an array of what the slots in use hold, in slot order, with
 * room for a multiple of 4 (blk_room), so that an empty slot costs a
 * bit. */
static inline unsigned
popcount64(uint64_t x)
{
	x = x - ((x >> 1) & 0x5555555555555555ULL);
	x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
	return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* The room of a block's array for n slots in use. */
static inline unsigned
blk_room(unsigned n)
{
	return (n + 3) & ~3u;
}

/* Where block b keeps the w bytes of its slot s, which is in use from
 * now on; *room counts the values the blocks have room for. */
static inline unsigned char *
blk_put(struct model_blk *b, unsigned s, size_t w, uint64_t *room)
{
	uint64_t bit = 1ULL << s;
	unsigned n = popcount64(b->occ), k = popcount64(b->occ & (bit - 1));

	if (!(b->occ & bit)) {
		if (blk_room(n + 1) != blk_room(n)) {
			b->a = xreallocarray(b->a, blk_room(n + 1), w);
			*room += blk_room(n + 1) - blk_room(n);
		}
		if (k < n)
			memmove(b->a + (k + 1) * w, b->a + k * w, (n - k) * w);
		b->occ |= bit;
	}
	return b->a + k * w;
}

/* Aligned memory, dying like xmalloc when there is none. */
static void *
xalign(size_t n)
{
	void *p;

	if (n == 0)
		n = MODEL_ALIGN;
	n = (n + MODEL_ALIGN - 1) & ~(size_t)(MODEL_ALIGN - 1);
	if (posix_memalign(&p, MODEL_ALIGN, n))
		die(EXIT_IO, "out of memory (%zu bytes)", n);
	return p;
}

/* Zero n bytes at p. Whole pages of a large span are handed back to the
 * kernel instead (MADV_DONTNEED: private anonymous memory reads as zeros
 * again), so that room grown for later is not resident until used. */
static void
zero(char *p, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	if (pg > 0 && n >= 64 * pg) {
		uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1);
		uintptr_t b = ((uintptr_t)p + n) & ~(uintptr_t)(pg - 1);
		if (b > a && madvise((void *)a, b - a, MADV_DONTNEED) == 0) {
			memset(p, 0, a - (uintptr_t)p);
			memset((void *)b, 0, (uintptr_t)p + n - b);
			return;
		}
	}
	memset(p, 0, n);
}

/*
 * The arrays that grow with the users and the items each live in a mapping
 * of their own, after a page that holds the mapping's size: growing one
 * remaps it (mremap) instead of copying it, so that the old array and the
 * new one are never resident together (at 8 million users the factors
 * alone are 1 GB), and the room grown for later is not resident until it
 * is used. Where there is no mremap, the array is copied.
 */
static size_t
page_size(void)
{
	long pg = sysconf(_SC_PAGESIZE);

	return pg >= MODEL_ALIGN ? (size_t)pg : 4096;
}

static void *
arr_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die(EXIT_IO, "out of memory (%zu bytes)", len);
	return p;
}

/* Free an array of xalign_grow; NULL is allowed. */
static void
arr_free(void *p)
{
	if (!p)
		return;
	char *base = (char *)p - page_size();
	munmap(base, *(size_t *)(void *)base);
}

/* Grow an array of old elements of size sz (NULL: none) to cap elements,
 * keeping the first nold and zeroing the rest. Page-aligned. */
static void *
xalign_grow(void *old, size_t nold, size_t cap, size_t sz)
{
	size_t pg = page_size();

	if (cap && sz > (SIZE_MAX - 2 * pg) / cap)
		die(EXIT_IO, "out of memory (array of %zu)", cap);
	size_t len = pg + (cap * sz + pg - 1) / pg * pg;
	char *base;

	if (!old) {
		base = arr_map(len);
	} else {
		char *ob = (char *)old - pg;
		size_t olen = *(size_t *)(void *)ob;
		/* What the old mapping held past the kept elements reads as
		 * zeros; the kernel zeroes what is added. */
		if (olen - pg > nold * sz)
			zero((char *)old + nold * sz, olen - pg - nold * sz);
#ifdef MREMAP_MAYMOVE
		base = mremap(ob, olen, len, MREMAP_MAYMOVE);
		if (base == MAP_FAILED)
			die(EXIT_IO, "out of memory (%zu bytes)", len);
#else
		base = arr_map(len);
		memcpy(base + pg, old, nold * sz);
		munmap(ob, olen);
#endif
	}
	*(size_t *)(void *)base = len;
	return base + pg;
}

/* ---- ids ---- */

/* The key of entry e of an id table in a struct model_index (htab's
 * form of a hash: 0 becomes 1). */
static uint64_t
index_key(const uint64_t *off, const char *bytes, uint32_t e)
{
	uint64_t k = hash64(bytes + off[e], (size_t)(off[e + 1] - off[e]), MODEL_ID_SEED);

	return k ? k : 1;
}

/* The slots of an index of n entries: as htab_init(n). */
static uint64_t
index_cap(uint64_t n)
{
	uint64_t cap = 16;

	while (cap < n * 2)
		cap *= 2;
	return cap;
}

/* The slot of key, the hash64 of the id of len bytes at id, in x: the one
 * of its entry, or the empty one where it would go. */
static uint32_t *
index_slot(const struct model_index *x, const uint64_t *off, const char *bytes,
	   uint64_t key, const char *id, size_t len)
{
	uint64_t mask = x->cap - 1, j;
	uint32_t v;

	key = key ? key : 1;
	for (j = key & mask; (v = x->slot[j]) != 0; j = (j + 1) & mask) {
		/* The entry of the same key: the same id, or another of
		 * the same hash (which then takes the slot, as with htab).
		 * A mapped model has no keys: the same id is known without
		 * hashing it again. */
		uint32_t e = v - 1;
		if (x->key ? x->key[e] == key
			   : ((off[e + 1] - off[e] == len && memcmp(bytes + off[e], id, len) == 0) ||
			      index_key(off, bytes, e) == key))
			break;
	}
	return &x->slot[j];
}

/* Index the n entries of an id table afresh, in the order of their
 * numbers, in cap slots; a later id of the same hash takes the slot of
 * the earlier one, as with htab_put. */
static void
index_build(struct model_index *x, const uint64_t *off, const char *bytes,
	    uint64_t n, uint64_t cap)
{
	free(x->slot);
	x->cap = cap;
	x->slot = xcalloc(cap, sizeof *x->slot);
	for (uint64_t i = 0; i < n; i++)
		*index_slot(x, off, bytes,
			    x->key ? x->key[i] : index_key(off, bytes, (uint32_t)i),
			    bytes + off[i], (size_t)(off[i + 1] - off[i])) = (uint32_t)(i + 1);
}

/* A trainable index of n entries: their keys, then the slots. */
static void
index_load(struct model_index *x, const uint64_t *off, const char *bytes, uint64_t n)
{
	x->kcap = n > 16 ? n : 16;
	x->key = xreallocarray(x->key, x->kcap, sizeof *x->key);
	for (uint64_t i = 0; i < n; i++)
		x->key[i] = index_key(off, bytes, (uint32_t)i);
	index_build(x, off, bytes, n, index_cap(n));
}

/* The entry of key, the hash64 of the id of len bytes at id, or -1. */
static int64_t
index_get(const struct model_index *x, const uint64_t *off, const char *bytes,
	  uint64_t key, const char *id, size_t len)
{
	uint32_t v = *index_slot(x, off, bytes, key, id, len);

	return v ? (int64_t)v - 1 : -1;
}

/* Room for entry n (the entries before it indexed), then the slot of key
 * (of the id of len bytes at id): the caller stores n + 1 there once its
 * id is in the table. */
static uint32_t *
index_add(struct model_index *x, const uint64_t *off, const char *bytes,
	  uint64_t n, uint64_t key, const char *id, size_t len)
{
	if (n >= x->kcap) {
		x->kcap = x->kcap ? 2 * x->kcap : 16;
		x->key = xreallocarray(x->key, x->kcap, sizeof *x->key);
	}
	x->key[n] = key ? key : 1;
	if (index_cap(n + 1) > x->cap)
		index_build(x, off, bytes, n, index_cap(n + 1));
	return index_slot(x, off, bytes, key, id, len);
}

static void
ids_add(uint64_t **off, char **bytes, size_t *n, size_t *cap, uint64_t idx,
	const char *p, size_t len)
{
	if (*n + len > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < *n + len)
			c *= 2;
		*bytes = xrealloc(*bytes, c);
		*cap = c;
	}
	memcpy(*bytes + *n, p, len);
	*n += len;
	(*off)[idx + 1] = *n;
}

/* ---- construction ---- */

static uint32_t
stride_of(uint32_t dim)
{
	return (dim + MODEL_ROW - 1) / MODEL_ROW * MODEL_ROW;
}

/* The lists' heads stay on the heap, not in a mapping of xalign_grow:
 * they hold the only pointers to the lists, and leak checkers look for
 * pointers on the heap, not in anonymous mappings. The heads past the
 * n items are left as they are, not resident until an item is added
 * (find_or_add_item sets its heads). */
static void
lists_grow(struct model_lists *L, uint64_t cap)
{
	L->v = xreallocarray(L->v, cap, sizeof *L->v);
}

/* Free the lists of n items (those from the pool's mappings go with
 * pool_clear). */
static void
lists_free(struct model *m, struct model_lists *L, uint64_t n)
{
	for (uint64_t i = 0; L->v && i < n; i++)
		if ((size_t)L->v[i].room * NB_BYTES > POOL_MAX)
			pool_free(&m->nbpool, L->v[i].l, (size_t)L->v[i].room * NB_BYTES);
	free(L->v);
}

static void
grow_items(struct model *m, uint64_t need)
{
	uint64_t cap = m->items_cap ? m->items_cap : 64, n = m->nitems;

	if (need <= m->items_cap)
		return;
	while (cap < need)
		cap *= 2;
	m->ifac = xalign_grow(m->ifac, n * m->stride, cap * m->stride, sizeof(float));
	m->icount = xalign_grow(m->icount, n, cap, sizeof(float));
	m->ipop = xalign_grow(m->ipop, n, cap, sizeof(float));
	m->ishort = xalign_grow(m->ishort, n, cap, sizeof(float));
	m->its = xalign_grow(m->its, n, cap, sizeof(int64_t));
	m->ioff = xalign_grow(m->ioff, n + 1, cap + 1, sizeof(uint64_t));
	lists_grow(&m->nb, cap);
	lists_grow(&m->sq, cap);
	m->icat = xalign_grow(m->icat, n, cap, sizeof(uint32_t));
	m->ibrand = xalign_grow(m->ibrand, n, cap, sizeof(uint64_t));
	for (int k = 0; k < 2; k++)
		m->top[k].pos = xalign_grow(m->top[k].pos, n, cap, 1);
	m->items_cap = cap;
}

static void
grow_users(struct model *m, uint64_t need)
{
	uint64_t cap = m->users_cap ? m->users_cap : 64, n = m->nusers;
	size_t r = m->p.recent;

	if (need <= m->users_cap)
		return;
	while (cap < need)
		cap *= 2;
	m->ufac16 = xalign_grow(m->ufac16, n * m->stride, cap * m->stride, sizeof(uint16_t));
	m->uts = xalign_grow(m->uts, n, cap, sizeof(int64_t));
	m->uskey = xalign_grow(m->uskey, n, cap, sizeof(uint64_t));
	m->unrec = xalign_grow(m->unrec, n, cap, 1);
	m->unsess = xalign_grow(m->unsess, n, cap, 1);
	m->urec = xalign_grow(m->urec, n * r, cap * r, sizeof(uint32_t));
	m->uoff = xalign_grow(m->uoff, n + 1, cap + 1, sizeof(uint64_t));
	m->users_cap = cap;
}

/*
 * A new, empty, trainable model with parameters p (copied). Never fails
 * (allocation failures end the program, as with xmalloc). The caller owns
 * it: model_free.
 */
struct model *
model_new(const struct model_params *p)
{
	struct model *m = xcalloc(1, sizeof *m);

	m->p = *p;
	m->stride = stride_of(p->dim);
	rng_seed(&m->rng, p->seed);
	htab_init(&m->cidx, 64);
	model_blend_default(&m->blend);
	if (p->sk.sessions)
		m->sknn = sknn_new(&p->sk);
	m->urow = xalign_grow(NULL, 0, m->stride, sizeof(float));
	grow_items(m, 1);
	grow_users(m, 1);
	index_load(&m->ii, m->ioff, m->ibytes, 0);
	index_load(&m->ui, m->uoff, m->ubytes, 0);
	return m;
}

/* Free m and everything it owns, or unmap it; NULL is allowed. */
void
model_free(struct model *m)
{
	if (!m)
		return;
	buf_free(&m->ledger);
	if (m->mapped) {
		if (m->mapped == 1)
			munmap(m->map, m->maplen);
		else
			free(m->map);
		sknn_free(m->sknn);
		free(m);
		return;
	}
	lists_free(m, &m->nb, m->nitems);
	lists_free(m, &m->sq, m->nitems);
	pool_clear(&m->nbpool);
	for (uint64_t c = 0; c < m->ncats; c++)
		free(m->cl[c]);
	free(m->cl);
	free(m->cln);
	free(m->chash);
	htab_free(&m->cidx);
	arr_free(m->icat);
	arr_free(m->ibrand);
	seen_free(m);
	sknn_free(m->sknn);
	rank_learn_free(m);
	arr_free(m->ifac);
	arr_free(m->icount);
	arr_free(m->ipop);
	arr_free(m->ishort);
	arr_free(m->top[0].pos);
	arr_free(m->top[1].pos);
	arr_free(m->its);
	arr_free(m->ioff);
	free(m->ibytes);
	arr_free(m->ufac16);
	arr_free(m->urow);
	arr_free(m->uts);
	arr_free(m->uskey);
	arr_free(m->unrec);
	arr_free(m->unsess);
	arr_free(m->urec);
	arr_free(m->uoff);
	free(m->ubytes);
	free(m->log);
	free(m->ii.slot);
	free(m->ui.slot);
	free(m->ii.key);
	free(m->ui.key);
	free(m);
}

/* Bytes the model holds in memory (a trainable model) or maps. */
size_t
model_bytes(const struct model *m)
{
	size_t b = sizeof *m;

	if (m->mapped)
		return m->maplen;
	b += m->items_cap * (m->stride * sizeof(float) + 3 * sizeof(float) +
			     8 + 8 + 2 * sizeof(struct model_list));
	b += m->users_cap * (m->stride * sizeof(uint16_t) + 8 + 2 + 8 +
			     m->p.recent * sizeof(uint32_t));
	b += m->ibytes_cap + m->ubytes_cap;
	b += (m->ii.cap + m->ui.cap) * sizeof(uint32_t);
	b += (m->ii.kcap + m->ui.kcap) * sizeof(uint64_t);
	b += pool_bytes(&m->nbpool);
	b += m->items_cap * (2 + 4);
	b += m->cats_cap * (8 + sizeof(void *) + 2) + htab_bytes(&m->cidx);
	b += m->ncats * m->p.cat_items * sizeof(struct model_nb);
	b += seen_nblk(m->seen_cap) * sizeof *m->seenb + m->seen_room * m->seen_w;
	b += m->users_cap * 8;
	if (m->sknn)
		b += sknn_bytes(m->sknn);
	b += m->log_cap * sizeof *m->log;
	return b;
}

/* ---- eviction ---- */

struct lru_key {
	int64_t ts;
	uint64_t idx;
};

static int
lru_cmp(const void *a, const void *b)
{
	const struct lru_key *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Mark the e least recently active of n entries in gone[]: by the time of
 * their last event (ts), the first to come (the lower index) first among
 * equal times. The times are in the snapshot, so a resumed run evicts as
 * one run would. */
static void
pick_oldest(const int64_t *ts, uint64_t n, uint64_t e, uint8_t *gone)
{
	struct lru_key *k = xreallocarray(NULL, n, sizeof *k);

	for (uint64_t i = 0; i < n; i++) {
		k[i].ts = ts[i];
		k[i].idx = i;
	}
	if (n > 1)
		qsort(k, n, sizeof *k, lru_cmp);
	memset(gone, 0, n);
	for (uint64_t i = 0; i < e && i < n; i++)
		gone[k[i].idx] = 1;
	free(k);
}

/* How many to evict from n entries so that one more fits under max: a
 * sixteenth of max (at least 1), and all the excess after a lower max
 * on --resume. */
static uint64_t
evict_batch(uint64_t n, uint64_t max)
{
	uint64_t e = max / 16;

	return (e ? e : 1) + (n > max ? n - max : 0);
}

/* Rebuild an id table and its index after entries moved: newidx[i] is the
 * new place of entry i, or UINT32_MAX if it left. */
static void
ids_compact(uint64_t *off, char *bytes, size_t *nbytes, uint64_t n,
	    const uint32_t *newidx, struct model_index *x)
{
	size_t w = 0;
	uint64_t j = 0;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t a = off[i], b = off[i + 1];
		if (newidx[i] == UINT32_MAX)
			continue;
		memmove(bytes + w, bytes + a, (size_t)(b - a));
		off[j] = w;
		w += (size_t)(b - a);
		off[j + 1] = w;
		x->key[j] = x->key[i];
		j++;
	}
	if (j == 0)
		off[0] = 0;
	*nbytes = w;
	index_build(x, off, bytes, j, index_cap(j));
}

/*
 * A trainable list with room for `room` entries keeps, after them, a tag
 * byte of each entry's item (nb_tag), so that nb_add looks for an item in
 * room bytes instead of 8 * room (most lookups of long-tail pairs find
 * nothing).
 */
static inline uint8_t
nb_tag(uint32_t j)
{
	return (uint8_t)((j * 0x9E3779B1u) >> 24);
}

static inline uint8_t *
nb_tags(struct model_nb *l, uint32_t room)
{
	return (uint8_t *)(l + room);
}

/* Ask for every line of list a, entries and tags, ahead of its use. */
static inline void
nb_prefetch(const struct model_list *a)
{
	const char *p = (const char *)a->l;

	for (size_t x = 0; p && x < a->room * NB_BYTES; x += 64)
		__builtin_prefetch(p + x);
}

/* The tags of the n entries of l, a list with room for `room`. */
static void
nb_retag(struct model_nb *l, uint32_t n, uint32_t room)
{
	uint8_t *t = nb_tags(l, room);

	for (uint32_t k = 0; k < n; k++)
		t[k] = nb_tag(l[k].item);
}

/* Evict the least recently active items to make room for one more. */
/* Item i leaves: its list goes. */
static void
lists_drop(struct model *m, struct model_lists *L, uint64_t i)
{
	if (L->v[i].l)
		m->nlists--;
	m->nbtotal -= L->v[i].cap;
	m->nbroom -= L->v[i].room;
	pool_free(&m->nbpool, L->v[i].l, (size_t)L->v[i].room * NB_BYTES);
	L->v[i].l = NULL;
}

/*
 * Move every list of the pool into a new one, a mapping of the old one
 * at a time (each unmapped once its lists are out), when its free
 * blocks have come to a quarter of it (pool_sparse): lists that grew
 * left blocks that no list of that size may come to take.
 */
static void
lists_compact(struct model *m)
{
	struct model_lists *Ls[2] = { &m->nb, &m->sq };
	struct pool np;
	size_t nm = pool_maps(&m->nbpool, NULL, NULL, 0);
	uint64_t n = m->nitems;

	if (nm == 0 || nm >= UINT16_MAX)
		return;
	char **start = xreallocarray(NULL, nm, sizeof *start);
	size_t *size = xreallocarray(NULL, nm, sizeof *size);
	uint16_t *at = xreallocarray(NULL, 2 * n + 1, sizeof *at);
	pool_maps(&m->nbpool, start, size, nm);
	/* The mapping of each list: the last one starting at or before it. */
	for (int t = 0; t < 2; t++)
		for (uint64_t i = 0; i < n; i++) {
			const struct model_list *a = &Ls[t]->v[i];
			size_t lo = 0, hi = nm;
			if (!a->l || (size_t)a->room * NB_BYTES > POOL_MAX) {
				at[t * n + i] = UINT16_MAX;
				continue;
			}
			while (hi - lo > 1) {
				size_t mid = lo + (hi - lo) / 2;
				if (start[mid] <= (const char *)a->l)
					lo = mid;
				else
					hi = mid;
			}
			at[t * n + i] = (uint16_t)lo;
		}
	memset(&np, 0, sizeof np);
	np.large = m->nbpool.large;
	np.sparse_min = m->nbpool.sparse_min;
	np.moves = m->nbpool.moves + 1;
	for (size_t k = 0; k < nm; k++) {
		for (int t = 0; t < 2; t++)
			for (uint64_t i = 0; i < n; i++) {
				struct model_list *a = &Ls[t]->v[i];
				if (at[t * n + i] != k)
					continue;
				struct model_nb *nl = pool_alloc(&np, (size_t)a->room * NB_BYTES);
				memcpy(nl, a->l, a->n * sizeof *nl);
				memcpy(nb_tags(nl, a->room), nb_tags(a->l, a->room), a->n);
				a->l = nl;
			}
		pool_unmap(start[k], size[k]);
	}
	m->nbpool = np;
	free(at);
	free(size);
	free(start);
}

/* Item i becomes item k (k < i). */
static void
lists_move(struct model_lists *L, uint64_t k, uint64_t i)
{
	L->v[k].l = L->v[i].l;
	L->v[k].n = L->v[i].n;
	L->v[k].cap = L->v[i].cap;
	L->v[k].room = L->v[i].room;
	L->v[i].l = NULL;
}

/* The lists of the n items left lose the items that left, keeping their
 * order, and name the others by their new index. */
static void
lists_remap(struct model_lists *L, uint64_t n, const uint32_t *newidx)
{
	for (uint64_t i = 0; i < n; i++) {
		struct model_nb *l = L->v[i].l;
		uint32_t w = 0;
		if (!l)
			continue;
		for (uint32_t k = 0; k < L->v[i].n; k++)
			if (newidx[l[k].item] != UINT32_MAX) {
				l[w].item = newidx[l[k].item];
				l[w++].score = l[k].score;
			}
		L->v[i].n = (uint16_t)w;
		nb_retag(l, w, L->v[i].room);
	}
}

static void
evict_items(struct model *m)
{
	uint64_t n = m->nitems, e = evict_batch(m->nitems, m->p.max_items), j = 0;
	uint8_t *gone = xmalloc(n);
	uint32_t *newidx = xreallocarray(NULL, n, sizeof *newidx);
	size_t r = m->p.recent, s = m->stride;

	pick_oldest(m->its, n, e, gone);
	for (uint64_t i = 0; i < n; i++)
		newidx[i] = gone[i] ? UINT32_MAX : (uint32_t)j++;
	ids_compact(m->ioff, m->ibytes, &m->ibytes_n, n, newidx, &m->ii);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t k = newidx[i];
		if (k == UINT32_MAX) {
			lists_drop(m, &m->nb, i);
			lists_drop(m, &m->sq, i);
			continue;
		}
		if (k != i) {
			memcpy(m->ifac + k * s, m->ifac + i * s, s * sizeof(float));
			m->icount[k] = m->icount[i];
			m->ipop[k] = m->ipop[i];
			m->ishort[k] = m->ishort[i];
			m->its[k] = m->its[i];
			m->icat[k] = m->icat[i];
			m->ibrand[k] = m->ibrand[i];
			lists_move(&m->nb, k, i);
			lists_move(&m->sq, k, i);
		}
	}
	memset(m->ifac + j * s, 0, (n - j) * s * sizeof(float));
	for (uint64_t i = j; i < n; i++) {
		m->icount[i] = m->ipop[i] = m->ishort[i] = 0;
		m->its[i] = 0;
		m->nb.v[i].n = m->nb.v[i].cap = m->nb.v[i].room = 0;
		m->sq.v[i].n = m->sq.v[i].cap = m->sq.v[i].room = 0;
		m->icat[i] = 0;
		m->ibrand[i] = 0;
	}
	m->nitems = j;
	m->top[0].valid = m->top[1].valid = 0;
	/* Category lists lose them too. */
	for (uint64_t c = 0; c < m->ncats; c++) {
		struct model_nb *l = m->cl[c];
		uint32_t w = 0;
		for (uint32_t k = 0; l && k < m->cln[c]; k++)
			if (newidx[l[k].item] != UINT32_MAX) {
				l[w].item = newidx[l[k].item];
				l[w++].score = l[k].score;
			}
		m->cln[c] = (uint16_t)w;
	}
	/* Neighbour lists lose the items that left, keeping their order. */
	lists_remap(&m->nb, j, newidx);
	lists_remap(&m->sq, j, newidx);
	/* So do the users' recent items. */
	for (uint64_t u = 0; u < m->nusers; u++) {
		uint32_t *rec = m->urec + u * r;
		uint32_t w = 0, ns = m->unsess[u];
		for (uint32_t k = 0; k < m->unrec[u]; k++) {
			if (newidx[rec[k]] == UINT32_MAX) {
				if (k < m->unsess[u])
					ns--;
				continue;
			}
			rec[w++] = newidx[rec[k]];
		}
		for (uint32_t k = w; k < m->unrec[u]; k++)
			rec[k] = 0;
		m->unrec[u] = (uint8_t)w;
		m->unsess[u] = (uint8_t)ns;
	}
	for (size_t k = 0; k < m->nlog; k++)
		if (m->log[k].item != UINT32_MAX)
			m->log[k].item = newidx[m->log[k].item];
	if (m->sknn)
		sknn_remap(m->sknn, newidx, n);
	m->st.items_evicted += n - j;
	m->st.evictions++;
	free(gone);
	free(newidx);
}

static void
evict_users(struct model *m)
{
	uint64_t n = m->nusers, e = evict_batch(m->nusers, m->p.max_users), j = 0;
	uint8_t *gone = xmalloc(n);
	uint32_t *newidx = xreallocarray(NULL, n, sizeof *newidx);
	size_t r = m->p.recent, s = m->stride;

	pick_oldest(m->uts, n, e, gone);
	for (uint64_t i = 0; i < n; i++)
		newidx[i] = gone[i] ? UINT32_MAX : (uint32_t)j++;
	ids_compact(m->uoff, m->ubytes, &m->ubytes_n, n, newidx, &m->ui);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t k = newidx[i];
		if (k == UINT32_MAX || k == i)
			continue;
		memcpy(m->ufac16 + k * s, m->ufac16 + i * s, s * sizeof(uint16_t));
		m->uts[k] = m->uts[i];
		m->uskey[k] = m->uskey[i];
		m->unrec[k] = m->unrec[i];
		m->unsess[k] = m->unsess[i];
		memcpy(m->urec + k * r, m->urec + i * r, r * sizeof(uint32_t));
	}
	memset(m->ufac16 + j * s, 0, (n - j) * s * sizeof(uint16_t));
	memset(m->urec + j * r, 0, (n - j) * r * sizeof(uint32_t));
	for (uint64_t i = j; i < n; i++) {
		m->uts[i] = 0;
		m->uskey[i] = 0;
		m->unrec[i] = m->unsess[i] = 0;
	}
	m->nusers = j;
	for (size_t k = 0; k < m->nlog; k++)
		if (m->log[k].user != UINT32_MAX)
			m->log[k].user = newidx[m->log[k].user];
	m->st.users_evicted += n - j;
	m->st.evictions++;
	free(gone);
	free(newidx);
}

/* ---- factors ---- */

/* A new factor row: uniform in [-init, init] / sqrt(dim), padding zero. */
static void
init_row(struct model *m, float *v)
{
	float a = m->p.init / sqrtf((float)m->p.dim);

	for (uint32_t k = 0; k < m->p.dim; k++)
		v[k] = (float)((rng_double(&m->rng) * 2 - 1) * a);
	for (uint32_t k = m->p.dim; k < m->stride; k++)
		v[k] = 0;
}

/* Row v of n floats into bfloat16 values h. */
static void
narrow_row(const float *v, uint16_t *h, size_t n)
{
	for (size_t k = 0; k < n; k++)
		h[k] = model_bf16(v[k]);
}

/* One SGD step on the squared error of p.q against target. */
static inline void
sgd_step(float *p, float *q, float target, float lr,
	 float keep, uint32_t n)
{
	model_step(p, q, lr * (target - model_dot(p, q, n)), keep, n);
}

/* Learn (u, i) with weight w: one positive step and --negatives steps
 * towards 0 for items drawn uniformly, on the user's row widened once
 * and rounded back once. Allocates nothing. */
static void
mf_update(struct model *m, uint64_t u, uint64_t i, float w)
{
	float *p = model_user_widen(m, u, m->urow);
	float lr = m->p.lr, keep = 1 - lr * m->p.reg;
	uint32_t n = m->stride;

	sgd_step(p, m->ifac + i * n, 1, lr * w, keep, n);
	m->st.mf_updates++;
	/* The negatives are drawn a few at a time and their rows asked for
	 * before the steps (rows of random items are cache misses): the
	 * steps draw nothing, so the draws and the steps come in the same
	 * order as one by one. */
	for (uint32_t k = 0; m->nitems >= 2 && k < m->p.negatives;) {
		uint64_t j[8];
		uint32_t nj = 0;
		for (; nj < 8 && k < m->p.negatives; nj++, k++) {
			j[nj] = rng_below(&m->rng, m->nitems);
			for (uint32_t b = 0; b < n; b += MODEL_ROW)
				__builtin_prefetch(m->ifac + j[nj] * n + b);
		}
		for (uint32_t r = 0; r < nj; r++) {
			if (j[r] == i)
				continue;
			sgd_step(p, m->ifac + j[r] * n, 0, lr, keep, n);
			m->st.mf_updates++;
		}
	}
	narrow_row(p, m->ufac16 + u * n, n);
}

/* ---- clocks ---- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t
tick_len(const struct model *m)
{
	return m->p.forget / 16;
}

static int64_t
min_half_life(const struct model *m)
{
	int64_t h = m->p.pop_half_life;

	if (m->p.trend_half_life < h)
		h = m->p.trend_half_life;
	if (m->p.cooc_half_life < h)
		h = m->p.cooc_half_life;
	return h;
}

static void
scale_rows(float *v, uint64_t nrows, uint32_t stride, float f)
{
	size_t n = (size_t)nrows * stride;

	for (size_t k = 0; k < n; k++)
		v[k] *= f;
}

/* Move the reference time of the decayed counts to the clock: the stored
 * values become the decayed counts at the clock. */
static void
rebase(struct model *m)
{
	double d = (double)(m->clock - m->tref);
	float fp = (float)exp2(-d / (double)m->p.pop_half_life);
	float fs = (float)exp2(-d / (double)m->p.trend_half_life);
	float fc = (float)exp2(-d / (double)m->p.cooc_half_life);

	for (uint64_t i = 0; i < m->nitems; i++) {
		m->ipop[i] *= fp;
		m->ishort[i] *= fs;
		for (uint32_t k = 0; m->nb.v[i].l && k < m->nb.v[i].n; k++)
			m->nb.v[i].l[k].score *= fc;
		for (uint32_t k = 0; m->sq.v[i].l && k < m->sq.v[i].n; k++)
			m->sq.v[i].l[k].score *= fc;
	}
	for (uint64_t c = 0; c < m->ncats; c++)
		for (uint32_t k = 0; m->cl[c] && k < m->cln[c]; k++)
			m->cl[c][k].score *= fp;
	m->tref = m->clock;
	m->top[1].valid = 0; /* the same factor for all, but ties may form */
	m->st.renorms++;
}

/* Move the clock to ts: forgetting steps of the factors, and a new
 * reference time for the decayed counts when the old one is far behind. */
static void
advance(struct model *m, int64_t ts)
{
	if (!m->have_clock) {
		m->have_clock = 1;
		m->clock = ts;
		m->tref = ts;
		m->tick = m->p.forget ? floor_div(ts, tick_len(m)) : 0;
		return;
	}
	if (ts <= m->clock)
		return;
	m->clock = ts;
	if (m->p.forget) {
		int64_t t = floor_div(ts, tick_len(m));
		if (t > m->tick) {
			double k = (double)(t - m->tick);
			float f = (float)exp2(-k * (double)tick_len(m) /
					      (double)m->p.forget);
			scale_rows(m->ifac, m->nitems, m->stride, f);
			for (size_t e = 0; e < (size_t)m->nusers * m->stride; e++)
				m->ufac16[e] = model_bf16(model_bf16_float(m->ufac16[e]) * f);
			m->tick = t;
			m->st.ticks++;
		}
	}
	if (m->clock - m->tref > 64 * min_half_life(m))
		rebase(m);
}

/* The weight of an event at ts in the forward-decay frame. */
static double
fwd(const struct model *m, int64_t ts, int64_t hl)
{
	return exp2((double)(ts - m->tref) / (double)hl);
}

/*
 * The factors that turn the stored decayed counts into counts at the
 * model's clock: returns the one of ishort, and sets *pop for ipop.
 */
double
model_trend_factor(const struct model *m, double *pop)
{
	double d = m->have_clock ? (double)(m->clock - m->tref) : 0;

	*pop = exp2(-d / (double)m->p.pop_half_life);
	return exp2(-d / (double)m->p.trend_half_life);
}

/* ---- the pop and dpop lists ---- */

/* Item i of top list k moves up to its place by v (its count grew), or
 * comes in at it, the last one out. */
static void
top_move(struct model_top *t, const float *v, uint32_t i)
{
	uint32_t at;

	if (t->pos[i])
		at = t->pos[i] - 1u;
	else if (!(v[i] > 0))
		return;
	else if (t->n < MODEL_TOP)
		at = t->n++;
	else {
		uint32_t last = t->item[MODEL_TOP - 1];
		if (!rank_better(v[i], i, v[last], last))
			return;
		t->pos[last] = 0;
		at = MODEL_TOP - 1;
	}
	while (at > 0 && rank_better(v[i], i, v[t->item[at - 1]], t->item[at - 1])) {
		t->item[at] = t->item[at - 1];
		t->pos[t->item[at]] = (uint8_t)(at + 1);
		at--;
	}
	t->item[at] = i;
	t->pos[i] = (uint8_t)(at + 1);
}

/* Item i's counts grew: its places in the lists, which are built first
 * when they are not valid (a full pass, after a load, a rebase or an
 * eviction). */
static void
top_touch(struct model *m, uint32_t i)
{
	const float *v[2] = { m->icount, m->ipop };

	for (int k = 0; k < 2; k++) {
		struct model_top *t = &m->top[k];
		if (!t->valid) {
			memset(t->pos, 0, m->items_cap);
			t->n = 0;
			for (uint64_t j = 0; j < m->nitems; j++)
				if (v[k][j] > 0 && (t->n < MODEL_TOP ||
						    rank_better(v[k][j], (uint32_t)j,
								v[k][t->item[MODEL_TOP - 1]],
								t->item[MODEL_TOP - 1])))
					top_move(t, v[k], (uint32_t)j);
			t->valid = 1;
		} else
			top_move(t, v[k], i);
	}
}

/* ---- co-occurrence ---- */

/* Add inc to the score of j in i's list, kept sorted best first. A full
 * list gives its last place to j, which starts from the score it had
 * (the space-saving rule: a pair that keeps coming back stays). */
static void
nb_add(struct model *m, struct model_lists *L, uint64_t i, uint32_t j,
       float inc)
{
	struct model_nb *l = L->v[i].l;
	uint32_t n = L->v[i].n, k = n, cap = L->v[i].cap, room = L->v[i].room;
	uint8_t tag = nb_tag(j), *tg;

	if (m->p.neighbours == 0)
		return;
	if (l) {
		const uint8_t *t0 = nb_tags(l, room), *p = t0;
		while ((p = memchr(p, tag, (size_t)(t0 + n - p))) != NULL) {
			if (l[p - t0].item == j) {
				k = (uint32_t)(p - t0);
				break;
			}
			p++;
		}
	}
	if (k == n && n == cap && cap < m->p.neighbours) {
		/* Grow the list while the budget of all lists allows. */
		uint32_t nc = cap ? cap * 2 : 4;
		if (nc > m->p.neighbours)
			nc = m->p.neighbours;
		if ((m->nbtotal + nc - cap) * NB_BYTES <= m->p.cooc_memory) {
			m->nbtotal += nc - cap;
			L->v[i].cap = (uint16_t)nc;
			cap = nc;
		} else
			m->st.cooc_full++;
	}
	if (cap == 0)
		return;
	if (k == n && n < cap && n == room) {
		/* The list takes its room as it fills, by a quarter and 4
		 * entries at a time (fewer reallocations than by an eighth,
		 * for a tenth more room than the lists hold instead of a
		 * twentieth), up to the cap that --cooc-memory counts (which
		 * doubles).
		 * The room is what fills the pool's block of that size,
		 * which would otherwise be padding; a step that would leave
		 * less than an eighth to the cap goes all the way. */
		uint32_t nr = (room + room / 4 + 4) & ~3u;
		nr = (uint32_t)(pool_fit((size_t)nr * NB_BYTES) / NB_BYTES);
		if (nr > cap || cap - nr < nr / 8)
			nr = cap;
		struct model_nb *nl = pool_alloc(&m->nbpool, (size_t)nr * NB_BYTES);
		if (l) {
			memcpy(nl, l, n * sizeof *l);
			memcpy(nb_tags(nl, nr), nb_tags(l, room), n);
			pool_free(&m->nbpool, l, (size_t)room * NB_BYTES);
		} else
			m->nlists++;
		l = L->v[i].l = nl;
		m->nbroom += nr - room;
		L->v[i].room = (uint16_t)nr;
		room = nr;
	}
	tg = nb_tags(l, room);
	if (k < n)
		l[k].score += inc;
	else if (n < cap) {
		l[n].item = j;
		l[n].score = inc;
		k = n;
		L->v[i].n = (uint16_t)(n + 1);
	} else {
		k = n - 1;
		l[k].item = j;
		l[k].score += inc;
		m->st.cooc_replaced++;
	}
	tg[k] = tag;
	/* Up to its place: past the entries of a lower score (a suffix of
	 * l[0..k), the list being in order), each moved down one as it is
	 * passed. A scan from k down, not a bisection: the entries passed
	 * are the ones that move anyway, and a scan reads them in order
	 * (the processor fetches the next lines ahead) where a bisection's
	 * reads wait one on another, each a cache miss in a cold list. */
	struct model_nb e = l[k];
	uint32_t lo = k;
	while (lo > 0 && l[lo - 1].score < e.score) {
		l[lo] = l[lo - 1];
		lo--;
	}
	if (lo < k) {
		memmove(tg + lo + 1, tg + lo, k - lo);
		l[lo] = e;
		tg[lo] = tag;
	}
}

/* ---- categories ---- */

static uint32_t cat_key(struct model *m, uint64_t h);

/* The category of the event's item (an index + 1), added if new; 0 if
 * the event names none. */
static uint32_t
cat_of(struct model *m, const struct event *ev)
{
	const struct str *v;

	if (m->p.cat_items == 0 || ev->nattrs == 0)
		return 0;
	v = attrs_first(ev, m->p.cat_attr[0] ? m->p.cat_attr : "category,category_code,category_id");
	if (!v)
		return 0;
	return cat_key(m, hash64(v->p, v->n, MODEL_ID_SEED));
}

/* The category of key h (an index + 1), added if new; 0 if the table is
 * full. */
static uint32_t
cat_key(struct model *m, uint64_t h)
{
	uint32_t *at = htab_get(&m->cidx, h);
	if (at)
		return *at + 1;
	if (m->ncats >= UINT32_MAX - 1)
		return 0;
	if (m->ncats == m->cats_cap) {
		uint64_t cap = m->cats_cap ? m->cats_cap * 2 : 64;
		m->chash = xreallocarray(m->chash, cap, sizeof *m->chash);
		m->cl = xreallocarray(m->cl, cap, sizeof *m->cl);
		m->cln = xreallocarray(m->cln, cap, sizeof *m->cln);
		m->cats_cap = cap;
	}
	uint64_t c = m->ncats++;
	int isnew;
	m->chash[c] = h;
	m->cl[c] = NULL;
	m->cln[c] = 0;
	*htab_put(&m->cidx, h, &isnew) = (uint32_t)c;
	return (uint32_t)c + 1;
}

/* The key of the event's brand (hash64 of its name, never 0), 0 if it
 * names none. */
static uint64_t
brand_of(const struct model *m, const struct event *ev)
{
	const struct str *b;

	if (ev->nattrs == 0 || !(b = attrs_first(ev, model_brand_attrs(&m->p))))
		return 0;
	return hash64(b->p, b->n, MODEL_ID_SEED) | 1;
}

/* Item i's popularity changed: its place in its category's list. */
static void
cat_touch(struct model *m, uint64_t i)
{
	uint32_t c = m->icat[i];
	uint32_t cap = m->p.cat_items, n, k;
	float s = m->ipop[i];
	struct model_nb *l;

	if (c-- == 0 || cap == 0)
		return;
	if (!(l = m->cl[c]))
		l = m->cl[c] = xreallocarray(NULL, cap, sizeof *l);
	n = m->cln[c];
	for (k = 0; k < n && l[k].item != i; k++)
		;
	if (k == n) {
		if (n < cap)
			m->cln[c] = (uint16_t)++n;
		else if (s > l[n - 1].score) {
			k = n - 1;
			m->st.cat_replaced++;
		} else
			return;
		l[k].item = (uint32_t)i;
	}
	l[k].score = s;
	while (k > 0 && (l[k - 1].score < l[k].score ||
			 (l[k - 1].score == l[k].score && l[k - 1].item > l[k].item))) {
		struct model_nb t = l[k - 1];
		l[k - 1] = l[k];
		l[k] = t;
		k--;
	}
}

/* Take item i out of category c's list (c an index + 1). */
static void
cat_remove(struct model *m, uint64_t i, uint32_t c)
{
	struct model_nb *l = m->cl[c - 1];
	uint32_t n = m->cln[c - 1], k;

	for (k = 0; l && k < n && l[k].item != i; k++)
		;
	if (!l || k == n)
		return;
	memmove(l + k, l + k + 1, (n - k - 1) * sizeof *l);
	m->cln[c - 1] = (uint16_t)(n - 1);
}

/* ---- communities ---- */

/*
 * Items no event gives a category are grouped in communities, found in
 * the graph of their co-occurrence lists, which then serve as their
 * categories: the cat source lists a community's most popular items,
 * the blend's category match weighs a candidate in the community of an
 * item the request starts from.
 *
 * A pass finds them anew (comm_pass): Louvain's method (Blondel et al.
 * 2008), local moves that raise the modularity, then the communities as
 * the nodes of the next level, until no two merge. Passes run after
 * COMM_FIRST events learned, then each time the events learned have
 * doubled, or COMM_EVERY more once that many are learned, but never
 * sooner than COMM_COST events for each edge the last pass read, so
 * that passes cost a bounded share of the learning (a pass costs about
 * 50 ns an edge, learning an event some thousands).
 * Between passes, an item without a category or a community joins the
 * one its nearest neighbours are in (comm_join).
 *
 * A community is a category whose key has COMM_TAG in its high half and
 * a number in its low half; the pass keeps, for each community, the key
 * most of its items had, so that communities keep their keys from pass
 * to pass. A category the events name takes the place of a community.
 */
#define COMM_TAG 0x636f6d6dULL /* "comm" */
#define COMM_VOTERS 8          /* neighbours comm_join asks */
#define COMM_EDGES 16          /* neighbours of an item a pass reads */
#define COMM_SWEEPS 16         /* local-moving sweeps of a level, at most */
#define COMM_LEVELS 16
#define COMM_FIRST 1024
#define COMM_EVERY (1ULL << 20)
#define COMM_COST 2

/* Whether a pass is due. */
static int
comm_due(const struct model *m)
{
	return m->p.cat_items && m->st.learned >= (m->st.comm_next ? m->st.comm_next : COMM_FIRST);
}

static int
cat_is_comm(const struct model *m, uint32_t c)
{
	return c && m->chash[c - 1] >> 32 == COMM_TAG;
}

uint64_t
model_communities(const struct model *m)
{
	uint64_t n = 0;
	const struct model_nb *l;

	for (uint64_t c = 0; c < m->ncats; c++)
		n += cat_is_comm(m, (uint32_t)c + 1) && model_cat_items(m, c, &l) > 0;
	return n;
}

int64_t
model_item_community(const struct model *m, uint64_t i)
{
	uint32_t c = m->icat[i];

	return cat_is_comm(m, c) ? (int64_t)(uint32_t)m->chash[c - 1] : -1;
}

/* The community most of the nearest neighbours of item i (without one)
 * are in, by the sum of their scores; 1 if it joined one. */
static int
comm_join(struct model *m, uint64_t i)
{
	const struct model_list *L = &m->nb.v[i];
	uint32_t lab[COMM_VOTERS], nl = 0, n = L->n < COMM_VOTERS ? L->n : COMM_VOTERS, b = 0;
	float sum[COMM_VOTERS];

	for (uint32_t k = 0; k < n; k++) {
		uint32_t c = m->icat[L->l[k].item], j;
		if (!cat_is_comm(m, c))
			continue;
		for (j = 0; j < nl && lab[j] != c; j++)
			;
		if (j == nl) {
			lab[nl] = c;
			sum[nl++] = 0;
		}
		sum[j] += L->l[k].score;
	}
	for (uint32_t j = 1; j < nl; j++)
		if (sum[j] > sum[b])
			b = j;
	if (nl == 0)
		return 0;
	m->icat[i] = lab[b];
	return 1;
}

/* A level of the pass: a weighted graph in CSR form. */
struct cgraph {
	uint32_t n;
	uint64_t *off;
	uint32_t *adj;
	float *w;
	double *k;     /* weighted degree: the weights of the node's edges */
};

static void
cgraph_free(struct cgraph *g)
{
	free(g->off);
	free(g->adj);
	free(g->w);
	free(g->k);
}

/*
 * Local moves: each node, in turn, moves to the community of a neighbour
 * where the modularity gains most (ties keep it where it is), until a
 * sweep moves few. cm gets the communities, numbered from 0 in the order
 * of their first node; their number is returned. wc, mark and seen are
 * scratch arrays of g->n.
 */
static uint32_t
comm_move(const struct cgraph *g, uint32_t *cm, double *tot, double m2,
	  double *wc, uint32_t *mark, uint32_t *seen)
{
	uint32_t n = g->n, K = 0;

	for (uint32_t v = 0; v < n; v++) {
		cm[v] = v;
		tot[v] = g->k[v];
		mark[v] = UINT32_MAX;
	}
	for (int sweep = 0; sweep < COMM_SWEEPS; sweep++) {
		uint32_t moved = 0;
		for (uint32_t v = 0; v < n; v++) {
			uint32_t c0 = cm[v], best = c0, nt = 0;
			double kv = g->k[v], bg;
			for (uint64_t e = g->off[v]; e < g->off[v + 1]; e++) {
				uint32_t u = g->adj[e], c = cm[u];
				if (u == v)
					continue;
				if (mark[c] != v) {
					mark[c] = v;
					wc[c] = 0;
					seen[nt++] = c;
				}
				wc[c] += g->w[e];
			}
			tot[c0] -= kv;
			bg = (mark[c0] == v ? wc[c0] : 0) - kv * tot[c0] / m2;
			for (uint32_t t = 0; t < nt; t++) {
				uint32_t c = seen[t];
				double gain = wc[c] - kv * tot[c] / m2;
				if (gain > bg) {
					bg = gain;
					best = c;
				}
			}
			tot[best] += kv;
			cm[v] = best;
			moved += best != c0;
		}
		if (moved <= n / 256)
			break;
	}
	/* Number the communities in the order of their first node. */
	for (uint32_t v = 0; v < n; v++)
		mark[v] = UINT32_MAX;
	for (uint32_t v = 0; v < n; v++) {
		uint32_t c = cm[v];
		if (mark[c] == UINT32_MAX)
			mark[c] = K++;
		cm[v] = mark[c];
	}
	return K;
}

/* The graph of g's K communities (cm): an edge between two of them
 * weighs what the edges between their nodes do, one from a community
 * to itself what those inside it do. */
static void
comm_aggregate(const struct cgraph *g, const uint32_t *cm, uint32_t K,
	       struct cgraph *h, double *wc, uint32_t *mark, uint32_t *seen)
{
	uint32_t *first = xcalloc((size_t)K + 1, sizeof *first);
	uint32_t *order = xreallocarray(NULL, g->n ? g->n : 1, sizeof *order);
	uint64_t ne = 0;

	/* The nodes of each community, in node order. */
	for (uint32_t v = 0; v < g->n; v++)
		first[cm[v] + 1]++;
	for (uint32_t c = 0; c < K; c++)
		first[c + 1] += first[c];
	for (uint32_t v = 0; v < g->n; v++)
		order[first[cm[v]]++] = v;
	for (uint32_t c = K; c > 0; c--)
		first[c] = first[c - 1];
	first[0] = 0;

	h->n = K;
	h->off = xreallocarray(NULL, (size_t)K + 1, sizeof *h->off);
	/* Room as the edges come: fewer than g's, as a rule far fewer. */
	uint64_t cap = 4 * (uint64_t)K + 64;
	h->adj = xreallocarray(NULL, cap, sizeof *h->adj);
	h->w = xreallocarray(NULL, cap, sizeof *h->w);
	h->k = xcalloc(K ? K : 1, sizeof *h->k);
	for (uint32_t c = 0; c < K; c++)
		mark[c] = UINT32_MAX;
	for (uint32_t c = 0; c < K; c++) {
		uint32_t nt = 0;
		h->off[c] = ne;
		for (uint32_t r = first[c]; r < first[c + 1]; r++) {
			uint32_t v = order[r];
			h->k[c] += g->k[v];
			for (uint64_t e = g->off[v]; e < g->off[v + 1]; e++) {
				uint32_t d = cm[g->adj[e]];
				if (mark[d] != c) {
					mark[d] = c;
					wc[d] = 0;
					seen[nt++] = d;
				}
				wc[d] += g->w[e];
			}
		}
		if (ne + nt > cap) {
			while (ne + nt > cap)
				cap *= 2;
			h->adj = xreallocarray(h->adj, cap, sizeof *h->adj);
			h->w = xreallocarray(h->w, cap, sizeof *h->w);
		}
		for (uint32_t t = 0; t < nt; t++) {
			h->adj[ne] = seen[t];
			h->w[ne++] = (float)wc[seen[t]];
		}
	}
	h->off[K] = ne;
	free(first);
	free(order);
}

/* The graph of the pass's first level: the items without a category
 * that have neighbours (node v is item it[v]; nd maps back), each with
 * edges to its first COMM_EDGES neighbours that are nodes too. Returns
 * the sum of the weights. */
static double
comm_graph(const struct model *m, struct cgraph *g, uint32_t **itp, uint32_t *nd)
{
	uint64_t ni = m->nitems, ne = 0;
	uint32_t n = 0, *it;
	double m2 = 0;

	for (uint64_t i = 0; i < ni; i++) {
		uint32_t c = m->nb.v[i].n;
		nd[i] = UINT32_MAX;
		if (c && (!m->icat[i] || cat_is_comm(m, m->icat[i]))) {
			nd[i] = n++;
			ne += c < COMM_EDGES ? c : COMM_EDGES;
		}
	}
	*itp = it = xreallocarray(NULL, n ? n : 1, sizeof *it);
	g->n = n;
	g->off = xreallocarray(NULL, (size_t)n + 1, sizeof *g->off);
	g->adj = xreallocarray(NULL, ne ? ne : 1, sizeof *g->adj);
	g->w = xreallocarray(NULL, ne ? ne : 1, sizeof *g->w);
	g->k = xcalloc(n ? n : 1, sizeof *g->k);
	for (uint64_t i = 0; i < ni; i++)
		if (nd[i] != UINT32_MAX)
			it[nd[i]] = (uint32_t)i;
	ne = 0;
	for (uint32_t v = 0; v < n; v++) {
		const struct model_list *L = &m->nb.v[it[v]];
		g->off[v] = ne;
		for (uint32_t k = 0; k < L->n && k < COMM_EDGES; k++) {
			uint32_t u = nd[L->l[k].item];
			if (u == UINT32_MAX || !(L->l[k].score > 0))
				continue;
			g->adj[ne] = u;
			g->w[ne++] = L->l[k].score;
			g->k[v] += L->l[k].score;
		}
		m2 += g->k[v];
	}
	g->off[n] = ne;
	return m2;
}

/* Louvain's levels over g (which it frees): lab gets each node's
 * community, numbered from 0; their number is returned. */
static uint32_t
comm_louvain(struct cgraph *g, double m2, uint32_t *lab)
{
	uint32_t n = g->n, K = n, sz = n ? n : 1;
	uint32_t *cm = xreallocarray(NULL, sz, sizeof *cm);
	uint32_t *mark = xreallocarray(NULL, sz, sizeof *mark);
	uint32_t *seen = xreallocarray(NULL, sz, sizeof *seen);
	double *tot = xreallocarray(NULL, sz, sizeof *tot);
	double *wc = xreallocarray(NULL, sz, sizeof *wc);
	struct cgraph h;

	for (uint32_t v = 0; v < n; v++)
		lab[v] = v;
	for (int level = 0; level < COMM_LEVELS && m2 > 0; level++) {
		K = comm_move(g, cm, tot, m2, wc, mark, seen);
		for (uint32_t v = 0; v < n; v++)
			lab[v] = cm[lab[v]];
		if (K == g->n)
			break;
		comm_aggregate(g, cm, K, &h, wc, mark, seen);
		cgraph_free(g);
		*g = h;
	}
	cgraph_free(g);
	free(cm);
	free(mark);
	free(seen);
	free(tot);
	free(wc);
	return K;
}

/*
 * The category numbers (index + 1) of the K communities of the n nodes
 * (lab; node v is item it[v]) in key: largest first, each the number
 * most of its items had, if no larger community took it; those left
 * take the numbers of communities no one keeps, then new ones. A
 * community of one item is none (0).
 */
static void
comm_keys(struct model *m, const uint32_t *it, const uint32_t *lab, uint32_t n,
	  uint32_t K, uint32_t *key)
{
	uint32_t sz = K ? K : 1, maxs = 0;
	uint32_t *size = xcalloc(sz, sizeof *size);
	uint32_t *first = xcalloc((size_t)K + 1, sizeof *first);
	uint32_t *order = xreallocarray(NULL, n ? n : 1, sizeof *order);
	uint32_t *bysize = xreallocarray(NULL, sz, sizeof *bysize);
	uint64_t nc = m->ncats, freec = 0;
	uint32_t *votes = xcalloc(nc ? nc : 1, sizeof *votes);
	uint8_t *taken = xcalloc(nc ? nc : 1, 1);

	/* The nodes of each community, in node order. */
	for (uint32_t v = 0; v < n; v++)
		size[lab[v]]++;
	for (uint32_t c = 0; c < K; c++) {
		first[c + 1] = first[c] + size[c];
		if (size[c] > maxs)
			maxs = size[c];
	}
	for (uint32_t v = 0; v < n; v++)
		order[first[lab[v]]++] = v;
	for (uint32_t c = K; c > 0; c--)
		first[c] = first[c - 1];
	first[0] = 0;
	/* The communities by size, largest first, in a stable counting
	 * sort. */
	uint32_t *cnt = xcalloc((size_t)maxs + 2, sizeof *cnt);
	for (uint32_t c = 0; c < K; c++)
		cnt[maxs - size[c] + 1]++;
	for (uint32_t s = 0; s <= maxs; s++)
		cnt[s + 1] += cnt[s];
	for (uint32_t c = 0; c < K; c++)
		bysize[cnt[maxs - size[c]]++] = c;
	free(cnt);

	for (uint32_t r = 0; r < K; r++) {
		uint32_t c = bysize[r], best = 0, bv = 0;
		key[c] = 0;
		if (size[c] < 2)
			continue;
		for (uint32_t q = first[c]; q < first[c + 1]; q++) {
			uint32_t o = m->icat[it[order[q]]];
			if (cat_is_comm(m, o) && !taken[o - 1] &&
			    (++votes[o - 1] > bv || (votes[o - 1] == bv && o < best))) {
				bv = votes[o - 1];
				best = o;
			}
		}
		for (uint32_t q = first[c]; q < first[c + 1]; q++) {
			uint32_t o = m->icat[it[order[q]]];
			if (o)
				votes[o - 1] = 0;
		}
		if ((key[c] = best) != 0)
			taken[best - 1] = 1;
	}
	for (uint32_t r = 0; r < K; r++) {
		uint32_t c = bysize[r];
		if (size[c] < 2 || key[c])
			continue;
		while (freec < nc && (taken[freec] || !cat_is_comm(m, (uint32_t)freec + 1)))
			freec++;
		if (freec < nc)
			taken[freec] = 1, key[c] = (uint32_t)freec + 1;
		else
			key[c] = cat_key(m, COMM_TAG << 32 | m->ncomm++);
	}
	free(size);
	free(first);
	free(order);
	free(bysize);
	free(votes);
	free(taken);
}

/* Find the communities of the items without a category anew. */
static void
comm_pass(struct model *m)
{
	uint64_t ni = m->nitems;
	uint32_t *nd = xreallocarray(NULL, ni ? ni : 1, sizeof *nd), *it;
	struct cgraph g = { 0 };
	double m2 = comm_graph(m, &g, &it, nd);
	uint32_t n = g.n;
	uint64_t ne = g.off[n];
	uint32_t *lab = xreallocarray(NULL, n ? n : 1, sizeof *lab);
	uint32_t K = comm_louvain(&g, m2, lab);
	uint32_t *key = xreallocarray(NULL, K ? K : 1, sizeof *key);

	comm_keys(m, it, lab, n, K, key);
	/* The items take their communities' numbers, those without
	 * neighbours none; the communities' lists are made anew. */
	for (uint64_t i = 0; i < ni; i++)
		if (nd[i] == UINT32_MAX && cat_is_comm(m, m->icat[i]))
			m->icat[i] = 0;
	for (uint32_t v = 0; v < n; v++)
		m->icat[it[v]] = key[lab[v]];
	for (uint64_t c = 0; c < m->ncats; c++)
		if (cat_is_comm(m, (uint32_t)c + 1))
			m->cln[c] = 0;
	for (uint32_t v = 0; v < n; v++)
		if (m->icat[it[v]])
			cat_touch(m, it[v]);
	free(key);
	free(lab);
	free(it);
	free(nd);

	/* The next pass: when the events learned have doubled, or
	 * COMM_EVERY more, but at least COMM_COST events for each edge. */
	uint64_t l = m->st.learned, gap = l < COMM_EVERY ? l : COMM_EVERY;
	if (gap < COMM_FIRST)
		gap = COMM_FIRST;
	if (gap < COMM_COST * ne)
		gap = COMM_COST * ne;
	m->st.comm_next = l + gap;
	m->st.comm_passes++;
}

/* The rows of user u and item i, a cache miss in each of a dozen arrays,
 * and the block of pair pk in the seen set: asked for at once, so that
 * the misses overlap. */
static inline void
prefetch_rows(const struct model *m, uint64_t u, uint64_t i, uint64_t pk)
{
	__builtin_prefetch(&m->icount[i], 1);
	__builtin_prefetch(&m->ipop[i], 1);
	__builtin_prefetch(&m->ishort[i], 1);
	__builtin_prefetch(&m->its[i], 1);
	__builtin_prefetch(&m->icat[i], 1);
	__builtin_prefetch(&m->ibrand[i], 1);
	__builtin_prefetch(&m->nb.v[i], 1);
	__builtin_prefetch(&m->sq.v[i], 1);
	__builtin_prefetch(m->top[0].pos + i, 1);
	__builtin_prefetch(m->top[1].pos + i, 1);
	for (uint32_t b = 0; b < m->stride; b += MODEL_ROW)
		__builtin_prefetch(m->ifac + i * m->stride + b, 1);
	__builtin_prefetch(m->ufac16 + u * m->stride, 1);
	__builtin_prefetch(&m->uts[u], 1);
	__builtin_prefetch(&m->uskey[u], 1);
	__builtin_prefetch(&m->unrec[u], 1);
	__builtin_prefetch(&m->unsess[u], 1);
	__builtin_prefetch(m->urec + u * m->p.recent, 1);
	if (m->seen_cap)
		__builtin_prefetch(&m->seenb[(pk & (m->seen_cap - 1)) / SEEN_BLK]);
	if (m->sknn)
		sknn_prefetch(m->sknn, (uint32_t)i);
}

/* ---- the (user, item) pairs seen ---- */

#define SEEN_PROBE 32

/* The key of the pair of the user and item ids' hashes: never 0. */
uint64_t
model_pair_key(uint64_t uh, uint64_t ih)
{
	uint64_t k = uh * 0x9e3779b97f4a7c15ULL ^ (ih + 0x632be59bd9b4e019ULL);

	k ^= k >> 31;
	k *= 0xbf58476d1ce4e5b9ULL;
	k ^= k >> 29;
	return k | 1;
}

/*
 * A trainable model keeps the slots of the seen set in blocks of
 * SEEN_BLK: a bit per slot in use, and the keys of those slots, in slot
 * order, in an array of the block's own with room for a multiple of 4.
 * The snapshot holds the slots as they are (reco-model(5)), at most half
 * of them in use; in memory an empty slot costs a bit instead of 8
 * bytes, and a key only what its slot does not tell: a key lies at most
 * SEEN_PROBE - 1 slots past its home slot (its low bits), so the key
 * shifted down by the bits of the capacity and the distance from its
 * home (5 bits) give it back, in 6 bytes at 2^21 slots and more, in 7
 * from 2^13 (seen_width). A mapped model reads the snapshot's slots
 * (m->seen).
 */

/* The shape of a seen set's blocks: 2^bits slots, keys of w bytes (8:
 * the keys as they are, less: their quotients). */
struct seen_shape {
	unsigned bits, w;
};

/* The shape of a set of cap slots (a power of two). */
static struct seen_shape
seen_shape(uint64_t cap)
{
	struct seen_shape sh = { 0, 8 };

	while (sh.bits < 63 && (1ULL << sh.bits) < cap)
		sh.bits++;
	/* 64 - bits of quotient and 5 of distance, in whole bytes. */
	if (sh.bits >= 13)
		sh.w = (64 - sh.bits + 5 + 7) / 8;
	return sh;
}

/* The w bytes at p as a number, little-endian; constant sizes of
 * memcpy become single loads. */
static inline uint64_t
rec_get(const unsigned char *p, unsigned w)
{
	uint64_t x = 0;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	switch (w) {
	case 5: memcpy(&x, p, 5); return x;
	case 6: memcpy(&x, p, 6); return x;
	case 7: memcpy(&x, p, 7); return x;
	case 8: memcpy(&x, p, 8); return x;
	}
#endif
	for (unsigned c = w; c-- > 0;)
		x = x << 8 | p[c];
	return x;
}

/* Key k of block b (its k-th slot in use), which is in slot j. */
static inline uint64_t
seen_get(const struct model_blk *b, struct seen_shape sh, uint64_t j,
	 unsigned k)
{
	uint64_t x = rec_get(b->a + (size_t)k * sh.w, sh.w);

	if (sh.w == 8)
		return x;
	uint64_t mask = (1ULL << sh.bits) - 1;
	return (x >> 5) << sh.bits | ((j - (x & 31)) & mask);
}

/* Whether key v can be kept in slot j of a set of shape sh. */
static inline int
seen_fits(struct seen_shape sh, uint64_t j, uint64_t v)
{
	return sh.w == 8 || ((j - v) & ((1ULL << sh.bits) - 1)) < SEEN_PROBE;
}

/* The key in slot j, 0 if it is empty. */
static inline uint64_t
seen_at(const struct model *m, uint64_t j)
{
	if (!m->seenb)
		return m->seen[j];
	const struct model_blk *b = &m->seenb[j / SEEN_BLK];
	uint64_t bit = 1ULL << (j % SEEN_BLK);
	struct seen_shape sh = { m->seen_bits, m->seen_w };
	return b->occ & bit ? seen_get(b, sh, j, popcount64(b->occ & (bit - 1))) : 0;
}

/* Slot j of the blocks bl, of shape sh, holds key v (not 0, and
 * seen_fits) from now on. */
static inline void
seen_store(struct model_blk *bl, struct seen_shape sh, uint64_t *room,
	   uint64_t j, uint64_t v)
{
	unsigned char *p = blk_put(&bl[j / SEEN_BLK], j % SEEN_BLK, sh.w, room);
	uint64_t x = v;

	if (sh.w < 8)
		x = (v >> sh.bits) << 5 | ((j - v) & ((1ULL << sh.bits) - 1));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	if (sh.w == 6) {
		memcpy(p, &x, 6);
		return;
	}
#endif
	for (unsigned c = 0; c < sh.w; c++, x >>= 8)
		p[c] = (unsigned char)x;
}

static void
seen_free(struct model *m)
{
	for (uint64_t b = 0; m->seenb && b < seen_nblk(m->seen_cap); b++)
		free(m->seenb[b].a);
	free(m->seenb);
	m->seenb = NULL;
	m->seen_room = 0;
}

/* Whether the pair key is in the seen set; if not, *empty (if not NULL)
 * is the number of probes to the first empty slot of its neighbourhood,
 * SEEN_PROBE if it has none. */
static int
seen_find(const struct model *m, uint64_t key, uint64_t *empty)
{
	uint64_t k, mask = m->seen_cap - 1;

	if (m->seenb && m->seen_cap >= SEEN_BLK) {
		/* The probe walks the slots of a block in order, and so its
		 * keys: one rank a block; what is in the slot k places past
		 * the key's home is, if it is the key, the key's quotient and
		 * k. */
		struct seen_shape sh = { m->seen_bits, m->seen_w };
		uint64_t q = sh.w < 8 ? (key >> sh.bits) << 5 : key;
		for (k = 0; k < SEEN_PROBE;) {
			uint64_t j = (key + k) & mask;
			const struct model_blk *b = &m->seenb[j / SEEN_BLK];
			unsigned s = (unsigned)(j % SEEN_BLK);
			const unsigned char *p = b->a + (size_t)popcount64(b->occ & ((1ULL << s) - 1)) * sh.w;
			for (; s < SEEN_BLK && k < SEEN_PROBE; s++, k++, p += sh.w) {
				if (!(b->occ >> s & 1))
					goto out;
				if (rec_get(p, sh.w) == (sh.w < 8 ? q | k : key))
					return 1;
			}
		}
	} else {
		for (k = 0; k < SEEN_PROBE; k++) {
			uint64_t v = seen_at(m, (key + k) & mask);
			if (v == key)
				return 1;
			if (v == 0)
				break;
		}
	}
out:
	if (empty)
		*empty = k;
	return 0;
}

/* Whether the pair key is in the seen set. */
int
model_seen_has(const struct model *m, uint64_t key)
{
	return m->seen_cap ? seen_find(m, key, NULL) : 0;
}

/* The seen set in cap slots (a power of two), its keys
 * put in again in the order of their old slots. */
static void
seen_grow(struct model *m, uint64_t cap)
{
	struct model_blk *old = m->seenb;
	struct seen_shape osh = { m->seen_bits, m->seen_w }, sh = seen_shape(cap);
	uint64_t ocap = m->seen_cap, room = 0;

	m->seenb = xcalloc(seen_nblk(cap), sizeof *m->seenb);
	m->seen_n = 0;
	for (uint64_t ob = 0; ob < seen_nblk(ocap); ob++) {
		unsigned r = 0;
		for (unsigned s = 0; s < SEEN_BLK; s++) {
			if (!(old[ob].occ >> s & 1))
				continue;
			uint64_t v = seen_get(&old[ob], osh, ob * SEEN_BLK + s, r++);
			for (uint64_t j = 0; j < SEEN_PROBE; j++) {
				uint64_t at = (v + j) & (cap - 1);
				if (!(m->seenb[at / SEEN_BLK].occ >> (at % SEEN_BLK) & 1)) {
					seen_store(m->seenb, sh, &room, at, v);
					m->seen_n++;
					break;
				}
			}
		}
		/* The old block goes as soon as it is read, so that the
		 * two tables are never whole together. */
		free(old[ob].a);
	}
	free(old);
	m->seen_cap = cap;
	m->seen_room = room;
	m->seen_bits = sh.bits;
	m->seen_w = sh.w;
}

/* Add the pair key; return 1 if it was there already. At --seen-max, a
 * new pair takes the place of an old one of its neighbourhood. */
static int
seen_add(struct model *m, uint64_t key)
{
	uint64_t k = SEEN_PROBE;

	if (m->p.seen_max == 0)
		return 0;
	if (m->seen_cap && seen_find(m, key, &k))
		return 1;
	/* The new pair goes to the first empty slot of its neighbourhood,
	 * which the search has found unless the set grows. */
	if (m->seen_n * 2 >= m->seen_cap && m->seen_cap < 2 * m->p.seen_max) {
		seen_grow(m, m->seen_cap ? m->seen_cap * 2 : 1024);
		for (k = 0; k < SEEN_PROBE && seen_at(m, (key + k) & (m->seen_cap - 1)); k++)
			;
	}
	uint64_t mask = m->seen_cap - 1;
	struct seen_shape sh = { m->seen_bits, m->seen_w };
	if (k < SEEN_PROBE && m->seen_n < m->p.seen_max) {
		seen_store(m->seenb, sh, &m->seen_room, (key + k) & mask, key);
		m->seen_n++;
		return 0;
	}
	seen_store(m->seenb, sh, &m->seen_room, (key + (key >> 59) % SEEN_PROBE) & mask, key);
	m->st.seen_evicted++;
	return 0;
}

/*
 * Whether recommendations leave out everything the user has seen: the
 * policy, or under auto, the stream's own answer: once 1000 events of
 * users with a history have been learned, fewer than 1 in 50 of them
 * came back to an item the user had seen before (rating-like data, where
 * a seen item is a wasted place).
 */
int
model_exclude_seen(const struct model *m)
{
	if (m->p.exclude_seen == MODEL_SEEN_ALL)
		return 1;
	if (m->p.exclude_seen != MODEL_SEEN_AUTO || m->st.repeat_asked < 1000)
		return 0;
	return m->st.repeat_events * 50 < m->st.repeat_asked;
}

/* The starting blend, before the stream has taught it anything. */
void
model_blend_default(struct model_blend *b)
{
	struct rank_weights w;

	_Static_assert(sizeof w.w == sizeof b->w, "the blend is rank.h's weights");
	memset(b, 0, sizeof *b);
	rank_weights_hybrid(&w);
	memcpy(b->w, w.w, sizeof b->w);
}

/* ---- learning ---- */

#define TS_LIMIT (1LL << 52)

/* The user of id (h its hash64), added if new (*isnew set). */
static uint64_t
find_or_add_user(struct model *m, const struct str *id, uint64_t h, int *isnew)
{
	int64_t e = index_get(&m->ui, m->uoff, m->ubytes, h, id->p, id->n);

	*isnew = 0;
	if (e >= 0)
		return (uint64_t)e;
	if (m->nusers >= m->p.max_users)
		evict_users(m);
	grow_users(m, m->nusers + 1);
	uint32_t *slot = index_add(&m->ui, m->uoff, m->ubytes, m->nusers, h, id->p, id->n);
	uint64_t u = m->nusers++;
	ids_add(&m->uoff, &m->ubytes, &m->ubytes_n, &m->ubytes_cap, u, id->p,
		id->n);
	*slot = (uint32_t)(u + 1);
	init_row(m, m->urow);
	narrow_row(m->urow, m->ufac16 + u * m->stride, m->stride);
	m->uts[u] = 0;
	m->uskey[u] = 0;
	m->unrec[u] = m->unsess[u] = 0;
	m->st.users_added++;
	*isnew = 1;
	return u;
}

static uint64_t
find_or_add_item(struct model *m, const struct str *id, uint64_t h, int *isnew)
{
	int64_t e = index_get(&m->ii, m->ioff, m->ibytes, h, id->p, id->n);

	*isnew = 0;
	if (e >= 0)
		return (uint64_t)e;
	if (m->nitems >= m->p.max_items)
		evict_items(m);
	grow_items(m, m->nitems + 1);
	uint32_t *slot = index_add(&m->ii, m->ioff, m->ibytes, m->nitems, h, id->p, id->n);
	uint64_t i = m->nitems++;
	ids_add(&m->ioff, &m->ibytes, &m->ibytes_n, &m->ibytes_cap, i, id->p,
		id->n);
	*slot = (uint32_t)(i + 1);
	init_row(m, m->ifac + i * m->stride);
	m->icount[i] = m->ipop[i] = m->ishort[i] = 0;
	memset(&m->nb.v[i], 0, sizeof m->nb.v[i]);
	memset(&m->sq.v[i], 0, sizeof m->sq.v[i]);
	m->st.items_added++;
	*isnew = 1;
	return i;
}

/*
 * Learn one event: popularity, co-occurrence with the user's recent items
 * of the same session, and a matrix-factorisation step. Events without an
 * item, and of types whose weight is 0, are counted and left out. Return 1
 * if the event was learned, 0 if not.
 */
int
model_learn(struct model *m, const struct event *ev)
{
	float w = ev->type >= 0 && ev->type < ET_NTYPES ? m->p.type_w[ev->type] : 0;
	int unew, inew;

	m->st.events++;
	if (!(ev->has & EV_ITEM) || ev->item.n == 0) {
		m->st.ignored_item++;
		return 0;
	}
	if (!(w > 0)) {
		m->st.ignored_type++;
		return 0;
	}
	/* Times past 140000 years from 1970 are taken as that far, so that
	 * differences of times never overflow. */
	int64_t ts = ev->ts > TS_LIMIT ? TS_LIMIT : ev->ts < -TS_LIMIT ? -TS_LIMIT : ev->ts;
	m->st.learned++;
	m->version++;
	advance(m, ts);
	uint64_t seq = m->st.learned;
	uint64_t uh = hash64(ev->user.p, ev->user.n, MODEL_ID_SEED);
	uint64_t ih = hash64(ev->item.p, ev->item.n, MODEL_ID_SEED);
	uint64_t u = find_or_add_user(m, &ev->user, uh, &unew);
	uint64_t i = find_or_add_item(m, &ev->item, ih, &inew);

	/* Test, then train: before the model learns the event, the blend
	 * learns from where its item stood among the candidates, and the
	 * stream tells how often users come back to what they have seen (the
	 * events reco-eval evaluates: a user with a history, an item other
	 * than the last one). */
	uint64_t pk = model_pair_key(uh, ih);
	prefetch_rows(m, u, i, pk);
	if (!unew && !inew && m->unrec[u] > 0 && m->urec[u * m->p.recent] != i) {
		m->st.repeat_asked++;
		m->st.repeat_events += (uint64_t)model_seen_has(m, pk);
		/* The blend learns from an event when the work so far, this
		 * one's included (passes over the items for the factors,
		 * trending and popularity, and the lists of the others),
		 * stays within the budget: every event while
		 * the catalogue is small, fewer as it grows, so that learning
		 * costs a bounded share of the time whatever the catalogue. */
		uint64_t cost = 3 * m->nitems + 16384;
		if (m->p.blend_budget &&
		    m->st.blend_work + cost <= MODEL_BLEND_WARM +
			    m->st.learned * (uint64_t)m->p.blend_budget) {
			m->st.blend_work += cost;
			rank_learn(m, u, (uint32_t)i, uh);
		}
	}
	seen_add(m, pk);

	/* Popularity. */
	m->icount[i] += w;
	m->ipop[i] += (float)(w * fwd(m, ts, m->p.pop_half_life));
	top_touch(m, (uint32_t)i);
	m->ishort[i] += (float)(w * fwd(m, ts, m->p.trend_half_life));
	if (!m->icat[i] || cat_is_comm(m, m->icat[i])) {
		/* A category the events name takes the place of a
		 * community. */
		uint32_t c = cat_of(m, ev);
		if (c) {
			if (m->icat[i])
				cat_remove(m, i, m->icat[i]);
			m->icat[i] = c;
		}
	}
	if (!m->ibrand[i])
		m->ibrand[i] = brand_of(m, ev);
	cat_touch(m, i);

	/* Sessions: an id when the event has one, else a gap in time. */
	uint64_t sess = 0;
	int same;
	if ((ev->has & EV_SESSION) && ev->session.n) {
		sess = hash64(ev->session.p, ev->session.n, MODEL_ID_SEED) | 1;
		/* The same session id: the key made of it, with bit 0 set. */
		same = !unew && (m->uskey[u] & 1) &&
		       m->uskey[u] == model_pair_key(uh, sess);
	} else
		same = !unew && !(m->uskey[u] & 1) &&
		       (ts >= m->uts[u] ? ts - m->uts[u] : m->uts[u] - ts) <=
			       m->p.session_gap;
	if (!same) {
		m->unsess[u] = 0;
		/* A session's key in the session index: the user's and the
		 * session's id, or the number of its first event. */
		uint64_t key = model_pair_key(uh, sess ? sess : seq);
		m->uskey[u] = sess ? key : key & ~(uint64_t)1;
	}
	if (m->sknn)
		sknn_add(m->sknn, model_user_skey(m, u), (uint32_t)i, ts);

	/* Co-occurrence with the current session's recent items, nearer ones more. */
	uint32_t *rec = m->urec + u * m->p.recent;
	double cw = w * fwd(m, ts, m->p.cooc_half_life);
	/* Their lists are cache misses: the heads, then the whole lists,
	 * are asked for before the first update (an update reads the tags,
	 * the entry and the entries it passes, wherever they are). */
	for (uint32_t k = 0; k < m->unsess[u]; k++) {
		__builtin_prefetch(&m->nb.v[rec[k]]);
		__builtin_prefetch(&m->sq.v[rec[k]]);
	}
	for (uint32_t k = 0; k < m->unsess[u]; k++) {
		const struct model_list *a = &m->nb.v[rec[k]], *b = &m->sq.v[rec[k]];
		if (a->l)
			__builtin_prefetch(nb_tags(a->l, a->room));
		if (b->l)
			__builtin_prefetch(nb_tags(b->l, b->room));
		for (uint32_t x = 0; a->l && x < a->room * NB_BYTES; x += 64)
			__builtin_prefetch((char *)a->l + x);
		for (uint32_t x = 0; b->l && x < b->room * NB_BYTES; x += 64)
			__builtin_prefetch((char *)b->l + x);
	}
	for (uint32_t k = 0; k < m->unsess[u]; k++) {
		uint32_t j = rec[k];
		if (j == i)
			continue;
		float inc = (float)(cw / (k + 1));
		nb_add(m, &m->nb, i, j, inc);
		nb_add(m, &m->nb, j, (uint32_t)i, inc);
		/* j came before i: i is a successor of j, the nearer the
		 * more (1/d^2: the item right after counts four times the
		 * one after it, where co-occurrence counts it twice). */
		nb_add(m, &m->sq, j, (uint32_t)i,
		       (float)(cw / ((k + 1) * (k + 1))));
		m->st.cooc_pairs++;
	}
	if (!m->icat[i] && m->p.cat_items && comm_join(m, i))
		cat_touch(m, i);
	/* i moves to the front of the recent items. */
	uint32_t n = m->unrec[u], ns = m->unsess[u], k;
	for (k = 0; k < n && rec[k] != i; k++)
		;
	if (k < n) {
		memmove(rec + 1, rec, k * sizeof *rec);
		if (k >= ns && ns < m->p.recent)
			ns++;
	} else {
		if (n < m->p.recent)
			n++;
		memmove(rec + 1, rec, (n - 1) * sizeof *rec);
		if (ns < m->p.recent)
			ns++;
	}
	rec[0] = (uint32_t)i;
	m->unrec[u] = (uint8_t)n;
	m->unsess[u] = (uint8_t)ns;

	mf_update(m, u, i, w);
	if (comm_due(m))
		comm_pass(m);
	if (pool_sparse(&m->nbpool))
		lists_compact(m);

	if (ts > m->uts[u] || unew)
		m->uts[u] = ts;
	if (ts > m->its[i] || inew)
		m->its[i] = ts;
	if (m->logging) {
		if (m->nlog == m->log_cap) {
			m->log_cap = m->log_cap ? m->log_cap * 2 : 4096;
			m->log = xreallocarray(m->log, m->log_cap, sizeof *m->log);
		}
		m->log[m->nlog].user = (uint32_t)u;
		m->log[m->nlog].item = (uint32_t)i;
		m->log[m->nlog++].w = w;
	}
	return 1;
}

/* Keep the (user, item, weight) of each event learned from now on, for
 * model_epoch. */
void
model_log_start(struct model *m)
{
	m->logging = 1;
}

/*
 * One more matrix-factorisation pass over the logged events, in an order
 * shuffled by the model's random sequence (the same for the same seed and
 * input). Popularity and co-occurrence are counts: a pass over the same
 * events again would only inflate them, so they are left as they are.
 */
void
model_epoch(struct model *m)
{
	for (size_t k = m->nlog; k > 1; k--) {
		size_t j = (size_t)rng_below(&m->rng, k);
		struct model_logent t = m->log[k - 1];
		m->log[k - 1] = m->log[j];
		m->log[j] = t;
	}
	for (size_t k = 0; k < m->nlog; k++) {
		const struct model_logent *e = &m->log[k];
		if (e->user != UINT32_MAX && e->item != UINT32_MAX)
			mf_update(m, e->user, e->item, e->w);
	}
	m->st.epochs++;
	m->version++;
}

/*
 * Resuming: apply the parameters of the command line cmd to the loaded
 * model m (see model_params_merge), carrying the state over to them: the
 * decayed counts are brought to the clock under the old half-lives before
 * the new ones apply, and the forgetting steps are counted in the new
 * unit. Return 0, or -1 with the conflict in err (m unchanged).
 */
int
model_retune(struct model *m, const struct model_params *cmd, char *err,
	     size_t errlen)
{
	struct model_params p = m->p;

	if (model_params_merge(&p, cmd, err, errlen))
		return -1;
	if (m->have_clock && (p.pop_half_life != m->p.pop_half_life ||
			      p.trend_half_life != m->p.trend_half_life ||
			      p.cooc_half_life != m->p.cooc_half_life))
		rebase(m);
	if (m->sknn && sknn_retune(m->sknn, &p.sk, err, errlen))
		return -1;
	m->p = p;
	if (m->have_clock && m->p.forget)
		m->tick = floor_div(m->clock, tick_len(m));
	return 0;
}

/* ---- lookups ---- */

/* The entry of id in a table of n ids, by the snapshot's index h of a
 * mapped model, else by the index x of a trainable one; -1 if none. */
static int64_t
find(const struct model *m, const struct htab *h, const struct model_index *x,
     const uint64_t *off, const char *bytes, uint64_t n, const char *id,
     size_t len)
{
	uint64_t key = hash64(id, len, MODEL_ID_SEED);
	int64_t e;

	if (m->mapped) {
		const uint32_t *v = htab_get(h, key);
		e = v ? (int64_t)*v : -1;
	} else
		e = index_get(x, off, bytes, key, id, len);
	if (e < 0 || (uint64_t)e >= n || off[e + 1] - off[e] != len ||
	    memcmp(bytes + off[e], id, len) != 0)
		return -1;
	return e;
}

/* The index of item id (len bytes), or -1 if the model does not know it. */
int64_t
model_item_find(const struct model *m, const char *id, size_t len)
{
	return find(m, &m->iidx, &m->ii, m->ioff, m->ibytes, m->nitems, id, len);
}

/* The index of user id (len bytes), or -1. */
int64_t
model_user_find(const struct model *m, const char *id, size_t len)
{
	return find(m, &m->uidx, &m->ui, m->uoff, m->ubytes, m->nusers, id, len);
}

/* The id of item i; it points into the model. */
struct str
model_item_id(const struct model *m, uint64_t i)
{
	struct str s = { m->ibytes + m->ioff[i], (size_t)(m->ioff[i + 1] - m->ioff[i]) };

	return s;
}

/* The id of user u; it points into the model. */
struct str
model_user_id(const struct model *m, uint64_t u)
{
	struct str s = { m->ubytes + m->uoff[u], (size_t)(m->uoff[u + 1] - m->uoff[u]) };

	return s;
}

/* Copy user u's recent items, newest first, at most max; return how many. */
size_t
model_user_recent(const struct model *m, uint64_t u, uint32_t *out,
		  size_t max)
{
	size_t n = m->unrec[u];

	if (n > max)
		n = max;
	memcpy(out, m->urec + u * m->p.recent, n * sizeof *out);
	return n;
}

/* ---- snapshots ---- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#define MODEL_BIG_ENDIAN 1
#else
#define MODEL_BIG_ENDIAN 0
#endif

/* The sections, in file order. */
enum {
	SEC_ITEM_IDS = 1, SEC_USER_IDS, SEC_ITEM_INDEX, SEC_USER_INDEX,
	SEC_ITEM_FACTORS, SEC_USER_FACTORS, SEC_ITEM_COUNT, SEC_ITEM_POP,
	SEC_ITEM_TREND, SEC_NEIGHBOURS, SEC_ITEM_STATE, SEC_USER_STATE,
	SEC_TRAIN_STATE, SEC_BLEND, SEC_CATEGORIES, SEC_SEEN, SEC_SESSIONS,
	SEC_SEQUENCE, SEC_ITEM_FACTORS8, SEC_ITEM_BRANDS,
	NSEC = SEC_ITEM_BRANDS,
	NSEC_V4 = SEC_SEQUENCE,    /* the sections of versions 2 to 4 */
	NSEC_V5 = SEC_ITEM_FACTORS8
};
static const char *const sec_names[NSEC + 1] = {
	"", "item_ids", "user_ids", "item_index", "user_index",
	"item_factors", "user_factors", "item_count", "item_pop",
	"item_trend", "neighbours", "item_state", "user_state", "train_state",
	"blend", "categories", "seen", "sessions", "sequence", "item_factors8",
	"item_brands"
};
#define BLEND_SIZE 320
#define BLEND_SAMECAT 308 /* the category match's weight */
#define BLEND_SAMEBRAND 312 /* the brand match's weight, version 6 on */
#define HDR_FIXED 256
#define SEC_ENTRY 32
#define HDR_SIZE_OF(n) ((HDR_FIXED + (n) * SEC_ENTRY + MODEL_ALIGN - 1) / MODEL_ALIGN * MODEL_ALIGN)
#define HDR_SIZE HDR_SIZE_OF(NSEC)
#define TRAIN_STATE_SIZE (4 * 8 + 8 + 8 + MODEL_NSTATS * 8)

static uint64_t lsec_header(const struct model *m, unsigned char *h,
			      uint64_t end);
struct sink;
static void lsec_write(const struct model *m, struct sink *s);
static int lsec_check(const unsigned char *map, size_t len, uint64_t *prev,
			uint64_t *off, uint64_t *size);


static void
put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t
get64(const unsigned char *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void
putf(unsigned char *p, float f)
{
	uint32_t v;

	memcpy(&v, &f, 4);
	put32(p, v);
}

static float
getf(const unsigned char *p)
{
	uint32_t v = get32(p);
	float f;

	memcpy(&f, &v, 4);
	return f;
}

/* Where section bytes go: the checksum, and the file (an atomic state
 * file or an output stream) when one is set. */
struct sink {
	struct statew *w;
	struct wout *o;
	uint32_t crc;
	uint64_t n;
};

static void
sink_put(struct sink *s, const void *p, size_t n)
{
	if (n == 0)
		return;
	/* The second pass writes what the first one checksummed. */
	if (!s->w && !s->o)
		s->crc = crc32_any(s->crc, p, n);
	s->n += n;
	if (s->w)
		state_write(s->w, p, n);
	if (s->o)
		wout_write(s->o, p, n);
}

/* sink_put for sknn_blob_emit, which streams the session index. */
static void
sink_emit(void *ctx, const void *p, size_t n)
{
	sink_put(ctx, p, n);
}

/* Little arrays built on the fly (offsets) go through this buffer. */
struct obuf {
	struct sink *s;
	size_t n;
	uint64_t v[1024];
};

static void
obuf_put(struct obuf *o, uint64_t v)
{
	o->v[o->n++] = v;
	if (o->n == sizeof o->v / sizeof o->v[0]) {
		sink_put(o->s, o->v, o->n * 8);
		o->n = 0;
	}
}

static void
obuf_flush(struct obuf *o)
{
	sink_put(o->s, o->v, o->n * 8);
	o->n = 0;
}

/* x as a snapshot's index section: the capacity, the keys, the entries
 * (0 in an empty slot). A trainable model's index is laid out as the
 * section wants it (struct model_index), so it is written as it is. */
static void
index_emit(const struct model_index *x, const uint64_t *off, const char *bytes,
	   struct sink *s, struct obuf *o)
{
	uint32_t v[1024];
	size_t nv = 0;

	obuf_put(o, x->cap);
	for (uint64_t j = 0; j < x->cap; j++)
		obuf_put(o, !x->slot[j] ? 0 : x->key ? x->key[x->slot[j] - 1]
					      : index_key(off, bytes, x->slot[j] - 1));
	obuf_flush(o);
	for (uint64_t j = 0; j < x->cap; j++) {
		v[nv++] = x->slot[j] ? x->slot[j] - 1 : 0;
		if (nv == sizeof v / sizeof v[0] || j + 1 == x->cap) {
			sink_put(s, v, nv * sizeof v[0]);
			nv = 0;
		}
	}
}

static uint64_t
total_nb(const struct model *m, const struct model_lists *L)
{
	uint64_t t = 0;

	for (uint64_t i = 0; i < m->nitems; i++)
		t += L->v[i].l ? L->v[i].n : 0;
	return t;
}

/* The lists of L as a section: n + 1 offsets, then the entries. */
static void
lists_emit(const struct model_lists *L, uint64_t n, struct sink *s,
	   struct obuf *o)
{
	uint64_t t = 0;

	obuf_put(o, 0);
	for (uint64_t i = 0; i < n; i++) {
		t += L->v[i].l ? L->v[i].n : 0;
		obuf_put(o, t);
	}
	obuf_flush(o);
	for (uint64_t i = 0; i < n; i++)
		if (L->v[i].l)
			sink_put(s, L->v[i].l, L->v[i].n * sizeof(struct model_nb));
}

/* Point L into a section of `size` bytes for n items and check it: 0,
 * or -1 if an offset, an item or a score is wrong. */
static int
lists_map(struct model_lists *L, const unsigned char *sec, uint64_t size,
	  uint64_t n, uint32_t max)
{
	if (size < 8 * (n + 1) || (size - 8 * (n + 1)) % 8)
		return -1;
	uint64_t ne = (size - 8 * (n + 1)) / 8;
	L->off = (const uint64_t *)sec;
	L->ent = (const struct model_nb *)(sec + 8 * (n + 1));
	if (L->off[0] != 0 || L->off[n] != ne)
		return -1;
	for (uint64_t i = 0; i < n; i++)
		if (L->off[i + 1] < L->off[i] || L->off[i + 1] - L->off[i] > max)
			return -1;
	for (uint64_t k = 0; k < ne; k++)
		if (L->ent[k].item >= n || !isfinite(L->ent[k].score))
			return -1;
	return 0;
}

/* A trainable copy of the mapped lists V into L. */
static void
lists_copy(struct model *m, struct model_lists *L, const struct model_lists *V,
	   uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		size_t k = (size_t)(V->off[i + 1] - V->off[i]);
		memset(&L->v[i], 0, sizeof L->v[i]);
		if (k == 0)
			continue;
		L->v[i].l = pool_alloc(&m->nbpool, k * NB_BYTES);
		m->nlists++;
		memcpy(L->v[i].l, V->ent + V->off[i], k * sizeof(struct model_nb));
		L->v[i].n = L->v[i].cap = L->v[i].room = (uint16_t)k;
		nb_retag(L->v[i].l, (uint32_t)k, (uint32_t)k);
		m->nbtotal += k;
		m->nbroom += k;
	}
}

static uint64_t
total_cl(const struct model *m)
{
	uint64_t t = 0;

	for (uint64_t c = 0; c < m->ncats; c++)
		t += m->cl[c] ? m->cln[c] : 0;
	return t;
}

/* The bytes of the user_state section of nu users in format version
 * ver: versions before 5 also had the number of each user's last event,
 * version 3 the hash of each user's session id. */
static uint64_t
user_state_size(unsigned ver, uint64_t nu, uint32_t recent)
{
	return (ver < 4 ? 32 : ver < 5 ? 24 : 16) * nu + 4 * nu * recent + 2 * nu;
}

/* The bytes of the item_state section of ni items in format version ver:
 * versions before 5 also had the number of each item's last event. */
static uint64_t
item_state_size(unsigned ver, uint64_t ni)
{
	return (ver < 5 ? 16 : 8) * ni;
}

/* The bytes of the item_factors8 section of ni items at stride floats. */
static uint64_t
q8_size(uint32_t stride, uint64_t ni)
{
	return (ni + MODEL_Q8_BLOCK - 1) / MODEL_Q8_BLOCK * MODEL_Q8_BYTES(stride);
}

/*
 * Block b of m's 8-bit item factors into out (MODEL_Q8_BYTES(stride)
 * bytes): see model.h. The rounding error of a factor is at most half a
 * step, scale / 2; items past the last and rows of zeros are all zero.
 */
void
model_q8_block(const struct model *m, uint64_t b, unsigned char *out)
{
	size_t stride = m->stride;
	int8_t *q = (int8_t *)(void *)out;
	float sc[MODEL_Q8_BLOCK] = { 0 };

	memset(out, 0, MODEL_Q8_BYTES(stride));
	for (unsigned j = 0; j < MODEL_Q8_BLOCK && b * MODEL_Q8_BLOCK + j < m->nitems; j++) {
		const float *row = model_item_vec(m, b * MODEL_Q8_BLOCK + j);
		float top = 0;
		for (size_t k = 0; k < stride; k++)
			if (fabsf(row[k]) > top)
				top = fabsf(row[k]);
		sc[j] = top / 127;
		for (size_t k = 0; sc[j] > 0 && k < stride; k++)
			q[k * MODEL_Q8_BLOCK + j] = (int8_t)lrintf(row[k] / sc[j]);
	}
	memcpy(out + MODEL_Q8_SCALES(stride), sc, sizeof sc);
}

static uint64_t
sec_size(const struct model *m, int id, uint64_t nnb)
{
	uint64_t ni = m->nitems, nu = m->nusers;

	switch (id) {
	case SEC_ITEM_IDS:
		return 8 * (ni + 1) + m->ioff[ni];
	case SEC_USER_IDS:
		return 8 * (nu + 1) + m->uoff[nu];
	case SEC_ITEM_INDEX:
		return 8 + 12 * m->ii.cap;
	case SEC_USER_INDEX:
		return 8 + 12 * m->ui.cap;
	case SEC_ITEM_FACTORS:
		return 4 * ni * m->stride;
	case SEC_USER_FACTORS:
		return 4 * nu * m->stride;
	case SEC_ITEM_COUNT:
	case SEC_ITEM_POP:
	case SEC_ITEM_TREND:
		return 4 * ni;
	case SEC_NEIGHBOURS:
		return 8 * (ni + 1) + 8 * nnb;
	case SEC_SEQUENCE:
		return 8 * (ni + 1) + 8 * total_nb(m, &m->sq);
	case SEC_ITEM_STATE:
		return item_state_size(MODEL_VERSION, ni);
	case SEC_USER_STATE:
		return user_state_size(MODEL_VERSION, nu, m->p.recent);
	case SEC_TRAIN_STATE:
		return TRAIN_STATE_SIZE;
	case SEC_BLEND:
		return BLEND_SIZE;
	case SEC_CATEGORIES:
		return 8 * m->ncats + 8 * (m->ncats + 1) + 8 * total_cl(m) + 4 * ni;
	case SEC_SEEN:
		return 8 * m->seen_cap;
	case SEC_SESSIONS:
		return m->sknn ? sknn_blob_size(m->sknn) : 0;
	case SEC_ITEM_FACTORS8:
		return q8_size(m->stride, ni);
	case SEC_ITEM_BRANDS:
		return 8 * ni;
	}
	return 0;
}

static void
emit(const struct model *m, int id, struct sink *s)
{
	uint64_t ni = m->nitems, nu = m->nusers;
	struct obuf o;

	o.s = s;
	o.n = 0;
	switch (id) {
	case SEC_ITEM_IDS:
		sink_put(s, m->ioff, 8 * (ni + 1));
		sink_put(s, m->ibytes, m->ioff[ni]);
		break;
	case SEC_USER_IDS:
		sink_put(s, m->uoff, 8 * (nu + 1));
		sink_put(s, m->ubytes, m->uoff[nu]);
		break;
	case SEC_ITEM_INDEX:
	case SEC_USER_INDEX:
		if (id == SEC_ITEM_INDEX)
			index_emit(&m->ii, m->ioff, m->ibytes, s, &o);
		else
			index_emit(&m->ui, m->uoff, m->ubytes, s, &o);
		break;
	case SEC_ITEM_FACTORS:
		sink_put(s, m->ifac, 4 * ni * m->stride);
		break;
	case SEC_USER_FACTORS:
		/* The bfloat16 values as the floats they are. */
		for (uint64_t u = 0; u < nu; u++)
			sink_put(s, model_user_vec(m, u, m->urow), 4 * m->stride);
		break;
	case SEC_ITEM_COUNT:
		sink_put(s, m->icount, 4 * ni);
		break;
	case SEC_ITEM_POP:
		sink_put(s, m->ipop, 4 * ni);
		break;
	case SEC_ITEM_TREND:
		sink_put(s, m->ishort, 4 * ni);
		break;
	case SEC_NEIGHBOURS:
		lists_emit(&m->nb, ni, s, &o);
		break;
	case SEC_SEQUENCE:
		lists_emit(&m->sq, ni, s, &o);
		break;
	case SEC_ITEM_STATE:
		sink_put(s, m->its, 8 * ni);
		break;
	case SEC_USER_STATE:
		sink_put(s, m->uts, 8 * nu);
		sink_put(s, m->uskey, 8 * nu);
		sink_put(s, m->urec, 4 * nu * m->p.recent);
		sink_put(s, m->unrec, nu);
		sink_put(s, m->unsess, nu);
		break;
	case SEC_TRAIN_STATE: {
		uint64_t st[MODEL_NSTATS];
		for (int k = 0; k < 4; k++)
			obuf_put(&o, m->rng.s[k]);
		obuf_put(&o, (uint64_t)m->tick);
		obuf_put(&o, (uint64_t)m->have_clock);
		memcpy(st, &m->st, sizeof st);
		for (int k = 0; k < MODEL_NSTATS; k++)
			obuf_put(&o, st[k]);
		obuf_flush(&o);
		break;
	}
	case SEC_BLEND: {
		unsigned char b[BLEND_SIZE];
		const struct model_params *p = &m->p;
		memset(b, 0, sizeof b);
		put64(b, p->cooc_memory);
		put64(b + 8, p->seen_max);
		put32(b + 16, p->cat_items);
		put32(b + 20, p->blend_budget);
		putf(b + 24, p->blend_lr);
		put32(b + 28, (uint32_t)p->exclude_seen);
		memcpy(b + 32, p->cat_attr, sizeof p->cat_attr);
		put64(b + 96, m->ncats);
		put64(b + 104, m->seen_cap);
		put64(b + 112, m->seen_n);
		put32(b + 120, p->walk_steps);
		put32(b + 124, p->walk_width);
		for (int k = 0; k < 3 * MODEL_NSRC; k++)
			putf(b + 128 + 4 * k, m->blend.w[k]);
		for (int k = 0; k < MODEL_NSRC + 1; k++)
			putf(b + 128 + 12 * MODEL_NSRC + 4 * k, m->blend.hit[k]);
		putf(b + BLEND_SAMECAT, m->blend.w[RANK_SAMECAT]);
		putf(b + BLEND_SAMEBRAND, m->blend.w[RANK_SAMEBRAND]);
		sink_put(s, b, sizeof b);
		break;
	}
	case SEC_CATEGORIES: {
		uint64_t t = 0;
		sink_put(s, m->chash, 8 * m->ncats);
		obuf_put(&o, 0);
		for (uint64_t c = 0; c < m->ncats; c++) {
			t += m->cl[c] ? m->cln[c] : 0;
			obuf_put(&o, t);
		}
		obuf_flush(&o);
		for (uint64_t c = 0; c < m->ncats; c++)
			if (m->cl[c])
				sink_put(s, m->cl[c], m->cln[c] * sizeof(struct model_nb));
		sink_put(s, m->icat, 4 * ni);
		break;
	}
	case SEC_SEEN:
		for (uint64_t b = 0; b < seen_nblk(m->seen_cap); b++) {
			const struct model_blk *x = &m->seenb[b];
			struct seen_shape sh = { m->seen_bits, m->seen_w };
			unsigned r = 0;
			for (uint64_t j = 0; j < SEEN_BLK && b * SEEN_BLK + j < m->seen_cap; j++)
				obuf_put(&o, x->occ >> j & 1 ? seen_get(x, sh, b * SEEN_BLK + j, r++) : 0);
		}
		obuf_flush(&o);
		break;
	case SEC_SESSIONS:
		if (m->sknn)
			sknn_blob_emit(m->sknn, sink_emit, s);
		break;
	case SEC_ITEM_FACTORS8: {
		unsigned char *blk = xmalloc(MODEL_Q8_BYTES(m->stride));
		for (uint64_t b = 0; b * MODEL_Q8_BLOCK < ni; b++) {
			model_q8_block(m, b, blk);
			sink_put(s, blk, MODEL_Q8_BYTES(m->stride));
		}
		free(blk);
		break;
	}
	case SEC_ITEM_BRANDS:
		sink_put(s, m->ibrand, 8 * ni);
		break;
	}
}

static void
header(const struct model *m, unsigned char *h, const uint64_t *off,
       const uint64_t *size, const uint32_t *crc, uint64_t file_size)
{
	const struct model_params *p = &m->p;

	memset(h, 0, HDR_SIZE);
	memcpy(h, MODEL_MAGIC, 8);
	put32(h + 8, MODEL_VERSION);
	file_size = lsec_header(m, h, file_size);
	put32(h + 12, HDR_SIZE);
	put64(h + 16, file_size);
	put32(h + 24, NSEC);
	put32(h + 28, p->dim);
	put32(h + 32, m->stride);
	put32(h + 36, p->neighbours);
	put32(h + 40, p->recent);
	put32(h + 44, p->negatives);
	put64(h + 48, m->nitems);
	put64(h + 56, m->nusers);
	put64(h + 64, (uint64_t)m->clock);
	put64(h + 72, (uint64_t)m->tref);
	put64(h + 80, m->st.learned);
	putf(h + 88, p->lr);
	putf(h + 92, p->reg);
	putf(h + 96, p->init);
	put32(h + 100, m->have_clock ? 1 : 0);
	for (int t = 0; t < ET_NTYPES; t++)
		putf(h + 104 + 4 * t, p->type_w[t]);
	put64(h + 136, (uint64_t)p->forget);
	put64(h + 144, (uint64_t)p->cooc_half_life);
	put64(h + 152, (uint64_t)p->pop_half_life);
	put64(h + 160, (uint64_t)p->trend_half_life);
	put64(h + 168, (uint64_t)p->session_gap);
	put64(h + 176, p->max_users);
	put64(h + 184, p->max_items);
	put64(h + 192, p->seed);
	for (int k = 0; k < NSEC; k++) {
		unsigned char *e = h + HDR_FIXED + k * SEC_ENTRY;
		put32(e, (uint32_t)(k + 1));
		put32(e + 4, crc[k]);
		put64(e + 8, off[k]);
		put64(e + 16, size[k]);
	}
	put32(h + 252, crc32_any(0, h, HDR_SIZE));
}

static uint64_t
align_up(uint64_t v)
{
	return (v + MODEL_ALIGN - 1) / MODEL_ALIGN * MODEL_ALIGN;
}

/* The header and sizes of m's snapshot: the first pass over the sections.
 * Return 0, or -1 with the reason in err. */
static int
prepare(const struct model *m, const char *name, unsigned char *h,
	uint64_t *off, uint64_t *size,
	char *err, size_t errlen)
{
	uint64_t pos = HDR_SIZE, nnb;
	uint32_t crc[NSEC];

	if (MODEL_BIG_ENDIAN) {
		snprintf(err, errlen, "%s: snapshots are little-endian; this machine is not", name);
		return -1;
	}
	if (m->mapped) {
		snprintf(err, errlen, "%s: a mapped model cannot be saved", name);
		return -1;
	}
	nnb = total_nb(m, &m->nb);
	for (int k = 0; k < NSEC; k++) {
		struct sink s = { NULL, NULL, 0, 0 };
		off[k] = pos;
		size[k] = sec_size(m, k + 1, nnb);
		emit(m, k + 1, &s);
		if (s.n != size[k]) {
			snprintf(err, errlen, "%s: internal error: section %s has %llu bytes, not %llu",
				 name, sec_names[k + 1], (unsigned long long)s.n,
				 (unsigned long long)size[k]);
			return -1;
		}
		crc[k] = s.crc;
		pos = align_up(pos + size[k]);
	}
	header(m, h, off, size, crc, pos);
	return 0;
}

/* The second pass: the header and the sections, padded, to w or o. */
static void
write_all(const struct model *m, struct statew *w, struct wout *o,
	  const unsigned char *h, const uint64_t *off, const uint64_t *size)
{
	static const unsigned char zero[MODEL_ALIGN];
	struct sink s = { w, o, 0, 0 };

	sink_put(&s, h, HDR_SIZE);
	for (int k = 0; k < NSEC; k++) {
		emit(m, k + 1, &s);
		uint64_t end = off[k] + size[k];
		sink_put(&s, zero, (size_t)(align_up(end) - end));
	}
	lsec_write(m, &s);
}

/*
 * Write a snapshot of the trainable model m to path, atomically (see
 * state_begin). The bytes depend only on the model's state. Return 0, or
 * -1 with the reason in err; path is then as it was.
 */
int
model_save(const struct model *m, const char *path, char *err, size_t errlen)
{
	unsigned char h[HDR_SIZE];
	uint64_t off[NSEC], size[NSEC];
	struct statew *w;

	if (prepare(m, path, h, off, size, err, errlen))
		return -1;
	if (!(w = state_begin(path, err, errlen)))
		return -1;
	write_all(m, w, NULL, h, off, size);
	return state_commit(w, err, errlen);
}

/*
 * Write the same bytes as model_save to the output stream o (which is
 * not atomic: for standard output). Return 0, or -1 with the reason in
 * err (a write error is left in o for the caller to report).
 */
int
model_write(const struct model *m, struct wout *o, char *err, size_t errlen)
{
	unsigned char h[HDR_SIZE];
	uint64_t off[NSEC], size[NSEC];

	if (prepare(m, o->name, h, off, size, err, errlen))
		return -1;
	write_all(m, NULL, o, h, off, size);
	if (o->failed) {
		snprintf(err, errlen, "%s: write error: %s", o->name,
			 strerror(o->err_no));
		return -1;
	}
	return 0;
}

/* ---- loading ---- */

/* Read or map a whole file. Return 0, or -1 with the reason in err. */
static int
map_file(const char *path, void **map, size_t *len, int *how, char *err,
	 size_t errlen)
{
	struct stat sb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		errno = e;
		return -1;
	}
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	if (S_ISREG(sb.st_mode) && sb.st_size > 0) {
		void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p != MAP_FAILED) {
			close(fd);
			*map = p;
			*len = (size_t)sb.st_size;
			*how = 1;
			return 0;
		}
	}
	/* A pipe or a file that cannot be mapped: read it. */
	size_t cap = 1 << 20, n = 0;
	char *b = xalign(cap);
	for (;;) {
		if (n == cap) {
			char *nb = xalign(cap * 2);
			memcpy(nb, b, n);
			free(b);
			b = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			snprintf(err, errlen, "%s: %s", path, strerror(e));
			free(b);
			close(fd);
			errno = e;
			return -1;
		}
		n += (size_t)r;
	}
	close(fd);
	*map = b;
	*len = n;
	*how = 2;
	return 0;
}

static int
all_finite(const float *v, uint64_t n)
{
	for (uint64_t k = 0; k < n; k++)
		if (!isfinite(v[k]))
			return 0;
	return 1;
}

static int
ids_ok(const unsigned char *s, uint64_t size, uint64_t n)
{
	const uint64_t *off = (const uint64_t *)s;

	if (size < 8 * (n + 1) || off[0] != 0)
		return 0;
	for (uint64_t i = 0; i < n; i++)
		if (off[i + 1] < off[i])
			return 0;
	return off[n] == size - 8 * (n + 1);
}

static int
index_ok(const unsigned char *s, uint64_t size, uint64_t n)
{
	uint64_t cap = get64(s), used = 0;

	if (cap < 16 || (cap & (cap - 1)) || cap <= n || size != 8 + 12 * cap)
		return 0;
	const uint64_t *keys = (const uint64_t *)(s + 8);
	const uint32_t *vals = (const uint32_t *)(s + 8 + 8 * cap);
	for (uint64_t k = 0; k < cap; k++)
		if (keys[k]) {
			if (vals[k] >= n)
				return 0;
			used++;
		}
	return used == n;
}

/*
 * Check everything the header promises before anything is used: magic,
 * version, sizes, the checksums of the header and of every section, and
 * that every index in the file points inside it. On success fill the
 * mapped model v (pointers into map) and return 0; else -1 with the reason
 * in err.
 */
static int
check(struct model *v, const char *path, unsigned char *map, size_t len,
      char *err, size_t errlen)
{
	unsigned char h[HDR_SIZE];
	const unsigned char *sec[NSEC + 1] = { NULL };
	uint64_t secsize[NSEC + 1] = { 0 };
	struct model_params *p = &v->p;

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
	if (len < 16 || memcmp(map, MODEL_MAGIC, 8) != 0)
		FAIL("%s: not a reco model snapshot", path);
	unsigned ver = get32(map + 8);
	if (ver >= 1 && ver < MODEL_VERSION_READ)
		FAIL("%s: written by an older reco (snapshot format version %u); this program reads versions %d to %d: train the model again",
		     path, ver, MODEL_VERSION_READ, MODEL_VERSION);
	if (ver < MODEL_VERSION_READ || ver > MODEL_VERSION)
		FAIL("%s: snapshot format version %u; this program reads versions %d to %d",
		     path, ver, MODEL_VERSION_READ, MODEL_VERSION);
	/* Version 5 added the 8-bit item factors, version 6 the brands. */
	unsigned nsec = ver < 5 ? NSEC_V4 : ver < 6 ? NSEC_V5 : NSEC, hsize = HDR_SIZE_OF(nsec);
	if (len < hsize)
		FAIL("%s: truncated snapshot: %zu bytes, shorter than its header",
		     path, len);
	if (get32(map + 12) != hsize || get32(map + 24) != nsec)
		FAIL("%s: corrupt snapshot: bad header", path);
	if (get64(map + 16) != len) {
		if (get64(map + 16) > len)
			FAIL("%s: truncated snapshot: %zu bytes, the header says %llu",
			     path, len, (unsigned long long)get64(map + 16));
		FAIL("%s: corrupt snapshot: %zu bytes, the header says %llu",
		     path, len, (unsigned long long)get64(map + 16));
	}
	memcpy(h, map, hsize);
	put32(h + 252, 0);
	if (crc32_any(0, h, hsize) != get32(map + 252))
		FAIL("%s: corrupt snapshot: header checksum mismatch", path);
	if (MODEL_BIG_ENDIAN)
		FAIL("%s: snapshots are little-endian; this machine is not", path);
	memset(v, 0, sizeof *v);
	p->dim = get32(map + 28);
	v->stride = get32(map + 32);
	p->neighbours = get32(map + 36);
	p->recent = get32(map + 40);
	p->negatives = get32(map + 44);
	v->nitems = get64(map + 48);
	v->nusers = get64(map + 56);
	v->clock = (int64_t)get64(map + 64);
	v->tref = (int64_t)get64(map + 72);
	p->lr = getf(map + 88);
	p->reg = getf(map + 92);
	p->init = getf(map + 96);
	v->have_clock = (int)(get32(map + 100) & 1);
	for (int t = 0; t < ET_NTYPES; t++)
		p->type_w[t] = getf(map + 104 + 4 * t);
	p->forget = (int64_t)get64(map + 136);
	p->cooc_half_life = (int64_t)get64(map + 144);
	p->pop_half_life = (int64_t)get64(map + 152);
	p->trend_half_life = (int64_t)get64(map + 160);
	p->session_gap = (int64_t)get64(map + 168);
	p->max_users = get64(map + 176);
	p->max_items = get64(map + 184);
	p->seed = get64(map + 192);
	if (p->dim < 1 || p->dim > MODEL_MAX_DIM || v->stride != stride_of(p->dim) ||
	    p->neighbours > MODEL_MAX_NEIGHBOURS || p->recent < 1 ||
	    p->recent > MODEL_MAX_RECENT || v->nitems >= UINT32_MAX ||
	    v->nusers >= UINT32_MAX || p->forget < 0 || p->session_gap < 0 ||
	    p->cooc_half_life < 1 || p->pop_half_life < 1 ||
	    p->trend_half_life < 1 || p->max_users < 1 || p->max_items < 1 ||
	    !isfinite(p->lr) || !isfinite(p->reg) || !isfinite(p->init))
		FAIL("%s: corrupt snapshot: impossible parameters", path);
	v->nsec = nsec;
	uint64_t ni = v->nitems, nu = v->nusers, prev = hsize;
	for (int k = 0; k < (int)nsec; k++) {
		const unsigned char *e = map + HDR_FIXED + k * SEC_ENTRY;
		uint64_t off = get64(e + 8), size = get64(e + 16);
		if (get32(e) != (uint32_t)(k + 1) || off % MODEL_ALIGN || off < prev ||
		    off > len || size > len - off)
			FAIL("%s: corrupt snapshot: bad place for section %s", path,
			     sec_names[k + 1]);
		for (uint64_t z = prev; z < off; z++)
			if (map[z])
				FAIL("%s: corrupt snapshot: garbage before section %s",
				     path, sec_names[k + 1]);
		if (crc32_any(0, map + off, size) != get32(e + 4))
			FAIL("%s: corrupt snapshot: checksum mismatch in section %s",
			     path, sec_names[k + 1]);
		sec[k + 1] = map + off;
		secsize[k + 1] = size;
		prev = off + size;
	}
	uint64_t loff = 0, lsize = 0;
	if (lsec_check(map, len, &prev, &loff, &lsize))
		FAIL("%s: corrupt snapshot: bad section ledger", path);
	for (uint64_t z = prev; z < len; z++)
		if (map[z])
			FAIL("%s: corrupt snapshot: garbage at the end", path);
	/* Sizes. */
	for (int k = 1; k <= (int)nsec; k++) {
		uint64_t want = 0;
		switch (k) {
		case SEC_ITEM_IDS:
			if (!ids_ok(sec[k], secsize[k], ni))
				FAIL("%s: corrupt snapshot: bad item ids", path);
			continue;
		case SEC_USER_IDS:
			if (!ids_ok(sec[k], secsize[k], nu))
				FAIL("%s: corrupt snapshot: bad user ids", path);
			continue;
		case SEC_ITEM_INDEX:
		case SEC_USER_INDEX:
			if (secsize[k] < 8 ||
			    !index_ok(sec[k], secsize[k], k == SEC_ITEM_INDEX ? ni : nu))
				FAIL("%s: corrupt snapshot: bad section %s", path,
				     sec_names[k]);
			continue;
		case SEC_ITEM_FACTORS:
			want = 4 * ni * v->stride;
			break;
		case SEC_USER_FACTORS:
			want = 4 * nu * v->stride;
			break;
		case SEC_ITEM_COUNT:
		case SEC_ITEM_POP:
		case SEC_ITEM_TREND:
			want = 4 * ni;
			break;
		case SEC_NEIGHBOURS:
		case SEC_SEQUENCE:
			continue;
		case SEC_ITEM_STATE:
			want = item_state_size(ver, ni);
			break;
		case SEC_USER_STATE:
			want = user_state_size(ver, nu, p->recent);
			break;
		case SEC_TRAIN_STATE:
			want = TRAIN_STATE_SIZE;
			break;
		case SEC_BLEND:
			want = BLEND_SIZE;
			break;
		case SEC_CATEGORIES:
			if (secsize[SEC_BLEND] != BLEND_SIZE)
				continue;
			v->ncats = get64(sec[SEC_BLEND] + 96);
			if (v->ncats >= UINT32_MAX - 1 ||
			    secsize[k] < 16 * v->ncats + 8 + 4 * ni ||
			    (secsize[k] - 16 * v->ncats - 8 - 4 * ni) % 8)
				FAIL("%s: corrupt snapshot: bad categories", path);
			continue;
		case SEC_SEEN:
			if (secsize[SEC_BLEND] != BLEND_SIZE)
				continue;
			v->seen_cap = get64(sec[SEC_BLEND] + 104);
			want = 8 * v->seen_cap;
			if (v->seen_cap & (v->seen_cap - 1))
				FAIL("%s: corrupt snapshot: bad seen pairs", path);
			break;
		case SEC_SESSIONS:
			continue;
		case SEC_ITEM_FACTORS8:
			want = q8_size(v->stride, ni);
			break;
		case SEC_ITEM_BRANDS:
			want = 8 * ni;
			break;
		}
		if (secsize[k] != want)
			FAIL("%s: corrupt snapshot: section %s has %llu bytes, not %llu",
			     path, sec_names[k], (unsigned long long)secsize[k],
			     (unsigned long long)want);
	}
	/* Pointers into the mapping. */
	v->ioff = (uint64_t *)(uintptr_t)sec[SEC_ITEM_IDS];
	v->ibytes = (char *)(uintptr_t)(sec[SEC_ITEM_IDS] + 8 * (ni + 1));
	v->ibytes_n = v->ioff[ni];
	v->uoff = (uint64_t *)(uintptr_t)sec[SEC_USER_IDS];
	v->ubytes = (char *)(uintptr_t)(sec[SEC_USER_IDS] + 8 * (nu + 1));
	v->ubytes_n = v->uoff[nu];
	v->iidx.cap = get64(sec[SEC_ITEM_INDEX]);
	v->iidx.n = ni;
	v->iidx.keys = (uint64_t *)(uintptr_t)(sec[SEC_ITEM_INDEX] + 8);
	v->iidx.vals = (uint32_t *)(uintptr_t)(sec[SEC_ITEM_INDEX] + 8 + 8 * v->iidx.cap);
	v->uidx.cap = get64(sec[SEC_USER_INDEX]);
	v->uidx.n = nu;
	v->uidx.keys = (uint64_t *)(uintptr_t)(sec[SEC_USER_INDEX] + 8);
	v->uidx.vals = (uint32_t *)(uintptr_t)(sec[SEC_USER_INDEX] + 8 + 8 * v->uidx.cap);
	v->ifac = (float *)(uintptr_t)sec[SEC_ITEM_FACTORS];
	v->ufac = (float *)(uintptr_t)sec[SEC_USER_FACTORS];
	v->icount = (float *)(uintptr_t)sec[SEC_ITEM_COUNT];
	v->ipop = (float *)(uintptr_t)sec[SEC_ITEM_POP];
	v->ishort = (float *)(uintptr_t)sec[SEC_ITEM_TREND];
	v->its = (int64_t *)(uintptr_t)sec[SEC_ITEM_STATE];
	const unsigned char *us = sec[SEC_USER_STATE];
	uint64_t u8 = ver < 4 ? 4 : ver < 5 ? 3 : 2; /* 8-byte values per user */
	v->uts = (int64_t *)(uintptr_t)us;
	if (ver < 4)
		v->usess3 = (const uint64_t *)(us + 16 * nu);
	v->uskey = (uint64_t *)(uintptr_t)(us + 8 * (u8 - 1) * nu);
	v->urec = (uint32_t *)(uintptr_t)(us + 8 * u8 * nu);
	v->unrec = (uint8_t *)(uintptr_t)(us + 8 * u8 * nu + 4 * nu * p->recent);
	v->unsess = v->unrec + nu;
	const unsigned char *ts = sec[SEC_TRAIN_STATE];
	for (int k = 0; k < 4; k++)
		v->rng.s[k] = get64(ts + 8 * k);
	v->tick = (int64_t)get64(ts + 32);
	uint64_t st[MODEL_NSTATS];
	for (int k = 0; k < MODEL_NSTATS; k++)
		st[k] = get64(ts + 48 + 8 * k);
	memcpy(&v->st, st, sizeof st);
	if (get64(ts + 40) != (uint64_t)v->have_clock || v->st.learned != get64(map + 80))
		FAIL("%s: corrupt snapshot: bad training state", path);
	/* The blend, the categories and the seen pairs. */
	const unsigned char *bl = sec[SEC_BLEND];
	p->cooc_memory = get64(bl);
	p->seen_max = get64(bl + 8);
	p->cat_items = get32(bl + 16);
	p->blend_budget = get32(bl + 20);
	p->blend_lr = getf(bl + 24);
	p->exclude_seen = (int)get32(bl + 28);
	memcpy(p->cat_attr, bl + 32, sizeof p->cat_attr);
	/* Before version 6 there were no brands: they come from the default
	 * attribute from now on, as in a new model. */
	if (ver < 6 && !p->cat_attr[sizeof p->cat_attr - 1] &&
	    attrs_pack(p->cat_attr, p->cat_attr, "brand"))
		attrs_pack(p->cat_attr, p->cat_attr, "");
	/* Version 2 had no next source and version 3 no walk: their
	 * weights and hit means start from 0, the others move to their
	 * places; the walk takes its default bounds. */
	int ns = ver == 2 ? MODEL_NSRC - 2 : ver == 3 ? MODEL_NSRC - 1 : MODEL_NSRC;
	p->walk_steps = ver >= 4 ? get32(bl + 120) : 3;
	p->walk_width = ver >= 4 ? get32(bl + 124) : 256;
	memset(&v->blend, 0, sizeof v->blend);
	for (int k = 0; k < 3 * ns; k++)
		v->blend.w[k / ns * MODEL_NSRC + k % ns] = getf(bl + 128 + 4 * k);
	for (int k = 0; k < ns + 1; k++)
		v->blend.hit[k == ns ? MODEL_NSRC : k] =
			getf(bl + (ver == 2 ? 240 : 128 + 12 * ns) + 4 * k);
	/* Version 4 snapshots written before the category match have 0
	 * there: its weight starts from 0. */
	if (ver >= 4)
		v->blend.w[RANK_SAMECAT] = getf(bl + BLEND_SAMECAT);
	if (ver >= 6)
		v->blend.w[RANK_SAMEBRAND] = getf(bl + BLEND_SAMEBRAND);
	v->seen_n = get64(bl + 112);
	if (p->cat_items > MODEL_MAX_CAT_ITEMS || p->exclude_seen < 0 ||
	    p->exclude_seen > MODEL_SEEN_ALL || !isfinite(p->blend_lr) ||
	    p->walk_steps > MODEL_MAX_WALK_STEPS || p->walk_width < 1 ||
	    p->walk_width > MODEL_MAX_WALK_WIDTH ||
	    p->cat_attr[sizeof p->cat_attr - 1] || v->seen_n > v->seen_cap ||
	    !all_finite(v->blend.w, RANK_NFEAT) ||
	    !all_finite(v->blend.hit, MODEL_NSRC + 1))
		FAIL("%s: corrupt snapshot: bad blend", path);
	const unsigned char *cs = sec[SEC_CATEGORIES];
	uint64_t nc = v->ncats, ncl = (secsize[SEC_CATEGORIES] - 16 * nc - 8 - 4 * ni) / 8;
	v->chash = (uint64_t *)(uintptr_t)cs;
	v->cloff = (const uint64_t *)(cs + 8 * nc);
	v->clent = (const struct model_nb *)(cs + 8 * nc + 8 * (nc + 1));
	v->icat = (uint32_t *)(uintptr_t)(cs + 8 * nc + 8 * (nc + 1) + 8 * ncl);
	if (v->cloff[0] != 0 || v->cloff[nc] != ncl)
		FAIL("%s: corrupt snapshot: bad categories", path);
	for (uint64_t c = 0; c < nc; c++)
		if (v->cloff[c + 1] < v->cloff[c] ||
		    v->cloff[c + 1] - v->cloff[c] > p->cat_items)
			FAIL("%s: corrupt snapshot: bad categories", path);
	for (uint64_t k = 0; k < ncl; k++)
		if (v->clent[k].item >= ni || !isfinite(v->clent[k].score))
			FAIL("%s: corrupt snapshot: bad categories", path);
	for (uint64_t i = 0; i < ni; i++)
		if (v->icat[i] > nc)
			FAIL("%s: corrupt snapshot: bad categories", path);
	v->seen = (uint64_t *)(uintptr_t)sec[SEC_SEEN];
	for (uint64_t u = 0; u < nu; u++)
		if (v->unsess[u] > v->unrec[u])
			FAIL("%s: corrupt snapshot: bad user state", path);
	if (secsize[SEC_SESSIONS]) {
		char e2[256];
		if (!(v->sknn = sknn_blob_read(sec[SEC_SESSIONS], secsize[SEC_SESSIONS],
					       (uint32_t)ni, e2, sizeof e2)))
			FAIL("%s: corrupt snapshot: bad sessions: %s", path, e2);
		v->p.sk = *sknn_get_params(v->sknn);
	} else
		v->p.sk.sessions = 0;
	/* Every index inside the model, every number finite. */
	if (lists_map(&v->nb, sec[SEC_NEIGHBOURS], secsize[SEC_NEIGHBOURS], ni,
		      p->neighbours))
		FAIL("%s: corrupt snapshot: bad neighbours", path);
	if (lists_map(&v->sq, sec[SEC_SEQUENCE], secsize[SEC_SEQUENCE], ni,
		      p->neighbours))
		FAIL("%s: corrupt snapshot: bad sequence", path);
	for (uint64_t u = 0; u < nu; u++) {
		if (v->unrec[u] > p->recent || v->unsess[u] > v->unrec[u])
			FAIL("%s: corrupt snapshot: bad user state", path);
		for (uint32_t k = 0; k < v->unrec[u]; k++)
			if (v->urec[u * p->recent + k] >= ni)
				FAIL("%s: corrupt snapshot: bad user state", path);
	}
	if (!all_finite(v->ifac, ni * v->stride) || !all_finite(v->ufac, nu * v->stride) ||
	    !all_finite(v->icount, ni) || !all_finite(v->ipop, ni) ||
	    !all_finite(v->ishort, ni))
		FAIL("%s: corrupt snapshot: a number that is not finite", path);
	/* The 8-bit factors: a scale that is finite and not negative for
	 * each item (the checksum vouches for the rest, which model_save
	 * made of the float rows). */
	if (secsize[SEC_ITEM_FACTORS8]) {
		for (uint64_t i = 0; i < ni; i++) {
			float sc = getf(sec[SEC_ITEM_FACTORS8] +
					(i / MODEL_Q8_BLOCK) * MODEL_Q8_BYTES(v->stride) +
					MODEL_Q8_SCALES(v->stride) + 4 * (i % MODEL_Q8_BLOCK));
			if (!(sc >= 0) || !isfinite(sc))
				FAIL("%s: corrupt snapshot: bad section item_factors8", path);
		}
		v->iq8 = sec[SEC_ITEM_FACTORS8];
	}
	/* The brands, version 6 on (NULL before: no item has one). */
	v->ibrand = (uint64_t *)(uintptr_t)sec[SEC_ITEM_BRANDS];
#undef FAIL
	if (lsize)
		buf_put(&v->ledger, map + loff, (size_t)lsize);
	return 0;
}

/* A trainable copy of the mapped model v. */
static struct model *
unmap_copy(struct model *v)
{
	struct model *m = model_new(&v->p);
	uint64_t ni = v->nitems, nu = v->nusers;
	size_t r = v->p.recent;

	sknn_free(m->sknn);
	m->sknn = v->sknn;
	v->sknn = NULL;

	grow_items(m, ni);
	grow_users(m, nu);
	m->nitems = ni;
	m->nusers = nu;
	memcpy(m->ifac, v->ifac, 4 * ni * v->stride);
	memcpy(m->icount, v->icount, 4 * ni);
	memcpy(m->ipop, v->ipop, 4 * ni);
	memcpy(m->ishort, v->ishort, 4 * ni);
	memcpy(m->its, v->its, 8 * ni);
	memcpy(m->ioff, v->ioff, 8 * (ni + 1));
	m->ibytes_cap = v->ibytes_n ? v->ibytes_n : 1;
	m->ibytes = xmalloc(m->ibytes_cap);
	memcpy(m->ibytes, v->ibytes, v->ibytes_n);
	m->ibytes_n = v->ibytes_n;
	lists_copy(m, &m->nb, &v->nb, ni);
	lists_copy(m, &m->sq, &v->sq, ni);
	memcpy(m->icat, v->icat, 4 * ni);
	if (v->ibrand)
		memcpy(m->ibrand, v->ibrand, 8 * ni);
	for (uint64_t c = 0; c < v->ncats; c++) {
		if (m->ncats == m->cats_cap) {
			uint64_t cap = m->cats_cap ? m->cats_cap * 2 : 64;
			m->chash = xreallocarray(m->chash, cap, sizeof *m->chash);
			m->cl = xreallocarray(m->cl, cap, sizeof *m->cl);
			m->cln = xreallocarray(m->cln, cap, sizeof *m->cln);
			m->cats_cap = cap;
		}
		size_t n = (size_t)(v->cloff[c + 1] - v->cloff[c]);
		int isnew;
		m->chash[c] = v->chash[c];
		if (cat_is_comm(m, (uint32_t)c + 1) && (uint32_t)v->chash[c] >= m->ncomm)
			m->ncomm = (uint32_t)v->chash[c] + 1;
		*htab_put(&m->cidx, v->chash[c], &isnew) = (uint32_t)c;
		m->cl[c] = NULL;
		m->cln[c] = (uint16_t)n;
		if (v->p.cat_items) {
			m->cl[c] = xreallocarray(NULL, v->p.cat_items, sizeof(struct model_nb));
			memcpy(m->cl[c], v->clent + v->cloff[c], n * sizeof(struct model_nb));
		}
		m->ncats++;
	}
	if (v->seen_cap) {
		/* A key that lies too far from its home (not one this code
		 * put there) keeps the keys as they are. */
		struct seen_shape sh = seen_shape(v->seen_cap);
		for (uint64_t j = 0; j < v->seen_cap && sh.w < 8; j++)
			if (v->seen[j] && !seen_fits(sh, j, v->seen[j]))
				sh.w = 8;
		m->seenb = xcalloc(seen_nblk(v->seen_cap), sizeof *m->seenb);
		for (uint64_t j = 0; j < v->seen_cap; j++)
			if (v->seen[j])
				seen_store(m->seenb, sh, &m->seen_room, j, v->seen[j]);
		m->seen_bits = sh.bits;
		m->seen_w = sh.w;
	}
	m->seen_cap = v->seen_cap;
	m->seen_n = v->seen_n;
	m->blend = v->blend;
	/* Rounded to bfloat16: exact for the snapshots this code writes. */
	narrow_row(v->ufac, m->ufac16, nu * v->stride);
	memcpy(m->uts, v->uts, 8 * nu);
	memcpy(m->uskey, v->uskey, 8 * nu);
	for (uint64_t u = 0; v->usess3 && u < nu; u++)
		if (!v->usess3[u])
			m->uskey[u] &= ~(uint64_t)1;
	memcpy(m->unrec, v->unrec, nu);
	memcpy(m->unsess, v->unsess, nu);
	memcpy(m->urec, v->urec, 4 * nu * r);
	memcpy(m->uoff, v->uoff, 8 * (nu + 1));
	m->ubytes_cap = v->ubytes_n ? v->ubytes_n : 1;
	m->ubytes = xmalloc(m->ubytes_cap);
	memcpy(m->ubytes, v->ubytes, v->ubytes_n);
	m->ubytes_n = v->ubytes_n;
	index_load(&m->ui, m->uoff, m->ubytes, nu);
	index_load(&m->ii, m->ioff, m->ibytes, ni);
	m->have_clock = v->have_clock;
	m->clock = v->clock;
	m->tref = v->tref;
	m->tick = v->tick;
	m->rng = v->rng;
	m->st = v->st;
	return m;
}

/*
 * Load the snapshot at path, refusing it (NULL, the reason in err) unless
 * every check passes: nothing of a truncated or corrupt file is ever used.
 * After a refusal errno is EINVAL if the file is not a valid snapshot, or
 * the error of the system call that failed.
 * With MODEL_MAP the model is a read-only view of the mapped file (for
 * serving); without, a trainable copy that --resume continues. The caller
 * owns the model: model_free.
 */
struct model *
model_load(const char *path, int flags, char *err, size_t errlen)
{
	void *map;
	size_t len;
	int how;
	struct model *v = xcalloc(1, sizeof *v);

	if (map_file(path, &map, &len, &how, err, errlen)) {
		int e = errno;
		free(v);
		errno = e;
		return NULL;
	}
	if (check(v, path, map, len, err, errlen)) {
		sknn_free(v->sknn);
		if (how == 1)
			munmap(map, len);
		else
			free(map);
		free(v);
		errno = EINVAL;
		return NULL;
	}
	v->map = map;
	v->maplen = len;
	v->mapped = how;
	v->items_cap = v->nitems;
	v->users_cap = v->nusers;
	if (flags & MODEL_MAP)
		return v;
	struct model *m = unmap_copy(v);
	m->ledger = v->ledger; /* moved, not copied */
	memset(&v->ledger, 0, sizeof v->ledger);
	model_free(v);
	return m;
}

/*
 * Section k (from 0) of a loaded snapshot: its name, offset, size and
 * checksum. Return 0, or -1 if there is no such section or m was not
 * loaded with MODEL_MAP.
 */
int
model_section(const struct model *m, int k, const char **name,
	      uint64_t *off, uint64_t *size, uint32_t *crc)
{
	const unsigned char *e;

	if (!m->mapped || k < 0 || k >= (int)m->nsec)
		return -1;
	e = (const unsigned char *)m->map + HDR_FIXED + k * SEC_ENTRY;
	*name = sec_names[k + 1];
	*off = get64(e + 8);
	*size = get64(e + 16);
	*crc = get32(e + 4);
	return 0;
}

/* ---- the ledger section ---- */

/*
 * A trainer's source positions (ledger.h), kept with the model so that a
 * resumed run skips what the snapshot has learned. The section is not in
 * the table of sections: the header says where it is (bytes 200 to 219:
 * offset, size, CRC-32; all zero: none), after the last section. A
 * snapshot without one is byte for byte what it was before the section
 * existed; readers from before refuse one that has it (data at the end).
 */
#define LEDGER_HDR 200

/* Keep a copy of the n bytes at p as m's ledger section (n 0: none). */
void
model_set_ledger(struct model *m, const void *p, size_t n)
{
	m->ledger.n = 0;
	if (n)
		buf_put(&m->ledger, p, n);
}

/* The ledger section of m (NULL and *n 0 if it has none). */
const char *
model_ledger(const struct model *m, size_t *n)
{
	*n = m->ledger.n;
	return m->ledger.n ? m->ledger.p : NULL;
}

/* Put the place of the ledger, after end, in the header h; return the new
 * end of the file. */
static uint64_t
lsec_header(const struct model *m, unsigned char *h, uint64_t end)
{
	if (!m->ledger.n)
		return end;
	put64(h + LEDGER_HDR, end);
	put64(h + LEDGER_HDR + 8, m->ledger.n);
	put32(h + LEDGER_HDR + 16, crc32_any(0, m->ledger.p, m->ledger.n));
	return align_up(end + m->ledger.n);
}

static void
lsec_write(const struct model *m, struct sink *s)
{
	static const unsigned char zero[MODEL_ALIGN];

	if (!m->ledger.n)
		return;
	sink_put(s, m->ledger.p, m->ledger.n);
	sink_put(s, zero, (size_t)(align_up(m->ledger.n) - m->ledger.n));
}

/* Check the ledger section of a loaded snapshot (if its version has one):
 * its place (right after the sections, at *prev aligned) and checksum. Set
 * *off and *size, move *prev past it; return 0, or -1 if it is bad. */
static int
lsec_check(const unsigned char *map, size_t len, uint64_t *prev,
	     uint64_t *off, uint64_t *size)
{
	const unsigned char *h = map + LEDGER_HDR;

	*off = *size = 0;
	for (int i = 0; i < 20 && !*size; i++)
		*size = h[i];
	if (!*size)
		return 0;
	*off = get64(h);
	*size = get64(h + 8);
	if (*off != align_up(*prev) || *size == 0 || *off > len ||
	    *size > len - *off ||
	    crc32_any(0, map + *off, *size) != get32(h + 16))
		return -1;
	for (uint64_t z = *prev; z < *off; z++)
		if (map[z])
			return -1;
	*prev = *off + *size;
	return 0;
}
