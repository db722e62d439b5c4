/* reco-profile: keep per-user profiles from events, in an embedded store or Redis, and write profile updates. */
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reco.h"
#include "profile.h"
#include "store.h"

static const char usage[] =
"usage: reco-profile [options] [file ...]\n"
"       reco-profile --get USER [--store SPEC]\n"
"       reco-profile --dump [--store SPEC]\n"
"       reco-profile --restore --store SPEC [file ...]\n"
"Keep per-user profiles (reco.Profile) from events and write profile updates.\n"
"\n"
"Profile:\n"
"      --weights TYPE=W,... score of one interaction by type (default\n"
"                           view=1,click=1,add_to_cart=4,remove_from_cart=-2,\n"
"                           purchase=8; others 0)\n"
"      --half-life DURATION half-life of the scores, on event time (default 7d;\n"
"                           0: no decay)\n"
"      --max-items N        items kept per user (default 50)\n"
"      --max-categories N   categories kept per user (default 20)\n"
"      --max-brands N       brands kept per user (default 20)\n"
"      --history N          recent events kept per user (default 20)\n"
"      --max-cart N         cart lines kept per user (default 50)\n"
"      --max-purchases N    purchases kept per user (default 50)\n"
"      --count-norm KIND    activity from the event count: log (default),\n"
"                           percentile or none\n"
"      --session-gap DURATION  a new session after this gap, for events\n"
"                           without a session (default 30m)\n"
"      --category-attr A,...  attrs naming the category (default\n"
"                           category,category_code)\n"
"      --brand-attr A,...   attrs naming the brand (default brand)\n"
"      --purchase-clears-cart  a purchase empties the whole cart\n"
"\n"
"Store:\n"
"      --store SPEC         a state file, or a Redis URL: redis://HOST:PORT/DB,\n"
"                           unix:///PATH?db=DB (default: memory only)\n"
"      --checkpoint-every N state file: write it every N events (default\n"
"                           1000000, or the users held if more; 0: only\n"
"                           at exit)\n"
"      --max-users N        state file: most users (default 10000000); no\n"
"                           --store: profiles kept in memory, the least\n"
"                           recently used dropped past it (default 1000000)\n"
"      --hot-users N        state file or memory: profiles kept decoded\n"
"                           beyond the batch's (default 8192); the others\n"
"                           are packed, as the state file has them\n"
"      --cache-users N      Redis: profiles kept in memory (default 100000)\n"
"      --redis-prefix P     Redis: key prefix (default reco:)\n"
"      --redis-retries N    Redis: reconnections before failing (default 5)\n"
"      --redis-timeout DURATION  Redis: reply timeout (default 10s)\n"
"      --redis-lease DURATION  Redis: expiry of the writer's lease, renewed\n"
"                           while it runs (default 30s)\n"
"      --writer NAME        Redis: this writer's own lease, for writers of\n"
"                           one store that own distinct sources (members of\n"
"                           a Kafka consumer group)\n"
LEDGER_USAGE
"      --no-positions       apply every event; keep no source positions\n"
"\n"
"Output:\n"
"      --emit WHEN          every, changed (default) or none\n"
"      --batch N            events per batch (default 1000)\n"
"      --get USER           print USER's profile and exit\n"
"      --dump               print every profile, sorted by user, and exit\n"
"      --restore            rebuild the store from profile updates\n";

enum {
	OPT_WEIGHTS = OPT_TOOL_FIRST,
	OPT_HALF_LIFE,
	OPT_MAX_ITEMS,
	OPT_MAX_CATEGORIES,
	OPT_MAX_BRANDS,
	OPT_HISTORY,
	OPT_MAX_CART,
	OPT_MAX_PURCHASES,
	OPT_COUNT_NORM,
	OPT_SESSION_GAP,
	OPT_CATEGORY_ATTR,
	OPT_BRAND_ATTR,
	OPT_PURCHASE_CLEARS,
	OPT_STORE,
	OPT_CHECKPOINT_EVERY,
	OPT_MAX_USERS,
	OPT_CACHE_USERS,
	OPT_HOT_USERS,
	OPT_REDIS_PREFIX,
	OPT_REDIS_RETRIES,
	OPT_REDIS_TIMEOUT,
	OPT_NO_POSITIONS,
	OPT_POSITION_WINDOW,
	OPT_MAX_SOURCES,
	OPT_MAX_POSITION_JUMP,
	OPT_REDIS_LEASE,
	OPT_WRITER,
	OPT_EMIT,
	OPT_BATCH,
	OPT_GET,
	OPT_DUMP,
	OPT_RESTORE
};

static const struct option opts[] = {
	{ "weights", required_argument, NULL, OPT_WEIGHTS },
	{ "half-life", required_argument, NULL, OPT_HALF_LIFE },
	{ "max-items", required_argument, NULL, OPT_MAX_ITEMS },
	{ "max-categories", required_argument, NULL, OPT_MAX_CATEGORIES },
	{ "max-brands", required_argument, NULL, OPT_MAX_BRANDS },
	{ "history", required_argument, NULL, OPT_HISTORY },
	{ "max-cart", required_argument, NULL, OPT_MAX_CART },
	{ "max-purchases", required_argument, NULL, OPT_MAX_PURCHASES },
	{ "count-norm", required_argument, NULL, OPT_COUNT_NORM },
	{ "session-gap", required_argument, NULL, OPT_SESSION_GAP },
	{ "category-attr", required_argument, NULL, OPT_CATEGORY_ATTR },
	{ "brand-attr", required_argument, NULL, OPT_BRAND_ATTR },
	{ "purchase-clears-cart", no_argument, NULL, OPT_PURCHASE_CLEARS },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "checkpoint-every", required_argument, NULL, OPT_CHECKPOINT_EVERY },
	{ "max-users", required_argument, NULL, OPT_MAX_USERS },
	{ "cache-users", required_argument, NULL, OPT_CACHE_USERS },
	{ "hot-users", required_argument, NULL, OPT_HOT_USERS },
	{ "redis-prefix", required_argument, NULL, OPT_REDIS_PREFIX },
	{ "redis-retries", required_argument, NULL, OPT_REDIS_RETRIES },
	{ "redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT },
	{ "no-positions", no_argument, NULL, OPT_NO_POSITIONS },
	{ "position-window", required_argument, NULL, OPT_POSITION_WINDOW },
	{ "max-sources", required_argument, NULL, OPT_MAX_SOURCES },
	{ "max-position-jump", required_argument, NULL, OPT_MAX_POSITION_JUMP },
	{ "redis-lease", required_argument, NULL, OPT_REDIS_LEASE },
	{ "writer", required_argument, NULL, OPT_WRITER },
	{ "emit", required_argument, NULL, OPT_EMIT },
	{ "batch", required_argument, NULL, OPT_BATCH },
	{ "get", required_argument, NULL, OPT_GET },
	{ "dump", no_argument, NULL, OPT_DUMP },
	{ "restore", no_argument, NULL, OPT_RESTORE },
	{ NULL, 0, NULL, 0 }
};

enum { EMIT_EVERY, EMIT_CHANGED, EMIT_NONE };
enum { MODE_RUN, MODE_GET, MODE_DUMP, MODE_RESTORE };

/* Options: one process, one configuration. */
static struct {
	struct profile_opts po;
	struct store_opts so;
	const char *store;
	int emit, mode, avro, max_users_given;
	uint64_t batch;
	const char *user, *writer;
	char **cat_attrs, **brand_attrs;
	size_t ncat_attrs, nbrand_attrs;
} O = { .emit = EMIT_CHANGED, .batch = 1000 };

/* Per-run state. */
static struct tool T;
static struct store *S;
static struct event ev;
static struct event *evs;        /* a batch read ahead (Redis) */
static struct pos *evpos;        /* where each of them was read */
static size_t nevs;
static struct evin *in;
static uint64_t in_batch;
static struct buf line;
static struct avro_out *aout;
static struct {
	uint64_t *updates, *unpositioned, *users, *bytes, *hits, *misses,
		 *evictions, *retries, *checkpoints, *checkpoint_ms, *load_ms,
		 *commits, *batches, *users_evicted;
} M;

/* ---- options ---- */

static char **
split_list(const char *s, size_t *n)
{
	char **v = NULL;
	const char *p = s;

	*n = 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		v = xreallocarray(v, *n + 1, sizeof *v);
		v[(*n)++] = xstrndup(p, len);
		if (!e)
			break;
		p = e + 1;
	}
	return v;
}

static void
free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static uint64_t
num(const char *opt, const char *arg, uint64_t min, uint64_t max)
{
	char *end;
	unsigned long long v;

	if (*arg < '0' || *arg > '9')
		tool_usage_error(&T, "%s: bad number \"%s\"", opt, arg);
	v = strtoull(arg, &end, 10);
	if (*end || v < min || v > max)
		tool_usage_error(&T, "%s: bad number \"%s\" (%llu to %llu)", opt,
				 arg, (unsigned long long)min,
				 (unsigned long long)max);
	return v;
}

static int64_t
duration(const char *opt, const char *arg)
{
	int64_t ms;

	if (strcmp(arg, "0") == 0)
		return 0;
	if (duration_parse(arg, &ms) || ms < 0)
		tool_usage_error(&T, "%s: bad duration \"%s\" (e.g. 500ms, 30s, 10m, 7d)",
				 opt, arg);
	return ms;
}

static void
parse_weights(const char *arg)
{
	size_t n;
	char **v = split_list(arg, &n);

	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(v[i], '='), *end;
		int t;
		double w;
		if (!eq)
			tool_usage_error(&T, "--weights: expected TYPE=WEIGHT, not \"%s\"", v[i]);
		*eq = '\0';
		if ((t = event_type_parse(v[i], strlen(v[i]))) < 0)
			tool_usage_error(&T, "--weights: unknown event type \"%s\"", v[i]);
		w = strtod(eq + 1, &end);
		if (!eq[1] || *end || !isfinite(w))
			tool_usage_error(&T, "--weights: bad weight \"%s\"", eq + 1);
		O.po.weight[t] = w;
	}
	free_list(v, n);
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	(void)t;
	switch (c) {
	case OPT_WEIGHTS:
		parse_weights(arg);
		return 0;
	case OPT_HALF_LIFE:
		O.po.half_life = duration("--half-life", arg);
		return 0;
	case OPT_MAX_ITEMS:
		O.po.max_items = (uint32_t)num("--max-items", arg, 0, 100000);
		return 0;
	case OPT_MAX_CATEGORIES:
		O.po.max_categories = (uint32_t)num("--max-categories", arg, 0, 100000);
		return 0;
	case OPT_MAX_BRANDS:
		O.po.max_brands = (uint32_t)num("--max-brands", arg, 0, 100000);
		return 0;
	case OPT_HISTORY:
		O.po.history = (uint32_t)num("--history", arg, 0, 100000);
		return 0;
	case OPT_MAX_CART:
		O.po.max_cart = (uint32_t)num("--max-cart", arg, 0, 100000);
		return 0;
	case OPT_MAX_PURCHASES:
		O.po.max_purchases = (uint32_t)num("--max-purchases", arg, 0, 100000);
		return 0;
	case OPT_COUNT_NORM:
		if (strcmp(arg, "log") == 0)
			O.po.count_norm = PNORM_LOG;
		else if (strcmp(arg, "percentile") == 0)
			O.po.count_norm = PNORM_PERCENTILE;
		else if (strcmp(arg, "none") == 0)
			O.po.count_norm = PNORM_NONE;
		else
			tool_usage_error(&T, "--count-norm: expected log, percentile or none, not \"%s\"", arg);
		return 0;
	case OPT_SESSION_GAP:
		O.po.session_gap = duration("--session-gap", arg);
		return 0;
	case OPT_CATEGORY_ATTR:
		free_list(O.cat_attrs, O.ncat_attrs);
		O.cat_attrs = split_list(arg, &O.ncat_attrs);
		O.po.category_attrs = O.cat_attrs;
		O.po.ncategory_attrs = O.ncat_attrs;
		return 0;
	case OPT_BRAND_ATTR:
		free_list(O.brand_attrs, O.nbrand_attrs);
		O.brand_attrs = split_list(arg, &O.nbrand_attrs);
		O.po.brand_attrs = O.brand_attrs;
		O.po.nbrand_attrs = O.nbrand_attrs;
		return 0;
	case OPT_PURCHASE_CLEARS:
		O.po.purchase_clears_cart = 1;
		return 0;
	case OPT_STORE:
		if (store_spec_kind(arg) < 0)
			tool_usage_error(&T, "--store: \"%s\" names an unknown scheme; a store is a state file's path or a Redis URL (redis://, unix://, redis+unix://)", arg);
		O.store = arg;
		return 0;
	case OPT_CHECKPOINT_EVERY:
		O.so.checkpoint_every = num("--checkpoint-every", arg, 0, UINT64_MAX / 2);
		O.so.checkpoint_auto = 0;
		return 0;
	case OPT_MAX_USERS:
		O.so.max_users = num("--max-users", arg, 1, UINT32_MAX - 1);
		O.max_users_given = 1;
		return 0;
	case OPT_HOT_USERS:
		O.so.hot_users = num("--hot-users", arg, 0, UINT32_MAX - 1);
		return 0;
	case OPT_CACHE_USERS:
		O.so.cache_users = num("--cache-users", arg, 0, UINT32_MAX - 1);
		return 0;
	case OPT_REDIS_PREFIX:
		O.so.prefix = arg;
		return 0;
	case OPT_REDIS_RETRIES:
		O.so.retries = (int)num("--redis-retries", arg, 0, 1000);
		return 0;
	case OPT_REDIS_TIMEOUT:
		O.so.timeout = duration("--redis-timeout", arg);
		if (O.so.timeout <= 0)
			tool_usage_error(&T, "--redis-timeout: must be positive");
		return 0;
	case OPT_NO_POSITIONS:
		O.so.positions = 0;
		return 0;
	case OPT_POSITION_WINDOW:
		O.so.window = num("--position-window", arg, 8, (uint64_t)1 << 32);
		if (O.so.window % 8)
			tool_usage_error(&T, "--position-window: must be a multiple of 8");
		return 0;
	case OPT_MAX_SOURCES:
		O.so.max_streams = num("--max-sources", arg, 1, 1000000);
		return 0;
	case OPT_MAX_POSITION_JUMP:
		O.so.max_jump = num("--max-position-jump", arg, 0, UINT64_MAX / 4);
		return 0;
	case OPT_REDIS_LEASE:
		O.so.lease_ms = duration("--redis-lease", arg);
		if (O.so.lease_ms < 1000)
			tool_usage_error(&T, "--redis-lease: at least 1s");
		return 0;
	case OPT_WRITER:
		if (!*arg || strlen(arg) > 200)
			tool_usage_error(&T, "--writer: a name of 1 to 200 bytes");
		O.writer = arg;
		return 0;
	case OPT_EMIT:
		if (strcmp(arg, "every") == 0)
			O.emit = EMIT_EVERY;
		else if (strcmp(arg, "changed") == 0)
			O.emit = EMIT_CHANGED;
		else if (strcmp(arg, "none") == 0)
			O.emit = EMIT_NONE;
		else
			tool_usage_error(&T, "--emit: expected every, changed or none, not \"%s\"", arg);
		return 0;
	case OPT_BATCH:
		O.batch = num("--batch", arg, 1, 10000000);
		return 0;
	case OPT_GET:
		O.mode = MODE_GET;
		O.user = arg;
		return 0;
	case OPT_DUMP:
		O.mode = MODE_DUMP;
		return 0;
	case OPT_RESTORE:
		O.mode = MODE_RESTORE;
		return 0;
	case OPT_SCHEMA:
		/* The profile's schema, not the event's. */
		tool_schema(&T, arg, (const char *const[]){ "json", "avro" },
			    (const char *const[]){ profile_json_schema, profile_avsc }, 2);
		return 0;
	}
	return 1;
}

/* ---- output ---- */

/* The output failed: say why (a broken pipe quietly) and exit with the
 * documented status, committing nothing more. */
static void
out_failed(void)
{
	tool_output_failed(&T, T.out);
	exit(T.status);
}

/* Write one profile update in the output format. */
static void
emit(struct profile *p)
{
	(*M.updates)++;
	line.n = 0;
	if (T.key) {
		struct str u = profile_str(p, p->user);
		buf_put(&line, u.p, u.n);
		tool_key_clean(line.p, line.n);
	}
	if (aout) {
		if (T.key)
			avro_out_key(aout, line.p, line.n);
		profile_encode(avro_out_record(aout), p);
		int r = avro_out_next(aout);
		if (r == -2) {
			struct str u = profile_str(p, p->user);
			warn("the profile of user %.*s holds the --message-delimiter bytes: it cannot be framed (choose a longer delimiter)",
			     (int)u.n, u.p);
			tool_fail(&T, EXIT_IO);
			exit(tool_finish(&T));
		}
		if (r)
			out_failed();
		return;
	}
	if (T.key)
		buf_putc(&line, '\t');
	profile_write_json(&line, p);
	buf_putc(&line, '\n');
	if (wout_write(T.out, line.p, line.n))
		out_failed();
}

static void
publish_counts(void)
{
	const struct store_counts *c = store_counts(S);

	*M.users = store_users(S);
	*M.hits = c->hits;
	*M.misses = c->misses;
	*M.evictions = c->evictions;
	*M.retries = c->retries;
	*M.checkpoints = c->checkpoints;
	*M.checkpoint_ms = (uint64_t)llround(c->checkpoint_s * 1000);
	*M.load_ms = (uint64_t)llround(c->load_s * 1000);
	*M.commits = c->commits;
	*M.users_evicted = c->users_evicted;
}

/* ---- the batch ---- */

static void end_batch(int checkpoint);

/*
 * With --shard, a shard's positions are its own: its stream of a source
 * is the source's stream with the shard's tag, file:day.ndjson#2/4, so
 * that the shards of one store never share a position window.
 */
static struct buf srcbuf;

static struct str
shard_source(struct str src)
{
	struct buf *b = &srcbuf;
	struct str stream;
	int64_t pos;

	if (!T.shard_tag[0] || !store_source_parse(src, &stream, &pos))
		return src;
	b->n = 0;
	buf_put(b, stream.p, stream.n);
	buf_puts(b, T.shard_tag);
	buf_put(b, src.p + stream.n, src.n - stream.n);
	return (struct str){ b->p, b->n };
}

static volatile sig_atomic_t stopping; /* see on_signal */

/* Refuse an event whose source position is a poison jump. */
static void
reject_jump(struct event *e, const struct pos *at)
{
	char msg[600];
	struct buf raw = { 0 };
	const char *rp;
	size_t rn;

	snprintf(msg, sizeof msg, "source position \"%.*s\" is more than --max-position-jump %llu beyond its source's highest",
		 (int)(e->source.n > 300 ? 300 : e->source.n), e->source.p,
		 (unsigned long long)O.so.max_jump);
	if (nevs) {
		event_write_json(&raw, e);
		rp = raw.p;
		rn = raw.n;
	} else
		evin_raw(in, e, &rp, &rn);
	tool_reject(&T, at, RJ_POSITION_JUMP, msg, rp, rn);
	buf_free(&raw);
}

/* Apply one event, unless its source position says it is applied already
 * (or refuses it); at is where it was read. */
static void
handle(struct event *e, const struct pos *at)
{
	struct ledger_pos sp = { UINT32_MAX, 0 };
	struct profile *p;
	char err[512];

	if (e->has & EV_SOURCE) {
		int r = store_check(S, shard_source(e->source), &sp);
		if (r < 0) {
			if (store_kind(S) != STORE_REDIS)
				end_batch(1);
			die(EXIT_IO, "%s%smore than --max-sources %llu sources",
			    O.store ? O.store : "", O.store ? ": " : "",
			    (unsigned long long)O.so.max_streams);
		}
		if (r == STORE_REPLAYED) {
			tool_drop(&T, "replayed");
			return;
		}
		if (r == STORE_BEYOND_WINDOW) {
			tool_drop(&T, "replayed_beyond_window");
			return;
		}
		if (r == STORE_JUMP) {
			reject_jump(e, at);
			return;
		}
	}
	if (sp.stream == UINT32_MAX)
		(*M.unpositioned)++;
	if (!(p = store_touch(S, e->user.p, e->user.n, err, sizeof err))) {
		/* Past --max-users: keep what is applied, then stop
		 * through the exit path, which commits and prints --stats.
		 * (A Redis batch that failed is applied again at restart.) */
		if (!stopping)
			warn("%s%s%s", O.store ? O.store : "",
			     O.store ? ": " : "", err);
		tool_fail(&T, EXIT_IO);
		stopping = 1;
		return;
	}
	profile_apply(p, e, &O.po,
		      O.po.count_norm == PNORM_PERCENTILE ? store_stats(S) : NULL);
	store_advance(S, &sp);
	(*T.out_n)++;
	if (O.emit == EMIT_EVERY)
		emit(p);
}

/* Make everything written so far reach its files: the updates, the
 * rejects. Dies (status 3) on a write error. */
static void
flush_output(void)
{
	if (aout && avro_out_flush(aout))
		out_failed();
	tool_idle(&T);
	/* Failures are sticky: a flush that failed in tool_idle fails here. */
	if (tool_flush(&T))
		exit(T.status);
}

/*
 * End a batch: apply what was read ahead, write one update per changed
 * user (in the order of their first change), and commit the store (a
 * checkpoint of the state file when asked or due). The output is flushed
 * and checked before anything is committed: what the store says is
 * applied is always in the output, and a failed write commits nothing.
 */
static void
end_batch(int checkpoint)
{
	struct profile **list;
	size_t n;
	char err[512];

	if (nevs) {
		struct str *users = xreallocarray(NULL, nevs, sizeof *users);
		for (size_t i = 0; i < nevs; i++)
			users[i] = evs[i].user;
		if (store_fetch(S, users, nevs, err, sizeof err))
			die(EXIT_IO, "%s", err);
		free(users);
		for (size_t i = 0; i < nevs; i++)
			handle(&evs[i], &evpos[i]);
		nevs = 0;
	}
	n = store_changed(S, &list);
	if (O.emit == EMIT_CHANGED)
		for (size_t i = 0; i < n; i++)
			emit(list[i]);
	if (n || checkpoint)
		(*M.batches)++;
	if (store_commit_due(S, checkpoint))
		flush_output();
	if (store_commit(S, checkpoint, err, sizeof err))
		die(EXIT_IO, "%s", err);
	in_batch = 0;
	publish_counts();
}

/*
 * SIGINT and SIGTERM stop the tool cleanly: the events read so far are
 * applied and committed (a checkpoint of a state file) and it exits 130 or
 * 143.
 * The handler only sets a flag; when the tool waits for input, it also
 * puts /dev/null in the place of the input, so that the wait ends.
 */
static volatile sig_atomic_t stopping, waiting;
static int devnull = -1, waiting_fd = -1;

static void
on_signal(int sig)
{
	stopping = 1;
	reco_stop = sig;
	if (waiting && devnull >= 0 && waiting_fd >= 0)
		dup2(devnull, waiting_fd);
}

static void
on_idle(void *ctx)
{
	(void)ctx;
	end_batch(0);
	flush_output();
	waiting_fd = T.src->fd;
	waiting = 1;
	if (stopping && devnull >= 0)
		dup2(devnull, waiting_fd);
}

static void
run(void)
{
	size_t capevs = 0;
	struct pos at;

	in = evin_new(&T);
	while (!stopping && evin_next(in, &ev)) {
		waiting = 0;
		evin_pos(in, &at);
		if (store_kind(S) != STORE_REDIS) {
			handle(&ev, &at);
			if (++in_batch >= O.batch)
				end_batch(0);
			continue;
		}
		if (nevs == capevs) {
			size_t cap = capevs ? capevs * 2 : 64;
			if (cap > O.batch)
				cap = O.batch;
			evs = xreallocarray(evs, cap, sizeof *evs);
			evpos = xreallocarray(evpos, cap, sizeof *evpos);
			for (size_t i = capevs; i < cap; i++)
				event_init(&evs[i]);
			capevs = cap;
		}
		evpos[nevs] = at;
		event_copy(&evs[nevs++], &ev);
		if (nevs >= O.batch)
			end_batch(0);
	}
	end_batch(1);
	for (size_t i = 0; i < capevs; i++)
		event_free(&evs[i]);
	free(evs);
	free(evpos);
	evin_free(in);
	in = NULL;
}

/* ---- --restore ---- */

static struct profile **rbatch;
static size_t nrbatch;

static void
restore_flush(int checkpoint)
{
	char err[512];
	struct str *users = xreallocarray(NULL, nrbatch ? nrbatch : 1, sizeof *users);

	for (size_t i = 0; i < nrbatch; i++)
		users[i] = profile_str(rbatch[i], rbatch[i]->user);
	if (store_fetch(S, users, nrbatch, err, sizeof err))
		die(EXIT_IO, "%s", err);
	free(users);
	for (size_t i = 0; i < nrbatch; i++) {
		if (store_put(S, rbatch[i], err, sizeof err)) {
			for (size_t j = i + 1; j < nrbatch; j++)
				profile_free(rbatch[j]);
			nrbatch = 0;
			store_commit(S, 1, err + 256, 256);
			die(EXIT_IO, "%s: %s", O.store, err);
		}
		(*T.out_n)++;
	}
	nrbatch = 0;
	if (store_commit(S, checkpoint, err, sizeof err))
		die(EXIT_IO, "%s", err);
	publish_counts();
}

static void
restore_one(struct profile *p)
{
	rbatch[nrbatch++] = p;
	if (nrbatch >= O.batch)
		restore_flush(0);
}

static void
restore_idle(void *ctx)
{
	(void)ctx;
	restore_flush(0);
	tool_idle(&T);
}

/* Profile updates: NDJSON (optionally KEY<TAB>JSON, as kcat -K prints)
 * or Avro container files of reco.Profile, detected per file. */
static void
restore(void)
{
	const char *l, *pk;
	size_t n;
	int toolong, r;
	char err[512];
	struct pos at;

	rbatch = xreallocarray(NULL, O.batch, sizeof *rbatch);
	T.src->on_idle = restore_idle;
	while ((r = src_next_file(T.src)) != 0) {
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
		int avro = T.in_fmt == FMT_AVRO;
		if (T.in_fmt == FMT_AUTO) {
			int k = src_peek(T.src, 4, &pk);
			if (k < 0)
				die(EXIT_IO, "%s", T.src->err);
			avro = k == 4 && memcmp(pk, "Obj\1", 4) == 0;
		}
		if (avro) {
			struct profile_avro_in *a = profile_avro_in_open(T.src, err, sizeof err);
			if (!a) {
				warn("%s: %s", T.src->name, err);
				T.status = EXIT_DATA;
				continue;
			}
			for (;;) {
				struct profile *p = profile_new("", 0);
				r = profile_avro_in_next(a, p, err, sizeof err);
				if (r <= 0) {
					profile_free(p);
					if (r < 0) {
						warn("%s: %s", T.src->name, err);
						T.status = EXIT_DATA;
					}
					break;
				}
				(*T.in)++;
				tool_tick(&T);
				restore_one(p);
			}
			profile_avro_in_free(a);
			continue;
		}
		while ((r = src_getline(T.src, &l, &n, &toolong)) > 0) {
			size_t i = 0;
			while (i < n && (l[i] == ' ' || l[i] == '\t' || l[i] == '\r'))
				i++;
			if (i == n && !toolong)
				continue;
			(*T.in)++;
			tool_tick(&T);
			tool_pos(&T, &at);
			if (toolong) {
				tool_reject(&T, &at, RJ_LINE_TOO_LONG, "line longer than --max-line",
					    l, n > 1024 ? 1024 : n);
				continue;
			}
			/* KEY<TAB>JSON: the JSON starts after the first tab. */
			const char *j = l;
			size_t jn = n;
			if (n && l[0] != '{') {
				const char *tab = memchr(l, '\t', n);
				if (tab) {
					j = tab + 1;
					jn = n - (size_t)(j - l);
				}
			}
			struct profile *p = profile_new("", 0);
			if (profile_parse_json(p, j, jn, err, sizeof err)) {
				profile_free(p);
				tool_reject(&T, &at,
					    strncmp(err, "invalid JSON", 12) == 0 ? RJ_BAD_JSON
										  : RJ_INVALID_PROFILE,
					    err, l, n);
				continue;
			}
			restore_one(p);
		}
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
	}
	restore_flush(1);
	free(rbatch);
}

/* ---- --get and --dump ---- */

static int
dump_one(struct profile *p, void *ctx)
{
	struct str u = profile_str(p, p->user);

	(void)ctx;
	if (!tool_in_shard(&T, u.p, u.n))
		return 0;
	emit(p);
	return 0;
}

static int
read_mode(void)
{
	char err[512];
	struct profile *p;
	int r;

	if (!O.store)
		tool_usage_error(&T, "--%s needs --store", O.mode == MODE_GET ? "get" : "dump");
	if (T.nfiles)
		tool_usage_error(&T, "--%s reads no input files", O.mode == MODE_GET ? "get" : "dump");
	if (!(S = store_open(O.store, STORE_READ, &O.so, err, sizeof err)))
		die(EXIT_IO, "%s", err);
	if (O.mode == MODE_GET) {
		r = store_get(S, O.user, strlen(O.user), &p, err, sizeof err);
		if (r < 0)
			die(EXIT_IO, "%s", err);
		if (r == 0) {
			if (verbosity >= 0)
				warn("%s: no profile for user \"%s\"", O.store, O.user);
			T.status = EXIT_DATA;
		} else
			emit(p);
	} else if (store_each(S, dump_one, NULL, err, sizeof err))
		die(EXIT_IO, "%s", err);
	return 0;
}

/* ---- main ---- */

static void
metrics_init(void)
{
	struct metrics *m = &T.m;

	M.updates = metric(m, "reco_profile_updates_total", NULL,
			   "Profile updates written.");
	M.unpositioned = metric(m, "reco_profile_unpositioned_total", NULL,
				"Events applied without a source position (no replay protection).");
	M.batches = metric(m, "reco_profile_batches_total", NULL,
			   "Batches ended.");
	M.commits = metric(m, "reco_profile_store_commits_total", NULL,
			   "Redis transactions (MULTI/EXEC) committed.");
	M.users = metric_gauge(m, "reco_profile_users", NULL,
			       "Profiles in memory (all of them for a state file).");
	M.bytes = metric_gauge(m, "reco_profile_store_bytes", NULL,
			       "Bytes of memory the profiles in memory hold.");
	M.hits = metric(m, "reco_profile_cache_hits_total", NULL,
			"Redis: profiles found in Redis when fetched.");
	M.misses = metric(m, "reco_profile_cache_misses_total", NULL,
			  "Redis: profiles not in memory when needed.");
	M.evictions = metric(m, "reco_profile_cache_evictions_total", NULL,
			     "Redis: profiles dropped from memory past --cache-users.");
	M.retries = metric(m, "reco_profile_store_retries_total", NULL,
			   "Redis: reconnections after a lost connection.");
	M.users_evicted = metric(m, "reco_profile_users_evicted_total", NULL,
				 "No --store: profiles dropped from memory past --max-users.");
	M.checkpoints = metric(m, "reco_profile_checkpoints_total", NULL,
			       "State file: checkpoints written.");
	M.checkpoint_ms = metric_gauge_ms(m, "reco_profile_checkpoint_seconds", NULL,
					  "State file: time to write the last checkpoint.");
	M.load_ms = metric_gauge_ms(m, "reco_profile_load_seconds", NULL,
				    "State file: time to load it at start.");
}

int
main(int argc, char **argv)
{
	char err[512];
	int st;

	tool_init(&T, "reco-profile", usage);
	T.schema_help = "      --schema[=json|avro] print the schema of the profiles and exit\n";
	profile_opts_default(&O.po);
	store_opts_default(&O.so);
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	if (!O.store && !O.max_users_given)
		O.so.max_users = 1000000;
	/* The shards of one store are distinct writers, and so are named
	 * writers (each owns its sources). */
	static char lease[256];
	snprintf(lease, sizeof lease, "%s%s%s", T.shard_tag, O.writer ? "@" : "",
		 O.writer ? O.writer : "");
	O.so.lease = lease;
	if (T.key && strcmp(T.key, "user") != 0)
		tool_usage_error(&T, "--key: profile updates are keyed by user, not \"%s\"", T.key);
	if (O.mode == MODE_RESTORE && !O.store)
		tool_usage_error(&T, "--restore needs --store");
	if (O.mode == MODE_RESTORE && (T.in_fmt == FMT_CONFLUENT || T.in_fmt == FMT_AVRO_SINGLE))
		tool_usage_error(&T, "--restore reads profiles as NDJSON or Avro files, not as Avro messages");
	if (T.shard_n && (O.mode == MODE_RESTORE || O.mode == MODE_GET))
		tool_usage_error(&T, "--shard: not with --%s", O.mode == MODE_GET ? "get" : "restore");
	/* The percentiles are of the whole population of users, which a shard
	 * does not see. */
	if (T.shard_n > 1 && O.po.count_norm == PNORM_PERCENTILE && O.mode == MODE_RUN)
		tool_usage_error(&T, "--shard: not with --count-norm percentile (a shard sees only its users)");
	/* Profiles are written here, not by the tool layer's event writer. */
	O.avro = T.out_fmt;
	T.out_fmt = FMT_NDJSON;
	tool_open(&T);
	metrics_init();
	if (fmt_avro(O.avro) && !(aout = tool_avro_out(&T, O.avro, profile_avsc)))
		return tool_finish(&T);
	event_init(&ev);
	if (O.mode == MODE_GET || O.mode == MODE_DUMP)
		read_mode();
	else {
		if (!(S = store_open(O.store, STORE_WRITE, &O.so, err, sizeof err)))
			die(EXIT_IO, "%s", err);
		publish_counts();
		if (verbosity > 0 && O.store)
			info("%s: %llu profiles loaded in %.3f s", O.store,
			     (unsigned long long)store_users(S),
			     store_counts(S)->load_s);
		if (O.mode == MODE_RESTORE)
			restore();
		else {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = on_signal;
			sigemptyset(&sa.sa_mask);
			devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
			sigaction(SIGINT, &sa, NULL);
			sigaction(SIGTERM, &sa, NULL);
			T.src->on_idle = on_idle;
			run();
			if (stopping && verbosity >= 0)
				warn("stopped by a signal; what was read is applied");
		}
		publish_counts();
		*M.bytes = store_bytes(S);
	}
	if (aout && avro_out_close(aout))
		out_failed();
	aout = NULL;
	store_close(S);
	event_free(&ev);
	buf_free(&line);
	buf_free(&srcbuf);
	free_list(O.cat_attrs, O.ncat_attrs);
	free_list(O.brand_attrs, O.nbrand_attrs);
	st = tool_finish(&T);
	return st;
}
