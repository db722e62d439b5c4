/* reco-enrich: split events into sessions by inactivity and attach item and user attributes from lookup tables. */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "reco.h"
#include "lock.h"
#include "table.h"

static const char usage[] =
"usage: reco-enrich [options] [file ...]\n"
"Split events into sessions and attach item and user attributes.\n"
"\n"
"Sessions:\n"
"      --session-gap DURATION  inactivity that ends a session (default 30m)\n"
"      --keep-session       keep the session an event has; compute the rest\n"
"      --source-session-attr NAME  save the incoming session in attrs.NAME\n"
"      --seq-attr NAME      attribute of the event's number in its session\n"
"                           (default session_seq; empty: none)\n"
"      --max-users N        users whose session is kept (default 1000000)\n"
"      --no-sessions        attach attributes only\n"
"      --state FILE         load open sessions from FILE, save them at the end\n"
"\n"
"Lookups:\n"
"      --items FILE         item attributes, CSV or NDJSON, keyed by item\n"
"      --item-key COL       key column (default item, else the first)\n"
"      --item-fields A,B,...  columns to copy (default all but the key)\n"
"      --item-prefix P      prefix of the attribute names (default none)\n"
"      --users FILE         user attributes, keyed by user\n"
"      --user-key COL       key column (default user, else the first)\n"
"      --user-fields A,B,...  columns to copy (default all but the key)\n"
"      --user-prefix P      prefix of the attribute names (default none)\n"
"      --max-table-rows N   refuse a larger table (default 10000000)\n"
"      --overwrite-attrs    table values replace attributes already there\n";

enum {
	OPT_SESSION_GAP = OPT_TOOL_FIRST,
	OPT_KEEP_SESSION,
	OPT_SOURCE_SESSION_ATTR,
	OPT_SEQ_ATTR,
	OPT_MAX_USERS,
	OPT_NO_SESSIONS,
	OPT_STATE,
	OPT_ITEMS,
	OPT_ITEM_KEY,
	OPT_ITEM_FIELDS,
	OPT_ITEM_PREFIX,
	OPT_USERS,
	OPT_USER_KEY,
	OPT_USER_FIELDS,
	OPT_USER_PREFIX,
	OPT_MAX_TABLE_ROWS,
	OPT_OVERWRITE_ATTRS
};

static const struct option opts[] = {
	{ "session-gap", required_argument, NULL, OPT_SESSION_GAP },
	{ "keep-session", no_argument, NULL, OPT_KEEP_SESSION },
	{ "source-session-attr", required_argument, NULL, OPT_SOURCE_SESSION_ATTR },
	{ "seq-attr", required_argument, NULL, OPT_SEQ_ATTR },
	{ "max-users", required_argument, NULL, OPT_MAX_USERS },
	{ "no-sessions", no_argument, NULL, OPT_NO_SESSIONS },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "items", required_argument, NULL, OPT_ITEMS },
	{ "item-key", required_argument, NULL, OPT_ITEM_KEY },
	{ "item-fields", required_argument, NULL, OPT_ITEM_FIELDS },
	{ "item-prefix", required_argument, NULL, OPT_ITEM_PREFIX },
	{ "users", required_argument, NULL, OPT_USERS },
	{ "user-key", required_argument, NULL, OPT_USER_KEY },
	{ "user-fields", required_argument, NULL, OPT_USER_FIELDS },
	{ "user-prefix", required_argument, NULL, OPT_USER_PREFIX },
	{ "max-table-rows", required_argument, NULL, OPT_MAX_TABLE_ROWS },
	{ "overwrite-attrs", no_argument, NULL, OPT_OVERWRITE_ATTRS },
	{ NULL, 0, NULL, 0 }
};

#define USER_SEED 0x656e726963687573ULL    /* hash seed of user ids */
#define SESSION_SEED 0x656e726963687373ULL /* of kept session ids */
#define STATE_VERSION 1
#define NIL UINT32_MAX
#define MAX_USERS_LIMIT 1000000000ULL /* --max-users, at most */
#define TS_LAST 253402300799999LL     /* the latest valid event time */

static const char state_magic[] = "reco-enrich state\n";
#define STATE_MAGIC_LEN (sizeof state_magic - 1)

/* A lookup table and what the command line says about it. */
enum { TB_ITEMS, TB_USERS, TB_N };
static const char *const tb_names[TB_N] = { "items", "users" };

struct tspec {
	const char *path;
	const char *prefix;
	struct table_opts o;
	struct table *t;
	char **attr;       /* per column: prefix + column name */
	size_t *attrlen;
	uint64_t *missing, *hits, *rows, *bytes, *reloads, *failures;
};

/*
 * The session of one user: 48 bytes, plus 16 to 32 of index. prev and next
 * link the users from the most recently seen (lru_head) to the least
 * (lru_tail), which is the one evicted past --max-users.
 */
struct user {
	uint64_t key;   /* hash64 of the user id */
	int64_t first;  /* ts of the session's first event */
	int64_t last;   /* latest ts of the session */
	uint64_t src;   /* hash of a kept source session id, 0 if computed */
	uint64_t seq;   /* events of the session so far */
	uint32_t prev, next;
};

static struct {
	int64_t gap;
	int keep_session, no_sessions, overwrite;
	const char *seq_attr, *src_attr;
	size_t seq_attr_n, src_attr_n;
	size_t max_users;
	const char *state;
} O = { .gap = 30 * 60 * 1000, .seq_attr = "session_seq",
	.max_users = 1000000 };

static struct tool T;
static struct tspec tables[TB_N];
static struct user *users;
static size_t nusers, capusers;
static struct htab uidx;            /* hash64(user) -> index in users */
static uint32_t lru_head = NIL, lru_tail = NIL;
static struct buf sid;              /* the session id of the event at hand */
static char seqtext[24];
static uint64_t *m_sessions, *m_late, *m_evicted, *m_users;
static volatile sig_atomic_t reload_wanted;

/* ---- options ---- */

static char **
split_list(const char *opt, const char *s, size_t *n)
{
	char **v = NULL;
	const char *p = s;

	*n = 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (len == 0)
			tool_usage_error(&T, "%s: empty name in \"%s\"", opt, s);
		v = xreallocarray(v, *n + 1, sizeof *v);
		v[(*n)++] = xstrndup(p, len);
		if (!e)
			break;
		p = e + 1;
	}
	return v;
}

static size_t
count_arg(const char *opt, const char *arg, unsigned long long max)
{
	char *end;
	unsigned long long v;

	if (*arg < '0' || *arg > '9')
		tool_usage_error(&T, "%s: bad number \"%s\"", opt, arg);
	v = strtoull(arg, &end, 10);
	if (*end || v < 1 || v > max)
		tool_usage_error(&T, "%s: expected 1 to %llu, not \"%s\"", opt,
				 max, arg);
	return (size_t)v;
}

static void
set_fields(struct tspec *ts, const char *opt, const char *arg)
{
	for (size_t i = 0; i < ts->o.nfields; i++)
		free(ts->o.fields[i]);
	free(ts->o.fields);
	ts->o.fields = split_list(opt, arg, &ts->o.nfields);
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	(void)t;
	switch (c) {
	case OPT_SESSION_GAP:
		if (duration_parse(arg, &O.gap) || O.gap <= 0)
			tool_usage_error(&T, "--session-gap: expected a duration such as 30m, not \"%s\"", arg);
		return 0;
	case OPT_KEEP_SESSION:
		O.keep_session = 1;
		return 0;
	case OPT_SOURCE_SESSION_ATTR:
		if (!*arg)
			tool_usage_error(&T, "--source-session-attr: empty name");
		O.src_attr = arg;
		return 0;
	case OPT_SEQ_ATTR:
		O.seq_attr = arg;
		return 0;
	case OPT_MAX_USERS:
		O.max_users = count_arg("--max-users", arg, MAX_USERS_LIMIT);
		return 0;
	case OPT_NO_SESSIONS:
		O.no_sessions = 1;
		return 0;
	case OPT_STATE:
		O.state = arg;
		return 0;
	case OPT_ITEMS:
		tables[TB_ITEMS].path = arg;
		return 0;
	case OPT_ITEM_KEY:
		tables[TB_ITEMS].o.key = arg;
		return 0;
	case OPT_ITEM_FIELDS:
		set_fields(&tables[TB_ITEMS], "--item-fields", arg);
		return 0;
	case OPT_ITEM_PREFIX:
		tables[TB_ITEMS].prefix = arg;
		return 0;
	case OPT_USERS:
		tables[TB_USERS].path = arg;
		return 0;
	case OPT_USER_KEY:
		tables[TB_USERS].o.key = arg;
		return 0;
	case OPT_USER_FIELDS:
		set_fields(&tables[TB_USERS], "--user-fields", arg);
		return 0;
	case OPT_USER_PREFIX:
		tables[TB_USERS].prefix = arg;
		return 0;
	case OPT_MAX_TABLE_ROWS:
		for (int i = 0; i < TB_N; i++)
			tables[i].o.max_rows = count_arg("--max-table-rows", arg,
							 UINT32_MAX - 1ULL);
		return 0;
	case OPT_OVERWRITE_ATTRS:
		O.overwrite = 1;
		return 0;
	}
	return 1;
}

/* A message unless -q. */
static void
note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
note(const char *fmt, ...)
{
	va_list ap;

	if (verbosity < 0)
		return;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

/* ---- tables ---- */

static void
free_attr_names(struct tspec *ts)
{
	if (ts->t)
		for (size_t i = 0; i < ts->t->ncols; i++)
			free(ts->attr[i]);
	free(ts->attr);
	free(ts->attrlen);
	ts->attr = NULL;
	ts->attrlen = NULL;
}

/*
 * Load (or reload) a table. At start-up a table that cannot be loaded is
 * fatal (status 3 if unreadable, 1 if malformed or too large); on a reload
 * the table loaded before stays and the failure is counted.
 */
static void
load_table(struct tspec *ts, int startup)
{
	char err[512];
	int kind = 0;
	struct table *t = table_load(ts->path, &ts->o, &kind, err, sizeof err);
	const char *pre = ts->prefix ? ts->prefix : "";
	size_t pn = strlen(pre);

	if (!t) {
		if (startup)
			die(kind == TABLE_ERR_IO ? EXIT_IO : EXIT_DATA, "%s", err);
		(*ts->failures)++;
		note("%s; the table loaded before stays", err);
		return;
	}
	free_attr_names(ts);
	table_free(ts->t);
	ts->t = t;
	ts->attr = xcalloc(t->ncols ? t->ncols : 1, sizeof *ts->attr);
	ts->attrlen = xcalloc(t->ncols ? t->ncols : 1, sizeof *ts->attrlen);
	for (size_t i = 0; i < t->ncols; i++) {
		size_t n = strlen(t->cols[i]);
		ts->attr[i] = xmalloc(pn + n + 1);
		memcpy(ts->attr[i], pre, pn);
		memcpy(ts->attr[i] + pn, t->cols[i], n + 1);
		ts->attrlen[i] = pn + n;
	}
	*ts->rows = t->nrows;
	*ts->bytes = table_bytes(t);
	if (t->dups)
		note("%s: %llu rows repeat the key of an earlier row; the last one wins",
		     t->path, (unsigned long long)t->dups);
	if (!startup) {
		(*ts->reloads)++;
		note("%s: reloaded: %zu rows, key %s", t->path, t->nrows, t->key);
	} else
		info("%s: %zu rows, key %s, %zu bytes", t->path, t->nrows,
		     t->key, table_bytes(t));
}

static void
on_hup(int sig)
{
	(void)sig;
	reload_wanted = 1;
}

static void
reload_tables(void)
{
	reload_wanted = 0;
	for (int i = 0; i < TB_N; i++)
		if (tables[i].path)
			load_table(&tables[i], 0);
}

static void
init_tables(void)
{
	char labels[64];

	tables[TB_ITEMS].o.key_default = "item";
	tables[TB_USERS].o.key_default = "user";
	for (int i = 0; i < TB_N; i++) {
		struct tspec *ts = &tables[i];
		if (!ts->path)
			continue;
		snprintf(labels, sizeof labels, "table=\"%s\"", tb_names[i]);
		ts->o.max_line = T.max_line;
		if (!ts->o.max_rows)
			ts->o.max_rows = 10000000;
		ts->missing = metric(&T.m, "reco_enrich_lookup_missing_total", labels,
				     "Events whose key the table does not have.");
		ts->hits = metric(&T.m, "reco_enrich_lookup_hits_total", labels,
				  "Events whose key the table has.");
		ts->rows = metric_gauge(&T.m, "reco_enrich_table_rows", labels,
					"Rows of the loaded table.");
		ts->bytes = metric_gauge(&T.m, "reco_enrich_table_bytes", labels,
					 "Memory of the loaded table in bytes.");
		ts->reloads = metric(&T.m, "reco_enrich_table_reloads_total", labels,
				     "Tables reloaded on SIGHUP.");
		ts->failures = metric(&T.m, "reco_enrich_table_reload_failures_total",
				      labels, "Reloads that failed (the old table stays).");
		load_table(ts, 1);
	}
}

/* Add an attribute from a table: an attribute already there stays unless
 * --overwrite-attrs. */
static void
table_attr(struct event *ev, const char *k, size_t kn, const char *v,
	   size_t vn)
{
	if (!O.overwrite && ev->nattrs && event_get_attr_n(ev, k, kn))
		return;
	event_add_attr(ev, k, kn, v, vn);
}

static void
lookup(struct event *ev, struct tspec *ts, const struct str *key)
{
	struct table_cur c;
	struct str v;
	size_t col;

	if (!table_find(ts->t, key->p, key->n, &c)) {
		(*ts->missing)++;
		return;
	}
	(*ts->hits)++;
	while (table_next(&c, &col, &v))
		table_attr(ev, ts->attr[col], ts->attrlen[col], v.p, v.n);
}

/* ---- sessions ---- */

static void
lru_unlink(uint32_t i)
{
	struct user *u = &users[i];

	if (u->prev != NIL)
		users[u->prev].next = u->next;
	else
		lru_head = u->next;
	if (u->next != NIL)
		users[u->next].prev = u->prev;
	else
		lru_tail = u->prev;
}

static void
lru_push(uint32_t i)
{
	users[i].prev = NIL;
	users[i].next = lru_head;
	if (lru_head != NIL)
		users[lru_head].prev = i;
	lru_head = i;
	if (lru_tail == NIL)
		lru_tail = i;
}

/* A slot for a new user with key: a free one, or the least recently seen
 * user's past --max-users. */
static struct user *
user_new(uint64_t key)
{
	uint32_t i;
	int isnew;

	if (nusers < O.max_users) {
		if (nusers == capusers) {
			capusers = capusers ? capusers * 2 : 1024;
			if (capusers > O.max_users)
				capusers = O.max_users;
			users = xreallocarray(users, capusers, sizeof *users);
		}
		i = (uint32_t)nusers++;
		*m_users = nusers;
	} else {
		i = lru_tail;
		lru_unlink(i);
		htab_del(&uidx, users[i].key);
		(*m_evicted)++;
	}
	memset(&users[i], 0, sizeof users[i]);
	users[i].key = key;
	*htab_put(&uidx, key, &isnew) = i;
	lru_push(i);
	return &users[i];
}

static void
start_session(struct user *u, int64_t ts, uint64_t src)
{
	u->first = u->last = ts;
	u->src = src;
	u->seq = 1;
	(*m_sessions)++;
}

static void
put_seq(struct event *ev, uint64_t seq)
{
	char *p = seqtext + sizeof seqtext;

	do {
		*--p = (char)('0' + seq % 10);
		seq /= 10;
	} while (seq);
	event_add_attr(ev, O.seq_attr, O.seq_attr_n, p,
		       (size_t)(seqtext + sizeof seqtext - p));
}

/*
 * Give ev its session and its number in the session. A session is the
 * user's events with less than --session-gap between one and the next;
 * its id is "USER:TS" with TS the ts of its first event. An event older
 * than the user's latest one (late) joins the current session if it is
 * less than the gap before the session's first event; else it gets a
 * session of its own, numbered 1, and leaves the user's state alone. With
 * --keep-session an event's own session is kept, and numbered within the
 * run of the user's events that have it.
 */
static void
sessionize(struct event *ev)
{
	uint64_t key = hash64(ev->user.p, ev->user.n, USER_SEED);
	uint32_t *slot = htab_get(&uidx, key);
	int own = O.keep_session && (ev->has & EV_SESSION) && ev->session.n;
	uint64_t src = own ? hash64(ev->session.p, ev->session.n, SESSION_SEED) | 1
			   : 0;
	int64_t ts = ev->ts, first;
	uint64_t seq;
	struct user *u;

	if (!slot) {
		u = user_new(key);
		start_session(u, ts, src);
		goto known;
	}
	u = &users[*slot];
	if (lru_head != *slot) {
		lru_unlink(*slot);
		lru_push(*slot);
	}
	int late = ts < u->last;
	if (late)
		(*m_late)++;
	if (own && u->src == src) {
		u->seq++;
		if (!late)
			u->last = ts;
	} else if (own && !late)
		start_session(u, ts, src);
	else if (own) {
		first = ts; /* not used: the event keeps its session */
		seq = 1;
		goto out;
	} else if (!late) {
		if (u->src != 0 || ts - u->last >= O.gap)
			start_session(u, ts, 0);
		else {
			u->last = ts;
			u->seq++;
		}
	} else if (u->src == 0 && u->first - ts < O.gap)
		u->seq++;
	else {
		/* Too old for the session we know: one of its own. */
		(*m_sessions)++;
		first = ts;
		seq = 1;
		goto out;
	}
known:
	first = u->first;
	seq = u->seq;
out:
	if (O.src_attr && (ev->has & EV_SESSION))
		event_add_attr(ev, O.src_attr, O.src_attr_n, ev->session.p,
			       ev->session.n);
	if (!own) {
		sid.n = 0;
		buf_put(&sid, ev->user.p, ev->user.n);
		buf_putc(&sid, ':');
		buf_put_i64(&sid, first);
		event_changed(ev);
		ev->session.p = sid.p;
		ev->session.n = sid.n;
		ev->has |= EV_SESSION;
	}
	if (O.seq_attr_n)
		put_seq(ev, seq);
}

/* ---- state ---- */

/*
 * Save the sessions to --state atomically: the magic line, the version,
 * the session gap and --keep-session it was made with, the number of
 * users, then each user from the least recently seen to the most (key,
 * first ts, last - first, seq, kept session hash), and a CRC-32 of all
 * before it. Dies (status 3) if it cannot.
 */
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
	buf_put_varint(&b, O.gap);
	buf_put_varint(&b, O.keep_session);
	buf_put_varint(&b, (int64_t)nusers);
	for (uint32_t i = lru_tail; i != NIL; i = users[i].prev) {
		const struct user *u = &users[i];
		buf_put_u64le(&b, u->key);
		buf_put_varint(&b, u->first);
		buf_put_varint(&b, u->last - u->first);
		buf_put_varint(&b, (int64_t)u->seq);
		buf_put_u64le(&b, u->src);
		state_put(w, &b);
	}
	state_put(w, &b);
	state_put_crc(w);
	buf_free(&b);
	if (state_commit(w, err, sizeof err))
		die(EXIT_IO, "%s", err);
}

static void corrupt(const char *what) __attribute__((noreturn));

static void
corrupt(const char *what)
{
	die(EXIT_DATA, "%s: corrupt state file (%s); remove it to start afresh",
	    O.state, what);
}

/*
 * Load --state if the file exists. A file that is not a reco-enrich state
 * of this version, or is damaged, stops the tool with status 1 before
 * anything is read or written.
 */
static void
load_state(void)
{
	struct buf b = { 0 };
	char err[512];
	const char *p, *e;
	int64_t version, gap, keep, n, first, span, seq;
	int r = state_load(O.state, &b, err, sizeof err);

	if (r < 0)
		die(EXIT_IO, "%s", err);
	if (r == 0) {
		buf_free(&b);
		return;
	}
	switch (state_body(&b, state_magic, STATE_MAGIC_LEN, STATE_VERSION, &version, &p, &e)) {
	case STATE_FOREIGN:
		die(EXIT_DATA, "%s: not a reco-enrich state file", O.state);
	case STATE_BAD_VERSION:
		die(EXIT_DATA, "%s: state file version %lld; this reco-enrich reads version %d",
		    O.state, (long long)version, STATE_VERSION);
	case STATE_CORRUPT:
		corrupt("bad checksum");
	}
	if (get_varint(&p, e, &gap) || get_varint(&p, e, &keep) ||
	    get_varint(&p, e, &n) || n < 0 || n > (e - p) / 19)
		corrupt("header");
	if (gap != O.gap)
		note("%s: saved with a session gap of %lld ms, now %lld ms",
		     O.state, (long long)gap, (long long)O.gap);
	if (keep != O.keep_session)
		note("%s: saved %s --keep-session", O.state,
		     keep ? "with" : "without");
	for (int64_t i = 0; i < n; i++) {
		uint64_t key, src;
		if (get_u64le(&p, e, &key) || get_varint(&p, e, &first) ||
		    get_varint(&p, e, &span) || get_varint(&p, e, &seq) ||
		    get_u64le(&p, e, &src) || first < 0 || first > TS_LAST ||
		    span < 0 || span > TS_LAST - first || seq < 1)
			corrupt("user record");
		if (htab_get(&uidx, key))
			corrupt("a user twice");
		/* Oldest first: past --max-users the oldest go. */
		struct user *u = user_new(key);
		u->first = first;
		u->last = first + span;
		u->seq = (uint64_t)seq;
		u->src = src;
	}
	if (p != e)
		corrupt("trailing bytes");
	info("%s: %zu users' sessions", O.state, nusers);
	buf_free(&b);
}

/* ---- main ---- */

static void
enrich(struct event *ev)
{
	if (tables[TB_ITEMS].t && (ev->has & EV_ITEM) && ev->item.n)
		lookup(ev, &tables[TB_ITEMS], &ev->item);
	if (tables[TB_USERS].t)
		lookup(ev, &tables[TB_USERS], &ev->user);
	if (!O.no_sessions)
		sessionize(ev);
}

/* The lock of --state, held while the tool runs. */
static struct lock *state_lock;

int
main(int argc, char **argv)
{
	struct event ev;
	struct evin *in;
	struct sigaction sa;

	tool_init(&T, "reco-enrich", usage);
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	O.seq_attr_n = strlen(O.seq_attr);
	O.src_attr_n = O.src_attr ? strlen(O.src_attr) : 0;
	if (O.no_sessions && O.state)
		tool_usage_error(&T, "--state holds sessions; it cannot go with --no-sessions");
	if (O.no_sessions && (O.keep_session || O.src_attr))
		tool_usage_error(&T, "--no-sessions cannot go with --keep-session or --source-session-attr");
	for (int i = 0; i < TB_N; i++) {
		if (tables[i].path && strcmp(tables[i].path, "-") == 0)
			tool_usage_error(&T, "--%s: a table cannot be the standard input",
					 tb_names[i]);
		if (!tables[i].path && (tables[i].o.key || tables[i].o.fields ||
					tables[i].prefix))
			tool_usage_error(&T, "--%s-key, --%s-fields and --%s-prefix need --%s",
					 i ? "user" : "item", i ? "user" : "item",
					 i ? "user" : "item", tb_names[i]);
	}

	/* SIGHUP only asks; the main loop reloads between two events. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);

	if (!O.no_sessions) {
		m_sessions = metric(&T.m, "reco_enrich_sessions_total", NULL,
				    "Sessions started.");
		m_late = metric(&T.m, "reco_enrich_late_events_total", NULL,
				"Events older than their user's latest event.");
		m_evicted = metric(&T.m, "reco_enrich_users_evicted_total", NULL,
				   "Users forgotten to stay within --max-users.");
		m_users = metric_gauge(&T.m, "reco_enrich_users", NULL,
				       "Users whose session is held.");
	}
	htab_init(&uidx, 1024);
	if (O.state) {
		char err[512];
		/* One writer per state file. */
		if (!(state_lock = lock_take(O.state, err, sizeof err)))
			die(EXIT_IO, "%s", err);
		load_state();
	}
	init_tables();

	tool_open(&T);
	event_init(&ev);
	in = evin_new(&T);
	while (evin_next(in, &ev)) {
		if (reload_wanted)
			reload_tables();
		enrich(&ev);
		tool_emit(&T, &ev);
	}
	evin_free(in);
	event_free(&ev);
	if (O.state) {
		/* The state claims what the output has: write it out first,
		 * and save no state that an output failure left uncovered. */
		if (tool_flush(&T) || (T.halt && T.status != EXIT_DATA)) {
			if (T.status != EXIT_PIPE) /* quiet, see reco(7) */
				warn("%s: not saved: the output failed", O.state);
		} else
			save_state();
	}
	for (int i = 0; i < TB_N; i++) {
		free_attr_names(&tables[i]);
		table_free(tables[i].t);
		for (size_t j = 0; j < tables[i].o.nfields; j++)
			free(tables[i].o.fields[j]);
		free(tables[i].o.fields);
	}
	free(users);
	htab_free(&uidx);
	buf_free(&sid);
	lock_free(state_lock);
	return tool_finish(&T);
}
