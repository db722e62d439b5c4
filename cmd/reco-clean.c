/* reco-clean: de-duplicate events, drop bots, reject impossible times and put events back in event-time order. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "reco.h"
#include "lock.h"
#include "clean.h"

static const char usage[] =
"usage: reco-clean [options] [file ...]\n"
"De-duplicate events, drop bots, reject impossible times and put events\n"
"back in event-time order.\n"
"\n"
"Duplicates:\n"
"      --dedupe-window DUR  remember event ids this long in event time\n"
"                           (default 1h; 0 turns de-duplication off)\n"
"      --dedupe-max N       remember at most N ids (default 1000000)\n"
"Bots:\n"
"      --bot-agents FILE    more user-agent patterns, one a line\n"
"      --no-default-bots    do not use the built-in user-agent patterns\n"
"      --max-rate N/UNIT    most events per user in a sliding window of event\n"
"                           time, such as 120/min (default), 10/s; 0 is off\n"
"      --max-users N        users whose rate is tracked (default 100000)\n"
"      --bots ACTION        drop (default), reject or tag (attrs.bot)\n"
"Time and order:\n"
"      --max-lateness DUR   reorder events up to DUR late (default 5s;\n"
"                           0 keeps the input order)\n"
"      --late ACTION        what to do with later events: reject (default)\n"
"                           or pass\n"
"      --max-buffer N       events held for reordering at most (default 100000)\n"
"      --max-future DUR     reject events this far ahead of the newest event\n"
"                           (default 1h; 0 is off); such an event never\n"
"                           moves the clock\n"
"      --clock-confirm N    events that confirm the clock (default 8): the\n"
"                           median of the first N starts it; N in a row past\n"
"                           --max-future move it, fewer are rejected\n"
"      --max-age DUR        reject events this far behind the watermark\n"
"                           (default 0, off)\n"
"Filters:\n"
"      --types T,...        keep only events of these types\n"
"      --users-from FILE    keep only the users listed in FILE\n"
"      --exclude-users FILE drop the users listed in FILE\n"
"      --drops FILE         write dropped records to FILE, with the reason\n"
"State:\n"
"      --state FILE         restore the windows from FILE, save them at exit\n"
"      --checkpoint-every N also save them every N records\n"
"      --flush              with --state, still write out the held events\n"
"                           at the end of the input\n";

enum {
	OPT_DEDUPE_WINDOW = OPT_TOOL_FIRST,
	OPT_DEDUPE_MAX,
	OPT_BOT_AGENTS,
	OPT_NO_DEFAULT_BOTS,
	OPT_MAX_RATE,
	OPT_MAX_USERS,
	OPT_BOTS,
	OPT_MAX_LATENESS,
	OPT_LATE,
	OPT_MAX_BUFFER,
	OPT_MAX_FUTURE,
	OPT_CLOCK_CONFIRM,
	OPT_MAX_AGE,
	OPT_TYPES,
	OPT_USERS_FROM,
	OPT_EXCLUDE_USERS,
	OPT_DROPS,
	OPT_STATE,
	OPT_CHECKPOINT_EVERY,
	OPT_FLUSH
};

static const struct option opts[] = {
	{ "dedupe-window", required_argument, NULL, OPT_DEDUPE_WINDOW },
	{ "dedupe-max", required_argument, NULL, OPT_DEDUPE_MAX },
	{ "bot-agents", required_argument, NULL, OPT_BOT_AGENTS },
	{ "no-default-bots", no_argument, NULL, OPT_NO_DEFAULT_BOTS },
	{ "max-rate", required_argument, NULL, OPT_MAX_RATE },
	{ "max-users", required_argument, NULL, OPT_MAX_USERS },
	{ "bots", required_argument, NULL, OPT_BOTS },
	{ "max-lateness", required_argument, NULL, OPT_MAX_LATENESS },
	{ "late", required_argument, NULL, OPT_LATE },
	{ "max-buffer", required_argument, NULL, OPT_MAX_BUFFER },
	{ "max-future", required_argument, NULL, OPT_MAX_FUTURE },
	{ "clock-confirm", required_argument, NULL, OPT_CLOCK_CONFIRM },
	{ "max-age", required_argument, NULL, OPT_MAX_AGE },
	{ "types", required_argument, NULL, OPT_TYPES },
	{ "users-from", required_argument, NULL, OPT_USERS_FROM },
	{ "exclude-users", required_argument, NULL, OPT_EXCLUDE_USERS },
	{ "drops", required_argument, NULL, OPT_DROPS },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "checkpoint-every", required_argument, NULL, OPT_CHECKPOINT_EVERY },
	{ "flush", no_argument, NULL, OPT_FLUSH },
	{ NULL, 0, NULL, 0 }
};

/* Case-insensitive substrings of the user agents of crawlers, scripts and
 * headless browsers. */
static const char *const default_bots[] = {
	"bot", "crawler", "crawl", "spider", "slurp", "curl", "wget",
	"python-requests", "python-urllib", "aiohttp", "httpx", "httpclient",
	"http-client", "go-http-client", "okhttp", "java/", "libwww-perl",
	"lwp::", "scrapy", "headless", "phantomjs", "selenium", "puppeteer",
	"playwright", "node-fetch", "axios/", "facebookexternalhit",
	"ia_archiver", "archiver", "feedfetcher", "mediapartners", "nutch",
	"httrack", "masscan", "zgrab", "nmap"
};

enum { ACT_DROP, ACT_REJECT, ACT_TAG };
enum { BOT_NONE, BOT_UA, BOT_RATE };

/* Seeds of the hashes of ids and users: any fixed values do. */
#define SEED_ID 0x636c65616e2d6964ULL
#define SEED_USER 0x636c65616e2d7573ULL

/* User-agent verdicts are remembered with the user agent itself (a pure
 * cache: it changes no decision, only saves the pattern search). */
#define UA_CACHE 1024
#define UA_KEEP 240

/* The state file: magic, version, the windows, a CRC-32 of all before it. */
static const char state_magic[] = "reco-clean state\n";
#define STATE_MAGIC_LEN (sizeof state_magic - 1)
#define STATE_VERSION 1

/* Options: one process, one configuration. */
static struct {
	int64_t dedupe_window;
	long long dedupe_max;
	char **pat;              /* lower-case user-agent patterns */
	size_t *patn, npat;
	int no_default_bots;
	char **agent_files;
	size_t nagent_files;
	long long rate_n;        /* 0: no rate limit */
	int64_t rate_win;
	const char *rate_text;
	long long max_users;
	int bots;
	int64_t max_lateness;
	int late_pass;
	long long max_buffer;
	int64_t max_future, max_age;
	const char *lateness_text, *future_text, *age_text;
	unsigned types;          /* bit per ET_* kept */
	const char *users_from, *exclude_users;
	const char *drops;
	const char *state;
	long long checkpoint_every;
	int flush;
	size_t confirm;
} O = {
	.confirm = 8,
	.dedupe_window = 3600000,
	.dedupe_max = 1000000,
	.rate_n = 120,
	.rate_win = 60000,
	.rate_text = "120/min",
	.max_users = 100000,
	.bots = ACT_DROP,
	.max_lateness = 5000,
	.max_buffer = 100000,
	.max_future = 3600000,
	.lateness_text = "5s",
	.future_text = "1h",
	.age_text = "0",
	.types = (1u << ET_NTYPES) - 1,
};

/* The per-user record of the rate limit: event counts of the current and
 * the previous fixed window of rate_win milliseconds. */
struct urec {
	int64_t win;      /* the current window: ts / rate_win */
	uint32_t cur, prev;
};

/*
 * The clock is trusted only once events confirm it. A stream without a
 * saved clock holds its first --clock-confirm events and starts the clock
 * at the median of their times. Later, an event more than --max-future
 * ahead of the clock is held: the next event in time rejects it (reason
 * future) and it never moves the clock; --clock-confirm of them in a row
 * are a gap in the stream, and the clock moves to their median. So one
 * poison event time (the year 2200) is rejected, in front of a stream or
 * in it, and a stream that resumes after a pause goes on.
 */
#define CONFIRM_MAX 1024
static struct {
	struct event ev[CONFIRM_MAX];
	struct pos at[CONFIRM_MAX];
	size_t n;
	int have_ref;
	int64_t ref;             /* the median time of the last confirmation */
	const struct pos *cur;   /* the position of the held event in hand */
} W;

/* The stream's state: what the state file saves. */
static struct {
	uint64_t seq;            /* arrival number of the last event */
	int have_max, have_out;
	int64_t max_ts;          /* the newest event time seen */
	int64_t last_out;        /* the time of the last event written in order */
	uint64_t records;        /* input records of earlier runs */
} S;

/* The clock: the newest event time, or the last confirmed median. */
static int64_t
clock_now(void)
{
	int64_t clock = S.have_max ? S.max_ts : W.ref;

	return W.have_ref && W.ref > clock ? W.ref : clock;
}

static struct tool T;
static struct evin *in;
static struct event ev, oev;
static struct reorder R;
static struct dedupe D;
static struct lru U;
static struct htab keep_users, drop_users;
static struct wout *drops;
static struct buf raw, lower, drop_line;
static struct {
	uint16_t n;
	uint8_t verdict;         /* 0 unknown, 1 person, 2 bot */
	char ua[UA_KEEP];
} ua_cache[UA_CACHE];

/* Counts taken while the state loads, before the metrics exist. */
static uint64_t restored, load_dedupe_early, load_users_evicted;

static struct {
	uint64_t *dedupe_early, *dedupe_ids, *bots_ua, *bots_rate;
	uint64_t *users_evicted, *users, *reorder_early, *reorder_held;
	uint64_t *reorder_peak, *late_passed, *watermark, *restored;
	uint64_t *checkpoints, *bytes;
} M;

/* ---- options ---- */

static long long
count_arg(const char *opt, const char *arg, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (!isdigit((unsigned char)*arg) || *end || errno || v < min || v > max)
		tool_usage_error(&T, "%s: expected a whole number from %lld to %lld, not \"%s\"",
				 opt, min, max, arg);
	return v;
}

static int64_t
dur_arg(const char *opt, const char *arg)
{
	int64_t ms;

	if (duration_parse(arg, &ms) || ms < 0 || ms > 3650LL * 86400000)
		tool_usage_error(&T, "%s: expected a duration such as 500ms, 30s, 10m, 1h or 7d, not \"%s\"",
				 opt, arg);
	return ms;
}

/* N/UNIT, with UNIT a word (s, min, h, d) or a duration (10s, 5m). */
static void
rate_arg(const char *arg)
{
	static const struct {
		const char *name;
		int64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "sec", 1000 }, { "second", 1000 },
		{ "m", 60000 }, { "min", 60000 }, { "minute", 60000 },
		{ "h", 3600000 }, { "hour", 3600000 }, { "d", 86400000 },
		{ "day", 86400000 }
	};
	const char *slash = strchr(arg, '/');
	char num[32];
	size_t n;

	O.rate_text = arg;
	if (strcmp(arg, "0") == 0 || strcmp(arg, "off") == 0) {
		O.rate_n = 0;
		return;
	}
	n = slash ? (size_t)(slash - arg) : 0;
	if (!slash || n == 0 || n >= sizeof num)
		goto bad;
	memcpy(num, arg, n);
	num[n] = '\0';
	O.rate_n = count_arg("--max-rate", num, 0, 1000000000);
	O.rate_win = -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
		if (strcmp(slash + 1, units[i].name) == 0)
			O.rate_win = units[i].ms;
	if (O.rate_win < 0 && (duration_parse(slash + 1, &O.rate_win) ||
			       O.rate_win > 366LL * 86400000))
		goto bad;
	if (O.rate_win < 1)
		goto bad;
	return;
bad:
	tool_usage_error(&T, "--max-rate: expected N/UNIT such as 120/min, 10/s or 1000/1h, not \"%s\"",
			 arg);
}

static void
types_arg(const char *arg)
{
	const char *p = arg;

	O.types = 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		int t = event_type_parse(p, n);
		if (t < 0)
			tool_usage_error(&T, "--types: unknown event type \"%.*s\" (view, click, search, add_to_cart, remove_from_cart, purchase, impression)",
					 (int)n, p);
		O.types |= 1u << t;
		if (!e)
			break;
		p = e + 1;
	}
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	(void)t;
	switch (c) {
	case OPT_DEDUPE_WINDOW:
		O.dedupe_window = dur_arg("--dedupe-window", arg);
		return 0;
	case OPT_DEDUPE_MAX:
		O.dedupe_max = count_arg("--dedupe-max", arg, 1, 1LL << 31);
		return 0;
	case OPT_BOT_AGENTS:
		O.agent_files = xreallocarray(O.agent_files, O.nagent_files + 1,
					      sizeof *O.agent_files);
		O.agent_files[O.nagent_files++] = (char *)arg;
		return 0;
	case OPT_NO_DEFAULT_BOTS:
		O.no_default_bots = 1;
		return 0;
	case OPT_MAX_RATE:
		rate_arg(arg);
		return 0;
	case OPT_MAX_USERS:
		O.max_users = count_arg("--max-users", arg, 1, 1LL << 31);
		return 0;
	case OPT_BOTS:
		if (strcmp(arg, "drop") == 0)
			O.bots = ACT_DROP;
		else if (strcmp(arg, "reject") == 0)
			O.bots = ACT_REJECT;
		else if (strcmp(arg, "tag") == 0)
			O.bots = ACT_TAG;
		else
			tool_usage_error(&T, "--bots: expected drop, reject or tag, not \"%s\"", arg);
		return 0;
	case OPT_MAX_LATENESS:
		O.max_lateness = dur_arg("--max-lateness", arg);
		O.lateness_text = arg;
		return 0;
	case OPT_LATE:
		if (strcmp(arg, "reject") == 0)
			O.late_pass = 0;
		else if (strcmp(arg, "pass") == 0)
			O.late_pass = 1;
		else
			tool_usage_error(&T, "--late: expected reject or pass, not \"%s\"", arg);
		return 0;
	case OPT_MAX_BUFFER:
		O.max_buffer = count_arg("--max-buffer", arg, 1, 1LL << 31);
		return 0;
	case OPT_CLOCK_CONFIRM:
		O.confirm = (size_t)count_arg("--clock-confirm", arg, 1, CONFIRM_MAX);
		return 0;
	case OPT_MAX_FUTURE:
		O.max_future = dur_arg("--max-future", arg);
		O.future_text = arg;
		return 0;
	case OPT_MAX_AGE:
		O.max_age = dur_arg("--max-age", arg);
		O.age_text = arg;
		return 0;
	case OPT_TYPES:
		types_arg(arg);
		return 0;
	case OPT_USERS_FROM:
		O.users_from = arg;
		return 0;
	case OPT_EXCLUDE_USERS:
		O.exclude_users = arg;
		return 0;
	case OPT_DROPS:
		O.drops = arg;
		return 0;
	case OPT_STATE:
		O.state = arg;
		return 0;
	case OPT_CHECKPOINT_EVERY:
		O.checkpoint_every = count_arg("--checkpoint-every", arg, 1,
					       (long long)(~0ULL >> 2));
		return 0;
	case OPT_FLUSH:
		O.flush = 1;
		return 0;
	}
	return 1;
}

/*
 * Call fn on each line of path with its blanks trimmed, leaving out empty
 * lines and # comments. Dies (status 3) if the file cannot be read.
 */
static void
each_line(const char *path, void (*fn)(const char *p, size_t n, void *ctx),
	  void *ctx)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t r;

	if (!f)
		die(EXIT_IO, "%s:", path);
	while ((r = getline(&line, &cap, f)) >= 0) {
		size_t a = 0, n = (size_t)r;
		while (n > 0 && isspace((unsigned char)line[n - 1]))
			n--;
		while (a < n && isspace((unsigned char)line[a]))
			a++;
		if (a == n || line[a] == '#')
			continue;
		fn(line + a, n - a, ctx);
	}
	if (ferror(f))
		die(EXIT_IO, "%s: read error:", path);
	free(line);
	fclose(f);
}

static void
add_pattern(const char *p, size_t n, void *ctx)
{
	(void)ctx;
	O.pat = xreallocarray(O.pat, O.npat + 1, sizeof *O.pat);
	O.patn = xreallocarray(O.patn, O.npat + 1, sizeof *O.patn);
	O.pat[O.npat] = xstrndup(p, n);
	for (size_t i = 0; i < n; i++)
		O.pat[O.npat][i] = (char)tolower((unsigned char)p[i]);
	O.patn[O.npat++] = n;
}

static void
add_user(const char *p, size_t n, void *ctx)
{
	int isnew;

	htab_put(ctx, hash64(p, n, SEED_USER), &isnew);
}

/* ---- output, drops and rejects ---- */

/* Write a duration in milliseconds as seconds, for messages. */
static const char *
secs(int64_t ms)
{
	static char out[2][48];
	static int k;
	char *o = out[k ^= 1];

	snprintf(o, sizeof out[0], "%s%lld.%03llds", ms < 0 ? "-" : "",
		 (long long)((ms < 0 ? -ms : ms) / 1000),
		 (long long)((ms < 0 ? -ms : ms) % 1000));
	return o;
}

/* Where the event in hand came from (a held one's own position). */
static void
event_at(struct pos *at)
{
	if (W.cur)
		*at = *W.cur;
	else
		evin_pos(in, at);
}

static void
reject(const struct event *e, int reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
reject(const struct event *e, int reason, const char *fmt, ...)
{
	char msg[512];
	struct pos at;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	event_at(&at);
	raw.n = 0;
	event_write_json(&raw, e);
	tool_reject(&T, &at, reason, msg, raw.p, raw.n);
}

static void
drop(const struct event *e, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Count a drop; with --drops, also write the record there in the format of
 * the rejects file. */
static void
drop(const struct event *e, const char *reason, const char *fmt, ...)
{
	char msg[512];
	struct pos at;
	va_list ap;
	struct buf *b = &drop_line;

	tool_drop(&T, reason);
	if (!drops)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	event_at(&at);
	b->n = 0;
	buf_puts(b, "{\"reason\":");
	buf_json_str(b, reason, strlen(reason));
	buf_puts(b, ",\"message\":");
	buf_json_str(b, msg, strlen(msg));
	buf_puts(b, ",\"file\":");
	buf_json_str(b, at.file, strlen(at.file));
	if (at.line) {
		buf_puts(b, ",\"line\":");
		buf_put_u64(b, at.line);
	}
	if (at.block) {
		buf_puts(b, ",\"block\":");
		buf_put_u64(b, at.block);
		buf_puts(b, ",\"record\":");
		buf_put_u64(b, at.record);
	}
	raw.n = 0;
	event_write_json(&raw, e);
	buf_puts(b, ",\"raw\":");
	buf_json_str(b, raw.p, raw.n);
	buf_puts(b, "}\n");
	if (wout_write(drops, b->p, b->n))
		tool_output_failed(&T, drops);
}

/* The length of s cut to at most max bytes, at a character boundary. */
static int
cut(struct str s, size_t max)
{
	size_t n = s.n;

	if (n > max) {
		n = max;
		while (n > 0 && (s.p[n] & 0xc0) == 0x80)
			n--;
	}
	return (int)n;
}

/* Write an event that keeps the output in time order. */
static void
emit_ordered(const struct event *e)
{
	S.last_out = e->ts;
	S.have_out = 1;
	tool_emit(&T, e);
}

static void
pop_emit(void)
{
	if (reorder_pop(&R, &oev, NULL) < 0)
		die(EXIT_IO, "internal error: reorder buffer");
	emit_ordered(&oev);
}

/* Write out the held events at or before the watermark w. */
static void
release(int64_t w)
{
	int64_t ts;

	while (reorder_peek(&R, &ts) && ts <= w)
		pop_emit();
}

/* Past --max-buffer, the earliest events leave before their time. */
static void
overflow(void)
{
	while (R.n > (size_t)O.max_buffer) {
		pop_emit();
		(*M.reorder_early)++;
	}
}

/* ---- bots ---- */

/* Return 1 if p[0..n) contains q[0..m). */
static int
contains(const char *p, size_t n, const char *q, size_t m)
{
	const char *e = p + n, *s = p;

	if (m == 0)
		return 1;
	while ((size_t)(e - s) >= m && (s = memchr(s, q[0], (size_t)(e - s) - m + 1))) {
		if (memcmp(s, q, m) == 0)
			return 1;
		s++;
	}
	return 0;
}

static uint64_t
load8(const char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static int
ua_is_bot(const struct str *ua)
{
	size_t slot = 0;

	if (ua->n >= 8 && ua->n <= UA_KEEP) {
		/* A cheap hash of the length and three words is enough for a
		 * cache that compares the whole string. */
		uint64_t h = (load8(ua->p) ^ load8(ua->p + ua->n / 2 - 4) * 31 ^
			      load8(ua->p + ua->n - 8) * 131 ^ ua->n) *
			     0x9e3779b97f4a7c15ULL;
		slot = h >> 54;
		if (ua_cache[slot].verdict && ua_cache[slot].n == ua->n &&
		    memcmp(ua_cache[slot].ua, ua->p, ua->n) == 0)
			return ua_cache[slot].verdict == 2;
	}
	lower.n = 0;
	buf_reserve(&lower, ua->n + 1);
	for (size_t i = 0; i < ua->n; i++)
		lower.p[i] = (char)tolower((unsigned char)ua->p[i]);
	lower.n = ua->n;
	int bot = 0;
	for (size_t i = 0; i < O.npat && !bot; i++)
		bot = contains(lower.p, lower.n, O.pat[i], O.patn[i]);
	if (ua->n >= 8 && ua->n <= UA_KEEP) {
		ua_cache[slot].n = (uint16_t)ua->n;
		memcpy(ua_cache[slot].ua, ua->p, ua->n);
		ua_cache[slot].verdict = bot ? 2 : 1;
	}
	return bot;
}

/*
 * Count the event in its user's windows and return 1 if the user is over
 * the rate: the events of the current fixed window plus those of the
 * previous one, weighted by the part of it that the sliding window still
 * covers, more than rate_n.
 */
static int
rate_over(const struct event *e)
{
	int isnew, evicted;
	struct urec *u = lru_get(&U, hash64(e->user.p, e->user.n, SEED_USER),
				 &isnew, &evicted);
	int64_t k = e->ts / O.rate_win, el = 0;

	if (evicted)
		(*M.users_evicted)++;
	if (isnew)
		u->win = k;
	if (k == u->win) {
		if (u->cur < UINT32_MAX)
			u->cur++;
		el = e->ts - k * O.rate_win;
	} else if (k == u->win + 1) {
		u->prev = u->cur;
		u->cur = 1;
		u->win = k;
		el = e->ts - k * O.rate_win;
	} else if (k > u->win) {
		u->prev = 0;
		u->cur = 1;
		u->win = k;
		el = e->ts - k * O.rate_win;
	} else if (k == u->win - 1 && u->prev < UINT32_MAX)
		u->prev++;
	/* An older event is judged at the start of the user's window (el 0). */
	uint64_t f = (uint64_t)((O.rate_win - el) * 65536 / O.rate_win);
	return (uint64_t)u->prev * f + (uint64_t)u->cur * 65536 >
	       (uint64_t)O.rate_n * 65536;
}

/* Return 1 if the event's user agent is a bot's (a pure function of the
 * event, so it may run before the checks that come first). */
static int
ua_check(const struct event *e)
{
	const struct str *s;

	if (!O.npat || !(s = event_get_attr_n(e, "ua", 2)))
		return 0;
	return ua_is_bot(s);
}

/* ---- the pipeline of one event ---- */

static void
clean(struct event *e)
{
	int late = 0, evicted;
	int64_t w;
	uint64_t idkey = 0;

	S.seq++;
	if (O.dedupe_window) {
		idkey = hash64(e->event_id.p, e->event_id.n, SEED_ID);
		dedupe_prefetch(&D, idkey);
	}
	/* Work that needs no state first, while the id's slot loads. */
	int ua = ua_check(e);
	/* An event too far ahead of the clock never moves it (the held
	 * ones that confirm a clock are judged against their median). */
	int64_t clock = clock_now();
	if ((S.have_max || W.have_ref) && O.max_future &&
	    e->ts > clock + O.max_future) {
		char iso[64];
		ts_format_iso(e->ts, iso);
		reject(e, RJ_FUTURE, "event time %s is %s ahead of the %s (--max-future %s)",
		       iso, secs(e->ts - clock),
		       S.have_max && clock == S.max_ts ? "newest event"
						      : "median of the events that set the clock",
		       O.future_text);
		return;
	}
	if (S.have_max) {
		w = S.max_ts - O.max_lateness;
		if (O.max_age && e->ts < w - O.max_age) {
			char iso[64];
			ts_format_iso(e->ts, iso);
			reject(e, RJ_TOO_OLD, "event time %s is %s behind the watermark (--max-age %s)",
			       iso, secs(w - e->ts), O.age_text);
			return;
		}
		if (e->ts < w || (S.have_out && e->ts < S.last_out)) {
			if (!O.late_pass) {
				if (e->ts < w)
					reject(e, RJ_LATE, "late event: %s older than the newest event (--max-lateness %s)",
					       secs(S.max_ts - e->ts), O.lateness_text);
				else
					reject(e, RJ_LATE, "late event: older than an event already written (the reorder buffer was full)");
				return;
			}
			late = 1;
		}
	}
	if (!S.have_max || e->ts > S.max_ts) {
		S.max_ts = e->ts;
		S.have_max = 1;
	}
	if (O.dedupe_window) {
		dedupe_expire(&D, S.max_ts - O.dedupe_window);
		if (dedupe_check(&D, idkey, e->ts, &evicted)) {
			drop(e, "duplicate", "duplicate event_id \"%.*s\"",
			     cut(e->event_id, 80), e->event_id.p);
			return;
		}
		if (evicted)
			(*M.dedupe_early)++;
	}
	int rate = O.rate_n ? rate_over(e) : 0;
	int bot = ua ? BOT_UA : rate ? BOT_RATE : BOT_NONE;
	if (bot) {
		(*(bot == BOT_UA ? M.bots_ua : M.bots_rate))++;
		switch (O.bots) {
		case ACT_DROP:
			drop(e, "bot", bot == BOT_UA ? "bot: user agent" : "bot: over --max-rate %s",
			     O.rate_text);
			return;
		case ACT_REJECT:
			reject(e, RJ_BOT, bot == BOT_UA ? "bot: user agent" : "bot: over --max-rate %s",
			       O.rate_text);
			return;
		default:
			event_add_attr(e, "bot", 3, bot == BOT_UA ? "ua" : "rate",
				       bot == BOT_UA ? 2 : 4);
		}
	}
	if (!(O.types >> e->type & 1)) {
		drop(e, "type", "type %s not kept (--types)",
		     event_type_names[e->type]);
		return;
	}
	if (keep_users.keys &&
	    !htab_get(&keep_users, hash64(e->user.p, e->user.n, SEED_USER))) {
		drop(e, "user_filter", "user not listed (--users-from)");
		return;
	}
	if (drop_users.keys &&
	    htab_get(&drop_users, hash64(e->user.p, e->user.n, SEED_USER))) {
		drop(e, "user_filter", "user excluded (--exclude-users)");
		return;
	}
	if (late) {
		(*M.late_passed)++;
		tool_emit(&T, e);
		return;
	}
	w = S.max_ts - O.max_lateness;
	if (R.n == 0 && e->ts <= w) {
		emit_ordered(e);
		return;
	}
	reorder_push(&R, e, S.seq);
	release(w);
	overflow();
	if (R.n > *M.reorder_peak)
		*M.reorder_peak = R.n;
}

static void
hold(const struct event *e)
{
	event_copy(&W.ev[W.n], e);
	evin_pos(in, &W.at[W.n]);
	W.n++;
}

static int
cmp_ts(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The held events confirm a clock: move it to the median of their times,
 * then clean them in their order of arrival. */
static void
confirm_held(void)
{
	int64_t ts[CONFIRM_MAX];

	if (W.n == 0)
		return;
	for (size_t i = 0; i < W.n; i++)
		ts[i] = W.ev[i].ts;
	qsort(ts, W.n, sizeof ts[0], cmp_ts);
	W.ref = ts[(W.n - 1) / 2];
	W.have_ref = 1;
	for (size_t i = 0; i < W.n; i++) {
		W.cur = &W.at[i];
		clean(&W.ev[i]);
	}
	W.cur = NULL;
	W.n = 0;
}

/* The held events were not confirmed: reject them as future. */
static void
reject_held(void)
{
	int64_t clock = clock_now();

	for (size_t i = 0; i < W.n; i++) {
		char iso[64];
		W.cur = &W.at[i];
		ts_format_iso(W.ev[i].ts, iso);
		reject(&W.ev[i], RJ_FUTURE, "event time %s is %s ahead of the newest event (--max-future %s)",
		       iso, secs(W.ev[i].ts - clock), O.future_text);
	}
	W.cur = NULL;
	W.n = 0;
}

/* Hold an event that the clock cannot judge yet, or release what is held.
 * Return 1 if the event is held. */
static int
clock_check(const struct event *e)
{
	if (!O.max_future)
		return 0;
	if ((!S.have_max && !W.have_ref) || e->ts > clock_now() + O.max_future) {
		hold(e);
		if (W.n >= O.confirm)
			confirm_held();
		return 1;
	}
	reject_held();
	return 0;
}

/* At the end of the input: a stream too short to confirm its clock starts
 * it with what it has; events ahead of a clock, unconfirmed, are rejected. */
static void
clock_end(void)
{
	if (!S.have_max && !W.have_ref)
		confirm_held();
	else
		reject_held();
}

/* ---- state ---- */

/* Save the windows to --state atomically. Dies (status 3) if it cannot. */
static void
save_state(void)
{
	char err[512];
	struct statew *w = state_begin(O.state, err, sizeof err);
	struct buf b = { 0 };
	if (!w)
		die(EXIT_IO, "%s", err);
	buf_put(&b, state_magic, STATE_MAGIC_LEN);
	buf_put_varint(&b, STATE_VERSION);
	buf_put_varint(&b, (int64_t)S.seq);
	buf_put_varint(&b, S.have_max);
	buf_put_varint(&b, S.max_ts);
	buf_put_varint(&b, S.have_out);
	buf_put_varint(&b, S.last_out);
	buf_put_varint(&b, (int64_t)(S.records + *T.in - restored));
	buf_put_varint(&b, (int64_t)R.n);
	for (size_t i = 0; i < R.n; i++) {
		struct str s;
		const struct reorder_ent *re = reorder_at(&R, i, &s);
		buf_put_varint(&b, re->ts);
		buf_put_varint(&b, (int64_t)re->seq);
		buf_put_bytes(&b, s.p, s.n);
		state_put(w, &b);
	}
	buf_put_varint(&b, O.dedupe_window ? (int64_t)D.n : 0);
	for (size_t i = 0; O.dedupe_window && i < D.n; i++) {
		const struct dedupe_ent *d = dedupe_at(&D, i);
		buf_put_u64le(&b, d->key);
		buf_put_varint(&b, d->ts);
		state_put(w, &b);
	}
	buf_put_varint(&b, O.rate_n ? (int64_t)U.n : 0);
	buf_put_varint(&b, O.rate_win);
	for (uint32_t i = O.rate_n ? lru_oldest(&U) : LRU_NONE; i != LRU_NONE;
	     i = lru_newer(&U, i)) {
		const struct urec *u = lru_rec(&U, i);
		buf_put_u64le(&b, U.node[i].key);
		buf_put_varint(&b, u->win);
		buf_put_varint(&b, u->cur);
		buf_put_varint(&b, u->prev);
		state_put(w, &b);
	}
	state_put(w, &b);
	state_put_crc(w);
	buf_free(&b);
	if (state_commit(w, err, sizeof err))
		die(EXIT_IO, "%s", err);
}

static void
corrupt(const char *what)
{
	die(EXIT_DATA, "%s: corrupt state file (%s); remove it to start afresh",
	    O.state, what);
}

static int64_t
get_num(const char **p, const char *e, int64_t min, int64_t max,
	const char *what)
{
	int64_t v;

	if (get_varint(p, e, &v) || v < min || v > max)
		corrupt(what);
	return v;
}

/*
 * Restore the windows from --state, if the file exists. A file that is not
 * a state file of this version, or is damaged, stops the tool with status 1
 * before anything is read or written.
 */
static void
load_state(void)
{
	char err[512];
	struct buf b = { 0 };
	int r = state_load(O.state, &b, err, sizeof err);
	const char *p, *e;
	int64_t n, v;

	if (r < 0)
		die(EXIT_IO, "%s", err);
	if (r == 0)
		return;
	switch (state_body(&b, state_magic, STATE_MAGIC_LEN, STATE_VERSION, &v, &p, &e)) {
	case STATE_FOREIGN:
		die(EXIT_DATA, "%s: not a reco-clean state file", O.state);
	case STATE_BAD_VERSION:
		die(EXIT_DATA, "%s: state file version %lld; this reco-clean reads version %d",
		    O.state, (long long)v, STATE_VERSION);
	case STATE_CORRUPT:
		corrupt("checksum mismatch");
	}
	S.seq = (uint64_t)get_num(&p, e, 0, INT64_MAX, "sequence");
	S.have_max = (int)get_num(&p, e, 0, 1, "flags");
	S.max_ts = get_num(&p, e, INT64_MIN, INT64_MAX, "watermark");
	S.have_out = (int)get_num(&p, e, 0, 1, "flags");
	S.last_out = get_num(&p, e, INT64_MIN, INT64_MAX, "last time");
	S.records = (uint64_t)get_num(&p, e, 0, INT64_MAX, "record count");
	n = get_num(&p, e, 0, 1LL << 32, "buffer size");
	for (int64_t i = 0; i < n; i++) {
		struct str s;
		int64_t ts = get_num(&p, e, INT64_MIN, INT64_MAX, "buffer");
		int64_t seq = get_num(&p, e, 0, (int64_t)S.seq, "buffer");
		if (get_bytes(&p, e, &s) ||
		    reorder_push_raw(&R, ts, (uint64_t)seq, s.p, s.n))
			corrupt("buffered event");
		restored++;
	}
	n = get_num(&p, e, 0, 1LL << 40, "id count");
	for (int64_t i = 0; i < n; i++) {
		uint64_t key;
		int ev_;
		if (get_u64le(&p, e, &key))
			corrupt("ids");
		int64_t ts = get_num(&p, e, INT64_MIN, INT64_MAX, "ids");
		if (O.dedupe_window) {
			dedupe_check(&D, key, ts, &ev_);
			load_dedupe_early += (uint64_t)ev_;
		}
	}
	n = get_num(&p, e, 0, 1LL << 40, "user count");
	int64_t win = get_num(&p, e, 0, INT64_MAX, "rate window");
	for (int64_t i = 0; i < n; i++) {
		uint64_t key;
		int isnew, evicted;
		if (get_u64le(&p, e, &key))
			corrupt("users");
		int64_t uw = get_num(&p, e, INT64_MIN, INT64_MAX, "users");
		int64_t cur = get_num(&p, e, 0, UINT32_MAX, "users");
		int64_t prev = get_num(&p, e, 0, UINT32_MAX, "users");
		/* Counts in windows of another length mean nothing now. */
		if (!O.rate_n || win != O.rate_win)
			continue;
		struct urec *u = lru_get(&U, key, &isnew, &evicted);
		load_users_evicted += (uint64_t)evicted;
		u->win = uw;
		u->cur = (uint32_t)cur;
		u->prev = (uint32_t)prev;
	}
	if (p != e)
		corrupt("trailing bytes");
	buf_free(&b);
	if (verbosity > 0)
		info("%s: restored after %llu input records: %zu held events, %zu ids, %zu users",
		     O.state, (unsigned long long)S.records, R.n,
		     O.dedupe_window ? D.n : 0, O.rate_n ? U.n : 0);
}

static void
gauges(void)
{
	*M.reorder_held = R.n;
	*M.dedupe_ids = O.dedupe_window ? D.n : 0;
	*M.users = O.rate_n ? U.n : 0;
	*M.watermark = S.have_max && S.max_ts > O.max_lateness
			       ? (uint64_t)(S.max_ts - O.max_lateness) : 0;
	*M.bytes = (O.dedupe_window ? dedupe_bytes(&D) : 0) +
		   (O.rate_n ? lru_bytes(&U) : 0) + R.bytes +
		   (R.fcap + R.heapcap) * sizeof(struct reorder_ent) +
		   R.nslots * (sizeof(struct buf) + sizeof(uint32_t));
}

/* Make everything written so far durable with the windows that produced
 * it: the output first, then the state. An output that failed (a full
 * disk, a reader gone) is never covered by a saved state. */
static void
checkpoint(void)
{
	gauges();
	int bad = tool_flush(&T);
	if (drops && wout_flush(drops))
		bad = tool_output_failed(&T, drops);
	if (bad || (T.halt && T.status != EXIT_DATA)) {
		/* A broken pipe stays quiet (reco(7)); a full disk says so. */
		if (T.status != EXIT_PIPE)
			warn("%s: not saved: the output failed", O.state);
		return;
	}
	save_state();
	(*M.checkpoints)++;
}

static void
init_metrics(void)
{
	struct metrics *m = &T.m;

	M.dedupe_early = metric(m, "reco_clean_dedupe_evicted_early_total", NULL,
		"Ids forgotten before the end of --dedupe-window because of --dedupe-max.");
	M.dedupe_ids = metric_gauge(m, "reco_clean_dedupe_ids", NULL,
		"Event ids remembered for de-duplication.");
	M.bots_ua = metric(m, "reco_clean_bots_total", "rule=\"ua\"",
		"Bot events, by the rule that found them.");
	M.bots_rate = metric(m, "reco_clean_bots_total", "rule=\"rate\"",
		"Bot events, by the rule that found them.");
	M.users_evicted = metric(m, "reco_clean_users_evicted_total", NULL,
		"Users whose rate counts were forgotten because of --max-users.");
	M.users = metric_gauge(m, "reco_clean_users", NULL,
		"Users whose rate is tracked.");
	M.reorder_early = metric(m, "reco_clean_reorder_evicted_early_total", NULL,
		"Events written before the watermark passed them because of --max-buffer.");
	M.reorder_held = metric_gauge(m, "reco_clean_reorder_events", NULL,
		"Events held in the reorder buffer.");
	M.reorder_peak = metric_gauge(m, "reco_clean_reorder_peak_events", NULL,
		"The most events held in the reorder buffer at once.");
	M.late_passed = metric(m, "reco_clean_late_passed_total", NULL,
		"Late events written out of order (--late pass).");
	M.watermark = metric_gauge_ms(m, "reco_clean_watermark_seconds", NULL,
		"The watermark: the newest event time minus --max-lateness, in seconds since the epoch.");
	M.restored = metric(m, "reco_clean_state_restored_total", NULL,
		"Held events restored from --state (counted as records in).");
	M.checkpoints = metric(m, "reco_clean_checkpoints_total", NULL,
		"State files written.");
	M.bytes = metric_gauge(m, "reco_clean_window_bytes", NULL,
		"Bytes held by the windows: ids, users and held events.");
}

/* The lock of --state, held while the tool runs. */
static struct lock *state_lock;

int
main(int argc, char **argv)
{
	uint64_t last_ckpt = 0;

	tool_init(&T, "reco-clean", usage);
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	if (O.checkpoint_every && !O.state)
		tool_usage_error(&T, "--checkpoint-every needs --state");
	if (O.flush && !O.state)
		tool_usage_error(&T, "--flush needs --state");
	if (!O.no_default_bots)
		for (size_t i = 0; i < sizeof default_bots / sizeof default_bots[0]; i++)
			add_pattern(default_bots[i], strlen(default_bots[i]), NULL);
	for (size_t i = 0; i < O.nagent_files; i++)
		each_line(O.agent_files[i], add_pattern, NULL);
	if (O.users_from) {
		htab_init(&keep_users, 64);
		each_line(O.users_from, add_user, &keep_users);
	}
	if (O.exclude_users) {
		htab_init(&drop_users, 64);
		each_line(O.exclude_users, add_user, &drop_users);
	}
	reorder_init(&R);
	dedupe_init(&D, (size_t)O.dedupe_max);
	lru_init(&U, (size_t)O.max_users, sizeof(struct urec));
	if (O.state) {
		char err[512];
		struct statew *w;
		/* One writer per state file. */
		if (!(state_lock = lock_take(O.state, err, sizeof err)))
			die(EXIT_IO, "%s", err);
		load_state();
		/* Find out now, not after the whole input, that the state
		 * cannot be saved. */
		if (!(w = state_begin(O.state, err, sizeof err)))
			die(EXIT_IO, "%s", err);
		state_abort(w);
	}
	tool_open(&T);
	init_metrics();
	if (O.drops && !(drops = wout_open(O.drops))) {
		warn("%s:", O.drops);
		T.status = EXIT_IO;
		return tool_finish(&T);
	}
	if (drops)
		drops->lines = 1;
	*T.in += restored;
	*M.restored += restored;
	*M.dedupe_early += load_dedupe_early;
	*M.users_evicted += load_users_evicted;
	event_init(&ev);
	event_init(&oev);
	overflow();
	last_ckpt = *T.in;
	in = evin_new(&T);
	while (evin_next(in, &ev)) {
		if (clock_check(&ev))
			continue;
		clean(&ev);
		if ((S.seq & 1023) == 0)
			gauges();
		if (O.checkpoint_every &&
		    *T.in - last_ckpt >= (uint64_t)O.checkpoint_every) {
			last_ckpt = *T.in;
			checkpoint();
		}
	}
	clock_end();
	if (!O.state || O.flush)
		while (R.n)
			pop_emit();
	if (O.state) {
		for (size_t i = 0; i < R.n; i++)
			tool_drop(&T, "deferred");
		checkpoint();
	}
	gauges();
	int drops_failed = drops && wout_flush(drops) &&
			   tool_output_failed(&T, drops);
	if (drops && wout_close(drops) && !drops_failed) {
		warn("%s: write error:", O.drops);
		tool_fail(&T, EXIT_IO);
	}
	drops = NULL;
	evin_free(in);
	event_free(&ev);
	event_free(&oev);
	for (size_t i = 0; i < CONFIRM_MAX; i++)
		event_free(&W.ev[i]);
	reorder_free(&R);
	dedupe_free(&D);
	lru_free(&U);
	if (keep_users.keys)
		htab_free(&keep_users);
	if (drop_users.keys)
		htab_free(&drop_users);
	for (size_t i = 0; i < O.npat; i++)
		free(O.pat[i]);
	free(O.pat);
	free(O.patn);
	free(O.agent_files);
	buf_free(&raw);
	buf_free(&lower);
	buf_free(&drop_line);
	lock_free(state_lock);
	return tool_finish(&T);
}
