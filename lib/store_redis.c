/* store_redis.c: the Redis store: one key per profile, the positions and the population in a hash, a writer's lease; the table in memory is a cache, filled by pipelined MGET and written back in one MULTI/EXEC per batch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "store_impl.h"

#define REDIS_CHUNK 1000 /* keys per MGET */

/*
 * Redis URLs as Redis clients take them:
 *   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]   HOST a name, an IPv4
 *                                                address or [IPv6]
 *   unix://[[USER]:PASSWORD@]/PATH[?db=DB]       also redis+unix://
 * with ?db=, ?password= and ?user= in the query of either, and USER,
 * PASSWORD and PATH percent-encoded where they must be. rediss:// (TLS)
 * needs a hiredis with TLS, which this build does not have: said so.
 */

/* The value of a hex digit, or -1. */
static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* p[0..n) percent-decoded, in a new string; NULL if an escape is bad or
 * decodes to NUL. */
static char *
url_decode(const char *p, size_t n)
{
	char *o = xmalloc(n + 1), *q = o;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '%') {
			*q++ = p[i];
			continue;
		}
		int h = i + 2 < n ? hexval((unsigned char)p[i + 1]) * 16 +
				    hexval((unsigned char)p[i + 2]) : -1;
		if (i + 2 < n && (hexval((unsigned char)p[i + 1]) < 0 ||
				  hexval((unsigned char)p[i + 2]) < 0))
			h = -1;
		if (h <= 0) {
			free(o);
			return NULL;
		}
		*q++ = (char)h;
		i += 2;
	}
	*q = 0;
	return o;
}

/* A database index: 0 to 1000000. */
static int
parse_db(const char *p, size_t n, int *db)
{
	char buf[16], *end;

	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, p, n);
	buf[n] = 0;
	long v = strtol(buf, &end, 10);
	if (*end || v < 0 || v > 1000000 || !(*buf >= '0' && *buf <= '9'))
		return -1;
	*db = (int)v;
	return 0;
}

/* Replace *dst with the decoded p[0..n); -1 if it does not decode. */
static int
set_decoded(char **dst, const char *p, size_t n)
{
	char *v = url_decode(p, n);

	if (!v)
		return -1;
	free(*dst);
	*dst = v;
	return 0;
}

/* The query of a URL (after '?'): db, password and user. Return 0, or -1
 * with the problem in *what. */
static int
parse_query(struct store *s, const char *q, const char **what)
{
	while (*q) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
		const char *eq = memchr(q, '=', (size_t)(end - q));
		size_t kn = (size_t)((eq ? eq : end) - q);
		const char *v = eq ? eq + 1 : end;
		size_t vn = (size_t)(end - v);
		if (!eq) {
			*what = "a query parameter without a value";
			return -1;
		}
		if (kn == 2 && memcmp(q, "db", 2) == 0) {
			if (parse_db(v, vn, &s->db)) {
				*what = "db is not a number from 0 to 1000000";
				return -1;
			}
		} else if (kn == 8 && memcmp(q, "password", 8) == 0) {
			if (set_decoded(&s->password, v, vn)) {
				*what = "a bad percent escape in the password";
				return -1;
			}
		} else if (kn == 4 && memcmp(q, "user", 4) == 0) {
			if (set_decoded(&s->user, v, vn)) {
				*what = "a bad percent escape in the user";
				return -1;
			}
		} else {
			*what = "an unknown query parameter (db, password, user)";
			return -1;
		}
		q = amp ? amp + 1 : end;
	}
	return 0;
}

/* USER:PASSWORD or PASSWORD before '@', percent-decoded. */
static int
parse_userinfo(struct store *s, const char *p, size_t n)
{
	const char *colon = memchr(p, ':', n);

	if (!colon)
		return set_decoded(&s->password, p, n);
	if (colon > p && set_decoded(&s->user, p, (size_t)(colon - p)))
		return -1;
	return set_decoded(&s->password, colon + 1, n - (size_t)(colon + 1 - p));
}

/* The kind of store a --store SPEC names: STORE_REDIS for the Redis URLs
 * above (and rediss://, refused when opened), STORE_FILE for a path, -1
 * for any other SCHEME:// (never taken for a file name). */
int
store_spec_kind(const char *spec)
{
	static const char *const redis[] = { "redis://", "rediss://", "unix://",
					     "redis+unix://", "rediss+unix://" };
	size_t k = 0;

	for (size_t i = 0; i < sizeof redis / sizeof *redis; i++)
		if (strncmp(spec, redis[i], strlen(redis[i])) == 0)
			return STORE_REDIS;
	while ((spec[k] >= 'a' && spec[k] <= 'z') || (spec[k] >= 'A' && spec[k] <= 'Z') ||
	       (spec[k] >= '0' && spec[k] <= '9') || spec[k] == '+' || spec[k] == '-' ||
	       spec[k] == '.')
		k++;
	if (k > 0 && strncmp(spec + k, "://", 3) == 0)
		return -1;
	return STORE_FILE;
}

static int
parse_url(struct store *s, const char *url, char *err, size_t errlen)
{
	const char *p, *q, *at, *hend, *what = "bad syntax";
	int unix_sock = 0;
	char *end;

	s->port = 6379;
	if (strncmp(url, "rediss", 6) == 0) {
		snprintf(err, errlen, "%s: rediss:// (TLS) needs hiredis with TLS, which this build does not have; "
			 "use redis:// or unix:// behind a TLS tunnel", url);
		return -1;
	}
	if (strncmp(url, "redis://", 8) == 0)
		p = url + 8;
	else {
		p = strstr(url, "://") + 3;
		unix_sock = 1;
	}
	/* The query, then the authority up to the first '/'. */
	q = strchr(p, '?');
	const char *stop = q ? q : p + strlen(p);
	const char *slash = memchr(p, '/', (size_t)(stop - p));
	hend = slash ? slash : stop;
	at = NULL;
	for (const char *c = p; c < hend; c++)
		if (*c == '@')
			at = c;
	if (at) {
		if (parse_userinfo(s, p, (size_t)(at - p))) {
			what = "a bad percent escape in the user or password";
			goto bad;
		}
		p = at + 1;
	}
	if (unix_sock) {
		/* unix://[userinfo@]/PATH */
		if (p != hend || !slash || slash + 1 >= stop) {
			what = "a Unix socket URL names an absolute path (unix:///PATH)";
			goto bad;
		}
		if (!(s->host = url_decode(slash, (size_t)(stop - slash)))) {
			what = "a bad percent escape in the path";
			goto bad;
		}
		s->port = 0;
	} else {
		const char *colon;
		if (*p == '[') {
			const char *rb = memchr(p, ']', (size_t)(hend - p));
			if (!rb || rb == p + 1) {
				what = "an IPv6 address without its closing ]";
				goto bad;
			}
			s->host = xstrndup(p + 1, (size_t)(rb - p - 1));
			colon = rb + 1 < hend ? rb + 1 : NULL;
			if (colon && *colon != ':') {
				what = "after ] comes :PORT or the end of the address";
				goto bad;
			}
		} else {
			colon = memchr(p, ':', (size_t)(hend - p));
			s->host = xstrndup(p, (size_t)((colon ? colon : hend) - p));
		}
		if (!*s->host) {
			free(s->host);
			s->host = xstrdup("127.0.0.1");
		}
		if (colon) {
			long v = strtol(colon + 1, &end, 10);
			if (end != hend || colon + 1 == hend || v <= 0 || v > 65535) {
				what = "the port is not a number from 1 to 65535";
				goto bad;
			}
			s->port = (int)v;
		}
		if (slash && slash + 1 < stop &&
		    parse_db(slash + 1, (size_t)(stop - slash - 1), &s->db)) {
			what = "the database is not a number from 0 to 1000000";
			goto bad;
		}
	}
	if (q && parse_query(s, q + 1, &what))
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "bad Redis URL \"%s\": %s (redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], "
		 "HOST a name, an address or [IPv6]; unix://[[USER]:PASSWORD@]/PATH[?db=DB])",
		 url, what);
	return -1;
}

/* Where the server is, for messages: HOST:PORT, [IPv6]:PORT or the
 * socket's path. */
static const char *
redis_addr(const struct store *s, char *buf, size_t n)
{
	if (!s->port)
		snprintf(buf, n, "%s", s->host);
	else if (strchr(s->host, ':'))
		snprintf(buf, n, "[%s]:%d", s->host, s->port);
	else
		snprintf(buf, n, "%s:%d", s->host, s->port);
	return buf;
}

static struct timeval
tv_of(int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000) };
	return tv;
}

/* The reason of the last error on the connection, in err: a timeout (which
 * hiredis reports as "Resource temporarily unavailable") says so, with the
 * server's address. */
static void
redis_error(struct store *s, const char *doing, char *err, size_t errlen)
{
	const char *e = s->rc ? s->rc->errstr : "cannot connect";
	char addr[300];

	if (s->rc && s->rc->err == REDIS_ERR_IO &&
	    (strcmp(e, strerror(EAGAIN)) == 0 ||
	     strcmp(e, strerror(EWOULDBLOCK)) == 0 ||
	     strcmp(e, strerror(ETIMEDOUT)) == 0))
		snprintf(err, errlen, "%s: %s: timed out after %lld ms %s (--redis-timeout)",
			 s->spec, redis_addr(s, addr, sizeof addr), (long long)s->o.timeout, doing);
	else
		snprintf(err, errlen, "%s: %s: %s", s->spec, redis_addr(s, addr, sizeof addr), e);
}

static void
redis_drop(struct store *s)
{
	if (s->rc)
		redisFree(s->rc);
	s->rc = NULL;
}

/* One command on a fresh connection; 0 if it answered without an error. */
static int
redis_setup_cmd(struct store *s, int argc, const char **argv, char *err,
		size_t errlen)
{
	redisReply *r = redisCommandArgv(s->rc, argc, argv, NULL);

	if (!r) {
		redis_error(s, "waiting for a reply", err, errlen);
		return -1;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s: %s: %s", s->spec, argv[0], r->str);
		freeReplyObject(r);
		return -2;
	}
	freeReplyObject(r);
	return 0;
}

/* Connect, authenticate and select the database. Return 0, -1 on a
 * connection failure (worth retrying), -2 on a refusal. */
static int
redis_connect(struct store *s, char *err, size_t errlen)
{
	char db[16];
	int r;

	redis_drop(s);
	struct timeval tv = tv_of(s->o.connect_timeout > 0 ?
				  s->o.connect_timeout : s->o.timeout);
	s->rc = s->port ? redisConnectWithTimeout(s->host, s->port, tv)
			: redisConnectUnixWithTimeout(s->host, tv);
	if (!s->rc || s->rc->err) {
		redis_error(s, "connecting", err, errlen);
		redis_drop(s);
		return -1;
	}
	redisSetTimeout(s->rc, tv_of(s->o.timeout));
	if (s->password) {
		const char *a[3] = { "AUTH", s->user ? s->user : s->password,
				     s->password };
		if ((r = redis_setup_cmd(s, s->user ? 3 : 2, a, err, errlen)))
			goto fail;
	}
	if (s->db) {
		const char *a[2] = { "SELECT", db };
		snprintf(db, sizeof db, "%d", s->db);
		if ((r = redis_setup_cmd(s, 2, a, err, errlen)))
			goto fail;
	}
	return 0;
fail:
	redis_drop(s);
	return r;
}

/* Wait before the next attempt: the first backoff (100 ms by default),
 * doubling, at most 5 s. */
static void
backoff(const struct store *s, int attempt)
{
	int64_t ms = s->o.backoff << (attempt < 6 ? attempt : 6);
	struct timespec ts;

	if (ms <= 0)
		return;
	if (ms > 5000)
		ms = 5000;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * A pipelined list of commands, built in s->cmd: each is an argc and the
 * (length, bytes) of its arguments. Sent whole, replies read in order.
 */
struct rcmds {
	size_t ncmd;
	size_t *argc;       /* per command */
	size_t nargs;
	size_t *off, *len;  /* per argument, into s->cmd */
	size_t capcmd, capargs;
};

static void
rc_begin(struct store *s, struct rcmds *c)
{
	s->cmd.n = 0;
	c->ncmd = c->nargs = 0;
}

static void
rc_arg(struct store *s, struct rcmds *c, const void *p, size_t n)
{
	if (c->nargs == c->capargs) {
		c->capargs = c->capargs ? c->capargs * 2 : 64;
		c->off = xreallocarray(c->off, c->capargs, sizeof *c->off);
		c->len = xreallocarray(c->len, c->capargs, sizeof *c->len);
	}
	c->off[c->nargs] = s->cmd.n;
	c->len[c->nargs] = n;
	c->nargs++;
	buf_put(&s->cmd, p, n);
	c->argc[c->ncmd - 1]++;
}

static void
rc_cmd(struct store *s, struct rcmds *c, const char *name)
{
	if (c->ncmd == c->capcmd) {
		c->capcmd = c->capcmd ? c->capcmd * 2 : 64;
		c->argc = xreallocarray(c->argc, c->capcmd, sizeof *c->argc);
	}
	c->argc[c->ncmd++] = 0;
	rc_arg(s, c, name, strlen(name));
}

static void
rc_free(struct rcmds *c)
{
	free(c->argc);
	free(c->off);
	free(c->len);
}

/*
 * Send the commands and collect one reply each into replies (the caller
 * frees them with freeReplyObject). On a lost connection, reconnect with
 * backoff and send them all again, up to the retries: the callers only
 * send what may be repeated (whole values, MULTI/EXEC). Return 0, or -1
 * with the reason in err.
 */
static int
rc_run(struct store *s, struct rcmds *c, redisReply **replies, char *err,
       size_t errlen)
{
	size_t a;

	/* The protocol is written here, not argument by argument by
	 * hiredis: its formatting is the larger cost of big pipelines. */
	s->resp.n = 0;
	a = 0;
	for (size_t i = 0; i < c->ncmd; i++) {
		buf_putc(&s->resp, '*');
		buf_put_u64(&s->resp, c->argc[i]);
		buf_puts(&s->resp, "\r\n");
		for (size_t j = 0; j < c->argc[i]; j++, a++) {
			buf_putc(&s->resp, '$');
			buf_put_u64(&s->resp, c->len[a]);
			buf_puts(&s->resp, "\r\n");
			buf_put(&s->resp, s->cmd.p + c->off[a], c->len[a]);
			buf_puts(&s->resp, "\r\n");
		}
	}
	for (int attempt = 0;; attempt++) {
		int r = 0;
		size_t got = 0;
		if (!s->rc)
			r = redis_connect(s, err, errlen);
		if (r == -2)
			return -1;
		if (r == 0) {
			redisAppendFormattedCommand(s->rc, s->resp.p, s->resp.n);
			for (; got < c->ncmd; got++)
				if (redisGetReply(s->rc, (void **)&replies[got]) != REDIS_OK)
					break;
			if (got == c->ncmd)
				return 0;
			redis_error(s, "waiting for a reply", err, errlen);
			for (size_t i = 0; i < got; i++)
				freeReplyObject(replies[i]);
			redis_drop(s);
		}
		if (attempt >= s->o.retries)
			return -1;
		s->c.retries++;
		if (verbosity >= 0)
			warn("%s; retrying (%d of %d)", err, attempt + 1,
			     s->o.retries);
		backoff(s, attempt);
	}
}

static void
free_replies(redisReply **r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (r[i])
			freeReplyObject(r[i]);
}

static const char *
user_key(struct store *s, const char *u, size_t n, size_t *kn)
{
	s->key.n = 0;
	buf_puts(&s->key, s->o.prefix);
	buf_puts(&s->key, "p:");
	buf_put(&s->key, u, n);
	*kn = s->key.n;
	return s->key.p;
}

static void
rc_key_arg(struct store *s, struct rcmds *c, const char *u, size_t n)
{
	size_t kn;
	const char *k = user_key(s, u, n, &kn);

	rc_arg(s, c, k, kn);
}

static void
rc_meta_key(struct store *s, struct rcmds *c)
{
	s->key.n = 0;
	buf_puts(&s->key, s->o.prefix);
	buf_puts(&s->key, "meta");
	rc_arg(s, c, s->key.p, s->key.n);
}

static int
reply_error(struct store *s, redisReply *r, const char *what, char *err,
	    size_t errlen)
{
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "%s: %s: %s", s->spec, what, r->str);
		return -1;
	}
	return 0;
}

static void
rc_window_key(struct store *s, struct rcmds *c, const struct ledger_stream *t)
{
	s->key.n = 0;
	buf_puts(&s->key, s->o.prefix);
	buf_puts(&s->key, "w:");
	buf_put(&s->key, t->name, t->n);
	rc_arg(s, c, s->key.p, s->key.n);
}

/*
 * A writer's windows, from the strings prefix w:STREAM: the bitmap as in
 * memory (bit position % window). One of another length was written with
 * another window, window = 8 * its length: its bits are taken over, and
 * the positions it did not cover count as applied, as they do without one
 * (a store written before windows were kept).
 */
static int
redis_load_windows(struct store *s, char *err, size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply **r = NULL;
	size_t nr = 0;
	int rc = -1;

	if (s->mode != STORE_WRITE || !s->o.window || !s->L.nstreams)
		return 0;
	rc_begin(s, &c);
	for (size_t i = 0; i < s->L.nstreams; i++) {
		rc_cmd(s, &c, "GET");
		rc_window_key(s, &c, &s->L.streams[i]);
	}
	r = xcalloc(c.ncmd, sizeof *r);
	if (rc_run(s, &c, r, err, errlen))
		goto out;
	nr = c.ncmd;
	for (size_t i = 0; i < nr; i++) {
		struct ledger_stream *t = &s->L.streams[i];
		redisReply *v = r[i];
		if (reply_error(s, v, "GET", err, errlen))
			goto out;
		t->full = 1;
		if (v->type == REDIS_REPLY_STRING && v->len == s->o.window / 8) {
			memcpy(t->win, v->str, v->len);
			t->full = 0;
			continue;
		}
		memset(t->win, 0xff, s->o.window / 8);
		if (v->type != REDIS_REPLY_STRING || v->len == 0)
			continue;
		uint64_t ow = (uint64_t)v->len * 8;
		int64_t w = (int64_t)(ow < s->o.window ? ow : s->o.window);
		for (int64_t q = t->pos; q > t->pos - w && q >= 0; q--) {
			uint64_t b = (uint64_t)q % ow;
			ledger_win_set(&s->L, t, q, (unsigned char)v->str[b >> 3] >> (b & 7) & 1);
		}
	}
	rc = 0;
out:
	free_replies(r, nr);
	free(r);
	rc_free(&c);
	return rc;
}

/* Put into c the commands that write the windows changed since the last
 * commit: the whole string, or SETRANGE of the bytes that changed. */
static void
rc_windows(struct store *s, struct rcmds *c)
{
	uint64_t w = s->o.window;
	char num[32];

	for (size_t i = 0; i < s->L.nstreams; i++) {
		struct ledger_stream *t = &s->L.streams[i];
		if (!t->win || !t->moved || (!t->full && !t->dirty))
			continue;
		if (t->full || t->dmax - t->dmin + 1 >= (int64_t)w) {
			rc_cmd(s, c, "SET");
			rc_window_key(s, c, t);
			rc_arg(s, c, t->win, w / 8);
			continue;
		}
		uint64_t b0 = (uint64_t)t->dmin % w / 8, b1 = (uint64_t)t->dmax % w / 8;
		uint64_t from[2] = { b0, 0 }, to[2] = { b1, b1 };
		int parts = 1;
		if (b0 > b1) {
			to[0] = w / 8 - 1;
			parts = 2;
		}
		for (int k = 0; k < parts; k++) {
			rc_cmd(s, c, "SETRANGE");
			rc_window_key(s, c, t);
			snprintf(num, sizeof num, "%llu", (unsigned long long)from[k]);
			rc_arg(s, c, num, strlen(num));
			rc_arg(s, c, t->win + from[k], to[k] - from[k] + 1);
		}
	}
}

/* Read the positions and the population from the meta hash. */
static int
redis_load_meta(struct store *s, char *err, size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	int rc = -1;

	rc_begin(s, &c);
	rc_cmd(s, &c, "HGETALL");
	rc_meta_key(s, &c);
	if (rc_run(s, &c, &r, err, errlen))
		goto out;
	if (reply_error(s, r, "HGETALL", err, errlen))
		goto out;
	if (r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "%s: unexpected reply to HGETALL", s->spec);
		goto out;
	}
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		redisReply *k = r->element[i], *v = r->element[i + 1];
		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "version") == 0) {
			if (strcmp(v->str, "1") != 0) {
				snprintf(err, errlen, "%s: store version %s; this reco-profile reads version 1",
					 s->spec, v->str);
				goto out;
			}
		} else if (strcmp(k->str, "stats") == 0) {
			if (profile_stats_decode(&s->stats, v->str, v->len)) {
				snprintf(err, errlen, "%s: corrupt stats in %smeta",
					 s->spec, s->o.prefix);
				goto out;
			}
		} else if (k->len > 4 && memcmp(k->str, "pos:", 4) == 0) {
			char *end;
			long long pos = strtoll(v->str, &end, 10);
			if (*end)
				continue;
			uint32_t j = ledger_stream(&s->L, k->str + 4, k->len - 4, 1);
			s->L.streams[j].pos = pos;
		}
	}
	rc = redis_load_windows(s, err, errlen);
out:
	if (r)
		freeReplyObject(r);
	rc_free(&c);
	return rc;
}

/* Fetch the given users (not in memory) with MGET; absent ones become
 * empty profiles. */
static int
redis_fetch(struct store *s, const struct str *users, size_t n, char *err,
	    size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	int rc = -1;

	rc_begin(s, &c);
	rc_cmd(s, &c, "MGET");
	for (size_t i = 0; i < n; i++)
		rc_key_arg(s, &c, users[i].p, users[i].n);
	if (rc_run(s, &c, &r, err, errlen))
		goto out;
	if (reply_error(s, r, "MGET", err, errlen))
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
		snprintf(err, errlen, "%s: unexpected reply to MGET", s->spec);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		redisReply *v = r->element[i];
		struct profile *p;
		if (store_table_find(s, users[i].p, users[i].n,
			       store_user_hash(users[i].p, users[i].n)) != NIL)
			continue; /* asked twice */
		p = profile_new(users[i].p, users[i].n);
		if (v->type == REDIS_REPLY_STRING) {
			if (profile_decode(p, v->str, v->len, err, errlen) ||
			    !store_user_is(p, users[i].p, users[i].n)) {
				snprintf(err, errlen, "%s: %.*s: corrupt profile",
					 s->spec, (int)(users[i].n > 200 ? 200 : users[i].n),
					 users[i].p);
				profile_free(p);
				goto out;
			}
			s->c.hits++;
		}
		store_table_insert(s, p);
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	rc_free(&c);
	return rc;
}

/*
 * The lease of a Redis writer: the key PREFIXlease (a shard's tag after it)
 * holds "pid PID on HOST #GEN" and expires after lease_ms unless renewed;
 * the field lease_gen (the shard's tag after it) of PREFIXmeta counts the
 * leases taken, so that a writer whose lease expired may take it back only
 * if nobody held it meanwhile.
 */
static const char lease_take_lua[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v and v ~= ARGV[4] then return {0, v} end "
	"local g = redis.call('HINCRBY', KEYS[2], ARGV[3], 1) "
	"local t = ARGV[1] .. ' #' .. g "
	"redis.call('SET', KEYS[1], t, 'PX', ARGV[2]) "
	"return {1, t, tostring(g)}";
static const char lease_renew_lua[] =
	"local v = redis.call('GET', KEYS[1]) "
	"if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end "
	"if v then return v end "
	"if redis.call('HGET', KEYS[2], ARGV[4]) == ARGV[3] then "
	"redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end "
	"return 0";
static const char lease_release_lua[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then "
	"return redis.call('DEL', KEYS[1]) end return 0";

/* The lease key (gen 0), or the name of its lease_gen field (gen 1). */
static void
rc_lease_key(struct store *s, struct rcmds *c, int gen)
{
	s->key.n = 0;
	if (!gen)
		buf_puts(&s->key, s->o.prefix);
	buf_puts(&s->key, gen ? "lease_gen" : "lease");
	if (s->o.lease)
		buf_puts(&s->key, s->o.lease);
	rc_arg(s, c, s->key.p, s->key.n);
}

/* Start an EVAL of script over the lease key and the meta hash. */
static void
rc_lease_eval(struct store *s, struct rcmds *c, const char *script)
{
	rc_cmd(s, c, "EVAL");
	rc_arg(s, c, script, strlen(script));
	rc_arg(s, c, "2", 1);
	rc_lease_key(s, c, 0);
	rc_meta_key(s, c);
}

static void
rc_lease_ms(struct store *s, struct rcmds *c)
{
	char num[32];

	snprintf(num, sizeof num, "%lld", (long long)s->o.lease_ms);
	rc_arg(s, c, num, strlen(num));
}

/* Whether the holder of a lease (its value) is a process of this host
 * that is gone (a writer killed before its lease expired). */
static int
holder_gone(const char *v)
{
	char me[300], host[256];
	long pid;
	const char *h;

	lock_holder(me, sizeof me);
	h = strstr(me, " on ");
	if (!h || sscanf(v, "pid %ld on %255s", &pid, host) != 2 || pid <= 0)
		return 0;
	if (strcmp(host, h + 4) != 0)
		return 0;
	if (kill((pid_t)pid, 0) == -1)
		return errno == ESRCH;
	/* Killed but not reaped yet: a zombie holds nothing. */
	char path[64], st[256];
	FILE *f;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	size_t n = fread(st, 1, sizeof st - 1, f);
	fclose(f);
	st[n] = '\0';
	const char *e = strrchr(st, ')');
	return e && e[1] == ' ' && e[2] == 'Z';
}

/* Take the lease, or fail (-1, err naming the holder) if another writer
 * holds it. The lease of a writer of this host that is gone is taken
 * over at once. */
static int
lease_take(struct store *s, char *err, size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	char who[300], *stale = NULL;
	int rc = -1;

	lock_holder(who, sizeof who);
again:
	rc_begin(s, &c);
	rc_lease_eval(s, &c, lease_take_lua);
	rc_arg(s, &c, who, strlen(who));
	rc_lease_ms(s, &c);
	rc_lease_key(s, &c, 1);
	rc_arg(s, &c, stale ? stale : "", stale ? strlen(stale) : 0);
	if (rc_run(s, &c, &r, err, errlen) || reply_error(s, r, "EVAL", err, errlen))
		goto out;
	if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "%s: unexpected reply to the lease script", s->spec);
		goto out;
	}
	if (r->element[0]->integer != 1 && !stale && holder_gone(r->element[1]->str)) {
		stale = xstrdup(r->element[1]->str);
		freeReplyObject(r);
		r = NULL;
		goto again;
	}
	if (r->element[0]->integer != 1) {
		snprintf(err, errlen, "%s%s: another writer holds the lease (%s)",
			 s->spec, s->o.lease ? s->o.lease : "", r->element[1]->str);
		goto out;
	}
	if (r->elements < 3 || r->element[2]->type != REDIS_REPLY_STRING) {
		snprintf(err, errlen, "%s: unexpected reply to the lease script", s->spec);
		goto out;
	}
	s->lease_tok = xstrdup(r->element[1]->str);
	s->lease_gen = xstrdup(r->element[2]->str);
	s->lease_at = store_now();
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	rc_free(&c);
	free(stale);
	return rc;
}

/* Renew the lease before a commit, once a third of its time has passed
 * since it was last renewed (in between, the commit's WATCH is enough).
 * Return 0, or -1 if it was lost. */
static int
lease_renew(struct store *s, char *err, size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	int rc = -1;
	double t = store_now();

	if (!s->lease_tok || t - s->lease_at < (double)s->o.lease_ms / 3000)
		return 0;
	rc_begin(s, &c);
	rc_lease_eval(s, &c, lease_renew_lua);
	rc_arg(s, &c, s->lease_tok, strlen(s->lease_tok));
	rc_lease_ms(s, &c);
	rc_arg(s, &c, s->lease_gen, strlen(s->lease_gen));
	rc_lease_key(s, &c, 1);
	if (rc_run(s, &c, &r, err, errlen) || reply_error(s, r, "EVAL", err, errlen))
		goto out;
	if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
		s->lease_at = t;
		rc = 0;
	} else
		snprintf(err, errlen, "%s%s: lease lost%s%s", s->spec,
			 s->o.lease ? s->o.lease : "",
			 r->type == REDIS_REPLY_STRING ? ": another writer holds it: " : "",
			 r->type == REDIS_REPLY_STRING ? r->str : "");
out:
	if (r)
		freeReplyObject(r);
	rc_free(&c);
	return rc;
}

/* Give the lease back (at close), if still held. */
static void
lease_release(struct store *s)
{
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	char err[256];

	if (!s->lease_tok || !s->rc)
		return;
	rc_begin(s, &c);
	rc_cmd(s, &c, "EVAL");
	rc_arg(s, &c, lease_release_lua, strlen(lease_release_lua));
	rc_arg(s, &c, "1", 1);
	rc_lease_key(s, &c, 0);
	rc_arg(s, &c, s->lease_tok, strlen(s->lease_tok));
	if (rc_run(s, &c, &r, err, sizeof err) == 0)
		freeReplyObject(r);
	rc_free(&c);
}

/* Write the changed profiles, the positions and the population in one
 * MULTI/EXEC, if this writer still holds its lease: the lease key is
 * watched, so that a writer that took it over meanwhile aborts the
 * transaction. */
static int
redis_commit(struct store *s, char *err, size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply **r = NULL;
	size_t nr = 0;
	int rc = -1;
	char num[32];
	struct buf stats = { 0 };

	if (lease_renew(s, err, errlen))
		return -1;
	rc_begin(s, &c);
	if (s->lease_tok) {
		rc_cmd(s, &c, "WATCH");
		rc_lease_key(s, &c, 0);
	}
	rc_cmd(s, &c, "MULTI");
	for (size_t i = 0; i < s->nchanged; i++) {
		struct profile *p = s->slots[s->changed[i]].p;
		struct str u = profile_str(p, p->user);
		rc_cmd(s, &c, "SET");
		rc_key_arg(s, &c, u.p, u.n);
		s->val.n = 0;
		profile_encode(&s->val, p);
		rc_arg(s, &c, s->val.p, s->val.n);
	}
	rc_cmd(s, &c, "HSET");
	rc_meta_key(s, &c);
	rc_arg(s, &c, "version", 7);
	rc_arg(s, &c, "1", 1);
	rc_arg(s, &c, "stats", 5);
	profile_stats_encode(&stats, &s->stats);
	rc_arg(s, &c, stats.p, stats.n);
	for (size_t i = 0; i < s->L.nstreams; i++) {
		if (s->L.streams[i].pos < 0 || !s->L.streams[i].moved)
			continue;
		s->key.n = 0;
		buf_puts(&s->key, "pos:");
		buf_put(&s->key, s->L.streams[i].name, s->L.streams[i].n);
		rc_arg(s, &c, s->key.p, s->key.n);
		snprintf(num, sizeof num, "%lld", (long long)s->L.streams[i].pos);
		rc_arg(s, &c, num, strlen(num));
	}
	rc_windows(s, &c);
	rc_cmd(s, &c, "EXEC");
	r = xcalloc(c.ncmd, sizeof *r);
	if (rc_run(s, &c, r, err, errlen))
		goto out;
	nr = c.ncmd;
	for (size_t i = 0; i < nr; i++)
		if (reply_error(s, r[i], i + 1 == nr ? "EXEC" : "queued command",
				err, errlen))
			goto out;
	if (r[nr - 1]->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "%s: transaction aborted%s", s->spec,
			 s->lease_tok ? " (lease lost to another writer)" : "");
		goto out;
	}
	for (size_t i = 0; i < r[nr - 1]->elements; i++)
		if (reply_error(s, r[nr - 1]->element[i], "EXEC", err, errlen))
			goto out;
	rc = 0;
out:
	free_replies(r, nr);
	free(r);
	rc_free(&c);
	buf_free(&stats);
	return rc;
}

/* Every profile in Redis, sorted by user, to fn. */
static int
redis_each(struct store *s, int (*fn)(struct profile *, void *), void *ctx,
	   char *err, size_t errlen)
{
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	struct buf pat = { 0 };
	char cursor[32] = "0";
	struct profile **all = NULL;
	size_t n = 0, cap = 0, keys_cap = 0, nkeys = 0;
	char **keys = NULL;
	size_t *klen = NULL;
	int rc = -1;

	for (const char *q = s->o.prefix; *q; q++) {
		if (strchr("*?[]\\", *q))
			buf_putc(&pat, '\\');
		buf_putc(&pat, *q);
	}
	buf_puts(&pat, "p:*");
	do {
		rc_begin(s, &c);
		rc_cmd(s, &c, "SCAN");
		rc_arg(s, &c, cursor, strlen(cursor));
		rc_arg(s, &c, "MATCH", 5);
		rc_arg(s, &c, pat.p, pat.n);
		rc_arg(s, &c, "COUNT", 5);
		rc_arg(s, &c, "1000", 4);
		if (rc_run(s, &c, &r, err, errlen))
			goto out;
		if (reply_error(s, r, "SCAN", err, errlen))
			goto out;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			snprintf(err, errlen, "%s: unexpected reply to SCAN", s->spec);
			goto out;
		}
		snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
		for (size_t i = 0; i < r->element[1]->elements; i++) {
			redisReply *k = r->element[1]->element[i];
			if (nkeys == keys_cap) {
				keys_cap = keys_cap ? keys_cap * 2 : 1024;
				keys = xreallocarray(keys, keys_cap, sizeof *keys);
				klen = xreallocarray(klen, keys_cap, sizeof *klen);
			}
			keys[nkeys] = xmalloc(k->len + 1);
			memcpy(keys[nkeys], k->str, k->len + 1);
			klen[nkeys++] = k->len;
		}
		freeReplyObject(r);
		r = NULL;
	} while (strcmp(cursor, "0") != 0);
	/* SCAN may return a key twice. */
	for (size_t i = 0; i < nkeys; i += REDIS_CHUNK) {
		size_t m = nkeys - i < REDIS_CHUNK ? nkeys - i : REDIS_CHUNK;
		rc_begin(s, &c);
		rc_cmd(s, &c, "MGET");
		for (size_t j = 0; j < m; j++)
			rc_arg(s, &c, keys[i + j], klen[i + j]);
		if (rc_run(s, &c, &r, err, errlen))
			goto out;
		if (reply_error(s, r, "MGET", err, errlen))
			goto out;
		for (size_t j = 0; j < r->elements; j++) {
			redisReply *v = r->element[j];
			struct profile *p;
			if (v->type != REDIS_REPLY_STRING)
				continue; /* deleted meanwhile */
			p = profile_new("", 0);
			if (profile_decode(p, v->str, v->len, err, errlen)) {
				snprintf(err, errlen, "%s: %s: corrupt profile",
					 s->spec, keys[i + j]);
				profile_free(p);
				goto out;
			}
			if (n == cap) {
				cap = cap ? cap * 2 : 1024;
				all = xreallocarray(all, cap, sizeof *all);
			}
			all[n++] = p;
		}
		freeReplyObject(r);
		r = NULL;
	}
	if (n > 1)
		qsort(all, n, sizeof *all, store_profile_cmp);
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (i > 0 && profile_user_cmp(all[i - 1], all[i]) == 0)
			continue;
		rc = fn(all[i], ctx);
	}
	if (rc)
		snprintf(err, errlen, "stopped");
out:
	if (r)
		freeReplyObject(r);
	for (size_t i = 0; i < n; i++)
		profile_free(all[i]);
	free(all);
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	free(klen);
	buf_free(&pat);
	rc_free(&c);
	return rc;
}

/* ---- the backend ---- */

static int
redis_open(struct store *s, char *err, size_t errlen)
{
	if (parse_url(s, s->spec, err, errlen))
		return -1;
	for (int attempt = 0;; attempt++) {
		int r = redis_connect(s, err, errlen);
		if (r == 0)
			break;
		if (r == -2 || attempt >= s->o.retries)
			return -1;
		s->c.retries++;
		backoff(s, attempt);
	}
	if (s->mode == STORE_WRITE && lease_take(s, err, errlen))
		return -1;
	if (redis_load_meta(s, err, errlen))
		return -1;
	s->scratch = profile_new("", 0);
	return 0;
}

static void
redis_close(struct store *s)
{
	lease_release(s);
	free(s->lease_tok);
	free(s->lease_gen);
	redis_drop(s);
	free(s->host);
	free(s->user);
	free(s->password);
	buf_free(&s->key);
	buf_free(&s->val);
	buf_free(&s->cmd);
	buf_free(&s->resp);
	profile_free(s->scratch);
}

/* A user not in the table: a writer fetches it into the table; a reader
 * reads it into the scratch profile, not kept. */
static int
redis_get(struct store *s, const char *user, size_t n, struct profile **p,
	  char *err, size_t errlen)
{
	if (s->mode == STORE_WRITE) {
		struct str u = { user, n };
		if (redis_fetch(s, &u, 1, err, errlen))
			return -1;
		return store_get(s, user, n, p, err, errlen);
	}
	struct rcmds c = { 0 };
	redisReply *r = NULL;
	int rc = -1;
	rc_begin(s, &c);
	rc_cmd(s, &c, "GET");
	rc_key_arg(s, &c, user, n);
	if (rc_run(s, &c, &r, err, errlen) || reply_error(s, r, "GET", err, errlen))
		goto out;
	if (r->type == REDIS_REPLY_NIL)
		rc = 0;
	else if (r->type == REDIS_REPLY_STRING &&
		 profile_decode(s->scratch, r->str, r->len, err, errlen) == 0) {
		*p = s->scratch;
		rc = 1;
	} else
		snprintf(err, errlen, "%s: %.*s: corrupt profile", s->spec,
			 (int)(n > 200 ? 200 : n), user);
out:
	if (r)
		freeReplyObject(r);
	rc_free(&c);
	return rc;
}

/* The users not in the table yet, duplicates once: one MGET per
 * REDIS_CHUNK of them. */
static int
redis_fetch_users(struct store *s, const struct str *users, size_t n, char *err,
		  size_t errlen)
{
	struct str *want = xreallocarray(NULL, n ? n : 1, sizeof *want);
	size_t nw = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t h = store_user_hash(users[i].p, users[i].n);
		uint32_t j = store_table_find(s, users[i].p, users[i].n, h);
		if (j != NIL) {
			store_lru_unlink(s, j);
			store_lru_append(s, j);
			continue;
		}
		int dup = 0;
		for (size_t k = nw; k-- > 0 && k + 64 > nw;)
			if (want[k].n == users[i].n &&
			    memcmp(want[k].p, users[i].p, users[i].n) == 0)
				dup = 1;
		if (dup)
			continue;
		want[nw++] = users[i];
		s->c.misses++;
		if (nw == REDIS_CHUNK) {
			/* Insert what we have, then go on: later duplicates
			 * are then found in the table. */
			if ((rc = redis_fetch(s, want, nw, err, errlen)))
				break;
			nw = 0;
		}
	}
	if (rc == 0 && nw)
		rc = redis_fetch(s, want, nw, err, errlen);
	free(want);
	return rc;
}

static int
redis_commit_due(const struct store *s, int checkpoint_now)
{
	(void)checkpoint_now;
	return s->nchanged || s->meta_dirty;
}

static int
redis_commit_batch(struct store *s, int checkpoint_now, char *err, size_t errlen)
{
	if (!redis_commit_due(s, checkpoint_now))
		return 0;
	if (redis_commit(s, err, errlen))
		return -1;
	s->c.commits++;
	return 0;
}

/* A window not written yet (not moved) stays to write; the cache shrinks
 * back to --cache-users. */
static void
redis_settle(struct store *s, uint64_t commits)
{
	if (s->c.commits != commits)
		for (size_t i = 0; i < s->L.nstreams; i++)
			if (s->L.streams[i].moved)
				s->L.streams[i].dirty = s->L.streams[i].full =
					s->L.streams[i].moved = 0;
	while (s->nusers > s->o.cache_users && s->lists[LIST_LRU].head != NIL) {
		store_table_remove(s, s->lists[LIST_LRU].head);
		s->c.evictions++;
	}
}

const struct store_backend store_redis_backend = {
	.kind = STORE_REDIS,
	.lru = 1,
	.open = redis_open,
	.close = redis_close,
	.get = redis_get,
	.fetch = redis_fetch_users,
	.each = redis_each,
	.commit_due = redis_commit_due,
	.commit = redis_commit_batch,
	.settle = redis_settle,
};
