/* reco-gen: a deterministic synthetic event stream with planted structure and planted faults. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reco.h"

#define NONE UINT32_MAX
#define ZIPF_S 1.1          /* item popularity exponent */
#define CART_MAX 8          /* distinct items a cart holds */
#define SESSION_MAX 20      /* events of one session, at most */
#define QTY_MAX 9
#define MAX_COUNT 1000000000ULL /* users, items, categories, clusters */
#define BOT_PAUSE_US (300 * 1000000LL) /* mean pause between crawls */
#define BOT_GAP_MAX_US 250000 /* a bot is at least this fast... */
#define BOT_SPEEDUP 20      /* ...and this many times faster than a person */
#define DELAY_MIN_US 50000  /* duplicates and small disorder: 50 ms... */
#define DELAY_MAX_US 3000000 /* ...to 3 s */

/* The sessions regime. */
#define NSUCC 4             /* planted successors of an item */
#define RETURN_P 0.05       /* a session of a visitor seen before */
#define RING 4096           /* recent visitors, for those that return */
#define VISITOR_MAX 3000000000U /* visitor indexes; bots follow */
/* The history regime. */
#define HIST_MIN 50         /* events of a user, at least... */
#define HIST_MAX 500        /* ...and at most */
#define HIST_MEAN 200       /* events per user, for the default --users */
#define HIST_VISIT 12       /* mean events per visit */
#define HIST_SET 1024       /* a user's items seen: a power of 2 > HIST_MAX */
#define HIST_STAGE 60       /* events of one taste, about */
#define HIST_BLEND 1.0      /* stages blend over this many stages */
#define HIST_NEXT 0.5       /* a taste moves on to the next cluster */
#define HIST_GLOBAL 0.10    /* an event of a popular item... */
#define HIST_ANY 0.03       /* ...of any item... */
#define HIST_TASTE 0.15     /* ...of the taste of the moment; the rest: of
			     * the visit's stage */
#define HIST_SKIP 0.7       /* skip one more unseen item of a cluster */
#define DAY_MS 86400000LL
#define HIST_WIN_MIN 30     /* days of a user's history, at least... */
#define HIST_WIN_MAX 120    /* ...and at most */
#define VISIT_GAP_MIN_MS 20000 /* between two events of a visit */
#define VISIT_GAP_MAX_MS 300000

static const char usage[] =
"usage: reco-gen [-hqVv] [--regime name] [--seed n] [--events n] [--users n]\n"
"                [--items n] [--categories n] [--clusters n] [--sessions n]\n"
"                [--start time] [--rate n] [--format event|csv|access-log]\n"
"                [--no-structure] [--dup-rate p] [--late-rate p]\n"
"                [--late-by duration] [--ooo-rate p] [--bot-users p]\n"
"                [--malformed-rate p] [--truth file] [--items-out file]\n"
"                [--users-out file] [-O ndjson|avro] [-o file]\n"
"                [--codec null|deflate] [--key field] [--stats] [--metrics file]\n"
"                [--progress | --no-progress] [--schema[=json|avro]]\n"
"Write a deterministic stream of synthetic e-commerce events with planted\n"
"structure and, on request, planted faults.\n"
"\n"
"Stream (defaults: shop; sessions; history):\n"
"      --regime NAME        shop (default), sessions or history\n"
"      --seed N             seed of every random choice (default 1)\n"
"      --events N           events of ordinary users (10000; 30000; 30000)\n"
"      --users N            ordinary users (1000; -; --events/200)\n"
"      --items N            items (5000; 5000; 3000)\n"
"      --categories N       categories (20; 20; 24)\n"
"      --clusters N         latent taste clusters (8; 8; 12); also --factors\n"
"      --sessions N         most sessions active at once (1000; 1000; -)\n"
"      --start TIME         first event time, ISO 8601 or epoch ms\n"
"                           (default 2019-10-01T00:00:00Z)\n"
"      --rate N             events per event-second (100; 100; 0.004)\n"
"      --format FMT         event (default), csv or access-log\n"
"      --no-structure       items by popularity only, no latent taste\n"
"\n"
"Faults (all 0 by default):\n"
"      --dup-rate P         fraction of events delivered twice\n"
"      --late-rate P        fraction of events delivered late\n"
"      --late-by DURATION   how late, at most (default 10m)\n"
"      --ooo-rate P         fraction of events delivered a few seconds late\n"
"      --bot-users P        bots, as a fraction of --users\n"
"      --malformed-rate P   probability of a garbage line after an event\n"
"      --truth FILE         write the planted faults to FILE (NDJSON)\n"
"      --items-out FILE     write the catalogue to FILE (CSV)\n"
"      --users-out FILE     write the users to FILE (CSV)\n";

enum { OUT_EVENT, OUT_CSV, OUT_ACCESS };
enum { R_SHOP, R_SESSIONS, R_HISTORY };
/* Options given on the command line, for the regimes' defaults. */
enum {
	G_EVENTS = 1 << 0, G_USERS = 1 << 1, G_ITEMS = 1 << 2,
	G_CATEGORIES = 1 << 3, G_CLUSTERS = 1 << 4, G_SESSIONS = 1 << 5,
	G_RATE = 1 << 6
};
enum { F_NONE, F_DUP, F_LATE, F_OOO, F_BOT, F_MALFORMED, F_NKINDS };
static const char *const fault_names[F_NKINDS] = {
	"none", "duplicate", "late", "ooo", "bot", "malformed"
};
enum { M_BROKEN, M_BAD_TS, M_UNKNOWN_TYPE, M_NO_USER, M_NKINDS };
static const char *const malformed_names[M_NKINDS] = {
	"broken", "bad_ts", "unknown_type", "missing_user"
};

enum {
	OPT_SEED = OPT_TOOL_FIRST,
	OPT_EVENTS,
	OPT_USERS,
	OPT_ITEMS,
	OPT_CATEGORIES,
	OPT_CLUSTERS,
	OPT_SESSIONS,
	OPT_START,
	OPT_RATE,
	OPT_FORMAT,
	OPT_NO_STRUCTURE,
	OPT_DUP,
	OPT_LATE,
	OPT_LATE_BY,
	OPT_OOO,
	OPT_BOTS,
	OPT_MALFORMED,
	OPT_TRUTH,
	OPT_ITEMS_OUT,
	OPT_USERS_OUT,
	OPT_REGIME
};

static const struct option gen_opts[] = {
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "events", required_argument, NULL, OPT_EVENTS },
	{ "users", required_argument, NULL, OPT_USERS },
	{ "items", required_argument, NULL, OPT_ITEMS },
	{ "categories", required_argument, NULL, OPT_CATEGORIES },
	{ "clusters", required_argument, NULL, OPT_CLUSTERS },
	{ "factors", required_argument, NULL, OPT_CLUSTERS },
	{ "sessions", required_argument, NULL, OPT_SESSIONS },
	{ "start", required_argument, NULL, OPT_START },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "no-structure", no_argument, NULL, OPT_NO_STRUCTURE },
	{ "dup-rate", required_argument, NULL, OPT_DUP },
	{ "late-rate", required_argument, NULL, OPT_LATE },
	{ "late-by", required_argument, NULL, OPT_LATE_BY },
	{ "ooo-rate", required_argument, NULL, OPT_OOO },
	{ "bot-users", required_argument, NULL, OPT_BOTS },
	{ "malformed-rate", required_argument, NULL, OPT_MALFORMED },
	{ "truth", required_argument, NULL, OPT_TRUTH },
	{ "items-out", required_argument, NULL, OPT_ITEMS_OUT },
	{ "users-out", required_argument, NULL, OPT_USERS_OUT },
	{ "regime", required_argument, NULL, OPT_REGIME },
	{ NULL, 0, NULL, 0 }
};

static struct {
	uint64_t seed, events, users, items, categories, clusters, sessions;
	int64_t start, late_by;
	double rate, dup, late, ooo, bots, malformed;
	int format, structure, regime;
	unsigned given;
	const char *truth, *items_out, *users_out;
} opt = {
	.seed = 1, .events = 10000, .users = 1000, .items = 5000,
	.categories = 20, .clusters = 8, .sessions = 1000,
	.start = 1569888000000LL, .late_by = 600000, .rate = 100,
	.format = OUT_EVENT, .structure = 1
};

/* Words for category names: the top level follows the cluster, so that a
 * category's name says which taste it belongs to. */
#define NSUB 8
static const struct {
	const char *top, *sub[NSUB];
} cat_words[] = {
	{ "electronics", { "audio", "video", "smartphone", "tablet", "camera",
			   "headphone", "clocks", "telephone" } },
	{ "appliances", { "kitchen", "environment", "iron", "vacuum", "sewing",
			  "personal", "bath", "lighting" } },
	{ "computers", { "notebook", "desktop", "peripherals", "components",
			 "network", "printer", "monitor", "storage" } },
	{ "apparel", { "shoes", "bags", "jacket", "dress", "shirt", "jeans",
		       "belt", "scarf" } },
	{ "furniture", { "living_room", "bedroom", "kitchen", "office",
			 "bathroom", "garden", "kids", "storage" } },
	{ "kids", { "toys", "carriage", "skates", "swing", "dolls", "puzzles",
		    "clothes", "bottles" } },
	{ "sport", { "fitness", "cycling", "ski", "tennis", "camping",
		     "running", "swimming", "football" } },
	{ "beauty", { "skincare", "perfume", "makeup", "hair", "nails",
		      "shaving", "bath", "tools" } },
	{ "auto", { "accessories", "tires", "audio", "tools", "parts", "alarm",
		    "oil", "cleaning" } },
	{ "garden", { "tools", "plants", "grill", "furniture", "lighting",
		      "watering", "seeds", "decor" } },
	{ "books", { "fiction", "children", "science", "cooking", "travel",
		     "comics", "history", "business" } },
	{ "food", { "snacks", "drinks", "coffee", "tea", "sweets", "spices",
		    "pasta", "sauces" } }
};
#define NTOP (sizeof cat_words / sizeof cat_words[0])

static const char *const syllables[16] = {
	"ka", "lo", "mi", "ra", "ze", "to", "vi", "sa",
	"no", "pe", "lu", "de", "ba", "ri", "go", "fu"
};

static const char *const browser_ua[] = {
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/77.0.3865.90 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:69.0) Gecko/20100101 Firefox/69.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 13_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 9; SM-G960F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/77.0.3865.92 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:69.0) Gecko/20100101 Firefox/69.0"
};
static const char *const bot_ua[] = {
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
	"python-requests/2.31.0",
	"curl/8.0.1",
	"Scrapy/2.11.0 (+https://scrapy.org)",
	"Wget/1.21.3"
};
#define NBROWSER (sizeof browser_ua / sizeof browser_ua[0])
#define NBOTUA (sizeof bot_ua / sizeof bot_ua[0])

static const char *const segments[] = {
	"new", "casual", "regular", "loyal", "vip"
};
static const char *const countries[] = {
	"DE", "FR", "GB", "US", "PL", "IT", "ES", "NL", "SE", "UA"
};
#define NCOUNTRY (sizeof countries / sizeof countries[0])

static const char *const months[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

struct category {
	char name[64];
	double mu;        /* log of the typical price */
	uint32_t brand0;  /* first of the brands the category carries */
};

struct item {
	uint32_t cat, brand; /* brand NONE: no brand */
	uint32_t stock;
	double price;
};

struct user {
	uint32_t nsess;
	uint32_t c1, c2;     /* preferred clusters (c2 == c1 for one) */
	float w1, w2;        /* probability of each; the rest is uniform */
	uint8_t active, ua, segment, country;
};

struct bot {
	int64_t next;        /* event time of its next event, us */
	uint32_t nsess, pos, left;
	uint8_t ua;
};

struct session {
	uint32_t user, sess, cluster, last;
	uint32_t prev;       /* sessions regime: the item before last */
	uint32_t left;
	int first;
	uint32_t ncart;
	struct {
		uint32_t item, qty;
	} cart[CART_MAX];
};

/* Sessions regime: a visitor who may come back. */
struct visitor {
	uint32_t user, nsess;
};

/* History regime: one event of a user's history, made when the user
 * arrives. */
struct hev {
	int64_t ts;          /* ms */
	uint32_t item;
};

/* History regime: the taste of the user being made, in stages of
 * HIST_STAGE events or so: the cluster of each stage and how far the
 * user has gone through it. */
#define HIST_NSTAGE (HIST_MAX / HIST_STAGE + 1)
struct hist_taste {
	uint32_t n, k[HIST_NSTAGE], pos[HIST_NSTAGE];
};

/* History regime: a user whose history is being written. */
struct hact {
	int64_t next;        /* ms: ev[pos].ts */
	uint32_t user, pos, n;
	struct hev *ev;
};

/* A generated event, compact: strings are made when it is written. */
struct gev {
	int64_t ts;          /* ms */
	uint64_t id;
	uint32_t user;       /* index; bots follow the ordinary users */
	uint32_t item;       /* search: the item found, not written in events */
	uint32_t sess;
	uint32_t cat;        /* search: the category searched */
	uint32_t qty;
	uint8_t type, bot;
};

/* An event held back to be delivered later (late, out of order, or the
 * second copy of a duplicate). */
struct held {
	int64_t release;     /* us */
	uint64_t seq;
	int kind;
	struct gev g;
};

struct gen {
	struct tool *t;
	struct rng r_cat, r_ev, r_bot, r_fault;
	uint32_t nclusters, ncats, nitems, nusers, nbots, npool, nbrands;
	struct category *cats;
	struct item *items;
	uint32_t *members;   /* items grouped by cluster, in popularity order */
	double *cum;         /* cumulative Zipf weights within each cluster */
	uint32_t *coff;      /* cluster k's items: members[coff[k]..coff[k+1]) */
	uint32_t *gperm;     /* items in global popularity order (all but shop
			      * with structure) */
	double *gcum;
	uint32_t *succ;      /* sessions: NSUCC successors of each item */
	struct visitor *ring; /* sessions: recent visitors, by index % RING */
	uint64_t nvisitors;
	uint32_t *hcount;    /* history: events of each user */
	struct hact *hact;   /* history: a heap by next event time */
	size_t nhact, caphact;
	struct hev **hfree;  /* history: arrays of HIST_MAX events to reuse */
	size_t nhfree;
	uint32_t hset[HIST_SET]; /* history: the items of the user being made */
	struct user *users;
	double *ucum;        /* cumulative activity of users */
	struct bot *bots;
	uint32_t *bheap;     /* bots by next event time */
	struct session *pool;
	struct held *held;
	size_t nheld, capheld;
	uint64_t seq, nbotev, nmalformed;
	int64_t bot_gap_us;
	uint64_t line;       /* output lines (or Avro records) so far */
	int64_t max_key, max_ts; /* newest event written, at output resolution */
	int has_max;
	struct wout *truth;
	struct buf tb, lb;   /* truth line, output line */
	struct event ev;
	char sbuf[256];      /* ids of the event being written */
	int64_t sec_cached;
	char csv_time[64], log_time[64];
	uint64_t *by_type[ET_NTYPES], *by_fault[F_NKINDS];
};

/* ---- options ---- */

static uint64_t
count_arg(struct tool *t, const char *name, const char *arg, uint64_t min,
	  uint64_t max)
{
	char *end;
	unsigned long long v;

	if (*arg < '0' || *arg > '9')
		tool_usage_error(t, "--%s: bad number \"%s\"", name, arg);
	v = strtoull(arg, &end, 10);
	if (*end != '\0' || v < min || v > max)
		tool_usage_error(t, "--%s: bad number \"%s\" (%llu to %llu)",
				 name, arg, (unsigned long long)min,
				 (unsigned long long)max);
	return v;
}

static double
rate_arg(struct tool *t, const char *name, const char *arg)
{
	char *end;
	double v = strtod(arg, &end);

	if (*arg == '\0' || *end != '\0' || !(v >= 0 && v <= 1))
		tool_usage_error(t, "--%s: expected a fraction from 0 to 1, not \"%s\"",
				 name, arg);
	return v;
}

static int
gen_opt(struct tool *t, int c, const char *arg)
{
	struct ts_format tf;
	char *end;

	switch (c) {
	case OPT_SEED:
		opt.seed = count_arg(t, "seed", arg, 0, UINT64_MAX);
		break;
	case OPT_EVENTS:
		opt.events = count_arg(t, "events", arg, 0, UINT64_MAX / 4);
		opt.given |= G_EVENTS;
		break;
	case OPT_USERS:
		opt.users = count_arg(t, "users", arg, 1, MAX_COUNT);
		opt.given |= G_USERS;
		break;
	case OPT_ITEMS:
		opt.items = count_arg(t, "items", arg, 1, MAX_COUNT);
		opt.given |= G_ITEMS;
		break;
	case OPT_CATEGORIES:
		opt.categories = count_arg(t, "categories", arg, 1, 1000000);
		opt.given |= G_CATEGORIES;
		break;
	case OPT_CLUSTERS:
		opt.clusters = count_arg(t, "clusters", arg, 1, 1000000);
		opt.given |= G_CLUSTERS;
		break;
	case OPT_SESSIONS:
		opt.sessions = count_arg(t, "sessions", arg, 1, 10000000);
		opt.given |= G_SESSIONS;
		break;
	case OPT_START:
		ts_format_parse(&tf, "auto");
		if (ts_parse(&tf, arg, strlen(arg), &opt.start) || opt.start < 0)
			tool_usage_error(t, "--start: bad time \"%s\"", arg);
		break;
	case OPT_RATE:
		opt.rate = strtod(arg, &end);
		if (*arg == '\0' || *end != '\0' || !(opt.rate > 0 && opt.rate <= 1e9))
			tool_usage_error(t, "--rate: bad rate \"%s\"", arg);
		opt.given |= G_RATE;
		break;
	case OPT_FORMAT:
		if (strcmp(arg, "event") == 0 || strcmp(arg, "ndjson") == 0)
			opt.format = OUT_EVENT;
		else if (strcmp(arg, "csv") == 0)
			opt.format = OUT_CSV;
		else if (strcmp(arg, "access-log") == 0)
			opt.format = OUT_ACCESS;
		else
			tool_usage_error(t, "--format: unknown format \"%s\" (event, csv, access-log)",
					 arg);
		break;
	case OPT_NO_STRUCTURE:
		opt.structure = 0;
		break;
	case OPT_DUP:
		opt.dup = rate_arg(t, "dup-rate", arg);
		break;
	case OPT_LATE:
		opt.late = rate_arg(t, "late-rate", arg);
		break;
	case OPT_LATE_BY:
		if (duration_parse(arg, &opt.late_by) || opt.late_by <= 0)
			tool_usage_error(t, "--late-by: bad duration \"%s\"", arg);
		break;
	case OPT_OOO:
		opt.ooo = rate_arg(t, "ooo-rate", arg);
		break;
	case OPT_BOTS:
		opt.bots = rate_arg(t, "bot-users", arg);
		break;
	case OPT_MALFORMED:
		opt.malformed = rate_arg(t, "malformed-rate", arg);
		break;
	case OPT_TRUTH:
		opt.truth = arg;
		break;
	case OPT_ITEMS_OUT:
		opt.items_out = arg;
		break;
	case OPT_USERS_OUT:
		opt.users_out = arg;
		break;
	case OPT_REGIME:
		if (strcmp(arg, "shop") == 0)
			opt.regime = R_SHOP;
		else if (strcmp(arg, "sessions") == 0)
			opt.regime = R_SESSIONS;
		else if (strcmp(arg, "history") == 0)
			opt.regime = R_HISTORY;
		else
			tool_usage_error(t, "--regime: unknown regime \"%s\" (shop, sessions, history)",
					 arg);
		break;
	default:
		return 1;
	}
	return 0;
}

/* The defaults of the options not given, by regime; and what a regime
 * refuses. */
static void
regime_opts(struct tool *t)
{
	if (opt.regime == R_SESSIONS) {
		if (opt.given & G_USERS)
			tool_usage_error(t, "--users: in the sessions regime each session has its own anonymous visitor; their number follows from --events");
		if (opt.users_out)
			tool_usage_error(t, "--users-out: the sessions regime has anonymous visitors, not a table of users");
		if (!(opt.given & G_EVENTS))
			opt.events = 30000;
		if (opt.events > VISITOR_MAX)
			tool_usage_error(t, "--events: at most %u in the sessions regime",
					 VISITOR_MAX);
	} else if (opt.regime == R_HISTORY) {
		if (opt.given & G_SESSIONS)
			tool_usage_error(t, "--sessions: the history regime has no sessions");
		if (opt.bots > 0)
			tool_usage_error(t, "--bot-users: the history regime has no bots (rating histories do not come from crawlers)");
		if (!(opt.given & G_ITEMS))
			opt.items = 3000;
		if (!(opt.given & G_CLUSTERS))
			opt.clusters = 12;
		if (!(opt.given & G_CATEGORIES))
			opt.categories = 24;
		if (!(opt.given & G_RATE))
			opt.rate = 0.004;
		if (!(opt.given & G_EVENTS))
			opt.events = (opt.given & G_USERS) ? opt.users * HIST_MEAN : 30000;
		if (!(opt.given & G_USERS)) {
			uint64_t u = (opt.events + HIST_MEAN / 2) / HIST_MEAN;
			if (u * HIST_MAX < opt.events)
				u = (opt.events + HIST_MAX - 1) / HIST_MAX;
			if (u * HIST_MIN > opt.events)
				u = opt.events / HIST_MIN;
			opt.users = u ? u : 1;
		}
		if (opt.events > 0 && (opt.events < opt.users * HIST_MIN ||
				       opt.events > opt.users * HIST_MAX))
			tool_usage_error(t, "--events (%llu) must be %d to %d times --users (%llu) in the history regime",
					 (unsigned long long)opt.events, HIST_MIN,
					 HIST_MAX, (unsigned long long)opt.users);
		if (opt.items < HIST_MAX)
			tool_usage_error(t, "--items: the history regime needs at least %d (a user sees up to %d distinct items)",
					 HIST_MAX, HIST_MAX);
	}
}

static void
check_opts(struct tool *t)
{
	if (t->nfiles > 0)
		tool_usage_error(t, "no input files: reco-gen writes events, it does not read them");
	regime_opts(t);
	if (opt.categories < opt.clusters)
		tool_usage_error(t, "--categories (%llu) must be at least --clusters (%llu)",
				 (unsigned long long)opt.categories,
				 (unsigned long long)opt.clusters);
	if (opt.items < opt.clusters)
		tool_usage_error(t, "--items (%llu) must be at least --clusters (%llu)",
				 (unsigned long long)opt.items,
				 (unsigned long long)opt.clusters);
	if (opt.dup + opt.late + opt.ooo > 1 + 1e-9)
		tool_usage_error(t, "--dup-rate, --late-rate and --ooo-rate add up to more than 1");
	if (opt.format != OUT_EVENT && fmt_avro(t->out_fmt))
		tool_usage_error(t, "-O avro (and Avro messages) needs --format event");
	if (opt.format != OUT_EVENT && t->key)
		tool_usage_error(t, "--key needs --format event");
	if (opt.malformed > 0 && fmt_avro(t->out_fmt))
		tool_usage_error(t, "--malformed-rate: Avro output has no malformed records");
	if (opt.regime != R_SESSIONS &&
	    (double)opt.users * (1 + opt.bots) + 1 > (double)MAX_COUNT)
		tool_usage_error(t, "--bot-users: too many users");
}

/* ---- small helpers ---- */

/* Write v in decimal at p; return the end. */
static char *
put_u(char *p, uint64_t v)
{
	char tmp[24];
	int i = 24;

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	memcpy(p, tmp + i, (size_t)(24 - i));
	return p + (24 - i);
}

static char *
put_s(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* Price as 123.45. */
static char *
put_price(char *p, double price)
{
	uint64_t cents = (uint64_t)llround(price * 100);

	p = put_u(p, cents / 100);
	*p++ = '.';
	*p++ = (char)('0' + cents / 10 % 10);
	*p++ = (char)('0' + cents % 10);
	return p;
}

/* A standard normal variate (Box-Muller). */
static double
normal(struct rng *r)
{
	double u1 = rng_double(r), u2 = rng_double(r);

	return sqrt(-2 * log1p(-u1)) * cos(2 * M_PI * u2);
}

/* An exponential waiting time with the given mean. */
static int64_t
wait_us(struct rng *r, double mean_us)
{
	return (int64_t)(-log1p(-rng_double(r)) * mean_us);
}

static uint64_t
uniform_us(struct rng *r, int64_t lo, int64_t hi)
{
	return (uint64_t)lo + rng_below(r, (uint64_t)(hi - lo + 1));
}

/* The index of the first cum[lo..hi) above a uniform draw. */
static size_t
pick_cum(struct rng *r, const double *cum, size_t lo, size_t hi)
{
	double u = rng_double(r) * cum[hi - 1];
	size_t a = lo, b = hi - 1;

	while (a < b) {
		size_t m = a + (b - a) / 2;
		if (cum[m] > u)
			b = m;
		else
			a = m + 1;
	}
	return a;
}

static void
shuffle(struct rng *r, uint32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rng_below(r, i);
		uint32_t x = a[i - 1];
		a[i - 1] = a[j];
		a[j] = x;
	}
}

static void
brand_name(uint32_t b, char *out)
{
	/* At least three syllables; distinct brands get distinct names. */
	uint64_t v = (uint64_t)b * 7 + 3 + 256;
	char *p = out;

	while (v) {
		p = put_s(p, syllables[v % 16]);
		v /= 16;
	}
	*p = '\0';
}

/* ---- the world: catalogue, users, bots ---- */

static void
make_catalogue(struct gen *g)
{
	uint32_t K = g->nclusters, C = g->ncats, N = g->nitems;
	uint32_t *cluster_of = xreallocarray(NULL, N, sizeof *cluster_of);

	g->nbrands = 3 * C + 2;
	g->cats = xcalloc(C, sizeof *g->cats);
	for (uint32_t c = 0; c < C; c++) {
		struct category *cat = &g->cats[c];
		uint32_t k = c % K, j = c / K;
		char *p = put_s(cat->name, cat_words[k % NTOP].top);
		if (k >= NTOP)
			p = put_u(p, k / NTOP + 1);
		*p++ = '.';
		p = put_s(p, cat_words[k % NTOP].sub[j % NSUB]);
		if (j >= NSUB)
			p = put_u(p, j / NSUB + 1);
		*p = '\0';
		cat->mu = log(5.0) + rng_double(&g->r_cat) * 5.0;
		cat->brand0 = 3 * c;
	}
	g->items = xcalloc(N, sizeof *g->items);
	g->coff = xcalloc((size_t)K + 1, sizeof *g->coff);
	for (uint32_t i = 0; i < N; i++) {
		struct item *it = &g->items[i];
		/* The first K items make sure no cluster is empty. */
		uint32_t k = i < K ? i : (uint32_t)rng_below(&g->r_cat, K);
		uint32_t nk = (C - k + K - 1) / K;
		cluster_of[i] = k;
		g->coff[k + 1]++;
		it->cat = k + K * (uint32_t)rng_below(&g->r_cat, nk);
		const struct category *cat = &g->cats[it->cat];
		it->brand = rng_double(&g->r_cat) < 0.08 ? NONE
			    : (cat->brand0 + (uint32_t)rng_below(&g->r_cat, 5)) %
				      g->nbrands;
		double price = exp(cat->mu + 0.6 * normal(&g->r_cat));
		price = round(price * 100) / 100;
		it->price = price < 0.5 ? 0.5 : price;
		it->stock = rng_double(&g->r_cat) < 0.05
				    ? 0 : (uint32_t)rng_below(&g->r_cat, 500) + 1;
	}
	for (uint32_t k = 0; k < K; k++)
		g->coff[k + 1] += g->coff[k];
	g->members = xreallocarray(NULL, N, sizeof *g->members);
	g->cum = xreallocarray(NULL, N, sizeof *g->cum);
	uint32_t *fill = xcalloc(K, sizeof *fill);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t k = cluster_of[i];
		g->members[g->coff[k] + fill[k]++] = i;
	}
	for (uint32_t k = 0; k < K; k++) {
		uint32_t lo = g->coff[k], hi = g->coff[k + 1];
		double acc = 0;
		shuffle(&g->r_cat, g->members + lo, hi - lo);
		for (uint32_t r = lo; r < hi; r++) {
			acc += pow(r - lo + 1, -ZIPF_S);
			g->cum[r] = acc;
		}
	}
	if (!opt.structure || opt.regime != R_SHOP) {
		double acc = 0;
		g->gperm = xreallocarray(NULL, N, sizeof *g->gperm);
		g->gcum = xreallocarray(NULL, N, sizeof *g->gcum);
		for (uint32_t i = 0; i < N; i++)
			g->gperm[i] = i;
		shuffle(&g->r_cat, g->gperm, N);
		for (uint32_t i = 0; i < N; i++) {
			acc += pow(i + 1, -ZIPF_S);
			g->gcum[i] = acc;
		}
	}
	free(fill);
	free(cluster_of);
}

static int
segment_of(double activity)
{
	return activity < 0.5 ? 0 : activity < 1 ? 1 : activity < 2 ? 2
	       : activity < 4 ? 3 : 4;
}

static void
make_users(struct gen *g)
{
	uint32_t K = g->nclusters, U = g->nusers;
	double acc = 0;

	g->users = xcalloc((size_t)U + g->nbots, sizeof *g->users);
	g->ucum = xreallocarray(NULL, U, sizeof *g->ucum);
	for (uint32_t u = 0; u < U; u++) {
		struct user *us = &g->users[u];
		double activity = exp(normal(&g->r_cat));
		acc += activity;
		g->ucum[u] = acc;
		us->c1 = (uint32_t)rng_below(&g->r_cat, K);
		if (K > 1 && rng_double(&g->r_cat) < 0.4) {
			us->c2 = (us->c1 + 1 + (uint32_t)rng_below(&g->r_cat, K - 1)) % K;
			us->w1 = 0.6f;
			us->w2 = 0.3f;
		} else {
			us->c2 = us->c1;
			us->w1 = 0.9f;
			us->w2 = 0;
		}
		us->ua = (uint8_t)rng_below(&g->r_cat, NBROWSER);
		us->segment = (uint8_t)segment_of(activity);
		us->country = (uint8_t)rng_below(&g->r_cat, NCOUNTRY);
	}
}

static int
bot_before(const struct gen *g, uint32_t a, uint32_t b)
{
	return g->bots[a].next < g->bots[b].next ||
	       (g->bots[a].next == g->bots[b].next && a < b);
}

static void
bot_down(struct gen *g, size_t i)
{
	size_t n = g->nbots;

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && bot_before(g, g->bheap[l], g->bheap[m]))
			m = l;
		if (l + 1 < n && bot_before(g, g->bheap[l + 1], g->bheap[m]))
			m = l + 1;
		if (m == i)
			return;
		uint32_t x = g->bheap[i];
		g->bheap[i] = g->bheap[m];
		g->bheap[m] = x;
		i = m;
	}
}

static void
make_bots(struct gen *g, int64_t start_us)
{
	/* A person's session gets an event every npool/rate seconds. */
	double person_gap_us = g->npool * 1e6 / opt.rate;
	double span_us = (double)opt.events * 1e6 / opt.rate;
	double first_us = span_us / 2 < 60e6 ? span_us / 2 : 60e6;

	g->bot_gap_us = (int64_t)(person_gap_us / BOT_SPEEDUP);
	if (g->bot_gap_us > BOT_GAP_MAX_US)
		g->bot_gap_us = BOT_GAP_MAX_US;
	if (g->bot_gap_us < 1)
		g->bot_gap_us = 1;
	g->bots = xcalloc(g->nbots ? g->nbots : 1, sizeof *g->bots);
	g->bheap = xcalloc(g->nbots ? g->nbots : 1, sizeof *g->bheap);
	for (uint32_t b = 0; b < g->nbots; b++) {
		struct bot *bt = &g->bots[b];
		uint8_t country;
		bt->ua = (uint8_t)rng_below(&g->r_bot, NBOTUA);
		bt->next = start_us + (int64_t)(rng_double(&g->r_bot) * first_us);
		bt->left = 0;
		country = (uint8_t)rng_below(&g->r_bot, NCOUNTRY);
		if (g->users) { /* the sessions regime has no table */
			g->users[g->nusers + b].segment = 0;
			g->users[g->nusers + b].country = country;
		}
		g->bheap[b] = b;
	}
	for (size_t i = g->nbots / 2; i-- > 0;)
		bot_down(g, i);
}

static void
flush_csv(struct wout *w, struct buf *b, const char *path)
{
	if (wout_write(w, b->p, b->n))
		die(EXIT_IO, "%s: write error: %s", path, strerror(w->err_no));
	b->n = 0;
}

/* The lookup tables: users (with the bots) or the catalogue. */
static void
write_csv_file(const char *path, int users, struct gen *g)
{
	struct wout *w = wout_open(path);
	struct buf b = { 0 };
	char name[80], *p;

	if (!w)
		die(EXIT_IO, "%s:", path);
	if (users) {
		buf_puts(&b, "user,segment,country\n");
		for (uint32_t u = 0; u < g->nusers + g->nbots; u++) {
			p = name;
			*p++ = 'u';
			p = put_u(p, (uint64_t)u + 1);
			buf_put(&b, name, (size_t)(p - name));
			buf_putc(&b, ',');
			buf_puts(&b, segments[g->users[u].segment]);
			buf_putc(&b, ',');
			buf_puts(&b, countries[g->users[u].country]);
			buf_putc(&b, '\n');
			if (b.n > 65536)
				flush_csv(w, &b, path);
		}
	} else {
		buf_puts(&b, "item,category,brand,price,stock\n");
		for (uint32_t i = 0; i < g->nitems; i++) {
			const struct item *it = &g->items[i];
			p = name;
			*p++ = 'i';
			p = put_u(p, (uint64_t)i + 1);
			*p++ = ',';
			buf_put(&b, name, (size_t)(p - name));
			buf_puts(&b, g->cats[it->cat].name);
			buf_putc(&b, ',');
			if (it->brand != NONE) {
				brand_name(it->brand, name);
				buf_puts(&b, name);
			}
			buf_putc(&b, ',');
			p = put_price(name, it->price);
			*p++ = ',';
			p = put_u(p, it->stock);
			*p++ = '\n';
			buf_put(&b, name, (size_t)(p - name));
			if (b.n > 65536)
				flush_csv(w, &b, path);
		}
	}
	flush_csv(w, &b, path);
	if (wout_close(w))
		die(EXIT_IO, "%s: write error:", path);
	buf_free(&b);
}

/* ---- sessions of ordinary users ---- */

static uint32_t
pick_user(struct gen *g)
{
	uint32_t u = 0;

	for (int tries = 0; tries < 8; tries++) {
		u = (uint32_t)pick_cum(&g->r_ev, g->ucum, 0, g->nusers);
		if (!g->users[u].active)
			return u;
	}
	/* Busy people: take the next one who is free (at most half of
	 * them are in a session). */
	while (g->users[u].active)
		u = u + 1 == g->nusers ? 0 : u + 1;
	return u;
}

static void
start_session(struct gen *g, struct session *s)
{
	struct user *us;
	double r;
	uint32_t len;

	s->user = pick_user(g);
	us = &g->users[s->user];
	us->active = 1;
	s->sess = ++us->nsess;
	r = rng_double(&g->r_ev);
	if (r < us->w1)
		s->cluster = us->c1;
	else if (r < us->w1 + us->w2)
		s->cluster = us->c2;
	else
		s->cluster = (uint32_t)rng_below(&g->r_ev, g->nclusters);
	len = 2 + (uint32_t)(-log1p(-rng_double(&g->r_ev)) * 4.0);
	s->left = len > SESSION_MAX ? SESSION_MAX : len;
	s->first = 1;
	s->last = NONE;
	s->ncart = 0;
}

static uint32_t
session_item(struct gen *g, const struct session *s)
{
	if (!opt.structure)
		return g->gperm[pick_cum(&g->r_ev, g->gcum, 0, g->nitems)];
	return g->members[pick_cum(&g->r_ev, g->cum, g->coff[s->cluster],
				   g->coff[s->cluster + 1])];
}

static uint32_t
session_category(struct gen *g, const struct session *s)
{
	uint32_t K = g->nclusters, k = s->cluster, nk;

	if (!opt.structure)
		return (uint32_t)rng_below(&g->r_ev, g->ncats);
	nk = (g->ncats - k + K - 1) / K;
	return k + K * (uint32_t)rng_below(&g->r_ev, nk);
}

static uint32_t
draw_qty(struct rng *r)
{
	double u = rng_double(r);

	return u < 0.75 ? 1 : u < 0.93 ? 2 : 3;
}

/* Put the session's last item into its cart. */
static void
cart_add(struct gen *g, struct session *s, struct gev *e)
{
	uint32_t i, q = draw_qty(&g->r_ev);

	e->item = s->last;
	e->qty = q;
	for (i = 0; i < s->ncart; i++)
		if (s->cart[i].item == s->last)
			break;
	if (i == s->ncart) {
		if (s->ncart == CART_MAX)
			i = CART_MAX - 1; /* a full cart: the last slot */
		else
			s->ncart++;
		s->cart[i].item = s->last;
		s->cart[i].qty = 0;
	}
	s->cart[i].qty = s->cart[i].qty + q > QTY_MAX ? QTY_MAX
						     : s->cart[i].qty + q;
}

/* Take an item out of the cart: the first one bought, or a random one
 * removed. */
static void
cart_take(struct gen *g, struct session *s, struct gev *e, int type)
{
	uint32_t i = type == ET_PURCHASE
			     ? 0 : (uint32_t)rng_below(&g->r_ev, s->ncart);

	e->item = s->cart[i].item;
	e->qty = s->cart[i].qty;
	s->cart[i] = s->cart[--s->ncart];
}

/* A session of the pool at random, started with start if it has ended;
 * e gets its user and session. */
static struct session *
pool_session(struct gen *g, struct gev *e,
	     void (*start)(struct gen *, struct session *))
{
	struct session *s = &g->pool[rng_below(&g->r_ev, g->npool)];

	if (s->left == 0)
		start(g, s);
	e->user = s->user;
	e->sess = s->sess;
	e->qty = 0;
	e->cat = 0;
	e->bot = 0;
	return s;
}

/* The next event of a person: a session from the pool moves one step down
 * its funnel. */
static void
person_step(struct gen *g, struct gev *e)
{
	struct session *s = pool_session(g, e, start_session);
	double r;
	int type;

	r = rng_double(&g->r_ev);
	/* Disjoint ranges of r, each falling back to a view when the
	 * session is not in a state for it. */
	if (s->first)
		type = r < 0.15 ? ET_SEARCH : ET_VIEW;
	else if (s->ncart && s->left == 1 && r < 0.5)
		type = ET_PURCHASE; /* checkout at the end */
	else if (r < 0.06)
		type = s->ncart ? ET_PURCHASE : ET_VIEW;
	else if (r < 0.09)
		type = s->ncart ? ET_REMOVE_FROM_CART : ET_VIEW;
	else if (r < 0.18)
		type = s->last != NONE ? ET_ADD_TO_CART : ET_VIEW;
	else if (r < 0.23)
		type = ET_SEARCH;
	else if (r < 0.31)
		type = ET_CLICK;
	else
		type = ET_VIEW;
	s->first = 0;
	switch (type) {
	case ET_SEARCH:
		e->cat = session_category(g, s);
		/* What the search finds: written by the formats that have no
		 * search event. */
		e->item = session_item(g, s);
		break;
	case ET_VIEW:
	case ET_CLICK:
		e->item = s->last = session_item(g, s);
		break;
	case ET_ADD_TO_CART:
		cart_add(g, s, e);
		break;
	case ET_REMOVE_FROM_CART:
	case ET_PURCHASE:
		cart_take(g, s, e, type);
		break;
	}
	e->type = (uint8_t)type;
	if (--s->left == 0)
		g->users[s->user].active = 0;
}

/* ---- the sessions regime ---- */

/* A popular item anywhere in the catalogue. */
static uint32_t
global_item(struct gen *g, struct rng *r)
{
	return g->gperm[pick_cum(r, g->gcum, 0, g->nitems)];
}

/*
 * The planted transitions: each item has NSUCC successors in its own
 * cluster, half of them drawn by the cluster's popularity and half
 * uniformly, so that paths run through popular items and also through
 * the long tail.
 */
static void
make_successors(struct gen *g)
{
	g->succ = xreallocarray(NULL, g->nitems, NSUCC * sizeof *g->succ);
	for (uint32_t k = 0; k < g->nclusters; k++) {
		uint32_t lo = g->coff[k], hi = g->coff[k + 1];
		for (uint32_t r = lo; r < hi; r++) {
			uint32_t i = g->members[r], *sc = g->succ + (size_t)i * NSUCC;
			for (int j = 0; j < NSUCC; j++) {
				uint32_t c = i;
				for (int tries = 0; tries < 16; tries++) {
					c = rng_double(&g->r_cat) < 0.5
					    ? g->members[pick_cum(&g->r_cat, g->cum, lo, hi)]
					    : g->members[lo + rng_below(&g->r_cat, hi - lo)];
					int dup = c == i;
					for (int d = 0; d < j; d++)
						dup |= sc[d] == c;
					if (!dup)
						break;
				}
				if (c == i && hi - lo == 1) /* alone in its cluster */
					c = global_item(g, &g->r_cat);
				sc[j] = c;
			}
		}
	}
}

/* A successor of item i, the first ones likelier. */
static uint32_t
successor(struct gen *g, uint32_t i)
{
	double u = rng_double(&g->r_ev);
	int k = u < 0.5 ? 0 : u < 0.75 ? 1 : u < 0.9 ? 2 : 3;

	return g->succ[(size_t)i * NSUCC + k];
}

/* A new session: mostly a new anonymous visitor, sometimes one of the
 * recent ones back. */
static void
visit_start(struct gen *g, struct session *s)
{
	struct visitor *v;
	uint32_t len;

	if (g->nvisitors && rng_double(&g->r_ev) < RETURN_P)
		v = &g->ring[rng_below(&g->r_ev, g->nvisitors < RING ? g->nvisitors : RING)];
	else {
		v = &g->ring[g->nvisitors % RING];
		v->user = (uint32_t)g->nvisitors++;
		v->nsess = 0;
	}
	s->user = v->user;
	s->sess = ++v->nsess;
	s->cluster = (uint32_t)rng_below(&g->r_ev, g->nclusters);
	len = 2 + (uint32_t)(-log1p(-rng_double(&g->r_ev)) * 4.0);
	s->left = len > SESSION_MAX ? SESSION_MAX : len;
	s->first = 1;
	s->last = s->prev = NONE;
	s->ncart = 0;
}

/*
 * The next item of a session: mostly a successor of the current item,
 * chosen by the one before it too; else a successor of the one before,
 * an item of the session's cluster or a popular one.
 */
static uint32_t
visit_item(struct gen *g, const struct session *s)
{
	double r;

	if (!opt.structure)
		return global_item(g, &g->r_ev);
	r = rng_double(&g->r_ev);
	if (s->last == NONE)
		return r < 0.7 ? session_item(g, s) : global_item(g, &g->r_ev);
	if (r < 0.45 || (r < 0.75 && s->prev == NONE))
		return successor(g, s->last);
	if (r < 0.65) {
		uint32_t pair[2] = { s->prev, s->last };
		return g->succ[(size_t)s->last * NSUCC +
			       hash64(pair, sizeof pair, 0x70617468) % NSUCC];
	}
	if (r < 0.75)
		return successor(g, s->prev);
	if (r < 0.9)
		return session_item(g, s);
	return global_item(g, &g->r_ev);
}

/* The next event of the sessions regime: views and clicks along the
 * planted paths, now and then an item into the cart, a purchase at the
 * end. */
static void
visit_step(struct gen *g, struct gev *e)
{
	struct session *s = pool_session(g, e, visit_start);
	double r;
	int type;

	r = rng_double(&g->r_ev);
	if (s->first)
		type = ET_VIEW;
	else if (s->ncart && s->left == 1 && r < 0.5)
		type = ET_PURCHASE;
	else if (r < 0.05)
		type = ET_ADD_TO_CART;
	else if (r < 0.35)
		type = ET_CLICK;
	else
		type = ET_VIEW;
	s->first = 0;
	if (type == ET_ADD_TO_CART)
		cart_add(g, s, e);
	else if (type == ET_PURCHASE)
		cart_take(g, s, e, type);
	else {
		e->item = visit_item(g, s);
		s->prev = s->last;
		s->last = e->item;
	}
	e->type = (uint8_t)type;
	s->left--;
}

/* ---- the history regime ---- */

/* How many events each user has: from HIST_MIN to HIST_MAX, log-uniform,
 * then moved a step at a time until they add up to --events. */
static void
make_history_users(struct gen *g)
{
	uint32_t U = g->nusers, K = g->nclusters;
	int64_t diff = (int64_t)opt.events;

	g->users = xcalloc(U, sizeof *g->users);
	g->hcount = xcalloc(U, sizeof *g->hcount);
	for (uint32_t u = 0; u < U; u++) {
		struct user *us = &g->users[u];
		double c = HIST_MIN * exp(rng_double(&g->r_cat) *
					  log((double)HIST_MAX / HIST_MIN));
		g->hcount[u] = (uint32_t)c;
		diff -= g->hcount[u];
		/* c1 the taste at the start; c2 how it moves on (see
		 * history_arrive). */
		us->c1 = us->c2 = (uint32_t)rng_below(&g->r_cat, K);
		us->ua = (uint8_t)rng_below(&g->r_cat, NBROWSER);
		us->country = (uint8_t)rng_below(&g->r_cat, NCOUNTRY);
	}
	while (diff != 0 && opt.events > 0) {
		for (uint32_t u = 0; u < U && diff != 0; u++) {
			if (diff > 0 && g->hcount[u] < HIST_MAX) {
				g->hcount[u]++;
				diff--;
			} else if (diff < 0 && g->hcount[u] > HIST_MIN) {
				g->hcount[u]--;
				diff++;
			}
		}
	}
	for (uint32_t u = 0; u < U; u++)
		g->users[u].segment = (uint8_t)segment_of(g->hcount[u] / (double)HIST_MEAN);
}

/* Add i to the items of the user being made (add) or only look (!add);
 * 0 if it was there. */
static int
hset_add(struct gen *g, uint32_t i, int add)
{
	uint32_t h = (uint32_t)hash64(&i, sizeof i, 0x68) & (HIST_SET - 1);

	while (g->hset[h] != NONE) {
		if (g->hset[h] == i)
			return 0;
		h = (h + 1) & (HIST_SET - 1);
	}
	if (add)
		g->hset[h] = i;
	return 1;
}

/* The stage of the taste at fraction f of a history of ns stages, the
 * stages blending into each other. */
static uint32_t
stage_at(struct gen *g, double f, uint32_t ns)
{
	double x = f * ns + (rng_double(&g->r_ev) - 0.5) * HIST_BLEND;

	return x < 0 ? 0 : x >= ns ? ns - 1 : (uint32_t)x;
}

/*
 * The next item of a user in cluster k: people go through a cluster in
 * the same order, its popularity order, where they left off (*pos), each
 * skipping a few (a geometric number of the items unseen). NONE when
 * the user has seen all of the cluster.
 */
static uint32_t
cluster_next(struct gen *g, uint32_t k, uint32_t *pos)
{
	uint32_t lo = g->coff[k], n = g->coff[k + 1] - lo, skip = 0;

	while (*pos < n && !hset_add(g, g->members[lo + *pos], 0))
		(*pos)++;
	while (skip < n && rng_double(&g->r_ev) < HIST_SKIP)
		skip++;
	for (uint32_t j = *pos; j < n; j++) {
		uint32_t i = g->members[lo + j];
		if (hset_add(g, i, 0) && skip-- == 0) {
			hset_add(g, i, 1);
			return i;
		}
	}
	return NONE;
}

/*
 * An item the user has not seen: mostly the next one of the visit's
 * stage or of the user's taste of the moment (cluster_next), else a
 * popular one or any one. When a cluster is all seen, or the draws keep
 * finding items seen, the first item unseen from a random place of the
 * catalogue.
 */
static uint32_t
history_item(struct gen *g, struct hist_taste *ht, double f, uint32_t vs)
{
	uint32_t i = NONE;
	double r = opt.structure ? rng_double(&g->r_ev) : 0;

	if (r >= HIST_GLOBAL + HIST_ANY) {
		uint32_t st = r < 1 - HIST_TASTE ? vs : stage_at(g, f, ht->n);
		i = cluster_next(g, ht->k[st], &ht->pos[st]);
	} else {
		for (int tries = 0; tries < 32 && i == NONE; tries++) {
			i = r < HIST_GLOBAL ? global_item(g, &g->r_ev)
			    : (uint32_t)rng_below(&g->r_ev, g->nitems);
			if (!hset_add(g, i, 1))
				i = NONE;
		}
	}
	if (i != NONE)
		return i;
	/* There are more items than a user has events. */
	for (i = (uint32_t)rng_below(&g->r_ev, g->nitems); !hset_add(g, i, 1);)
		i = i + 1 == g->nitems ? 0 : i + 1;
	return i;
}

static int
hact_before(const struct hact *a, const struct hact *b)
{
	return a->next < b->next || (a->next == b->next && a->user < b->user);
}

static void
hact_down(struct gen *g, size_t i)
{
	size_t n = g->nhact;

	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && hact_before(&g->hact[l], &g->hact[m]))
			m = l;
		if (l + 1 < n && hact_before(&g->hact[l + 1], &g->hact[m]))
			m = l + 1;
		if (m == i)
			return;
		struct hact x = g->hact[i];
		g->hact[i] = g->hact[m];
		g->hact[m] = x;
		i = m;
	}
}

/*
 * User u arrives at time t (ms): make the whole history, visits spread
 * over 30 to 120 days, each visit a few events of one cluster of the
 * user's taste, which drifts; then put the user on the heap.
 */
static void
history_arrive(struct gen *g, uint32_t u, int64_t t)
{
	const struct user *us = &g->users[u];
	uint32_t n = g->hcount[u], nv = (n + HIST_VISIT - 1) / HIST_VISIT, k = 0;
	double cur = (double)t, end;
	struct hact a = { 0 };
	struct hist_taste ht = { 0 };
	size_t i;

	/* The stages of the taste: each moves on to another cluster, often
	 * the next one (tastes that go together), else any other. */
	ht.n = 1 + n / HIST_STAGE;
	ht.k[0] = us->c1;
	for (uint32_t s = 1; s < ht.n; s++) {
		uint32_t K = g->nclusters, prev = ht.k[s - 1];
		ht.k[s] = K < 2 ? prev : rng_double(&g->r_ev) < HIST_NEXT ? (prev + 1) % K
			  : (prev + 1 + (uint32_t)rng_below(&g->r_ev, K - 1)) % K;
	}
	end = cur + (HIST_WIN_MIN + rng_double(&g->r_ev) *
		     (HIST_WIN_MAX - HIST_WIN_MIN)) * (double)DAY_MS;
	/* The arrays of users gone are reused: as many as users present at
	 * once, at most. */
	a.ev = g->nhfree ? g->hfree[--g->nhfree]
			 : xreallocarray(NULL, HIST_MAX, sizeof *a.ev);
	memset(g->hset, 0xff, sizeof g->hset);
	for (uint32_t v = 0; v < nv; v++) {
		uint32_t rv = nv - v, left = n - k, size, avg = left / rv;
		/* The first visit on arrival, then the next of rv times drawn
		 * uniformly, in order. */
		if (v)
			cur += (end - cur) * (1 - pow(rng_double(&g->r_ev), 1.0 / rv));
		size = rv == 1 ? left : 1 + (uint32_t)rng_below(&g->r_ev, 2 * (uint64_t)avg - 1);
		if (size > left - (rv - 1))
			size = left - (rv - 1);
		uint32_t vs = stage_at(g, (double)k / n, ht.n);
		int64_t ts = (int64_t)cur;
		for (uint32_t j = 0; j < size; j++, k++) {
			if (j)
				ts += VISIT_GAP_MIN_MS + (int64_t)rng_below(&g->r_ev,
					VISIT_GAP_MAX_MS - VISIT_GAP_MIN_MS + 1);
			if (k && ts < a.ev[k - 1].ts)
				ts = a.ev[k - 1].ts;
			a.ev[k].ts = ts;
			a.ev[k].item = history_item(g, &ht, (double)k / n, vs);
		}
	}
	a.user = u;
	a.n = n;
	a.next = a.ev[0].ts;
	if (g->nhact == g->caphact) {
		g->caphact = g->caphact ? 2 * g->caphact : 64;
		g->hact = xreallocarray(g->hact, g->caphact, sizeof *g->hact);
		g->hfree = xreallocarray(g->hfree, g->caphact, sizeof *g->hfree);
	}
	i = g->nhact++;
	g->hact[i] = a;
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!hact_before(&g->hact[i], &g->hact[up]))
			break;
		struct hact x = g->hact[i];
		g->hact[i] = g->hact[up];
		g->hact[up] = x;
		i = up;
	}
}

/* The next event of the history regime: users arrive at random times,
 * and the earliest next event of the users present goes first. */
static int64_t
history_step(struct gen *g, struct gev *e, int64_t *arrive, uint32_t *next_user)
{
	struct hact *a;

	while (*next_user < g->nusers && (g->nhact == 0 || *arrive <= g->hact[0].next)) {
		history_arrive(g, (*next_user)++, *arrive);
		*arrive += wait_us(&g->r_ev, (double)opt.events / g->nusers / opt.rate * 1000) + 1;
	}
	a = &g->hact[0];
	memset(e, 0, sizeof *e);
	e->ts = a->next;
	e->user = a->user;
	e->item = a->ev[a->pos].item;
	e->type = ET_VIEW;
	if (++a->pos == a->n) {
		g->hfree[g->nhfree++] = a->ev;
		g->hact[0] = g->hact[--g->nhact];
	} else
		a->next = a->ev[a->pos].ts;
	hact_down(g, 0);
	return e->ts;
}

/* ---- writing ---- */

static void
set_times(struct gen *g, int64_t ms)
{
	int64_t sec = ms / 1000;
	time_t tt = (time_t)sec;
	struct tm tm;

	if (sec == g->sec_cached)
		return;
	g->sec_cached = sec;
	gmtime_r(&tt, &tm);
	snprintf(g->csv_time, sizeof g->csv_time,
		 "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	snprintf(g->log_time, sizeof g->log_time,
		 "[%02d/%s/%04d:%02d:%02d:%02d +0000]", tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		 tm.tm_sec);
}

static const char *
ua_of(const struct gen *g, uint32_t user)
{
	if (user >= g->nusers)
		return bot_ua[g->bots[user - g->nusers].ua];
	if (opt.regime == R_SESSIONS) /* visitors have no table */
		return browser_ua[hash64(&user, sizeof user, 0x7561) % NBROWSER];
	return browser_ua[g->users[user].ua];
}

/* Fill g->ev from e; its strings live in g->sbuf. */
static void
make_event(struct gen *g, const struct gev *e, char id_prefix)
{
	struct event *ev = &g->ev;
	char *p = g->sbuf, *q;
	const char *ua = ua_of(g, e->user);

	event_reset(ev);
	q = p;
	*p++ = id_prefix;
	p = put_u(p, e->id);
	ev->event_id = (struct str){ q, (size_t)(p - q) };
	ev->ts = e->ts;
	q = p;
	*p++ = 'u';
	p = put_u(p, (uint64_t)e->user + 1);
	ev->user = (struct str){ q, (size_t)(p - q) };
	ev->type = e->type;
	if (e->type != ET_SEARCH) {
		q = p;
		*p++ = 'i';
		p = put_u(p, (uint64_t)e->item + 1);
		ev->item = (struct str){ q, (size_t)(p - q) };
		ev->has |= EV_ITEM;
	}
	if (opt.regime != R_HISTORY) {
		q = p;
		*p++ = 's';
		p = put_u(p, (uint64_t)e->user + 1);
		*p++ = '-';
		p = put_u(p, e->sess);
		ev->session = (struct str){ q, (size_t)(p - q) };
		ev->has |= EV_SESSION;
	}
	if (e->type == ET_ADD_TO_CART || e->type == ET_REMOVE_FROM_CART ||
	    e->type == ET_PURCHASE) {
		ev->qty = e->qty;
		ev->price = g->items[e->item].price;
		ev->has |= EV_QTY | EV_PRICE;
	}
	if (e->type == ET_SEARCH) {
		const char *name = g->cats[e->cat].name;
		q = p;
		for (; *name; name++)
			*p++ = *name == '.' ? ' ' : *name;
		ev->query = (struct str){ q, (size_t)(p - q) };
		ev->has |= EV_QUERY;
	}
	event_add_attr(ev, "ua", 2, ua, strlen(ua));
}

static const char *
csv_type(int type)
{
	switch (type) {
	case ET_ADD_TO_CART:
		return "cart";
	case ET_REMOVE_FROM_CART:
		return "remove_from_cart";
	case ET_PURCHASE:
		return "purchase";
	default:
		return "view";
	}
}

/* A CSV row like the REES46 store data. */
static void
csv_row(struct gen *g, struct buf *b, const struct gev *e,
	const char *time, const char *type, int user)
{
	const struct item *it = &g->items[e->item];
	char *p;

	buf_reserve(b, 512);
	p = b->p + b->n;
	p = put_s(p, time);
	*p++ = ',';
	p = put_s(p, type);
	*p++ = ',';
	*p++ = 'i';
	p = put_u(p, (uint64_t)e->item + 1);
	*p++ = ',';
	p = put_u(p, (uint64_t)it->cat + 1);
	*p++ = ',';
	p = put_s(p, g->cats[it->cat].name);
	*p++ = ',';
	if (it->brand != NONE) {
		brand_name(it->brand, p);
		p += strlen(p);
	}
	*p++ = ',';
	p = put_price(p, it->price);
	*p++ = ',';
	if (user) {
		*p++ = 'u';
		p = put_u(p, (uint64_t)e->user + 1);
	}
	*p++ = ',';
	if (opt.regime != R_HISTORY) {
		*p++ = 's';
		p = put_u(p, (uint64_t)e->user + 1);
		*p++ = '-';
		p = put_u(p, e->sess);
	}
	*p++ = '\n';
	b->n = (size_t)(p - b->p);
}

static void
put_ip(char *p, uint32_t user)
{
	uint64_t h = hash64(&user, sizeof user, 0x1b);
	unsigned a = 11 + (unsigned)(h % 212);

	if (a == 127)
		a = 128;
	snprintf(p, 16, "%u.%u.%u.%u", a, (unsigned)(h >> 8 & 255),
		(unsigned)(h >> 16 & 255), 1 + (unsigned)(h >> 24 & 127));
}

/* An access log line in the combined format; route NULL means the route of
 * the event's type. */
static void
access_line(struct gen *g, struct buf *b, const struct gev *e,
	    const char *time, const char *route, int user)
{
	char *p;
	const char *ua = ua_of(g, e->user);
	int post = 0;

	buf_reserve(b, 512 + strlen(ua));
	p = b->p + b->n;
	put_ip(p, e->user);
	p += strlen(p);
	p = put_s(p, " - - ");
	p = put_s(p, time);
	p = put_s(p, " \"");
	if (route)
		p = put_s(p, route);
	switch (route ? -1 : e->type) {
	case -1:
		break;
	case ET_SEARCH: {
		const char *name = g->cats[e->cat].name;
		p = put_s(p, "GET /search?q=");
		for (; *name; name++)
			*p++ = *name == '.' ? '+' : *name;
		break;
	}
	case ET_ADD_TO_CART:
		p = put_s(p, "POST /cart/i");
		p = put_u(p, (uint64_t)e->item + 1);
		post = 1;
		break;
	case ET_REMOVE_FROM_CART:
		p = put_s(p, "POST /cart/i");
		p = put_u(p, (uint64_t)e->item + 1);
		p = put_s(p, "/remove");
		post = 1;
		break;
	case ET_PURCHASE:
		p = put_s(p, "POST /checkout/i");
		p = put_u(p, (uint64_t)e->item + 1);
		post = 1;
		break;
	default:
		p = put_s(p, "GET /product/i");
		p = put_u(p, (uint64_t)e->item + 1);
		break;
	}
	if (user) {
		*p++ = e->type == ET_SEARCH && !route ? '&' : '?';
		p = put_s(p, "uid=u");
		p = put_u(p, (uint64_t)e->user + 1);
	}
	p = put_s(p, " HTTP/1.1\" 200 ");
	/* Response sizes: a hash of the event, not a random draw, so that
	 * every format sees the same stream. */
	p = put_u(p, post ? 40 + hash64(&e->id, sizeof e->id, 7) % 400
			  : 2000 + hash64(&e->id, sizeof e->id, 7) % 30000);
	p = put_s(p, " \"-\" \"");
	p = put_s(p, ua);
	*p++ = '"';
	*p++ = '\n';
	b->n = (size_t)(p - b->p);
}

static void
write_truth(struct gen *g, int kind, const char *id, size_t idn,
	    uint32_t user, const char *extra_key, const char *extra,
	    int64_t lateness)
{
	struct buf *b = &g->tb;
	char u[24], *p = u;

	if (!g->truth)
		return;
	*p++ = 'u';
	p = put_u(p, (uint64_t)user + 1);
	b->n = 0;
	buf_puts(b, fmt_avro(g->t->out_fmt) ? "{\"record\":" : "{\"line\":");
	buf_put_u64(b, g->line);
	buf_puts(b, ",\"event_id\":");
	buf_json_str(b, id, idn);
	buf_puts(b, ",\"kind\":\"");
	buf_puts(b, fault_names[kind]);
	buf_puts(b, "\",\"user\":");
	buf_json_str(b, u, (size_t)(p - u));
	if (extra_key) {
		buf_puts(b, ",\"");
		buf_puts(b, extra_key);
		buf_puts(b, "\":\"");
		buf_puts(b, extra);
		buf_putc(b, '"');
	}
	if (lateness >= 0) {
		buf_puts(b, ",\"lateness_ms\":");
		buf_put_i64(b, lateness);
	}
	buf_puts(b, "}\n");
	if (wout_write(g->truth, b->p, b->n))
		die(EXIT_IO, "%s: write error: %s", opt.truth,
		    strerror(g->truth->err_no));
}

/* Count and write one line or record, and its truth. */
static void
emit(struct gen *g, const struct gev *e, int kind)
{
	struct tool *t = g->t;
	int64_t key = opt.format == OUT_EVENT ? e->ts : e->ts / 1000;
	int64_t lateness = -1;

	g->line++;
	if (kind == F_LATE || kind == F_OOO) {
		/* Planted, but only a fault if something newer went first. */
		if (g->has_max && g->max_key > key)
			lateness = g->max_ts - e->ts;
		else
			kind = F_NONE;
	}
	if (!g->has_max || key > g->max_key) {
		g->max_key = key;
		g->max_ts = e->ts;
		g->has_max = 1;
	}
	if (kind != F_DUP)
		(*g->by_type[e->type])++;
	(*t->in)++;
	if (opt.format == OUT_EVENT) {
		make_event(g, e, e->bot ? 'b' : 'e');
		if (kind != F_NONE)
			write_truth(g, kind, g->ev.event_id.p, g->ev.event_id.n,
				    e->user, NULL, NULL, lateness);
		tool_emit(t, &g->ev);
	} else {
		char id[24], *p = id;
		*p++ = e->bot ? 'b' : 'e';
		p = put_u(p, e->id);
		if (kind != F_NONE)
			write_truth(g, kind, id, (size_t)(p - id), e->user, NULL,
				    NULL, lateness);
		set_times(g, e->ts);
		g->lb.n = 0;
		if (opt.format == OUT_CSV)
			csv_row(g, &g->lb, e, g->csv_time, csv_type(e->type), 1);
		else
			access_line(g, &g->lb, e, g->log_time, NULL, 1);
		tool_emit_line(t, g->lb.p, g->lb.n);
	}
	if (kind != F_NONE)
		(*g->by_fault[kind])++;
	tool_tick(t);
}

/* A garbage line: broken syntax, a bad timestamp, an unknown type or a
 * missing user, in the shape of the output format. */
static void
emit_malformed(struct gen *g, int64_t now_us)
{
	struct tool *t = g->t;
	struct gev e = { 0 };
	int what = (int)rng_below(&g->r_fault, M_NKINDS);
	struct buf *b = &g->lb;
	char id[24], *p = id;
	size_t cut;

	e.ts = now_us / 1000;
	e.id = ++g->nmalformed;
	e.user = (uint32_t)rng_below(&g->r_fault, opt.regime != R_SESSIONS
				     ? g->nusers : g->nvisitors ? g->nvisitors : 1);
	e.item = (uint32_t)rng_below(&g->r_fault, g->nitems);
	e.sess = g->users ? g->users[e.user].nsess + 1 : 1;
	e.type = ET_VIEW;
	cut = (size_t)rng_below(&g->r_fault, 1000);
	*p++ = 'm';
	p = put_u(p, e.id);
	g->line++;
	write_truth(g, F_MALFORMED, id, (size_t)(p - id), e.user, "what",
		    malformed_names[what], -1);
	b->n = 0;
	set_times(g, e.ts);
	if (opt.format == OUT_EVENT) {
		make_event(g, &e, 'm');
		if (t->key) {
			event_field(&g->ev, t->key, b);
			buf_putc(b, '\t');
		}
		size_t start = b->n;
		switch (what) {
		case M_BROKEN:
			event_write_json(b, &g->ev);
			/* Cut before the closing brace: never valid JSON. */
			b->n = start + 5 + cut % (b->n - start - 6);
			break;
		case M_BAD_TS:
			buf_puts(b, "{\"event_id\":\"");
			buf_put(b, id, (size_t)(p - id));
			buf_puts(b, "\",\"ts\":\"2019-13-45T25:61:00Z\",\"user\":");
			buf_json_str(b, g->ev.user.p, g->ev.user.n);
			buf_puts(b, ",\"type\":\"view\",\"item\":");
			buf_json_str(b, g->ev.item.p, g->ev.item.n);
			buf_puts(b, ",\"v\":1}");
			break;
		case M_UNKNOWN_TYPE:
			buf_puts(b, "{\"event_id\":\"");
			buf_put(b, id, (size_t)(p - id));
			buf_puts(b, "\",\"ts\":");
			buf_put_i64(b, e.ts);
			buf_puts(b, ",\"user\":");
			buf_json_str(b, g->ev.user.p, g->ev.user.n);
			buf_puts(b, ",\"type\":\"teleport\",\"item\":");
			buf_json_str(b, g->ev.item.p, g->ev.item.n);
			buf_puts(b, ",\"v\":1}");
			break;
		case M_NO_USER:
			buf_puts(b, "{\"event_id\":\"");
			buf_put(b, id, (size_t)(p - id));
			buf_puts(b, "\",\"ts\":");
			buf_put_i64(b, e.ts);
			buf_puts(b, ",\"type\":\"view\",\"item\":");
			buf_json_str(b, g->ev.item.p, g->ev.item.n);
			buf_puts(b, ",\"v\":1}");
			break;
		}
		buf_putc(b, '\n');
	} else if (opt.format == OUT_CSV) {
		switch (what) {
		case M_BROKEN:
			/* Too few fields. */
			buf_puts(b, g->csv_time);
			buf_puts(b, ",view,i");
			buf_put_u64(b, (uint64_t)e.item + 1);
			buf_putc(b, '\n');
			break;
		case M_BAD_TS:
			csv_row(g, b, &e, "2019-13-45 25:61:00 UTC", "view", 1);
			break;
		case M_UNKNOWN_TYPE:
			csv_row(g, b, &e, g->csv_time, "teleport", 1);
			break;
		case M_NO_USER:
			csv_row(g, b, &e, g->csv_time, "view", 0);
			break;
		}
	} else {
		switch (what) {
		case M_BROKEN:
			/* Cut inside the timestamp. */
			access_line(g, b, &e, g->log_time, NULL, 1);
			b->n = (size_t)((char *)memchr(b->p, '[', b->n) - b->p) + 1 +
			       cut % 20;
			buf_putc(b, '\n');
			break;
		case M_BAD_TS:
			access_line(g, b, &e, "[45/Foo/2019:25:61:00 +0000]", NULL, 1);
			break;
		case M_UNKNOWN_TYPE: {
			char route[64], *r = route;
			r = put_s(r, "BREW /teapot/i");
			r = put_u(r, (uint64_t)e.item + 1);
			*r = '\0';
			access_line(g, b, &e, g->log_time, route, 1);
			break;
		}
		case M_NO_USER:
			access_line(g, b, &e, g->log_time, NULL, 0);
			break;
		}
	}
	(*t->in)++;
	tool_emit_line(t, b->p, b->n);
	(*g->by_fault[F_MALFORMED])++;
	tool_tick(t);
}

/* ---- the delivery queue ---- */

static int
held_before(const struct held *a, const struct held *b)
{
	return a->release < b->release ||
	       (a->release == b->release && a->seq < b->seq);
}

static void
hold(struct gen *g, const struct gev *e, int64_t release, int kind)
{
	size_t i;

	if (g->nheld == g->capheld) {
		g->capheld = g->capheld ? g->capheld * 2 : 256;
		g->held = xreallocarray(g->held, g->capheld, sizeof *g->held);
	}
	i = g->nheld++;
	g->held[i] = (struct held){ release, g->seq++, kind, *e };
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!held_before(&g->held[i], &g->held[up]))
			break;
		struct held x = g->held[i];
		g->held[i] = g->held[up];
		g->held[up] = x;
		i = up;
	}
}

/* Deliver every held event due at or before now (us). */
static void
release(struct gen *g, int64_t now)
{
	while (g->nheld && g->held[0].release <= now) {
		struct held top = g->held[0];
		size_t i = 0, n = --g->nheld;
		g->held[0] = g->held[n];
		for (;;) {
			size_t l = 2 * i + 1, m = i;
			if (l < n && held_before(&g->held[l], &g->held[m]))
				m = l;
			if (l + 1 < n && held_before(&g->held[l + 1], &g->held[m]))
				m = l + 1;
			if (m == i)
				break;
			struct held x = g->held[i];
			g->held[i] = g->held[m];
			g->held[m] = x;
			i = m;
		}
		emit(g, &top.g, top.kind);
	}
}

/* ---- the main loop ---- */

static void
bot_step(struct gen *g)
{
	uint32_t b = g->bheap[0];
	struct bot *bt = &g->bots[b];
	struct gev e = { 0 };

	if (bt->left == 0) {
		/* A new crawl: a run of distinct items, in catalogue order. */
		bt->nsess++;
		bt->left = 20 + (uint32_t)rng_below(&g->r_bot, 180);
		bt->pos = (uint32_t)rng_below(&g->r_bot, g->nitems);
	}
	e.ts = bt->next / 1000;
	e.id = ++g->nbotev;
	e.user = g->nusers + b;
	e.item = bt->pos;
	e.sess = bt->nsess;
	e.type = ET_VIEW;
	e.bot = 1;
	release(g, bt->next);
	emit(g, &e, F_BOT);
	bt->pos = bt->pos + 1 == g->nitems ? 0 : bt->pos + 1;
	if (--bt->left == 0)
		bt->next += wait_us(&g->r_bot, (double)BOT_PAUSE_US) + 1;
	else
		bt->next += 1 + wait_us(&g->r_bot, (double)g->bot_gap_us);
	bot_down(g, 0);
}

/* Deliver the n-th event of a person, made at now (us), with the faults
 * it draws. */
static void
person_event(struct gen *g, struct gev e, int64_t now, uint64_t n)
{
	double u;

	e.ts = now / 1000;
	e.id = n;
	u = rng_double(&g->r_fault);
	if (u < opt.dup) {
		emit(g, &e, F_NONE);
		hold(g, &e, now + (int64_t)uniform_us(&g->r_fault, DELAY_MIN_US,
						     DELAY_MAX_US), F_DUP);
	} else if (u < opt.dup + opt.late) {
		int64_t d = opt.late_by * 1000;
		hold(g, &e, now + (int64_t)uniform_us(&g->r_fault, d / 2, d),
		     F_LATE);
	} else if (u < opt.dup + opt.late + opt.ooo)
		hold(g, &e, now + (int64_t)uniform_us(&g->r_fault, DELAY_MIN_US,
						     DELAY_MAX_US), F_OOO);
	else
		emit(g, &e, F_NONE);
	if (opt.malformed > 0 && rng_double(&g->r_fault) < opt.malformed)
		emit_malformed(g, now);
}

static void
generate(struct gen *g)
{
	int64_t now = opt.start * 1000, arrive = opt.start;
	double gap_us = 1e6 / opt.rate;
	uint32_t next_user = 0;
	struct gev e;

	/* A failed output (a reader gone) or a signal ends the stream at a
	 * record boundary. */
	for (uint64_t n = 1; n <= opt.events && !g->t->halt && !reco_stop; n++) {
		if (opt.regime == R_HISTORY)
			now = history_step(g, &e, &arrive, &next_user) * 1000;
		else if (n > 1)
			now += wait_us(&g->r_ev, gap_us);
		while (g->nbots && g->bots[g->bheap[0]].next <= now)
			bot_step(g);
		release(g, now);
		if (opt.regime == R_SHOP)
			person_step(g, &e);
		else if (opt.regime == R_SESSIONS)
			visit_step(g, &e);
		person_event(g, e, now, n);
	}
	release(g, INT64_MAX);
}

static void
init_metrics(struct gen *g)
{
	char labels[64];

	for (int i = 0; i < ET_NTYPES; i++) {
		snprintf(labels, sizeof labels, "type=\"%s\"", event_type_names[i]);
		g->by_type[i] = metric(&g->t->m, "reco_gen_events_total", labels,
				       "Events generated, by type.");
	}
	for (int i = F_DUP; i < F_NKINDS; i++) {
		snprintf(labels, sizeof labels, "kind=\"%s\"", fault_names[i]);
		g->by_fault[i] = metric(&g->t->m, "reco_gen_faults_total", labels,
					"Planted faults, by kind.");
	}
}

/*
 * Build the catalogue, the users and the bots from the seed, write the
 * lookup tables, then stream the events. Exits 2 on a usage error and 3
 * when an output cannot be written.
 */
int
main(int argc, char **argv)
{
	struct tool t;
	struct gen g;
	int st;

	tool_init(&t, "reco-gen", usage);
	t.no_input = 1;
	tool_parse(&t, argc, argv, gen_opts, NULL, gen_opt);
	check_opts(&t);

	memset(&g, 0, sizeof g);
	g.t = &t;
	g.sec_cached = -1;
	g.nclusters = (uint32_t)opt.clusters;
	g.ncats = (uint32_t)opt.categories;
	g.nitems = (uint32_t)opt.items;
	/* Sessions: visitors are counted as they come, bots follow them
	 * and are a fraction of the sessions online at once. */
	g.nusers = opt.regime == R_SESSIONS ? VISITOR_MAX : (uint32_t)opt.users;
	g.nbots = (uint32_t)llround(opt.bots * (double)(opt.regime == R_SESSIONS
							 ? opt.sessions : opt.users));
	if (opt.bots > 0 && g.nbots == 0)
		g.nbots = 1;
	/* At most half of the people are in a session at once, so that a
	 * free one is always at hand. */
	g.npool = (uint32_t)(opt.regime == R_SESSIONS ? opt.sessions
			     : opt.sessions < opt.users / 2 ? opt.sessions
							   : opt.users / 2);
	if (g.npool == 0)
		g.npool = 1;
	/* Separate streams: the catalogue, the people, the bots and the
	 * faults do not disturb each other, so adding bots or faults leaves
	 * the people's events as they were. */
	rng_seed(&g.r_cat, opt.seed);
	rng_seed(&g.r_ev, opt.seed ^ 0x6576656e7473ULL);
	rng_seed(&g.r_bot, opt.seed ^ 0x626f7473ULL);
	rng_seed(&g.r_fault, opt.seed ^ 0x6661756c7473ULL);
	make_catalogue(&g);
	if (opt.regime == R_SHOP)
		make_users(&g);
	else if (opt.regime == R_HISTORY) {
		make_history_users(&g);
	}
	else {
		make_successors(&g);
		g.ring = xcalloc(RING, sizeof *g.ring);
	}
	make_bots(&g, opt.start * 1000);
	g.pool = xcalloc(g.npool, sizeof *g.pool);
	event_init(&g.ev);

	if (opt.items_out)
		write_csv_file(opt.items_out, 0, &g);
	if (opt.users_out)
		write_csv_file(opt.users_out, 1, &g);
	if (opt.truth && !(g.truth = wout_open(opt.truth)))
		die(EXIT_IO, "%s:", opt.truth);

	tool_open(&t);
	init_metrics(&g);
	if (opt.format == OUT_CSV) {
		static const char header[] =
			"event_time,event_type,product_id,category_id,"
			"category_code,brand,price,user_id,user_session\n";
		g.line++;
		if (wout_write(t.out, header, sizeof header - 1))
			die(EXIT_IO, "%s: write error: %s", t.out->name,
			    strerror(t.out->err_no));
	}
	generate(&g);

	if (g.truth && wout_close(g.truth)) {
		warn("%s: write error:", opt.truth);
		t.status = EXIT_IO;
	}
	event_free(&g.ev);
	buf_free(&g.tb);
	buf_free(&g.lb);
	st = tool_finish(&t);
	free(g.cats);
	free(g.items);
	free(g.members);
	free(g.cum);
	free(g.coff);
	free(g.gperm);
	free(g.gcum);
	free(g.users);
	free(g.ucum);
	free(g.bots);
	free(g.bheap);
	free(g.pool);
	free(g.held);
	free(g.succ);
	free(g.ring);
	free(g.hcount);
	for (size_t i = 0; i < g.nhact; i++)
		free(g.hact[i].ev);
	for (size_t i = 0; i < g.nhfree; i++)
		free(g.hfree[i]);
	free(g.hact);
	free(g.hfree);
	return st;
}
