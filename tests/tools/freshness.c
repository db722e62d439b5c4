/* freshness: the probe of the freshness benchmark: events at a fixed rate to Kafka, and the time until each probe shows in Redis and in reco-serve's answers. */
/*
 *   freshness run -b BROKERS -t TOPIC -e EVENTS -R HOST:PORT[/DB] -S HOST:PORT
 *                 [-r RATE] [-d SECONDS] [-w SECONDS] [-p PROBES] [-o FILE]
 *   freshness tap FILE
 *
 * run: send the lines of EVENTS (KEY<TAB>EVENT, as reco-ingest --key user
 * writes them; read again from the top when they run out) to TOPIC at
 * RATE events per second, through librdkafka with linger.ms=0, for the
 * warm-up -w and then the -d seconds measured. During the measured time,
 * PROBES events per second (evenly spaced, default 20) are probes in the
 * place of an ordinary event: a purchase, by a user seen nowhere else
 * (fprK for probe K), of the item X that reco-serve recommends first to a
 * user it knows nothing of.
 *
 * - Redis: a subscription to the keyspace notifications of the probes'
 *   profile keys (PREFIXp:fpr*, set by reco-profile's MULTI/EXEC) gives the
 *   moment each profile became visible to a reader; the notification
 *   comes once the transaction has run, so a GET at that moment sees it.
 *   Needs notify-keyspace-events with K and $ (set here by CONFIG SET).
 * - reco-serve: as soon as probe K's profile is in Redis, ask GET
 *   /recommend?user=fprK on one kept-alive connection (again, should the
 *   answer still hold X) until the answer leaves X out (the purchase is
 *   excluded): the moment that answer arrived. reco-serve reads the
 *   profile at each request, so this is the next answer a client gets;
 *   asking before, in a loop, would only load reco-serve and Redis with
 *   requests that cannot show it yet.
 *
 * Writes one line per probe to FILE (default standard output): "K SENT
 * REDIS SERVE", times in nanoseconds of CLOCK_MONOTONIC, -1 for what was
 * not seen within 5 seconds. A summary goes to standard error.
 *
 * tap: copy standard input to standard output as it comes, one read and
 * one write at a time (the writer's flushes kept), and append "K TIME" to
 * FILE for the first line that names probe K (fprK): put between the
 * stages of a pipeline, taps tell which stage holds a probe back. CLOCK_
 * MONOTONIC is the same clock in every process of the machine.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <hiredis.h>
#include <librdkafka/rdkafka.h>

#define PROBE_PREFIX "fpr"
#define WAIT_NS 5000000000LL

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "freshness: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(3);
}

/* ---- tap ---- */

/* The probe number after PROBE_PREFIX in s[0, n), or -1. */
static long
probe_in(const char *s, size_t n)
{
	const size_t pl = sizeof PROBE_PREFIX - 1;

	for (size_t i = 0; i + pl < n; i++) {
		if (memcmp(s + i, PROBE_PREFIX, pl) != 0 || s[i + pl] < '0' || s[i + pl] > '9')
			continue;
		long k = 0;
		for (size_t j = i + pl; j < n && s[j] >= '0' && s[j] <= '9'; j++)
			k = k * 10 + (s[j] - '0');
		return k;
	}
	return -1;
}

static int
tap(const char *file)
{
	static char buf[1 << 16];
	static char line[1 << 16];
	size_t ln = 0, seen_cap = 0;
	unsigned char *seen = NULL;
	FILE *f = fopen(file, "a");

	if (!f)
		die("%s: cannot open", file);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		int64_t t = now_ns();
		/* Scan whole lines (a line may span reads). */
		for (ssize_t i = 0; i < n; i++) {
			if (ln < sizeof line)
				line[ln++] = buf[i];
			if (buf[i] != '\n')
				continue;
			long k = probe_in(line, ln);
			ln = 0;
			if (k < 0)
				continue;
			if ((size_t)k >= seen_cap) {
				size_t cap = seen_cap ? seen_cap : 1024;
				while (cap <= (size_t)k)
					cap *= 2;
				seen = realloc(seen, cap);
				if (!seen)
					die("%s", "out of memory");
				memset(seen + seen_cap, 0, cap - seen_cap);
				seen_cap = cap;
			}
			if (!seen[k]) {
				seen[k] = 1;
				fprintf(f, "%ld %lld\n", k, (long long)t);
			}
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fclose(f);
				free(seen);
				return 0;
			}
			off += w;
		}
	}
	free(seen);
	return fclose(f) == 0 ? 0 : 3;
}

/* ---- run ---- */

static struct {
	const char *brokers, *topic, *events, *redis, *serve, *out, *prefix, *linger;
	double rate, secs, warm, probes;
} O = { .rate = 1000, .secs = 10, .warm = 2, .probes = 20, .prefix = "reco:", .linger = "0" };

/* Per probe: when it was sent, seen in Redis, seen in an answer. */
static long nprobes;
static _Atomic int64_t *t_sent, *t_redis, *t_serve;
static atomic_int done;
static char item_x[256];
/* Signalled when a probe shows in Redis (CLOCK_MONOTONIC timeouts). */
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t seen_cv;
static char serve_host[64];
static int serve_port;

/* ---- HTTP, one kept-alive connection ---- */

static int http_fd = -1;

static int
http_connect(void)
{
	struct sockaddr_in sa;
	int one = 1;

	if (http_fd >= 0)
		return 0;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)serve_port);
	if (inet_pton(AF_INET, serve_host, &sa.sin_addr) != 1)
		die("bad reco-serve address %s", serve_host);
	if ((http_fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		return -1;
	setsockopt(http_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(http_fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(http_fd);
		http_fd = -1;
		return -1;
	}
	return 0;
}

/* The first place of name (lower case) in s, ignoring case, or NULL. */
static char *
header(char *s, const char *name)
{
	size_t n = strlen(name);

	for (; *s; s++) {
		size_t i = 0;
		while (i < n && s[i] && (s[i] | (s[i] >= 'A' && s[i] <= 'Z' ? 0x20 : 0)) == name[i])
			i++;
		if (i == n)
			return s;
	}
	return NULL;
}

/* GET path; the body into body (NUL-terminated, cut at cap). Returns the
 * status, or -1 (the connection is then dropped). */
static int
http_get(const char *path, char *body, size_t cap)
{
	static char buf[1 << 17];
	char req[512];
	size_t have = 0;
	int len, status;
	char *hdr_end, *cl;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (http_connect())
			return -1;
		len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, serve_host);
		if (write(http_fd, req, (size_t)len) == len)
			break;
		close(http_fd);
		http_fd = -1;
	}
	if (http_fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(http_fd, buf + have, sizeof buf - 1 - have);
		if (n <= 0)
			goto fail;
		have += (size_t)n;
		buf[have] = '\0';
		if (!(hdr_end = strstr(buf, "\r\n\r\n")))
			continue;
		if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
			goto fail;
		cl = header(buf, "\r\ncontent-length:");
		if (!cl || cl > hdr_end)
			goto fail;
		size_t want = strtoul(cl + 17, NULL, 10);
		size_t start = (size_t)(hdr_end + 4 - buf);
		if (have < start + want) {
			if (start + want >= sizeof buf - 1)
				goto fail;
			continue;
		}
		size_t m = want < cap - 1 ? want : cap - 1;
		memcpy(body, buf + start, m);
		body[m] = '\0';
		return status;
	}
fail:
	close(http_fd);
	http_fd = -1;
	return -1;
}

/* Does the answer for user recommend item_x? 1 yes, 0 no, -1 no answer. */
static int
recommends_x(const char *user)
{
	char path[256], body[65536], needle[300];
	int st;

	snprintf(path, sizeof path, "/recommend?user=%s&n=10", user);
	if ((st = http_get(path, body, sizeof body)) != 200)
		return -1;
	snprintf(needle, sizeof needle, "\"item\":\"%s\"", item_x);
	return strstr(body, needle) != NULL;
}

static void *
serve_watch(void *arg)
{
	char user[64];

	(void)arg;
	for (long k = 0; k < nprobes && !atomic_load(&done); k++) {
		int64_t sent, seen;
		/* Woken by redis_watch; a probe never seen is given up after
		 * WAIT_NS. */
		pthread_mutex_lock(&seen_mu);
		while (((sent = atomic_load(&t_sent[k])) == 0 || atomic_load(&t_redis[k]) == 0) &&
		       !atomic_load(&done) && (sent == 0 || now_ns() - sent < WAIT_NS)) {
			int64_t t = now_ns() + 10000000;
			struct timespec ts = { (time_t)(t / 1000000000LL), (long)(t % 1000000000LL) };
			pthread_cond_timedwait(&seen_cv, &seen_mu, &ts);
		}
		pthread_mutex_unlock(&seen_mu);
		seen = atomic_load(&t_redis[k]);
		if (sent <= 0 || seen <= 0)
			continue;
		snprintf(user, sizeof user, PROBE_PREFIX "%ld", k);
		while (now_ns() - seen < WAIT_NS && !atomic_load(&done)) {
			if (recommends_x(user) == 0) {
				atomic_store(&t_serve[k], now_ns());
				break;
			}
		}
	}
	return NULL;
}

/* ---- Redis keyspace notifications ---- */

static redisContext *
redis_connect(void)
{
	char host[256];
	int port = 6379;
	redisContext *c;

	snprintf(host, sizeof host, "%s", O.redis);
	char *colon = strchr(host, ':');
	if (colon) {
		*colon = '\0';
		port = atoi(colon + 1);
	}
	c = redisConnect(host, port);
	if (!c || c->err)
		die("cannot connect to Redis at %s", O.redis);
	return c;
}

static int redis_db;

static void *
redis_watch(void *arg)
{
	redisContext *c = arg;
	const char *marker;
	char pat[512];

	snprintf(pat, sizeof pat, "%sp:" PROBE_PREFIX, O.prefix);
	for (;;) {
		void *rv = NULL;
		if (redisGetReplyFromReader(c, &rv) != REDIS_OK)
			die("%s", "Redis: bad reply");
		if (rv) {
			redisReply *r = rv;
			/* pmessage PATTERN CHANNEL EVENT */
			if (r->type == REDIS_REPLY_ARRAY && r->elements == 4 &&
			    r->element[2]->type == REDIS_REPLY_STRING &&
			    (marker = strstr(r->element[2]->str, pat))) {
				long k = probe_in(marker, strlen(marker));
				int64_t zero = 0;
				if (k >= 0 && k < nprobes &&
				    atomic_compare_exchange_strong(&t_redis[k], &zero, now_ns())) {
					pthread_mutex_lock(&seen_mu);
					pthread_cond_broadcast(&seen_cv);
					pthread_mutex_unlock(&seen_mu);
				}
			}
			freeReplyObject(r);
			continue;
		}
		if (atomic_load(&done))
			break;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		if (poll(&p, 1, 50) > 0 && redisBufferRead(c) != REDIS_OK)
			die("%s", "Redis: connection lost");
	}
	return NULL;
}

static void
on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err)
		die("delivery failed: %s", rd_kafka_err2str(m->err));
}

struct line {
	char *key, *val;
	size_t kn, vn;
	long long ts;
};

static struct line *
load_events(size_t *n)
{
	FILE *f = fopen(O.events, "r");
	struct line *v = NULL;
	size_t cap = 0, cnt = 0;
	char *l = NULL;
	size_t lcap = 0;
	ssize_t len;

	if (!f)
		die("%s: cannot open", O.events);
	while ((len = getline(&l, &lcap, f)) > 0) {
		if (l[len - 1] == '\n')
			l[--len] = '\0';
		char *tab = strchr(l, '\t'), *ts;
		if (!tab)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 4096;
			if (!(v = realloc(v, cap * sizeof *v)))
				die("%s", "out of memory");
		}
		v[cnt].kn = (size_t)(tab - l);
		v[cnt].key = strndup(l, v[cnt].kn);
		v[cnt].val = strdup(tab + 1);
		v[cnt].vn = strlen(tab + 1);
		ts = strstr(tab + 1, "\"ts\":");
		v[cnt].ts = ts ? atoll(ts + 5) : 0;
		cnt++;
	}
	free(l);
	fclose(f);
	if (!cnt)
		die("%s: no KEY<TAB>EVENT lines", O.events);
	*n = cnt;
	return v;
}

static void
sleep_until(int64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000LL), (long)(t % 1000000000LL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
percentiles(const char *what, _Atomic int64_t *t)
{
	double *v = malloc((size_t)nprobes * sizeof *v);
	long n = 0;

	for (long k = 0; k < nprobes; k++)
		if (t_sent[k] > 0 && t[k] > 0)
			v[n++] = (double)(t[k] - t_sent[k]) / 1e6;
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	if (n)
		fprintf(stderr, "freshness: %s: %ld of %ld probes, p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
			what, n, nprobes, v[(long)(0.5 * (n - 1))], v[(long)(0.99 * (n - 1))], v[n - 1]);
	else
		fprintf(stderr, "freshness: %s: no probe seen\n", what);
	free(v);
}

static int
run(void)
{
	char errstr[512], val[1024], key[64], rate[32];
	size_t nev;
	struct line *ev = load_events(&nev);
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	pthread_t tr, ts;
	redisContext *sub, *cmd;
	redisReply *r;
	FILE *out = stdout;

	/* The producer: each event sent at once (linger.ms=0, no Nagle),
	 * keyed like the Java client, so that a probe is not held back to
	 * fill a batch. */
	const char *kv[][2] = {
		{ "bootstrap.servers", O.brokers }, { "linger.ms", O.linger },
		{ "socket.nagle.disable", "true" }, { "partitioner", "murmur2_random" },
		{ "queue.buffering.max.messages", "1000000" }, { "acks", "1" },
	};
	for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
		if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
			die("%s", errstr);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr)))
		die("%s", errstr);

	const char *slash = strchr(O.redis, '/');
	redis_db = slash ? atoi(slash + 1) : 0;
	cmd = redis_connect();
	r = redisCommand(cmd, "CONFIG SET notify-keyspace-events K$");
	if (!r || r->type == REDIS_REPLY_ERROR)
		die("Redis: CONFIG SET notify-keyspace-events: %s", r ? r->str : "no reply");
	freeReplyObject(r);
	sub = redis_connect();
	r = redisCommand(sub, "PSUBSCRIBE __keyspace@%d__:%sp:" PROBE_PREFIX "*", redis_db, O.prefix);
	if (!r || r->type == REDIS_REPLY_ERROR)
		die("%s", "Redis: PSUBSCRIBE failed");
	freeReplyObject(r);

	/* X: what reco-serve recommends first to a user it does not know. */
	char *colon = strrchr(O.serve, ':');
	if (!colon || (size_t)(colon - O.serve) >= sizeof serve_host)
		die("bad reco-serve address %s", O.serve);
	memcpy(serve_host, O.serve, (size_t)(colon - O.serve));
	serve_port = atoi(colon + 1);
	{
		char body[65536], *p;
		if (http_get("/recommend?user=nobody-fresh&n=10", body, sizeof body) != 200)
			die("reco-serve at %s: no answer", O.serve);
		if (!(p = strstr(body, "\"item\":\"")))
			die("reco-serve: no item for an unknown user: %s", body);
		p += 8;
		size_t n = strcspn(p, "\"");
		if (n >= sizeof item_x)
			die("%s", "item id too long");
		memcpy(item_x, p, n);
		item_x[n] = '\0';
	}

	nprobes = (long)(O.secs * O.probes);
	if (nprobes < 1)
		nprobes = 1;
	t_sent = calloc((size_t)nprobes, sizeof *t_sent);
	t_redis = calloc((size_t)nprobes, sizeof *t_redis);
	t_serve = calloc((size_t)nprobes, sizeof *t_serve);
	if (!t_sent || !t_redis || !t_serve)
		die("%s", "out of memory");
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&seen_cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_create(&tr, NULL, redis_watch, sub);
	pthread_create(&ts, NULL, serve_watch, NULL);

	long long total = (long long)((O.warm + O.secs) * O.rate);
	long long warm = (long long)(O.warm * O.rate);
	double every = O.rate / O.probes; /* events between probes */
	int64_t t0 = now_ns() + 10000000, step = (int64_t)(1e9 / O.rate);
	long next_probe = 0;
	for (long long i = 0; i < total; i++) {
		int64_t due = t0 + i * step;
		if (now_ns() < due)
			sleep_until(due);
		struct line *e = &ev[i % (long long)nev];
		const char *k = e->key, *v = e->val;
		size_t kn = e->kn, vn = e->vn;
		long probe = -1;
		if (i >= warm && next_probe < nprobes &&
		    (double)(i - warm) >= next_probe * every) {
			kn = (size_t)snprintf(key, sizeof key, PROBE_PREFIX "%ld", next_probe);
			vn = (size_t)snprintf(val, sizeof val,
			    "{\"event_id\":\"%s-e\",\"ts\":%lld,\"user\":\"%s\",\"type\":\"purchase\","
			    "\"item\":\"%s\",\"qty\":1,\"price\":1.0,\"v\":1}",
			    key, e->ts, key, item_x);
			k = key;
			v = val;
			probe = next_probe++;
		}
		int64_t t = now_ns();
		rd_kafka_resp_err_t err;
		while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(O.topic),
		    RD_KAFKA_V_KEY(k, kn), RD_KAFKA_V_VALUE((void *)v, vn),
		    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
		    RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 1);
		if (err)
			die("produce: %s", rd_kafka_err2str(err));
		if (probe >= 0)
			atomic_store(&t_sent[probe], t);
		rd_kafka_poll(rk, 0);
	}
	double late = (double)(now_ns() - (t0 + total * step)) / 1e6;
	rd_kafka_flush(rk, 10000);
	/* Wait for the last probes, at most WAIT_NS after the last. */
	int64_t until = now_ns() + WAIT_NS;
	for (;;) {
		long missing = 0;
		for (long k = 0; k < nprobes; k++)
			missing += t_redis[k] == 0 || t_serve[k] == 0;
		if (!missing || now_ns() > until)
			break;
		usleep(10000);
	}
	atomic_store(&done, 1);
	pthread_join(tr, NULL);
	pthread_join(ts, NULL);

	if (O.out && !(out = fopen(O.out, "w")))
		die("%s: cannot open", O.out);
	for (long k = 0; k < nprobes; k++)
		fprintf(out, "%ld %lld %lld %lld\n", k, (long long)t_sent[k],
			t_redis[k] ? (long long)t_redis[k] : -1LL,
			t_serve[k] ? (long long)t_serve[k] : -1LL);
	if (fflush(out) || (out != stdout && fclose(out)))
		die("%s", "cannot write the probes");
	snprintf(rate, sizeof rate, "%.0f", O.rate);
	fprintf(stderr, "freshness: %lld events at %s/s, %ld probes, item %s; the sender ended %.1f ms behind schedule\n",
		total, rate, nprobes, item_x, late);
	percentiles("Redis", t_redis);
	percentiles("reco-serve", t_serve);
	redisFree(sub);
	redisFree(cmd);
	rd_kafka_destroy(rk);
	for (size_t i = 0; i < nev; i++) {
		free(ev[i].key);
		free(ev[i].val);
	}
	free(ev);
	free((void *)t_sent);
	free((void *)t_redis);
	free((void *)t_serve);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: freshness run -b brokers -t topic -e events -R host:port[/db] -S host:port\n"
		   "                     [-r rate] [-d seconds] [-w seconds] [-p probes] [-l linger.ms]\n"
		   "                     [-P prefix] [-o file]\n"
		   "       freshness tap file\n");
}

int
main(int argc, char **argv)
{
	int c;

	if (argc >= 2 && strcmp(argv[1], "tap") == 0) {
		if (argc != 3) {
			usage(stderr);
			return 2;
		}
		return tap(argv[2]);
	}
	if (argc < 2 || strcmp(argv[1], "run") != 0) {
		usage(argc >= 2 && strcmp(argv[1], "-h") == 0 ? stdout : stderr);
		return argc >= 2 && strcmp(argv[1], "-h") == 0 ? 0 : 2;
	}
	optind = 2;
	while ((c = getopt(argc, argv, "b:d:e:l:o:p:P:r:R:S:t:w:")) != -1) {
		switch (c) {
		case 'b': O.brokers = optarg; break;
		case 't': O.topic = optarg; break;
		case 'e': O.events = optarg; break;
		case 'R': O.redis = optarg; break;
		case 'S': O.serve = optarg; break;
		case 'o': O.out = optarg; break;
		case 'P': O.prefix = optarg; break;
		case 'l': O.linger = optarg; break;
		case 'r': O.rate = atof(optarg); break;
		case 'd': O.secs = atof(optarg); break;
		case 'w': O.warm = atof(optarg); break;
		case 'p': O.probes = atof(optarg); break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!O.brokers || !O.topic || !O.events || !O.redis || !O.serve || O.rate <= 0 ||
	    O.secs <= 0 || O.warm < 0 || O.probes <= 0 || O.probes > O.rate) {
		usage(stderr);
		return 2;
	}
	return run();
}
