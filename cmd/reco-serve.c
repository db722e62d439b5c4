/* reco-serve: top-N recommendations per user from the latest model snapshot and the user's live profile, over standard input and output or HTTP. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "reco.h"
#include "model.h"
#include "profile.h"
#include "rank.h"
#include "serve.h"
#include "console.h"
#include "store.h"
#include "table.h"

static const char usage[] =
"usage: reco-serve --model file [options] [file ...]\n"
"       reco-serve --model file --listen addr:port [options]\n"
"Answer recommendation requests (reco-serve(5)) from a model snapshot and\n"
"the users' live profiles: one JSON request per line on standard input,\n"
"one answer per line on standard output, or over HTTP with --listen.\n"
"\n"
"Model and profiles:\n"
"      --model FILE         the snapshot to serve (reco-train -o FILE);\n"
"                           reloaded when the file is replaced\n"
"      --store SPEC         profiles: a state file or a Redis URL\n"
"                           (redis://host:port/db, unix:///path?db=db)\n"
"                           (as reco-profile --store); a file is reloaded\n"
"                           when replaced, and waited for if missing\n"
"      --items FILE         item attributes (CSV or NDJSON: item, category,\n"
"                           brand, price, in_stock or stock) for filters\n"
"      --variant NAME=FILE:PCT  serve PCT% of users (by a stable hash of the\n"
"                           user id) from the snapshot FILE, as variant NAME\n"
"      --control NAME       the name of --model's variant (default A)\n"
"      --impressions FILE   append an impression event per item shown\n"
"      --reload-every DUR   check the snapshots for a new file this often\n"
"                           (default 1s; 0: only on SIGHUP)\n"
"Ranking:\n"
"      --weights SPEC       a fixed blend, SOURCE=WEIGHT,... with sources mf,\n"
"                           cooc, trend, dpop, pop, seen, cat, sknn, seq,\n"
"                           next, walk, and tail=N: places 18 on for the\n"
"                           walk's new items (default: the blend the\n"
"                           snapshot learned, tail=3)\n"
"      --default-n N        results when a request does not say (default 10)\n"
"      --keep-purchased     do not exclude the user's purchases\n"
"      --keep-cart          do not exclude the items in the user's cart\n"
"      --index-depth N      trending and popular items listed ahead per\n"
"                           snapshot (default 4096; 0: no index)\n"
"Limits:\n"
"      --max-n N            most results a request may ask for (default 1000)\n"
"      --max-id N           longest id in bytes (default 256)\n"
"      --max-items N        longest context or exclude list (default 1000)\n"
"HTTP:\n"
"      --listen ADDR:PORT   serve HTTP on ADDR:PORT (port 0: any free one)\n"
"      --threads N          worker threads (default 2)\n"
"      --max-inflight N     requests at once; more get 503 (default 256)\n"
"      --max-connections N  open connections at most (default 1024)\n"
"      --max-request N      largest request body in bytes (default 65536)\n"
"      --max-headers N      most request headers (default 64)\n"
"      --max-client-connections N  open connections from one client\n"
"                           address at most (default 0: no limit)\n"
"      --timeout SECONDS    a request, headers and body, must arrive\n"
"                           within this of its first byte (else 408), and\n"
"                           idle connections are closed (default 10)\n"
"      --console            a read-only web console under /console/: users,\n"
"                           items and live metrics (reco-serve(1), CONSOLE)\n"
"      --console-token FILE the console asks for the token in FILE (a bearer\n"
"                           token or the cookie /console/?token=T sets);\n"
"                           required when --listen is not a loopback address\n"
"Redis (--store redis://...):\n"
"      --redis-timeout DUR  wait this long for a reply (default 50ms)\n"
"      --redis-connect-timeout DUR  and for a connection (default 50ms)\n"
"      --redis-retries N    reconnections before a read fails (default 1)\n"
"      --breaker-failures N failed reads in a row that open the circuit:\n"
"                           answers without the profile (default 3)\n"
"      --breaker-probe DUR  while open, ask Redis this often (default 250ms)\n";

enum {
	OPT_MODEL = OPT_TOOL_FIRST,
	OPT_STORE,
	OPT_ITEMS,
	OPT_VARIANT,
	OPT_CONTROL,
	OPT_IMPRESSIONS,
	OPT_RELOAD_EVERY,
	OPT_INDEX_DEPTH,
	OPT_WEIGHTS,
	OPT_DEFAULT_N,
	OPT_KEEP_PURCHASED,
	OPT_KEEP_CART,
	OPT_MAX_N,
	OPT_MAX_ID,
	OPT_MAX_ITEMS,
	OPT_LISTEN,
	OPT_THREADS,
	OPT_MAX_INFLIGHT,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_REQUEST,
	OPT_MAX_HEADERS,
	OPT_MAX_CLIENT_CONN,
	OPT_TIMEOUT,
	OPT_REDIS_TIMEOUT,
	OPT_REDIS_CONNECT_TIMEOUT,
	OPT_REDIS_RETRIES,
	OPT_BREAKER_FAILURES,
	OPT_BREAKER_PROBE,
	OPT_CONSOLE,
	OPT_CONSOLE_TOKEN
};

static const struct option opts[] = {
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "store", required_argument, NULL, OPT_STORE },
	{ "items", required_argument, NULL, OPT_ITEMS },
	{ "variant", required_argument, NULL, OPT_VARIANT },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "impressions", required_argument, NULL, OPT_IMPRESSIONS },
	{ "reload-every", required_argument, NULL, OPT_RELOAD_EVERY },
	{ "index-depth", required_argument, NULL, OPT_INDEX_DEPTH },
	{ "weights", required_argument, NULL, OPT_WEIGHTS },
	{ "default-n", required_argument, NULL, OPT_DEFAULT_N },
	{ "keep-purchased", no_argument, NULL, OPT_KEEP_PURCHASED },
	{ "keep-cart", no_argument, NULL, OPT_KEEP_CART },
	{ "max-n", required_argument, NULL, OPT_MAX_N },
	{ "max-id", required_argument, NULL, OPT_MAX_ID },
	{ "max-items", required_argument, NULL, OPT_MAX_ITEMS },
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "max-request", required_argument, NULL, OPT_MAX_REQUEST },
	{ "max-headers", required_argument, NULL, OPT_MAX_HEADERS },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "max-client-connections", required_argument, NULL, OPT_MAX_CLIENT_CONN },
	{ "redis-timeout", required_argument, NULL, OPT_REDIS_TIMEOUT },
	{ "redis-connect-timeout", required_argument, NULL, OPT_REDIS_CONNECT_TIMEOUT },
	{ "redis-retries", required_argument, NULL, OPT_REDIS_RETRIES },
	{ "breaker-failures", required_argument, NULL, OPT_BREAKER_FAILURES },
	{ "breaker-probe", required_argument, NULL, OPT_BREAKER_PROBE },
	{ "console", no_argument, NULL, OPT_CONSOLE },
	{ "console-token", required_argument, NULL, OPT_CONSOLE_TOKEN },
	{ NULL, 0, NULL, 0 }
};

#define MAX_VARIANTS 16
#define HEAD_BYTES 16384 /* the request line and headers, at most */

/* A snapshot slot: the control (--model) or a variant. */
struct slot {
	char *name, *path;
	int lo, hi;                /* its users' buckets, [lo, hi) */
	pthread_mutex_t mu;
	struct serve_snap *cur;
	struct stat st;            /* of the file last loaded or tried */
	double mtime;              /* of the snapshot loaded (s since 1970) */
};

static struct {
	const char *model, *store, *items, *control, *impressions, *listen;
	const char *metrics, *console_token;
	int console;
	int64_t reload_ms;
	struct serve_opts so;
	struct serve_limits lim;
	long threads, max_inflight, max_conn, max_request, max_headers, timeout;
	long max_client_conn, breaker_failures;
	int64_t breaker_probe_ms;
	struct store_opts sto;
	size_t index_depth;
	char *vspec[MAX_VARIANTS];
	int nvspec;
} O = {
	.control = "A", .index_depth = SERVE_INDEX_DEPTH, .reload_ms = 1000, .threads = 2, .max_inflight = 256,
	.max_conn = 1024, .max_request = 65536, .max_headers = 64,
	.timeout = 10, .breaker_failures = 3, .breaker_probe_ms = 250
};

static struct tool T;
static struct slot S[MAX_VARIANTS + 1];
static int nS;
static struct table *items;
/*
 * The profile store. A file store is one copy in memory, read by every
 * thread under store_rw and swapped whole when the file is replaced
 * (store_sync); Redis is asked by each HTTP thread over its own
 * connection, and ST (under store_mu) serves standard input and the
 * circuit breaker's probes.
 */
static struct store *ST;
static int store_redis;
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t store_rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t store_load_mu = PTHREAD_MUTEX_INITIALIZER;
static struct stat store_st;           /* of the file last tried */
static int store_tried;                /* store_st is set */
static char store_problem[512];        /* why the file was not loaded,
					* under store_prob_mu; "" if it was */
static pthread_mutex_t store_prob_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int store_bad;           /* store_problem is set */
/* The circuit breaker in front of Redis. */
static atomic_int breaker_open, breaker_fails;
static double breaker_probe_at;
static struct wout *imp;
static pthread_mutex_t imp_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t hup;
static atomic_int watch_stop;
static int http_mode;
static double t_start;

/* Metrics, updated from every thread. */
static const int codes[] = { 200, 400, 404, 405, 408, 413, 414, 431, 500,
			      503, 505 };
#define NCODES (sizeof codes / sizeof codes[0])
static const double hbounds[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 1
};
#define NHB (sizeof hbounds / sizeof hbounds[0])
#define FINE 640 /* 8 buckets per power of two of nanoseconds */
static struct {
	atomic_ullong status[NCODES];
	atomic_ullong hist[NHB + 1];
	atomic_ullong fine[FINE];
	atomic_ullong lat_ns;
	atomic_ullong cold, unknown_ctx, results, impressions, store_errors;
	atomic_ullong reloads, reload_failures, busy, variants[MAX_VARIANTS + 1];
	atomic_ullong imp_variants[MAX_VARIANTS + 1];
	atomic_ullong store_reloads, store_reload_failures, degraded;
	atomic_ullong breaker_opens, deadlines, log_suppressed, metrics_errors;
	atomic_llong inflight;
	atomic_ullong seq;
} M;

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long
num(const char *opt, const char *arg, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (!*arg || *end || errno || v < min || v > max)
		tool_usage_error(&T, "%s: expected a number from %ld to %ld, not \"%s\"",
				 opt, min, max, arg);
	return v;
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	char err[256];

	(void)t;
	switch (c) {
	case OPT_SCHEMA:
		/* The schemas of requests and answers, not the event's. */
		tool_schema(&T, arg, (const char *const[]){ "request", "response", "json" },
			    (const char *const[]){ request_json_schema, response_json_schema,
						   request_json_schema }, 3);
		break;
	case OPT_MODEL: O.model = arg; break;
	case OPT_STORE:
		if (store_spec_kind(arg) < 0)
			tool_usage_error(&T, "--store: \"%s\" names an unknown scheme; a store is a state file's path or a Redis URL (redis://, unix://, redis+unix://)", arg);
		O.store = arg;
		break;
	case OPT_ITEMS: O.items = arg; break;
	case OPT_CONTROL: O.control = arg; break;
	case OPT_IMPRESSIONS: O.impressions = arg; break;
	case OPT_LISTEN: O.listen = arg; break;
	case OPT_METRICS: O.metrics = arg; break;
	case OPT_CONSOLE: O.console = 1; break;
	case OPT_CONSOLE_TOKEN: O.console_token = arg; break;
	case OPT_VARIANT:
		if (O.nvspec == MAX_VARIANTS)
			tool_usage_error(&T, "--variant: at most %d variants", MAX_VARIANTS);
		O.vspec[O.nvspec++] = (char *)arg;
		break;
	case OPT_RELOAD_EVERY:
		if (duration_parse(arg, &O.reload_ms) || O.reload_ms < 0)
			tool_usage_error(&T, "--reload-every: bad duration \"%s\"", arg);
		break;
	case OPT_WEIGHTS:
		if (rank_weights_parse(&O.so.w, arg, err, sizeof err))
			tool_usage_error(&T, "--weights: %s", err);
		O.so.weights_given = 1;
		break;
	case OPT_DEFAULT_N: O.so.default_n = (size_t)num("--default-n", arg, 1, 100000); break;
	case OPT_KEEP_PURCHASED: O.so.exclude_purchased = 0; break;
	case OPT_KEEP_CART: O.so.exclude_cart = 0; break;
	case OPT_INDEX_DEPTH: O.index_depth = (size_t)num("--index-depth", arg, 0, 100000000); break;
	case OPT_MAX_N: O.lim.max_n = (size_t)num("--max-n", arg, 1, 100000); break;
	case OPT_MAX_ID: O.lim.max_id = (size_t)num("--max-id", arg, 1, 65536); break;
	case OPT_MAX_ITEMS: O.lim.max_items = (size_t)num("--max-items", arg, 0, 1000000); break;
	case OPT_THREADS: O.threads = num("--threads", arg, 1, 256); break;
	case OPT_MAX_INFLIGHT: O.max_inflight = num("--max-inflight", arg, 1, 1000000); break;
	case OPT_MAX_CONNECTIONS: O.max_conn = num("--max-connections", arg, 1, 1000000); break;
	case OPT_MAX_REQUEST: O.max_request = num("--max-request", arg, 64, 64L << 20); break;
	case OPT_MAX_HEADERS: O.max_headers = num("--max-headers", arg, 1, 10000); break;
	case OPT_TIMEOUT: O.timeout = num("--timeout", arg, 1, 3600); break;
	case OPT_MAX_CLIENT_CONN: O.max_client_conn = num("--max-client-connections", arg, 0, 1000000); break;
	case OPT_REDIS_TIMEOUT:
		if (duration_parse(arg, &O.sto.timeout) || O.sto.timeout < 1)
			tool_usage_error(&T, "--redis-timeout: bad duration \"%s\"", arg);
		break;
	case OPT_REDIS_CONNECT_TIMEOUT:
		if (duration_parse(arg, &O.sto.connect_timeout) || O.sto.connect_timeout < 1)
			tool_usage_error(&T, "--redis-connect-timeout: bad duration \"%s\"", arg);
		break;
	case OPT_REDIS_RETRIES: O.sto.retries = (int)num("--redis-retries", arg, 0, 100); break;
	case OPT_BREAKER_FAILURES: O.breaker_failures = num("--breaker-failures", arg, 1, 1000000); break;
	case OPT_BREAKER_PROBE:
		if (duration_parse(arg, &O.breaker_probe_ms) || O.breaker_probe_ms < 1)
			tool_usage_error(&T, "--breaker-probe: bad duration \"%s\"", arg);
		break;
	default:
		return 1;
	}
	return 0;
}

/* ---- snapshots and reloads ---- */

/* The snapshot of sl, held until snap_put, and the time of its file. */
static struct serve_snap *
snap_get_mtime(struct slot *sl, double *mtime)
{
	struct serve_snap *s;

	pthread_mutex_lock(&sl->mu);
	s = sl->cur;
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
	*mtime = sl->mtime;
	pthread_mutex_unlock(&sl->mu);
	return s;
}

static struct serve_snap *
snap_get(struct slot *sl)
{
	double mtime;

	return snap_get_mtime(sl, &mtime);
}

static void
snap_put(struct serve_snap *s)
{
	if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		serve_snap_free(s);
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Load sl's file if it changed (or if force): swap it in, or keep the
 * old snapshot if the new one does not load. */
static void
reload(struct slot *sl, int force)
{
	struct stat st;
	char err[512];
	struct serve_snap *s, *old;

	if (!sl->path)
		return;
	if (stat(sl->path, &st) != 0) {
		if (force)
			warn("%s: %s; keeping the snapshot loaded", sl->path,
			     strerror(errno));
		return;
	}
	if (!force && same_file(&st, &sl->st))
		return;
	sl->st = st;
	if (!(s = serve_snap_load(sl->path, items, O.index_depth, err, sizeof err))) {
		M.reload_failures++;
		warn("%s; keeping snapshot %s", err,
		     sl->cur ? sl->cur->version : "(none)");
		return;
	}
	pthread_mutex_lock(&sl->mu);
	old = sl->cur;
	sl->cur = s;
	sl->mtime = st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9;
	pthread_mutex_unlock(&sl->mu);
	M.reloads++;
	if (verbosity >= 0)
		warn("%s: loaded snapshot %s (%llu items) for variant %s",
		     sl->path, s->version, (unsigned long long)s->m->nitems,
		     sl->name);
	snap_put(old);
}

static void write_metrics_file(void);
static void store_sync(int wait);
static void breaker_probe(double t);

static void
imp_flush(void)
{
	if (!imp)
		return;
	pthread_mutex_lock(&imp_mu);
	if (wout_flush(imp))
		warn("%s: write error: %s", O.impressions, strerror(imp->err_no));
	pthread_mutex_unlock(&imp_mu);
}

/* The watcher thread: new snapshot files, SIGHUP, periodic flushes. */
static void *
watcher(void *arg)
{
	double last = mono(), last_metrics = last;

	(void)arg;
	while (!atomic_load(&watch_stop)) {
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
		double t = mono();
		int force = hup;
		if (force)
			hup = 0;
		if (force || (O.reload_ms > 0 && (t - last) * 1000 >= (double)O.reload_ms)) {
			for (int k = 0; k < nS; k++)
				reload(&S[k], force);
			last = t;
		}
		if (http_mode)
			imp_flush();
		store_sync(0);
		breaker_probe(t);
		if (O.metrics && t - last_metrics >= 5) {
			write_metrics_file();
			last_metrics = t;
		}
	}
	return NULL;
}

static void
on_hup(int sig)
{
	(void)sig;
	hup = 1;
}

static void
on_stop(int sig)
{
	(void)sig;
	reco_stop = 1;
}

/* ---- metrics ---- */

static void
observe(int code, double secs)
{
	size_t k;

	for (k = 0; k < NCODES && codes[k] != code; k++)
		;
	if (k < NCODES)
		M.status[k]++;
	for (k = 0; k < NHB && secs > hbounds[k]; k++)
		;
	M.hist[k]++;
	uint64_t ns = secs > 0 ? (uint64_t)(secs * 1e9) : 0;
	M.lat_ns += ns;
	/* Log-linear buckets: 8 per power of two. */
	size_t b;
	if (ns < 8)
		b = (size_t)ns;
	else {
		int e = 63 - __builtin_clzll(ns);
		b = (size_t)(e - 2) * 8 + (size_t)((ns >> (e - 3)) & 7);
	}
	if (b >= FINE)
		b = FINE - 1;
	M.fine[b]++;
}

/* The latency below which a fraction q of requests fell, in seconds. */
static double
quantile(double q)
{
	uint64_t tot = 0, acc = 0;

	for (size_t b = 0; b < FINE; b++)
		tot += M.fine[b];
	if (!tot)
		return 0;
	uint64_t want = (uint64_t)ceil(q * (double)tot);
	for (size_t b = 0; b < FINE; b++) {
		acc += M.fine[b];
		if (acc >= want) {
			if (b < 8)
				return (double)(b + 1) / 1e9;
			size_t e = b / 8 + 2, m = b % 8;
			/* the bucket's upper bound */
			return (double)((8 + m + 1) << (e - 3)) / 1e9;
		}
	}
	return 0;
}

/* The counters that are a plain atomic of M, in the order written. */
static const struct {
	const char *name, *help;
	atomic_ullong *v;
} counters[] = {
	{ "reco_serve_cold_starts_total", "Requests for users the model does not know.", &M.cold },
	{ "reco_serve_unknown_context_items_total", "Context items the model does not know, ignored.", &M.unknown_ctx },
	{ "reco_serve_results_total", "Items recommended.", &M.results },
	{ "reco_serve_impressions_total", "Impression events written.", &M.impressions },
	{ "reco_serve_store_errors_total", "Profile reads that failed (answered without the profile).", &M.store_errors },
	{ "reco_serve_reloads_total", "Snapshots loaded after a change or SIGHUP.", &M.reloads },
	{ "reco_serve_reload_failures_total", "New snapshots refused (the old one kept).", &M.reload_failures },
	{ "reco_serve_overload_total", "Requests refused with 503 beyond --max-inflight.", &M.busy },
	{ "reco_serve_deadline_expired_total", "Requests not received whole within --timeout (answered 408).", &M.deadlines },
	{ "reco_serve_degraded_total", "Answers given without the profile: the store did not answer.", &M.degraded },
	{ "reco_serve_store_reloads_total", "Profile store files loaded after a change.", &M.store_reloads },
	{ "reco_serve_store_reload_failures_total", "Profile store files that did not load, or vanished (the last good copy kept).", &M.store_reload_failures },
	{ "reco_serve_breaker_opens_total", "Times the circuit breaker in front of Redis opened.", &M.breaker_opens },
	{ "reco_serve_metrics_write_errors_total", "--metrics files that could not be written.", &M.metrics_errors },
};

/*
 * The metrics now, into m (empty), for lib/metrics.c to write as it writes
 * every tool's: the threads count in M (atomics), read here into a struct
 * metrics of the caller's own, so that no lock is needed.
 */
static void
metrics_read(struct metrics *m)
{
	struct buf l = { 0 };
	char code[16];

	for (size_t k = 0; k < NCODES; k++) {
		l.n = 0;
		snprintf(code, sizeof code, "%d", codes[k]);
		metric_label(&l, "status", code);
		*metric(m, "reco_serve_requests_total", l.p,
			"Requests answered, by HTTP status.") = M.status[k];
	}
	struct histogram *h = metric_histogram(m, "reco_serve_request_duration_seconds", NULL,
					       "Time to answer a request.", hbounds, NHB);
	for (size_t k = 0; k <= NHB; k++)
		h->count[k] = M.hist[k];
	h->sum = (double)M.lat_ns / 1e9;
	for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++)
		*metric(m, counters[k].name, NULL, counters[k].help) = *counters[k].v;
	*metric_gauge(m, "reco_serve_breaker_open", NULL,
		      "1 while the circuit breaker in front of Redis is open.") =
		(uint64_t)atomic_load(&breaker_open);
	*metric(m, "reco_serve_log_suppressed_total", NULL,
		"Messages of the HTTP server not logged (at most 10 in 10 s).") = M.log_suppressed;
	*metric_gauge_real(m, "reco_serve_inflight", NULL, "Requests being answered.") =
		(double)M.inflight;
	metric_family(m, "reco_serve_variant_requests_total",
		      "Requests answered by variant.", METRIC_COUNTER);
	metric_family(m, "reco_serve_model_items",
		      "Items of the snapshot served, by variant and version.", METRIC_GAUGE);
	metric_family(m, "reco_serve_model_events",
		      "Events learned by the snapshot served.", METRIC_GAUGE);
	metric_family(m, "reco_serve_model_event_time_seconds",
		      "Event time of the newest event the snapshot served has learned.", METRIC_GAUGE);
	metric_family(m, "reco_serve_model_file_time_seconds",
		      "Modification time of the snapshot file served (when it was written).", METRIC_GAUGE);
	for (int k = 0; k < nS; k++) {
		double mtime;
		struct serve_snap *s = snap_get_mtime(&S[k], &mtime);

		l.n = 0;
		metric_label(&l, "variant", S[k].name);
		*metric(m, "reco_serve_variant_requests_total", l.p, NULL) = M.variants[k];
		if (s) {
			*metric_gauge(m, "reco_serve_model_events", l.p, NULL) = s->events;
			/* In seconds, to the millisecond. */
			*metric_gauge_real(m, "reco_serve_model_event_time_seconds", l.p, NULL) =
				(double)s->clock / 1000.0;
			*metric_gauge_real(m, "reco_serve_model_file_time_seconds", l.p, NULL) =
				(double)llround(mtime * 1000.0) / 1000.0;
			metric_label(&l, "version", s->version);
			*metric_gauge(m, "reco_serve_model_items", l.p, NULL) = s->m->nitems;
		}
		snap_put(s);
	}
	buf_free(&l);
}

/* The metrics in the text format, into b (/metrics). */
static void
metrics_serve(struct buf *b)
{
	struct metrics m = { .tool = xstrdup(T.m.tool), .start_ms = T.m.start_ms };

	metrics_read(&m);
	metrics_text(b, &m);
	metrics_free(&m);
}

/* Write --metrics atomically (lib/metrics.c: a temporary file renamed). */
static void
write_metrics_file(void)
{
	if (!O.metrics)
		return;
	struct metrics m = { .tool = xstrdup(T.m.tool), .start_ms = T.m.start_ms };

	metrics_read(&m);
	/* As every tool: warned about once, counted, never in the way. */
	if (metrics_write(&m, O.metrics) && atomic_fetch_add(&M.metrics_errors, 1) == 0)
		warn("%s: cannot write the metrics (going on without them):", O.metrics);
	metrics_free(&m);
}

/* ---- the profile store: reloads and the circuit breaker ---- */

/* Note why the file store is not what the file says (once per failure:
 * the caller tells a new failure from the same one). */
static void
store_fail(const char *why)
{
	M.store_reload_failures++;
	pthread_mutex_lock(&store_prob_mu);
	snprintf(store_problem, sizeof store_problem, "%s", why);
	pthread_mutex_unlock(&store_prob_mu);
	atomic_store(&store_bad, 1);
	warn("%s; %s", why, ST ? "serving the last good copy of the profiles"
			       : "answering without profiles until it loads");
}

/*
 * Bring the file store in line with its file: load it when it was
 * replaced, keep the last good copy when the new one does not load or
 * the file is gone. A file is tried once (by its identity), so a corrupt
 * copy costs one load and one message. With wait, the caller waits for a
 * reload in progress in another thread; without, it goes on with the
 * copy it has.
 */
static void
store_sync(int wait)
{
	struct stat st;
	char err[512];
	struct store *n, *old;

	if (!O.store || store_redis)
		return;
	if (wait)
		pthread_mutex_lock(&store_load_mu);
	else if (pthread_mutex_trylock(&store_load_mu) != 0)
		return;
	if (stat(O.store, &st) != 0) {
		int e = errno;
		if (!store_tried || store_st.st_ino != 0) {
			memset(&store_st, 0, sizeof store_st);
			store_tried = 1;
			snprintf(err, sizeof err, "%s: %s", O.store, strerror(e));
			store_fail(err);
		}
		goto out;
	}
	if (store_tried && same_file(&st, &store_st))
		goto out;
	store_st = st;
	store_tried = 1;
	if (!(n = store_open(O.store, STORE_READ, &O.sto, err, sizeof err))) {
		store_fail(err);
		goto out;
	}
	pthread_rwlock_wrlock(&store_rw);
	old = ST;
	ST = n;
	pthread_rwlock_unlock(&store_rw);
	store_close(old);
	if (old)
		M.store_reloads++;
	if (atomic_exchange(&store_bad, 0) && verbosity >= 0)
		warn("%s: profiles loaded again", O.store);
	pthread_mutex_lock(&store_prob_mu);
	store_problem[0] = '\0';
	pthread_mutex_unlock(&store_prob_mu);
out:
	pthread_mutex_unlock(&store_load_mu);
}

/* A Redis read failed: after --breaker-failures in a row, open the
 * circuit (answers go without the profile, at once). */
static void
breaker_fail(const char *err)
{
	if (atomic_fetch_add(&breaker_fails, 1) + 1 >= O.breaker_failures &&
	    !atomic_exchange(&breaker_open, 1)) {
		M.breaker_opens++;
		warn("%s; circuit open: answering without profiles until Redis answers",
		     err);
	}
}

/* While the circuit is open, ask Redis from the watcher thread; close it
 * when Redis answers. */
static void
breaker_probe(double t)
{
	char err[512];
	struct profile *p;

	if (!store_redis || !atomic_load(&breaker_open) ||
	    t < breaker_probe_at)
		return;
	breaker_probe_at = t + (double)O.breaker_probe_ms / 1000;
	pthread_mutex_lock(&store_mu);
	int rc = store_get(ST, "", 0, &p, err, sizeof err);
	pthread_mutex_unlock(&store_mu);
	if (rc < 0)
		return;
	atomic_store(&breaker_fails, 0);
	atomic_store(&breaker_open, 0);
	if (verbosity >= 0)
		warn("%s: Redis answers again; circuit closed", O.store);
}

/* ---- answering ---- */

static int
has_filter(const struct serve_req *q)
{
	return q->cats.n || q->brands.n || q->has_price_min ||
	       q->has_price_max || q->in_stock >= 0;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Answer a parsed request: append the answer (or an error object) to out
 * without a newline, and return its HTTP status. defid is the id given
 * to a request without one.
 */
/* What the console adds to an answer (see answer): the profile and what
 * each source alone recommends, written to b; nothing is counted in the
 * metrics and no impression is written. */
struct console_ask {
	struct buf *b;
};

static void
console_add(struct console_ask *cx, struct serve_worker *w,
	    const struct serve_snap *s, struct profile *p, int unavailable,
	    const struct serve_req *q)
{
	struct buf *b = cx->b;

	buf_puts(b, ",\"profile\":");
	if (p)
		profile_write_json(b, p);
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"profile_status\":");
	buf_puts(b, unavailable ? "\"unavailable\"" : p ? "\"found\"" :
		    O.store ? "\"none\"" : "\"no store\"");
	buf_puts(b, ",\"sources\":");
	console_sources(b, w, s, p, q, &O.so);
}

static int
answer_as(struct serve_worker *w, struct store *own, struct serve_req *q,
	  const char *defid, struct buf *out, struct buf *impbuf,
	  struct console_ask *cx);

static int
answer(struct serve_worker *w, struct store *own, struct serve_req *q,
       const char *defid, struct buf *out, struct buf *impbuf)
{
	return answer_as(w, own, q, defid, out, impbuf, NULL);
}

/* answer, and with cx the console's additions after the answer (to
 * cx->b), counting nothing. */
static int
answer_as(struct serve_worker *w, struct store *own, struct serve_req *q,
	  const char *defid, struct buf *out, struct buf *impbuf,
	  struct console_ask *cx)
{
	char err[512], idbuf[1024];
	const char *id = defid;
	struct serve_result r;
	struct profile *p = NULL;
	int k = 0;

	if (q->has_id) {
		struct str s = serve_req_str(q, q->id);
		snprintf(idbuf, sizeof idbuf, "%.*s", (int)s.n, s.p);
		id = idbuf;
	}
	if (serve_req_check(q, O.so.default_n, err, sizeof err)) {
		serve_write_error(out, id, strlen(id), 400, err);
		return 400;
	}
	if (has_filter(q) && !items) {
		serve_write_error(out, id, strlen(id), 400,
				  "filter: this server has no item attributes (--items)");
		return 400;
	}
	struct str user = serve_req_str(q, q->user);
	if (nS > 1) {
		int b = serve_variant_bucket(user.p, user.n);
		for (k = 1; k < nS && !(b >= S[k].lo && b < S[k].hi); k++)
			;
		if (k == nS)
			k = 0;
	}
	struct serve_snap *s = snap_get(&S[k]);
	if (!s) {
		serve_write_error(out, id, strlen(id), 503,
				  "no model snapshot loaded (--model)");
		return 503;
	}
	int unavailable = 0;
	if (O.store && !store_redis) {
		/* The file store: the copy in memory, read by all threads. */
		store_sync(!http_mode);
		pthread_rwlock_rdlock(&store_rw);
		if (!ST)
			unavailable = 1;
		else if (store_get(ST, user.p, user.n, &p, err, sizeof err) <= 0)
			p = NULL;
		if (!unavailable || !q->strict)
			serve_begin(w, s, p, q, &O.so, &r);
		if (cx && (!unavailable || !q->strict)) {
			/* The profile belongs to the store: used under its lock. */
			serve_finish(w, s, q, &O.so, &r);
			r.profile_unavailable = unavailable;
			serve_write_answer(out, q, id, S[k].name, s, &r);
			console_add(cx, w, s, p, unavailable, q);
			pthread_rwlock_unlock(&store_rw);
			snap_put(s);
			return 200;
		}
		pthread_rwlock_unlock(&store_rw);
	} else if (O.store) {
		/* Redis: the thread's own connection (HTTP; NULL if it could
		 * not be made, counted then), or the shared one (standard
		 * input); none while the circuit is open. */
		int rc = 0;
		if (!http_mode)
			pthread_mutex_lock(&store_mu);
		struct store *st = http_mode ? own : ST;
		if (atomic_load(&breaker_open) || !st)
			unavailable = 1;
		else if ((rc = store_get(st, user.p, user.n, &p, err, sizeof err)) < 0) {
			M.store_errors++;
			breaker_fail(err);
			unavailable = 1;
		} else
			atomic_store(&breaker_fails, 0);
		if (!unavailable || !q->strict)
			serve_begin(w, s, rc == 1 ? p : NULL, q, &O.so, &r);
		if (cx && (!unavailable || !q->strict)) {
			serve_finish(w, s, q, &O.so, &r);
			r.profile_unavailable = unavailable;
			serve_write_answer(out, q, id, S[k].name, s, &r);
			console_add(cx, w, s, rc == 1 ? p : NULL, unavailable, q);
			if (!http_mode)
				pthread_mutex_unlock(&store_mu);
			snap_put(s);
			return 200;
		}
		if (!http_mode)
			pthread_mutex_unlock(&store_mu);
	} else {
		serve_begin(w, s, NULL, q, &O.so, &r);
		if (cx) {
			serve_finish(w, s, q, &O.so, &r);
			serve_write_answer(out, q, id, S[k].name, s, &r);
			console_add(cx, w, s, NULL, 0, q);
			snap_put(s);
			return 200;
		}
	}
	if (unavailable && q->strict) {
		snap_put(s);
		serve_write_error(out, id, strlen(id), 503,
				  "profile unavailable: the profile store does not answer (strict)");
		return 503;
	}
	if (unavailable) {
		r.profile_unavailable = 1;
		M.degraded++;
	}
	serve_finish(w, s, q, &O.so, &r);
	serve_write_answer(out, q, id, S[k].name, s, &r);
	M.variants[k]++;
	M.cold += (unsigned)r.cold;
	M.unknown_ctx += r.unknown_context;
	M.results += r.n;
	if (imp && r.n) {
		impbuf->n = 0;
		serve_write_impressions(impbuf, q, id, S[k].name,
					q->has_ts ? q->ts : wall_ms(), s, &r);
		pthread_mutex_lock(&imp_mu);
		if (wout_write(imp, impbuf->p, impbuf->n))
			die(EXIT_IO, "%s: write error: %s", O.impressions,
			    strerror(imp->err_no));
		pthread_mutex_unlock(&imp_mu);
		M.impressions += r.n;
		M.imp_variants[k] += r.n;
	}
	snap_put(s);
	return 200;
}

/* ---- standard input and output ---- */

static void
idle(void *ctx)
{
	tool_idle(ctx);
	imp_flush();
}

static void
run_stdin(void)
{
	struct serve_worker *w = serve_worker_new();
	struct serve_req q;
	struct buf out = { 0 }, ib = { 0 };
	const char *line;
	size_t n;
	int toolong, r;
	char err[512], defid[32];

	serve_req_init(&q);
	T.src->on_idle = idle;
	while ((r = src_next_file(T.src)) != 0) {
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
		while ((r = src_getline(T.src, &line, &n, &toolong)) > 0) {
			double t0 = mono();
			int code;
			size_t i = 0;
			while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
				i++;
			if (i == n && !toolong)
				continue;
			(*T.in)++;
			tool_tick(&T);
			out.n = 0;
			snprintf(defid, sizeof defid, "%llu",
				 (unsigned long long)T.src->line);
			if (toolong) {
				snprintf(err, sizeof err, "request longer than %zu bytes (--max-line)",
					 T.max_line);
				serve_write_error(&out, defid, strlen(defid), 413, err);
				code = 413;
			} else if (serve_req_parse_json(&q, line, n, &O.lim, err, sizeof err)) {
				struct str id = serve_req_str(&q, q.id);
				if (!q.has_id)
					id = (struct str){ defid, strlen(defid) };
				serve_write_error(&out, id.p, id.n, 400, err);
				code = 400;
			} else
				code = answer(w, NULL, &q, defid, &out, &ib);
			buf_putc(&out, '\n');
			tool_emit_line(&T, out.p, out.n);
			observe(code, mono() - t0);
		}
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
	}
	serve_req_free(&q);
	serve_worker_free(w);
	buf_free(&out);
	buf_free(&ib);
}

/* ---- HTTP ---- */

static pthread_key_t wkey;
/*
 * Connections, by socket. libmicrohttpd's timeout is an idle one: a
 * client that sends a byte now and then keeps a connection, and its
 * request slot, for ever. So reco-serve keeps a deadline per request,
 * from its first byte (seen in recv below) to its answer, and the
 * deadline thread answers 408 and closes what passes it, headers or
 * body. The table is indexed by socket; an entry lives from
 * libmicrohttpd's "connection started" to its "closed", which comes
 * before the socket is closed, so the deadline thread (under sk_mu)
 * never touches a socket that is gone.
 */
enum { SK_FREE, SK_IDLE, SK_REQ, SK_ANSWERED, SK_EXPIRED, SK_CLOSING };

struct conn;

struct sock {
	atomic_int state;
	atomic_int fresh;          /* no byte received yet */
	atomic_int hdrs;           /* the request's headers are complete */
	atomic_int line;           /* its request line is complete */
	atomic_int ctl;            /* its URL decodes to a control byte */
	atomic_long head;          /* bytes received before the headers
				    * were complete */
	atomic_long params;        /* '&' in the request line so far */
	_Atomic double t_first;    /* first byte of the request (mono()) */
	_Atomic double t_expired;  /* when answered past libmicrohttpd */
	struct conn *cn;           /* the request's, under sk_mu */
};

static struct sock *socks;
static int nsocks;
static long max_params;        /* URL parameters of a request, at most */
static atomic_int sk_top;      /* one past the highest socket seen */
static pthread_mutex_t sk_mu = PTHREAD_MUTEX_INITIALIZER;

/* One connection's request. */
struct conn {
	double t0;
	struct buf body;
	int too_big, counted;
	int meta;                  /* /healthz, /readyz, /metrics or the
				    * console: not counted as a request in
				    * the metrics */
	int fd;
	const char *cookie;        /* a Set-Cookie header for the answer */
};

static struct sock *
sock_of(int fd)
{
	return socks && fd >= 0 && fd < nsocks ? &socks[fd] : NULL;
}

static const char *status_reason(int code);
static ssize_t (*real_recv)(int, void *, size_t, int);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);

/* Write a whole answer to a socket at once, past libmicrohttpd: for the
 * answers it cannot give (deadlines, bytes that are not HTTP). */
static void
sock_answer(int fd, int code, const char *reason, const char *msg)
{
	struct buf b = { 0 }, body = { 0 };

	serve_write_error(&body, NULL, 0, code, msg);
	buf_putc(&body, '\n');
	buf_printf(&b, "HTTP/1.1 %d %s\r\nConnection: close\r\n"
		   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		   code, reason, body.n);
	buf_put(&b, body.p, body.n);
	if (send(fd, b.p, b.n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0; /* the client is gone: nothing to tell it */
	buf_free(&b);
	buf_free(&body);
	observe(code, 0);
}

/*
 * Answer code on k's socket past libmicrohttpd, if k is still in state
 * from (else another thread answered first), and stop sending: the
 * deadline thread closes the connection a moment later, once the answer
 * had time to reach the client. Return 1 if answered here.
 */
static int
sock_expire(struct sock *k, int fd, int from, int code, const char *msg)
{
	if (!atomic_compare_exchange_strong(&k->state, &from, SK_EXPIRED))
		return 0;
	sock_answer(fd, code, status_reason(code), msg);
	shutdown(fd, SHUT_WR);
	atomic_store(&k->t_expired, mono());
	return 1;
}

/*
 * libmicrohttpd reads requests with recv(2); this one notes the time of
 * a request's first byte for its deadline, and answers 400 at once to a
 * connection whose first byte cannot start an HTTP request (a TLS
 * handshake, binary garbage), which would otherwise wait for a line end
 * until the deadline. Other sockets pass through untouched.
 */
ssize_t
recv(int fd, void *p, size_t n, int flags)
{
	struct sock *k = sock_of(fd);
	int st;

	if (!k || (st = atomic_load(&k->state)) == SK_FREE)
		return real_recv(fd, p, n, flags);
	if (st == SK_CLOSING)
		return 0;
	ssize_t r = real_recv(fd, p, n, flags);
	if (r <= 0 || st == SK_EXPIRED)
		return r; /* answered: read on, until the close */
	if (atomic_exchange(&k->fresh, 0)) {
		unsigned char c = *(unsigned char *)p;
		/* A method is a token: letters, in practice; an empty
		 * line may come first. */
		if ((c < 'A' || c > 'Z') && c != '\r' && c != '\n' && sock_expire(k, fd, SK_IDLE, 400,
				"not an HTTP request"))
			return r;
	}
	st = SK_IDLE;
	if (atomic_compare_exchange_strong(&k->state, &st, SK_REQ))
		atomic_store(&k->t_first, mono());
	if (!atomic_load(&k->hdrs)) {
		long before = atomic_fetch_add(&k->head, r);
		const char *nl = NULL, *c, *e = (const char *)p + r;
		int toolong = before + r > HEAD_BYTES;
		if (!atomic_load(&k->line)) {
			long amps = 0;
			if ((nl = memchr(p, '\n', (size_t)r))) {
				atomic_store(&k->line, 1);
				e = nl;
				if (before + (nl - (const char *)p) > HEAD_BYTES)
					toolong = 2; /* the request line itself */
			}
			/* Each URL parameter takes a record of the
			 * connection's memory: count them. */
			for (c = p; c < e; c++)
				amps += *c == '&';
			if (atomic_fetch_add(&k->params, amps) + amps >= max_params)
				toolong = 3;
		}
		if (toolong) {
			int code = toolong >= 2 || !atomic_load(&k->line) ? 414 : 431;
			sock_expire(k, fd, SK_REQ, code, toolong == 3 ?
				    "too many URL parameters (use POST for long lists)" : code == 414 ?
				    "request line longer than 16384 bytes (use POST for long lists)" :
				    "request headers longer than 16384 bytes");
		}
	}
	return r;
}

static const char *
status_reason(int code)
{
	switch (code) {
	case 400: return "Bad Request";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 505: return "HTTP Version Not Supported";
	default: return code >= 500 ? "Server Error" : "Bad Request";
	}
}

static const char *
status_message(int code)
{
	switch (code) {
	case 413: return "request body too large (--max-request)";
	case 414: return "request line too long (use POST for long lists)";
	case 431: return "request headers too large";
	case 505: return "HTTP version not supported (HTTP/1.0 and 1.1)";
	default: return code >= 500 ? "server error" : "malformed HTTP request";
	}
}

/*
 * libmicrohttpd answers some malformed requests itself, before
 * reco-serve sees them (400, 414, 431, 505), with an HTML body of its
 * own, written with sendmsg(2) as the head and the body. This one gives
 * those the documented JSON error object instead, and writes nothing on
 * a connection whose deadline has already been answered.
 */
ssize_t
sendmsg(int fd, const struct msghdr *m, int flags)
{
	struct sock *k = sock_of(fd);
	size_t tot = 0;

	if (!k || atomic_load(&k->state) == SK_FREE)
		return real_sendmsg(fd, m, flags);
	for (size_t i = 0; i < m->msg_iovlen; i++)
		tot += m->msg_iov[i].iov_len;
	if (atomic_load(&k->state) >= SK_EXPIRED)
		return (ssize_t)tot;
	const char *h = m->msg_iov[0].iov_base;
	if (m->msg_iovlen != 2 || m->msg_iov[0].iov_len < 13 ||
	    memcmp(h, "HTTP/1.", 7) != 0 || m->msg_iov[1].iov_len < 6 ||
	    memcmp(m->msg_iov[1].iov_base, "<html>", 6) != 0)
		return real_sendmsg(fd, m, flags);
	int code = atoi(h + 9);
	atomic_store(&k->state, SK_CLOSING);
	sock_answer(fd, code, status_reason(code), status_message(code));
	return (ssize_t)tot;
}

/* The deadline thread: 408 for the requests past --timeout, then,
 * after a short linger for the answer to leave, the connection closed. */
static void *
deadlines(void *arg)
{
	(void)arg;
	while (!reco_stop) {
		struct timespec ts = { 0, 50 * 1000000L };
		nanosleep(&ts, NULL);
		double t = mono();
		int top = atomic_load(&sk_top);
		pthread_mutex_lock(&sk_mu);
		for (int fd = 0; fd < top; fd++) {
			struct sock *k = &socks[fd];
			int st = atomic_load(&k->state);
			if (st == SK_REQ && t - atomic_load(&k->t_first) > (double)O.timeout &&
			    sock_expire(k, fd, SK_REQ, 408,
					"request not received whole in time (--timeout)")) {
				M.deadlines++;
				if (k->cn && k->cn->counted) {
					k->cn->counted = 0;
					M.inflight--;
				}
			} else if (st == SK_EXPIRED && t - atomic_load(&k->t_expired) > 0.5) {
				atomic_store(&k->state, SK_CLOSING);
				shutdown(fd, SHUT_RDWR);
			}
		}
		pthread_mutex_unlock(&sk_mu);
	}
	return NULL;
}

/* libmicrohttpd's decoding of the URL's %XX, noting a control byte
 * (%00 included, which would cut the string short) for on_request. */
static size_t
unescape(void *cls, struct MHD_Connection *c, char *s)
{
	size_t n = MHD_http_unescape(s);
	const union MHD_ConnectionInfo *ci;
	struct sock *k;

	(void)cls;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			if ((ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)) &&
			    (k = sock_of(ci->connect_fd)))
				atomic_store(&k->ctl, 1);
			break;
		}
	return n;
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
	      enum MHD_ConnectionNotificationCode code)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct sock *k;

	(void)cls;
	(void)socket_context;
	if (!ci || !(k = sock_of(ci->connect_fd)))
		return;
	pthread_mutex_lock(&sk_mu);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_store(&k->fresh, 1);
		atomic_store(&k->hdrs, 0);
		atomic_store(&k->line, 0);
		atomic_store(&k->ctl, 0);
		atomic_store(&k->head, 0);
		atomic_store(&k->params, 0);
		atomic_store(&k->t_first, 0.0);
		k->cn = NULL;
		atomic_store(&k->state, SK_IDLE);
		int top = atomic_load(&sk_top);
		while (ci->connect_fd >= top &&
		       !atomic_compare_exchange_weak(&sk_top, &top, ci->connect_fd + 1))
			;
	} else {
		k->cn = NULL;
		atomic_store(&k->state, SK_FREE);
	}
	pthread_mutex_unlock(&sk_mu);
}

/* libmicrohttpd's messages (a client that went away, a connection
 * refused at a limit), at most 10 in 10 s: an attack would flood
 * standard error otherwise. The rest are counted. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static double window;
	static unsigned shown, hidden;
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pthread_mutex_lock(&mu);
	double t = mono();
	if (t - window >= 10) {
		if (hidden)
			warn("%u messages of the HTTP server not shown in 10 s", hidden);
		window = t;
		shown = hidden = 0;
	}
	if (shown < 10) {
		shown++;
		if (verbosity >= 0)
			warn("http: %s", msg);
	} else {
		hidden++;
		M.log_suppressed++;
	}
	pthread_mutex_unlock(&mu);
}



struct tls {
	struct serve_worker *w;
	struct store *st;          /* its own Redis connection, or NULL */
	struct serve_req q;
	struct buf out, ib;
};


static void
tls_free(void *p)
{
	struct tls *t = p;

	serve_worker_free(t->w);
	store_close(t->st);
	serve_req_free(&t->q);
	buf_free(&t->out);
	buf_free(&t->ib);
	free(t);
}

static struct tls *
tls_get(void)
{
	struct tls *t = pthread_getspecific(wkey);

	if (!t) {
		t = xcalloc(1, sizeof *t);
		t->w = serve_worker_new();
		serve_req_init(&t->q);
		pthread_setspecific(wkey, t);
	}
	return t;
}

/*
 * With Redis, each server thread asks it over a connection of its own,
 * so that requests never wait for each other's round trips or timeouts.
 * A connection that cannot be made counts as a failed read for the
 * circuit breaker, and is tried again at a later request (none while
 * the circuit is open).
 */
static struct store *
tls_store(struct tls *t)
{
	char err[512];

	if (t->st || !store_redis || atomic_load(&breaker_open))
		return t->st;
	if (!(t->st = store_open(O.store, STORE_READ, &O.sto, err, sizeof err))) {
		M.store_errors++;
		breaker_fail(err);
	}
	return t->st;
}


static enum MHD_Result
reply(struct MHD_Connection *c, struct conn *cn, int code, const char *type,
      const char *p, size_t n)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	struct sock *k = sock_of(cn->fd);

	if (k) {
		/* The deadline thread may have answered already. */
		int st = atomic_load(&k->state);
		while ((st == SK_REQ || st == SK_IDLE) &&
		       !atomic_compare_exchange_weak(&k->state, &st, SK_ANSWERED))
			;
		if (st >= SK_EXPIRED)
			return MHD_NO;
	}
	r = MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	if (cn->cookie)
		MHD_add_response_header(r, "Set-Cookie", cn->cookie);
	if (cn->meta == 2) /* the console: personal data, not for caches */
		MHD_add_response_header(r, "Cache-Control", "no-store");
	if (code == 405)
		MHD_add_response_header(r, "Allow", "GET, POST");
	rc = MHD_queue_response(c, (unsigned)code, r);
	MHD_destroy_response(r);
	if (!cn->meta)
		observe(code, mono() - cn->t0);
	return rc;
}

static enum MHD_Result
reply_error(struct MHD_Connection *c, struct conn *cn, int code,
	    const char *msg)
{
	struct tls *t = tls_get();

	t->out.n = 0;
	serve_write_error(&t->out, NULL, 0, code, msg);
	buf_putc(&t->out, '\n');
	return reply(c, cn, code, "application/json", t->out.p, t->out.n);
}

struct args {
	struct serve_req *q;
	char err[512];
	int failed;
};

static enum MHD_Result
on_arg(void *cls, enum MHD_ValueKind kind, const char *key, size_t keyn,
       const char *val, size_t valn)
{
	struct args *a = cls;

	(void)kind;
	if (a->failed)
		return MHD_NO;
	if (strlen(key) != keyn) {
		snprintf(a->err, sizeof a->err, "a parameter name with a control character");
		a->failed = 1;
		return MHD_NO;
	}
	if (serve_req_param(a->q, key, val, val ? valn : 0, &O.lim, a->err,
			    sizeof a->err)) {
		a->failed = 1;
		return MHD_NO;
	}
	return MHD_YES;
}

static enum MHD_Result
recommend(struct MHD_Connection *c, struct conn *cn, int post)
{
	struct tls *t = tls_get();
	struct args a = { &t->q, "", 0 };
	char defid[48];
	int code;

	t->out.n = 0;
	snprintf(defid, sizeof defid, "%llx-%llu",
		 (unsigned long long)(t_start * 1000),
		 (unsigned long long)++M.seq);
	if (post) {
		if (MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, NULL, NULL) > 0)
			return reply_error(c, cn, 400, "POST /recommend takes the request as its JSON body, not URL parameters");
		if (serve_req_parse_json(&t->q, cn->body.p ? cn->body.p : "",
					 cn->body.n, &O.lim, a.err, sizeof a.err)) {
			struct str id = serve_req_str(&t->q, t->q.id);
			if (!t->q.has_id)
				id = (struct str){ defid, strlen(defid) };
			serve_write_error(&t->out, id.p, id.n, 400, a.err);
			a.failed = 1;
		}
	} else {
		serve_req_reset(&t->q);
		MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, on_arg, &a);
		if (a.failed) {
			struct str id = serve_req_str(&t->q, t->q.id);
			if (!t->q.has_id)
				id = (struct str){ defid, strlen(defid) };
			serve_write_error(&t->out, id.p, id.n, 400, a.err);
		}
	}
	if (a.failed)
		code = 400;
	else
		code = answer(t->w, tls_store(t), &t->q, defid, &t->out, &t->ib);
	buf_putc(&t->out, '\n');
	return reply(c, cn, code, "application/json", t->out.p, t->out.n);
}

/* Take a request slot for cn: 0, or -1 beyond --max-inflight (the slot
 * is still counted, and given back when the request ends). */
static int
inflight_take(struct conn *cn)
{
	pthread_mutex_lock(&sk_mu);
	cn->counted = 1;
	long long n = ++M.inflight;
	pthread_mutex_unlock(&sk_mu);
	return n > O.max_inflight ? -1 : 0;
}

/*
 * Readiness, as a JSON object in b: a model loaded for every variant,
 * the profile store loaded (a file) or answering (Redis: the circuit is
 * closed). Return 1 if ready. A file store that failed to reload is
 * reported but still ready: its last good copy is served.
 */
static int
readiness(struct buf *b)
{
	int ok = 1, model_ok = 1;
	const char *failed = NULL;

	for (int k = 0; k < nS; k++) {
		struct serve_snap *s = snap_get(&S[k]);
		if (!s)
			model_ok = 0;
		snap_put(s);
	}
	if (!model_ok) {
		ok = 0;
		failed = "model";
	}
	buf_puts(b, "{\"checks\":{\"model\":{\"ok\":");
	buf_puts(b, model_ok ? "true}" : "false,\"error\":\"no model snapshot loaded (--model)\"}");
	if (O.store && store_redis) {
		int open = atomic_load(&breaker_open);
		buf_puts(b, ",\"store\":{\"ok\":");
		buf_puts(b, open ? "false,\"breaker\":\"open\",\"error\":\"Redis does not answer\"}"
				 : "true,\"breaker\":\"closed\"}");
		if (open && ok) {
			ok = 0;
			failed = "store";
		}
	} else if (O.store) {
		char why[512];
		pthread_mutex_lock(&store_prob_mu);
		snprintf(why, sizeof why, "%s", atomic_load(&store_bad) ? store_problem : "");
		pthread_mutex_unlock(&store_prob_mu);
		pthread_rwlock_rdlock(&store_rw);
		int loaded = ST != NULL;
		pthread_rwlock_unlock(&store_rw);
		buf_puts(b, ",\"store\":{\"ok\":");
		buf_puts(b, loaded ? "true" : "false");
		if (*why) {
			buf_puts(b, loaded ? ",\"stale\":true,\"error\":" : ",\"error\":");
			buf_json_str(b, why, strlen(why));
		}
		buf_putc(b, '}');
		if (!loaded && ok) {
			ok = 0;
			failed = "store";
		}
	}
	buf_puts(b, "},\"status\":");
	buf_puts(b, ok ? "\"ready\"" : "\"not ready\"");
	if (failed)
		buf_printf(b, ",\"failed\":\"%s\"", failed);
	buf_puts(b, "}\n");
	return ok;
}


/* ---- the console ---- */

static char *console_token; /* --console-token's, NULL: none asked */

/* Whether the n bytes at t are the token, in a time that does not depend
 * on where they differ. */
static int
token_eq(const char *t, size_t n)
{
	size_t m = strlen(console_token);
	unsigned d = n != m;

	for (size_t k = 0; k < m; k++)
		d |= (unsigned)(unsigned char)console_token[k] ^
		     (unsigned)(unsigned char)(k < n ? t[k] : 0);
	return d == 0;
}

/* The request carries the token: a bearer token or the console's cookie
 * (always, without --console-token). */
static int
console_authed(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *k = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "reco_console");

	if (!console_token)
		return 1;
	if (h && strncmp(h, "Bearer ", 7) == 0 && token_eq(h + 7, strlen(h + 7)))
		return 1;
	return k && token_eq(k, strlen(k));
}

/* A whole number from 1 to max in URL parameter name, or def if it is
 * not given; -1 if it is not such a number. */
static long
console_num(struct MHD_Connection *c, const char *name, long def, long max)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
	char *end;

	if (!v)
		return def;
	errno = 0;
	long n = strtol(v, &end, 10);
	return !*v || *end || errno || n < 1 || n > max ? -1 : n;
}

/* GET /console/api/user?user=U[&n=N]: the answer /recommend gives, the
 * profile, and what each source alone recommends. */
static enum MHD_Result
console_user(struct MHD_Connection *c, struct conn *cn)
{
	struct tls *t = tls_get();
	const char *user = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "user");
	const char *n = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "n");
	char err[512], defid[64];
	struct console_ask cx = { &t->out };

	if (!user || !*user)
		return reply_error(c, cn, 400, "user: a user id is required (?user=ID)");
	serve_req_reset(&t->q);
	if (serve_req_param(&t->q, "user", user, strlen(user), &O.lim, err, sizeof err) ||
	    (n && serve_req_param(&t->q, "n", n, strlen(n), &O.lim, err, sizeof err)))
		return reply_error(c, cn, 400, err);
	snprintf(defid, sizeof defid, "console-%llu", (unsigned long long)++M.seq);
	t->out.n = 0;
	buf_puts(&t->out, "{\"answer\":");
	size_t at = t->out.n;
	int code = answer_as(t->w, tls_store(t), &t->q, defid, &t->out, &t->ib, &cx);
	if (code != 200) {
		buf_putc(&t->out, '\n');
		return reply(c, cn, code, "application/json", t->out.p + at, t->out.n - at);
	}
	buf_puts(&t->out, "}\n");
	return reply(c, cn, 200, "application/json", t->out.p, t->out.n);
}

/* The slot of URL parameter variant (the control's without it), or NULL. */
static struct slot *
console_slot(struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "variant");

	for (int k = 0; k < nS; k++)
		if (!v || strcmp(v, S[k].name) == 0)
			return &S[k];
	return NULL;
}

/* GET /console/api/item?item=I[&n=N][&variant=V]: the item's attributes,
 * counts and neighbours. */
static enum MHD_Result
console_item_page(struct MHD_Connection *c, struct conn *cn)
{
	struct tls *t = tls_get();
	const char *item = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "item");
	long n = console_num(c, "n", 10, 1000);
	struct slot *sl = console_slot(c);

	if (!item || !*item)
		return reply_error(c, cn, 400, "item: an item id is required (?item=ID)");
	if (strlen(item) > O.lim.max_id)
		return reply_error(c, cn, 400, "item: longer than --max-id");
	if (n < 0)
		return reply_error(c, cn, 400, "n: expected an integer from 1 to 1000");
	if (!sl)
		return reply_error(c, cn, 404, "variant: no such variant");
	struct serve_snap *s = snap_get(sl);
	if (!s)
		return reply_error(c, cn, 503, "no model snapshot loaded (--model)");
	t->out.n = 0;
	buf_printf(&t->out, "{\"variant\":\"%s\",\"model\":\"%s\",\"item\":", sl->name, s->version);
	size_t at = t->out.n;
	int rc = console_item(&t->out, s, items, item, strlen(item), (size_t)n);
	snap_put(s);
	if (rc)
		return reply_error(c, cn, 404, "item: neither the model nor --items knows it");
	(void)at;
	buf_puts(&t->out, "}\n");
	return reply(c, cn, 200, "application/json", t->out.p, t->out.n);
}

/* GET /console/api/live: the server's counters now, for the live view
 * (the page takes differences between polls for rates and recent
 * percentiles: latency as the non-empty buckets of the fine histogram,
 * [bucket, count], 8 per power of two of nanoseconds). */
static enum MHD_Result
console_live(struct MHD_Connection *c, struct conn *cn)
{
	struct tls *t = tls_get();
	struct buf *b = &t->out;

	b->n = 0;
	buf_printf(b, "{\"now\":%lld,\"uptime\":%.3f,\"requests\":{",
		   (long long)wall_ms(), (double)wall_ms() / 1000 - t_start);
	for (size_t k = 0; k < NCODES; k++)
		buf_printf(b, "%s\"%d\":%llu", k ? "," : "", codes[k],
			   (unsigned long long)M.status[k]);
	buf_puts(b, "},\"latency\":[");
	int first = 1;
	for (size_t k = 0; k < FINE; k++) {
		unsigned long long v = M.fine[k];
		if (v) {
			buf_printf(b, "%s[%zu,%llu]", first ? "" : ",", k, v);
			first = 0;
		}
	}
	buf_printf(b, "],\"p50\":%.6f,\"p99\":%.6f", quantile(0.5), quantile(0.99));
	buf_printf(b, ",\"inflight\":%lld,\"cold\":%llu,\"results\":%llu,"
		      "\"impressions\":%llu,\"degraded\":%llu,\"busy\":%llu,"
		      "\"reloads\":%llu,\"reload_failures\":%llu,\"breaker_open\":%d,"
		      "\"impressions_written\":%s,\"variants\":[",
		   (long long)M.inflight, (unsigned long long)M.cold,
		   (unsigned long long)M.results, (unsigned long long)M.impressions,
		   (unsigned long long)M.degraded, (unsigned long long)M.busy,
		   (unsigned long long)M.reloads, (unsigned long long)M.reload_failures,
		   atomic_load(&breaker_open), imp ? "true" : "false");
	for (int k = 0; k < nS; k++) {
		double mtime;
		struct serve_snap *s = snap_get_mtime(&S[k], &mtime);
		buf_printf(b, "%s{\"name\":\"%s\",\"share\":%d,\"requests\":%llu,\"impressions\":%llu",
			   k ? "," : "", S[k].name, S[k].hi - S[k].lo,
			   (unsigned long long)M.variants[k],
			   (unsigned long long)M.imp_variants[k]);
		if (s)
			buf_printf(b, ",\"version\":\"%s\",\"items\":%llu,\"events\":%llu,"
				      "\"event_time\":%.3f,\"file_time\":%.3f",
				   s->version, (unsigned long long)s->m->nitems,
				   (unsigned long long)s->events, s->clock / 1000.0, mtime);
		buf_putc(b, '}');
		snap_put(s);
	}
	buf_puts(b, "]}\n");
	return reply(c, cn, 200, "application/json", b->p, b->n);
}

/* Everything under /console: the page, its script and style, and the
 * JSON it asks for; GET only, read-only, and with --console-token only
 * for who shows the token. */
static enum MHD_Result
console_route(struct MHD_Connection *c, struct conn *cn, const char *sub, int get)
{
	cn->meta = 2;
	if (!get)
		return reply_error(c, cn, 405, "method not allowed");
	int page = !*sub || strcmp(sub, "/") == 0 || strcmp(sub, "/index.html") == 0;
	int authed = console_authed(c);
	if (page && !authed) {
		const char *tok = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
		if (tok && token_eq(tok, strlen(tok))) {
			/* A token URL: the cookie carries the token from now on. */
			static __thread char cookie[4200];
			snprintf(cookie, sizeof cookie,
				 "reco_console=%s; Path=/console; HttpOnly; SameSite=Strict",
				 console_token);
			cn->cookie = cookie;
			authed = 1;
		}
	}
	if (!authed)
		return reply_error(c, cn, 401, "the console needs its token (--console-token): open /console/?token=TOKEN, or send Authorization: Bearer TOKEN");
	if (page)
		return reply(c, cn, 200, "text/html; charset=utf-8", console_html,
			     strlen(console_html));
	if (strcmp(sub, "/app.js") == 0)
		return reply(c, cn, 200, "text/javascript; charset=utf-8", console_js,
			     strlen(console_js));
	if (strcmp(sub, "/style.css") == 0)
		return reply(c, cn, 200, "text/css; charset=utf-8", console_css,
			     strlen(console_css));
	int user = strcmp(sub, "/api/user") == 0, item = strcmp(sub, "/api/item") == 0,
	    live = strcmp(sub, "/api/live") == 0;
	if (!user && !item && !live)
		return reply_error(c, cn, 404, "not found (/console/, /console/api/user, /console/api/item, /console/api/live)");
	if (inflight_take(cn)) {
		M.busy++;
		return reply_error(c, cn, 503, "busy: too many requests at once (--max-inflight)");
	}
	return user ? console_user(c, cn) : item ? console_item_page(c, cn) : console_live(c, cn);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
	   const char *method, const char *version, const char *upload,
	   size_t *upload_size, void **con_cls)
{
	struct conn *cn = *con_cls;
	int post = strcmp(method, "POST") == 0;
	int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

	(void)cls;
	(void)version;
	if (!cn) {
		/* The first call has the headers only. An answer queued now
		 * would make the server close the connection, so only the
		 * early refusals are: the rest waits for the next call. */
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct sock *k;
		cn = xcalloc(1, sizeof *cn);
		cn->t0 = mono();
		cn->fd = ci ? ci->connect_fd : -1;
		*con_cls = cn;
		if ((k = sock_of(cn->fd))) {
			pthread_mutex_lock(&sk_mu);
			k->cn = cn;
			atomic_store(&k->hdrs, 1);
			pthread_mutex_unlock(&sk_mu);
		}
		/* A URL with a control byte (a %00 would cut it short) is
		 * refused before it is routed. */
		if (k && atomic_load(&k->state) >= SK_EXPIRED)
			return MHD_YES; /* answered already: read on */
		if (k && atomic_load(&k->ctl))
			return reply_error(c, cn, 400, "a control character in the URL");
		if (MHD_get_connection_values(c, MHD_HEADER_KIND, NULL, NULL) >
		    O.max_headers)
			return reply_error(c, cn, 431, "too many request headers (--max-headers)");
		if (post && strcmp(url, "/recommend") == 0) {
			const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								     MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (inflight_take(cn)) {
				M.busy++;
				return reply_error(c, cn, 503, "busy: too many requests at once (--max-inflight)");
			}
			if (cl && strtoull(cl, NULL, 10) > (unsigned long long)O.max_request)
				return reply_error(c, cn, 413, "request body too large (--max-request)");
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (!cn->too_big && cn->body.n + *upload_size <= (size_t)O.max_request)
			buf_put(&cn->body, upload, *upload_size);
		else
			cn->too_big = 1;
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/healthz") == 0) {
		/* Liveness: the process answers. */
		cn->meta = get;
		if (!get)
			return reply_error(c, cn, 405, "method not allowed");
		return reply(c, cn, 200, "text/plain", "ok\n", 3);
	}
	if (strcmp(url, "/readyz") == 0) {
		struct tls *t = tls_get();
		cn->meta = get;
		if (!get)
			return reply_error(c, cn, 405, "method not allowed");
		t->out.n = 0;
		int ok = readiness(&t->out);
		return reply(c, cn, ok ? 200 : 503, "application/json",
			     t->out.p, t->out.n);
	}
	if (strcmp(url, "/metrics") == 0) {
		struct tls *t = tls_get();
		cn->meta = get;
		if (!get)
			return reply_error(c, cn, 405, "method not allowed");
		t->out.n = 0;
		metrics_serve(&t->out);
		return reply(c, cn, 200, "text/plain; version=0.0.4",
			     t->out.p, t->out.n);
	}
	if (O.console && strncmp(url, "/console", 8) == 0 && (url[8] == '\0' || url[8] == '/'))
		return console_route(c, cn, url + 8, get);
	if (strcmp(url, "/recommend") != 0)
		return reply_error(c, cn, 404, O.console ? "not found (/recommend, /healthz, /readyz, /metrics, /console/)"
							  : "not found (/recommend, /healthz, /readyz, /metrics)");
	if (!get && !post)
		return reply_error(c, cn, 405, "method not allowed");
	if (post) {
		if (cn->too_big)
			return reply_error(c, cn, 413, "request body too large (--max-request)");
		return recommend(c, cn, 1);
	}
	if (inflight_take(cn)) {
		M.busy++;
		return reply_error(c, cn, 503, "busy: too many requests at once (--max-inflight)");
	}
	return recommend(c, cn, 0);
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls,
	  enum MHD_RequestTerminationCode toe)
{
	struct conn *cn = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!cn)
		return;
	struct sock *k = sock_of(cn->fd);
	pthread_mutex_lock(&sk_mu);
	if (cn->counted)
		M.inflight--;
	if (k && k->cn == cn) {
		/* Keep-alive: the next request has its own deadline. */
		k->cn = NULL;
		atomic_store(&k->hdrs, 0);
		atomic_store(&k->line, 0);
		atomic_store(&k->ctl, 0);
		atomic_store(&k->head, 0);
		atomic_store(&k->params, 0);
		int st = SK_ANSWERED;
		atomic_compare_exchange_strong(&k->state, &st, SK_IDLE);
	}
	pthread_mutex_unlock(&sk_mu);
	buf_free(&cn->body);
	free(cn);
	*con_cls = NULL;
}

/* Parse ADDR:PORT (IPv4, or [IPv6]) into sa. Return 0, or -1. */
static int
parse_listen(const char *spec, struct sockaddr_storage *sa, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	char *end;

	if (!colon || (size_t)(colon - spec) >= sizeof host)
		return -1;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return -1;
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	memset(sa, 0, sizeof *sa);
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)sa;
		size_t hl = strlen(host);
		if (hl < 2 || host[hl - 1] != ']')
			return -1;
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*len = sizeof *s6;
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		return -1;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*len = sizeof *s4;
	return 0;
}

static void
run_http(void)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	struct MHD_Daemon *d;
	sigset_t all, old;

	if (parse_listen(O.listen, &sa, &salen))
		tool_usage_error(&T, "--listen: expected ADDR:PORT such as 127.0.0.1:8080, not \"%s\"",
				 O.listen);
	pthread_key_create(&wkey, tls_free);
	struct rlimit rl;
	nsocks = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		 rl.rlim_cur < (1 << 20) ? (int)rl.rlim_cur : 1 << 20;
	socks = xcalloc((size_t)nsocks, sizeof *socks);
	real_recv = (ssize_t (*)(int, void *, size_t, int))dlsym(RTLD_NEXT, "recv");
	real_sendmsg = (ssize_t (*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
	if (!real_recv || !real_sendmsg)
		die(EXIT_IO, "cannot find recv and sendmsg");
	/* Connection memory: the request line and headers (HEAD_BYTES), a
	 * record per header and URL parameter (as many as a list may have
	 * entries, and 64 more; a request line with more is a 414), and
	 * the answer's head. libmicrohttpd clears it for every request, so
	 * it is no larger than the limits need. */
	max_params = (long)(O.lim.max_items < HEAD_BYTES / 4 ? O.lim.max_items : HEAD_BYTES / 4) + 64;
	size_t pool = HEAD_BYTES + ((size_t)max_params + (size_t)O.max_headers + 16) * 64 +
		      8192;
	/* Signals go to the main thread, not to the server's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			     MHD_USE_ERROR_LOG,
			     0, NULL, NULL, on_request, NULL,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
			     MHD_OPTION_THREAD_POOL_SIZE, (unsigned)O.threads,
			     /* Idle a second longer than the deadline, so that a
			      * request sent in part gets its 408 first. */
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)O.timeout + 1,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)O.max_conn,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)O.max_client_conn,
			     MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
			     MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
			     MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
			     MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
			     MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!d)
		die(EXIT_IO, "%s: cannot listen:", O.listen);
	pthread_t dt;
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&dt, NULL, deadlines, NULL) != 0)
		die(EXIT_IO, "cannot start a thread");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	char host[128];
	snprintf(host, sizeof host, "%.*s", (int)(strrchr(O.listen, ':') - O.listen),
		 O.listen);
	if (verbosity >= 0)
		warn("listening on %s:%u", host, di ? (unsigned)di->port : 0);
	while (!reco_stop) {
		struct timespec ts = { 0, 100 * 1000000L };
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(d);
	pthread_join(dt, NULL);
	free(socks);
	socks = NULL;
}

/* Whether --listen's address is a loopback one (127.0.0.0/8, ::1). */
static int
listen_loopback(void)
{
	struct sockaddr_storage sa;
	socklen_t len;

	if (parse_listen(O.listen, &sa, &len))
		return 0;
	if (sa.ss_family == AF_INET)
		return ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24 == 127;
	return sa.ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr);
}

/* Check the console's options and read its token. */
static void
console_setup(void)
{
	if (O.console_token && !O.console)
		tool_usage_error(&T, "--console-token: the console is off (--console)");
	if (!O.console)
		return;
	if (!O.listen)
		tool_usage_error(&T, "--console: the console is served over HTTP (--listen)");
	if (!O.console_token) {
		if (!listen_loopback())
			tool_usage_error(&T, "--console: %s is not a loopback address, and profiles are personal data: give --console-token FILE",
					 O.listen);
		return;
	}
	FILE *f = fopen(O.console_token, "r");
	char tok[4096];
	size_t n;
	if (!f)
		die(EXIT_IO, "%s:", O.console_token);
	n = fread(tok, 1, sizeof tok - 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad)
		die(EXIT_IO, "%s: read error", O.console_token);
	tok[n] = '\0';
	while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' ' ||
		     tok[n - 1] == '\t'))
		tok[--n] = '\0';
	if (n < 16)
		die(EXIT_DATA, "%s: the console token must be at least 16 characters", O.console_token);
	for (size_t k = 0; k < n; k++)
		if (!(tok[k] > ' ' && tok[k] < 127 && tok[k] != ';' && tok[k] != ',' &&
		      tok[k] != '"' && tok[k] != '\\'))
			die(EXIT_DATA, "%s: the console token is one line of printable characters, without spaces, quotes, commas, semicolons or backslashes",
			    O.console_token);
	console_token = xstrdup(tok);
}

static void
parse_variants(void)
{
	int lo = 0;

	for (int k = 0; k < O.nvspec; k++) {
		char *spec = O.vspec[k], *eq = strchr(spec, '='),
		     *colon = strrchr(spec, ':'), *end;
		struct slot *sl = &S[nS];
		long pct;

		if (!eq || !colon || colon < eq || eq == spec || colon == eq + 1)
			tool_usage_error(&T, "--variant: expected NAME=FILE:PCT, not \"%s\"", spec);
		errno = 0;
		pct = strtol(colon + 1, &end, 10);
		if (!colon[1] || *end || errno || pct < 0 || pct > 100)
			tool_usage_error(&T, "--variant %s: PCT must be a whole number from 0 to 100", spec);
		if (lo + pct > 100)
			tool_usage_error(&T, "--variant: the variants take more than 100%% of users");
		sl->name = xstrndup(spec, (size_t)(eq - spec));
		sl->path = xstrndup(eq + 1, (size_t)(colon - eq - 1));
		for (int j = 0; j < nS; j++)
			if (strcmp(S[j].name, sl->name) == 0)
				tool_usage_error(&T, "--variant: two variants named %s", sl->name);
		sl->lo = lo;
		sl->hi = lo + (int)pct;
		lo += (int)pct;
		nS++;
	}
}

int
main(int argc, char **argv)
{
	char err[512];
	pthread_t wt;
	int st;

	tool_init(&T, "reco-serve", usage);
	T.no_events = 1; /* requests, not events: no --shard */
	T.writes = "answers";
	T.no_rejects = 1; /* a bad request gets an error answer */
	T.schema_help = "      --schema[=request|response]  print the JSON Schema of requests or\n"
			"                           of answers and exit\n";
	serve_opts_default(&O.so);
	serve_limits_default(&O.lim);
	/* Serving waits tens of milliseconds for Redis, not seconds: past
	 * that an answer without the profile is worth more. */
	store_opts_default(&O.sto);
	O.sto.timeout = 50;
	O.sto.connect_timeout = 50;
	O.sto.retries = 1;
	O.sto.backoff = 0;
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	if (O.listen && T.nfiles)
		tool_usage_error(&T, "--listen serves HTTP: no input files");
	console_setup();
	if (strchr(O.control, '"') || strchr(O.control, '\\'))
		tool_usage_error(&T, "--control: a plain name, please");
	S[0].name = xstrdup(O.control);
	S[0].path = O.model ? xstrdup(O.model) : NULL;
	nS = 1;
	parse_variants();
	S[0].lo = 0;
	S[0].hi = 100;
	if (O.items) {
		struct table_opts to = { 0 };
		int kind;
		to.key_default = "item";
		to.max_line = T.max_line;
		if (!(items = table_load(O.items, &to, &kind, err, sizeof err)))
			die(kind == TABLE_ERR_IO ? EXIT_IO : EXIT_DATA, "%s", err);
	}
	for (int k = 0; k < nS; k++) {
		pthread_mutex_init(&S[k].mu, NULL);
		if (!S[k].path)
			continue;
		if (stat(S[k].path, &S[k].st) != 0 && errno == ENOENT) {
			/* Not written yet: answer 503 until it is. */
			warn("%s: no such file yet; waiting for it", S[k].path);
			continue;
		}
		if (!(S[k].cur = serve_snap_load(S[k].path, items, O.index_depth, err, sizeof err)))
			die(errno == EINVAL ? EXIT_DATA : EXIT_IO, "%s", err);
		S[k].mtime = S[k].st.st_mtim.tv_sec + S[k].st.st_mtim.tv_nsec / 1e9;
		if (verbosity > 0)
			info("%s: snapshot %s, %llu items, %llu users, variant %s",
			     S[k].path, S[k].cur->version,
			     (unsigned long long)S[k].cur->m->nitems,
			     (unsigned long long)S[k].cur->m->nusers, S[k].name);
	}
	if (O.store && !*O.store)
		O.store = NULL;
	if (O.store && (store_redis = store_spec_kind(O.store) == STORE_REDIS)) {
		/* Over HTTP, this connection only probes Redis while the
		 * circuit is open: once a probe, without retries (and their
		 * messages). */
		struct store_opts po = O.sto;
		if (O.listen)
			po.retries = 0;
		if (!(ST = store_open(O.store, STORE_READ, &po, err, sizeof err)))
			die(EXIT_IO, "%s", err);
	} else if (O.store) {
		if (stat(O.store, &store_st) != 0 && errno == ENOENT) {
			/* Not written yet: answer without profiles until it is. */
			memset(&store_st, 0, sizeof store_st);
			snprintf(store_problem, sizeof store_problem,
				 "%s: no such file yet", O.store);
			atomic_store(&store_bad, 1);
			warn("%s: no such file yet; waiting for it", O.store);
		} else if (!(ST = store_open(O.store, STORE_READ, &O.sto, err, sizeof err)))
			die(EXIT_IO, "%s", err);
		store_tried = 1;
	}
	if (O.impressions && !(imp = wout_open(O.impressions)))
		die(EXIT_IO, "%s:", O.impressions);
	t_start = (double)wall_ms() / 1000;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	/* Set before the watcher starts, which reads it. */
	http_mode = O.listen != NULL;
	/* The watcher takes no signals: they reach the reading thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&wt, NULL, watcher, NULL) != 0)
		die(EXIT_IO, "cannot start a thread");
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (O.listen) {
		sa.sa_handler = on_stop;
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		run_http();
		st = EXIT_OK;
	} else {
		tool_open(&T);
		run_stdin();
	}
	atomic_store(&watch_stop, 1);
	pthread_join(wt, NULL);
	if (imp) {
		if (wout_close(imp)) {
			warn("%s: write error:", O.impressions);
			T.status = EXIT_IO;
		}
		imp = NULL;
	}
	write_metrics_file();
	if (O.listen) {
		if (T.stats) {
			for (size_t k = 0; k < NCODES; k++)
				if (M.status[k])
					fprintf(stderr, "%s:   requests{status=\"%d\"} %llu\n",
						T.name, codes[k], (unsigned long long)M.status[k]);
		}
		st = T.status;
	} else
		st = tool_finish(&T);
	if (T.stats)
		fprintf(stderr, "%s: latency p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms\n",
			"reco-serve", quantile(0.5) * 1e3, quantile(0.99) * 1e3,
			quantile(0.999) * 1e3);
	for (int k = 0; k < nS; k++) {
		snap_put(S[k].cur);
		free(S[k].name);
		free(S[k].path);
	}
	store_close(ST);
	table_free(items);
	return st;
}
