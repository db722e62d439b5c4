/* reco-ingest: turn raw sources (CSV, JSON, access logs, kcat envelopes, events) into canonical events. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reco.h"

static const char usage[] =
"usage: reco-ingest [options] [file ...]\n"
"Turn raw interaction records into canonical reco.Event records.\n"
"\n"
"Source:\n"
"      --from KIND          event (default), csv, json, access-log, kcat-json\n"
"      --payload KIND       kcat-json payloads: event (default), csv, json, access-log\n"
"      --map FIELD=SRC,...  map source fields onto event fields\n"
"      --type-map V=TYPE,...  map source type values onto event types\n"
"      --default-type TYPE  type of records whose source has no type field\n"
"      --keep COL,...       keep these source fields in attrs (\"*\" keeps all)\n"
"      --ts-format FMT      auto, s, ms, us, iso8601 or a strptime format\n"
"      --delimiter C        CSV field delimiter (default ',')\n"
"      --quote C            CSV quote character (default '\"')\n"
"      --columns A,B,...    CSV column names; the input has no header row\n"
"      --route 'METHOD PATTERN=TYPE'  access-log route (repeatable)\n"
"      --query-param NAME   access-log search query parameter (default q)\n"
"      --user-from SPEC     access-log user: param:NAME, cookie:NAME,\n"
"                           remote-user or hash (default)\n"
"      --no-source          do not record the input position in source\n"
"      --strict             reject records with unexpected fields\n";

enum { FROM_EVENT, FROM_CSV, FROM_JSON, FROM_ACCESS, FROM_KCAT };
static const char *const from_names[] = { "event", "csv", "json", "access-log",
					  "kcat-json" };

/* The event fields a mapping can fill. */
enum { M_EVENT_ID, M_TS, M_USER, M_TYPE, M_ITEM, M_SESSION, M_QTY, M_PRICE,
       M_QUERY, M_N };
static const char *const mnames[M_N] = { "event_id", "ts", "user", "type",
					 "item", "session", "qty", "price",
					 "query" };

enum {
	OPT_FROM = OPT_TOOL_FIRST,
	OPT_PAYLOAD,
	OPT_MAP,
	OPT_TYPE_MAP,
	OPT_DEFAULT_TYPE,
	OPT_KEEP,
	OPT_TS_FORMAT,
	OPT_DELIMITER,
	OPT_QUOTE,
	OPT_COLUMNS,
	OPT_ROUTE,
	OPT_QUERY_PARAM,
	OPT_USER_FROM,
	OPT_NO_SOURCE,
	OPT_STRICT
};

static const struct option opts[] = {
	{ "from", required_argument, NULL, OPT_FROM },
	{ "payload", required_argument, NULL, OPT_PAYLOAD },
	{ "map", required_argument, NULL, OPT_MAP },
	{ "type-map", required_argument, NULL, OPT_TYPE_MAP },
	{ "default-type", required_argument, NULL, OPT_DEFAULT_TYPE },
	{ "keep", required_argument, NULL, OPT_KEEP },
	{ "ts-format", required_argument, NULL, OPT_TS_FORMAT },
	{ "delimiter", required_argument, NULL, OPT_DELIMITER },
	{ "quote", required_argument, NULL, OPT_QUOTE },
	{ "columns", required_argument, NULL, OPT_COLUMNS },
	{ "route", required_argument, NULL, OPT_ROUTE },
	{ "query-param", required_argument, NULL, OPT_QUERY_PARAM },
	{ "user-from", required_argument, NULL, OPT_USER_FROM },
	{ "no-source", no_argument, NULL, OPT_NO_SOURCE },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ NULL, 0, NULL, 0 }
};

struct typemap {
	char *from;
	int type;
};

enum { UF_HASH, UF_PARAM, UF_COOKIE, UF_REMOTE_USER };

static const char *const default_routes[] = {
	"GET /product/{item}=view",
	"POST /cart/{item}=add_to_cart",
	"POST /cart/{item}/remove=remove_from_cart",
	"POST /checkout/{item}=purchase",
	"GET /search=search",
};

#define MAX_DRIFT 64 /* distinct drifting field names tracked by name */

/* Options and state: one process, one configuration. */
static struct {
	int from, payload;
	char *map[M_N];           /* source column or JSON path per field */
	char **mpath[M_N];        /* map[] split at dots */
	size_t mpathn[M_N];
	struct typemap *tm;
	size_t ntm;
	int default_type;
	char **keep;
	size_t nkeep;
	int keep_all;
	struct ts_format tsf;
	int delim, quote;
	char **columns;
	size_t ncolumns;
	struct route **routes;
	size_t nroutes;
	const char *query_param;
	int user_from;
	const char *user_name;
	int no_source, strict;
} O = { .default_type = -1, .delim = ',', .quote = '"', .query_param = "q" };

/* Per-run state. */
static struct tool T;
static struct event ev;
static struct buf srcbuf, tmp, idbuf;
static struct csv_in *csv;
static struct str *header;    /* current CSV file's column names */
static size_t nheader;
static struct buf header_buf;
static int mcol[M_N];         /* CSV column per mapped field, or -1 */
static int *keepcol;          /* per CSV column: keep it in attrs */
static uint64_t **drift_col;  /* per CSV column: its "appeared" counter */
static uint64_t *drift_missing[M_N];
static char *drift_names[MAX_DRIFT];
static size_t ndrift;
static char **jstrs;          /* per-record strings to free (JSON) */
static size_t njstrs, capjstrs;

/* ---- options ---- */

static char **
split_list(const char *s, size_t *n)
{
	char **v = NULL;
	size_t cap = 0;
	const char *p = s;

	*n = 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[(*n)++] = xstrndup(p, len);
		if (!e)
			break;
		p = e + 1;
	}
	return v;
}

static int
field_of(const char *name)
{
	for (int i = 0; i < M_N; i++)
		if (strcmp(mnames[i], name) == 0)
			return i;
	return -1;
}

static int
parse_char(const char *opt, const char *arg)
{
	if (strcmp(arg, "tab") == 0 || strcmp(arg, "\\t") == 0)
		return '\t';
	if (strlen(arg) != 1)
		tool_usage_error(&T, "%s: expected one character, not \"%s\"",
				 opt, arg);
	return (unsigned char)arg[0];
}

static int
kind_of(const char *opt, const char *arg, int allow_kcat)
{
	for (int i = 0; i < (int)(sizeof from_names / sizeof from_names[0]); i++)
		if (strcmp(arg, from_names[i]) == 0 && (allow_kcat || i != FROM_KCAT))
			return i;
	tool_usage_error(&T, "%s: unknown source kind \"%s\"", opt, arg);
}

static int
on_opt(struct tool *t, int c, const char *arg)
{
	size_t n;
	char **v;
	char err[256];

	(void)t;
	switch (c) {
	case OPT_FROM:
		O.from = kind_of("--from", arg, 1);
		return 0;
	case OPT_PAYLOAD:
		O.payload = kind_of("--payload", arg, 0);
		return 0;
	case OPT_MAP:
		v = split_list(arg, &n);
		for (size_t i = 0; i < n; i++) {
			char *eq = strchr(v[i], '=');
			int f;
			if (!eq || eq == v[i] || !eq[1])
				tool_usage_error(&T, "--map: expected FIELD=SOURCE, not \"%s\"", v[i]);
			*eq = '\0';
			if ((f = field_of(v[i])) < 0)
				tool_usage_error(&T, "--map: unknown event field \"%s\" "
					"(event_id, ts, user, type, item, session, qty, price, query)", v[i]);
			free(O.map[f]);
			O.map[f] = xstrdup(eq + 1);
			free(v[i]);
		}
		free(v);
		return 0;
	case OPT_TYPE_MAP:
		v = split_list(arg, &n);
		for (size_t i = 0; i < n; i++) {
			char *eq = strchr(v[i], '=');
			int ty;
			if (!eq || eq == v[i])
				tool_usage_error(&T, "--type-map: expected VALUE=TYPE, not \"%s\"", v[i]);
			*eq = '\0';
			if ((ty = event_type_parse(eq + 1, strlen(eq + 1))) < 0)
				tool_usage_error(&T, "--type-map: unknown event type \"%s\"", eq + 1);
			O.tm = xreallocarray(O.tm, O.ntm + 1, sizeof *O.tm);
			O.tm[O.ntm].from = v[i];
			O.tm[O.ntm].type = ty;
			O.ntm++;
		}
		free(v);
		return 0;
	case OPT_DEFAULT_TYPE:
		if ((O.default_type = event_type_parse(arg, strlen(arg))) < 0)
			tool_usage_error(&T, "--default-type: unknown event type \"%s\"", arg);
		return 0;
	case OPT_KEEP:
		v = split_list(arg, &n);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i], "*") == 0) {
				O.keep_all = 1;
				free(v[i]);
				continue;
			}
			O.keep = xreallocarray(O.keep, O.nkeep + 1, sizeof *O.keep);
			O.keep[O.nkeep++] = v[i];
		}
		free(v);
		return 0;
	case OPT_TS_FORMAT:
		if (ts_format_parse(&O.tsf, arg))
			tool_usage_error(&T, "--ts-format: expected auto, s, ms, us, iso8601 or a format with %%, not \"%s\"", arg);
		return 0;
	case OPT_DELIMITER:
		O.delim = parse_char("--delimiter", arg);
		return 0;
	case OPT_QUOTE:
		O.quote = parse_char("--quote", arg);
		return 0;
	case OPT_COLUMNS:
		O.columns = split_list(arg, &O.ncolumns);
		return 0;
	case OPT_ROUTE: {
		struct route *r = route_parse(arg, err, sizeof err);
		if (!r)
			tool_usage_error(&T, "--route: %s", err);
		O.routes = xreallocarray(O.routes, O.nroutes + 1, sizeof *O.routes);
		O.routes[O.nroutes++] = r;
		return 0;
	}
	case OPT_QUERY_PARAM:
		O.query_param = arg;
		return 0;
	case OPT_USER_FROM:
		if (strncmp(arg, "param:", 6) == 0 && arg[6]) {
			O.user_from = UF_PARAM;
			O.user_name = arg + 6;
		} else if (strncmp(arg, "cookie:", 7) == 0 && arg[7]) {
			O.user_from = UF_COOKIE;
			O.user_name = arg + 7;
		} else if (strcmp(arg, "remote-user") == 0)
			O.user_from = UF_REMOTE_USER;
		else if (strcmp(arg, "hash") == 0)
			O.user_from = UF_HASH;
		else
			tool_usage_error(&T, "--user-from: expected param:NAME, cookie:NAME, remote-user or hash, not \"%s\"", arg);
		return 0;
	case OPT_NO_SOURCE:
		O.no_source = 1;
		return 0;
	case OPT_STRICT:
		O.strict = 1;
		return 0;
	}
	return 1;
}

/* ---- schema drift ---- */

static void
label_escape(struct buf *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\' || p[i] == '"')
			buf_putc(b, '\\');
		if (p[i] == '\n') {
			buf_puts(b, "\\n");
			continue;
		}
		buf_putc(b, p[i]);
	}
}

/* The counter of records where field appeared or disappeared against the
 * mapping; past MAX_DRIFT names, they share the name "(other)". */
static uint64_t *
drift(const char *p, size_t n, const char *change)
{
	int known = 0;

	for (size_t i = 0; i < ndrift; i++)
		if (strlen(drift_names[i]) == n && memcmp(drift_names[i], p, n) == 0)
			known = 1;
	if (!known) {
		if (ndrift < MAX_DRIFT)
			drift_names[ndrift++] = xstrndup(p, n);
		else {
			p = "(other)";
			n = 7;
		}
	}
	tmp.n = 0;
	buf_puts(&tmp, "field=\"");
	label_escape(&tmp, p, n);
	buf_puts(&tmp, "\",change=\"");
	buf_puts(&tmp, change);
	buf_putc(&tmp, '"');
	buf_putc(&tmp, '\0');
	return metric(&T.m, "reco_ingest_schema_drift_total", tmp.p,
		      "Records whose source fields differ from the mapping, by field.");
}

/* ---- building events ---- */

/* What a source found for the mapped fields of one record. */
struct vals {
	struct str v[M_N];
	unsigned present;
	int have_ts_ms;     /* ts already in milliseconds (access logs) */
	int64_t ts_ms;
	int have_fallback;  /* the Kafka timestamp, used when ts is absent */
	int64_t fallback_ts;
};

static void
set_val(struct vals *v, int f, const char *p, size_t n)
{
	v->v[f].p = p;
	v->v[f].n = n;
	v->present |= 1u << f;
}

static void
reject(int reason, const char *raw, size_t rawn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
reject(int reason, const char *raw, size_t rawn, const char *fmt, ...)
{
	char msg[512];
	struct pos at;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	tool_pos(&T, &at);
	tool_reject(&T, &at, reason, msg, raw, rawn);
}

/* Quote a value for a message, cut to a readable length. */
static const char *
q(struct str s)
{
	static char out[96];
	size_t n = s.n < 60 ? s.n : 60;
	size_t j = 0;

	out[j++] = '"';
	for (size_t i = 0; i < n; i++)
		out[j++] = (s.p[i] >= 0x20 && s.p[i] != 0x7f) ? s.p[i] : '?';
	if (n < s.n) {
		memcpy(out + j, "...", 3);
		j += 3;
	}
	out[j++] = '"';
	out[j] = '\0';
	return out;
}

static const char *
src_name(int f)
{
	return O.map[f] ? O.map[f] : mnames[f];
}

/* Set the source field to file:NAME:LINE (or keep what the caller set). */
static void
set_source(const char *kafka, size_t kn)
{
	if (O.no_source)
		return;
	srcbuf.n = 0;
	if (kafka)
		buf_put(&srcbuf, kafka, kn);
	else {
		const char *name = T.src->name;
		if (strcmp(name, "-") == 0)
			buf_puts(&srcbuf, "stdin:");
		else {
			buf_puts(&srcbuf, "file:");
			buf_puts(&srcbuf, name);
			buf_putc(&srcbuf, ':');
		}
		buf_put_u64(&srcbuf, T.src->line);
	}
	if (!utf8_valid(srcbuf.p, srcbuf.n))
		return;
	ev.source.p = event_arena_copy(&ev, srcbuf.p, srcbuf.n);
	ev.source.n = srcbuf.n;
	ev.has |= EV_SOURCE;
}

/* A decimal number as people write them: -12, 3.50, 1e3 (with frac):
 * no blanks, no plus sign, no hex, no inf or nan. */
static int
plain_number(const char *s, int frac)
{
	if (*s == '-')
		s++;
	if (!isdigit((unsigned char)*s))
		return 0;
	while (isdigit((unsigned char)*s))
		s++;
	if (!frac)
		return *s == '\0';
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return 0;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

static int
str_ok(int f, struct str s, const char *raw, size_t rawn)
{
	if (utf8_valid(s.p, s.n))
		return 1;
	reject(RJ_INVALID_UTF8, raw, rawn, "invalid UTF-8 in %s", src_name(f));
	return 0;
}

/*
 * Turn the values of one source record into ev and emit it, or reject the
 * record with the reason. raw is the record's bytes (for the derived
 * event_id and for the rejects file).
 */
static void
build(struct vals *v, const char *raw, size_t rawn, const char *kafka,
      size_t kn, uint64_t idhash)
{
	static const unsigned strfields = 1u << M_EVENT_ID | 1u << M_USER |
					  1u << M_ITEM | 1u << M_SESSION |
					  1u << M_QUERY;

	for (int f = 0; f < M_N; f++)
		if ((strfields >> f & 1) && (v->present >> f & 1) &&
		    !str_ok(f, v->v[f], raw, rawn))
			return;
	if (!(v->present >> M_USER & 1) || v->v[M_USER].n == 0) {
		reject(RJ_MISSING_FIELD, raw, rawn, "missing user (%s)", src_name(M_USER));
		return;
	}
	ev.user = v->v[M_USER];
	if (v->have_ts_ms)
		ev.ts = v->ts_ms;
	else if ((v->present >> M_TS & 1) && v->v[M_TS].n > 0) {
		if (ts_parse(&O.tsf, v->v[M_TS].p, v->v[M_TS].n, &ev.ts)) {
			reject(RJ_BAD_TIMESTAMP, raw, rawn, "bad timestamp %s", q(v->v[M_TS]));
			return;
		}
	} else if (v->have_fallback)
		ev.ts = v->fallback_ts;
	else {
		reject(RJ_MISSING_FIELD, raw, rawn, "missing timestamp (%s)", src_name(M_TS));
		return;
	}
	if ((v->present >> M_TYPE & 1) && v->v[M_TYPE].n > 0) {
		struct str s = v->v[M_TYPE];
		ev.type = -1;
		for (size_t i = 0; i < O.ntm; i++)
			if (strlen(O.tm[i].from) == s.n &&
			    memcmp(O.tm[i].from, s.p, s.n) == 0) {
				ev.type = O.tm[i].type;
				break;
			}
		if (ev.type < 0)
			ev.type = event_type_parse(s.p, s.n);
		if (ev.type < 0) {
			reject(RJ_UNKNOWN_TYPE, raw, rawn, "unknown event type %s", q(s));
			return;
		}
	} else if (O.default_type >= 0)
		ev.type = O.default_type;
	else {
		reject(RJ_MISSING_FIELD, raw, rawn, "missing event type (%s)", src_name(M_TYPE));
		return;
	}
	if ((v->present >> M_ITEM & 1) && v->v[M_ITEM].n > 0) {
		ev.item = v->v[M_ITEM];
		ev.has |= EV_ITEM;
	}
	if ((v->present >> M_SESSION & 1) && v->v[M_SESSION].n > 0) {
		ev.session = v->v[M_SESSION];
		ev.has |= EV_SESSION;
	}
	if ((v->present >> M_QUERY & 1) && v->v[M_QUERY].n > 0) {
		ev.query = v->v[M_QUERY];
		ev.has |= EV_QUERY;
	}
	if ((v->present >> M_QTY & 1) && v->v[M_QTY].n > 0) {
		char nb[32], *end;
		struct str s = v->v[M_QTY];
		if (s.n >= sizeof nb)
			goto badqty;
		memcpy(nb, s.p, s.n);
		nb[s.n] = '\0';
		errno = 0;
		ev.qty = strtoll(nb, &end, 10);
		if (*end || errno || !plain_number(nb, 0)) {
badqty:
			reject(RJ_BAD_NUMBER, raw, rawn, "bad quantity %s", q(s));
			return;
		}
		ev.has |= EV_QTY;
	}
	if ((v->present >> M_PRICE & 1) && v->v[M_PRICE].n > 0) {
		char nb[64], *end;
		struct str s = v->v[M_PRICE];
		if (s.n >= sizeof nb)
			goto badprice;
		memcpy(nb, s.p, s.n);
		nb[s.n] = '\0';
		ev.price = strtod(nb, &end);
		if (*end || !isfinite(ev.price) || !plain_number(nb, 1)) {
badprice:
			reject(RJ_BAD_NUMBER, raw, rawn, "bad price %s", q(s));
			return;
		}
		ev.has |= EV_PRICE;
	}
	if ((v->present >> M_EVENT_ID & 1) && v->v[M_EVENT_ID].n > 0)
		ev.event_id = v->v[M_EVENT_ID];
	else {
		/* Derived from the content, never the position: a record
		 * delivered twice gets the same id. */
		char hex[17];
		hash_hex16(idhash ? idhash : hash64(raw, rawn, 0), hex);
		ev.event_id.p = event_arena_copy(&ev, hex, 16);
		ev.event_id.n = 16;
	}
	set_source(kafka, kn);
	char err[256];
	int why = -event_validate(&ev, err, sizeof err);
	if (why) {
		/* A mapped record breaks a rule of the event: invalid_event
		 * (a missing item too), but for a negative amount. */
		reject(why == RJ_NEGATIVE ? RJ_NEGATIVE : RJ_INVALID_EVENT, raw,
		       rawn, "%s", err);
		return;
	}
	tool_emit(&T, &ev);
}

/* ---- CSV ---- */

static int headers_seen;

/* Without these fields every record is a reject. */
static int
map_required(int f)
{
	return f == M_TS || f == M_USER || f == M_TYPE || f == M_ITEM;
}

/*
 * The first header of the run lacks the column that --map names for a
 * field that every record needs: a usage error (status 2), said before a
 * record is read, with the columns there are. A later file's header that
 * lacks it is schema drift, counted as disappeared.
 */
static void
map_missing(int f)
{
	struct buf b = { 0 };

	for (size_t i = 0; i < nheader; i++) {
		if (i)
			buf_puts(&b, ", ");
		buf_put(&b, header[i].p, header[i].n);
	}
	buf_putc(&b, '\0');
	tool_usage_error(&T, "--map %s=%s: %s has no column \"%s\" (its columns: %s)",
			 mnames[f], O.map[f], O.columns ? "--columns" : T.src->name,
			 O.map[f], b.p);
}

static void
csv_header(const struct str *cols, size_t n)
{
	header_buf.n = 0;
	for (size_t i = 0; i < n; i++)
		buf_reserve(&header_buf, cols[i].n + 1);
	free(header);
	header = xcalloc(n ? n : 1, sizeof *header);
	nheader = n;
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		buf_put(&header_buf, cols[i].p, cols[i].n);
		header[i].n = cols[i].n;
		header[i].p = (const char *)(uintptr_t)off;
		off += cols[i].n;
	}
	for (size_t i = 0; i < n; i++)
		header[i].p = header_buf.p + (uintptr_t)header[i].p;
	free(keepcol);
	free(drift_col);
	keepcol = xcalloc(n ? n : 1, sizeof *keepcol);
	drift_col = xcalloc(n ? n : 1, sizeof *drift_col);
	for (int f = 0; f < M_N; f++) {
		mcol[f] = -1;
		drift_missing[f] = NULL;
		if (!O.map[f])
			continue;
		for (size_t i = 0; i < n; i++)
			if (strlen(O.map[f]) == header[i].n &&
			    memcmp(O.map[f], header[i].p, header[i].n) == 0)
				mcol[f] = (int)i;
		if (mcol[f] < 0 && !headers_seen && map_required(f))
			map_missing(f);
		if (mcol[f] < 0)
			drift_missing[f] = drift(O.map[f], strlen(O.map[f]), "disappeared");
	}
	headers_seen = 1;
	/* Fields named like event fields map onto them by default. */
	for (int f = 0; f < M_N; f++)
		if (!O.map[f])
			for (size_t i = 0; i < n; i++)
				if (strlen(mnames[f]) == header[i].n &&
				    memcmp(mnames[f], header[i].p, header[i].n) == 0)
					mcol[f] = (int)i;
	for (size_t i = 0; i < n; i++) {
		int mapped = 0, kept = O.keep_all;
		for (int f = 0; f < M_N; f++)
			if (mcol[f] == (int)i)
				mapped = 1;
		for (size_t k = 0; k < O.nkeep; k++)
			if (strlen(O.keep[k]) == header[i].n &&
			    memcmp(O.keep[k], header[i].p, header[i].n) == 0)
				kept = 1;
		keepcol[i] = kept && !mapped;
		if (!mapped && !kept)
			drift_col[i] = drift(header[i].p, header[i].n, "appeared");
	}
	for (size_t k = 0; k < O.nkeep; k++) {
		int found = 0;
		for (size_t i = 0; i < n; i++)
			if (strlen(O.keep[k]) == header[i].n &&
			    memcmp(O.keep[k], header[i].p, header[i].n) == 0)
				found = 1;
		if (!found)
			warn("%s: column \"%s\" of --keep is not in the header", T.src->name, O.keep[k]);
	}
}

/* The id hash of a CSV record: its fields, not its bytes, so that the same
 * row gets the same id whatever the delimiter, quoting or line ending. */
static uint64_t
csv_hash(void)
{
	size_t n = csv_in_nfields(csv);

	idbuf.n = 0;
	for (size_t i = 0; i < n; i++) {
		struct str s = csv_in_field(csv, i);
		buf_put_bytes(&idbuf, s.p, s.n);
	}
	return hash64(idbuf.p, idbuf.n, 0) | 1;
}

/* One complete CSV record (fields in csv), for the data rows. */
static void
csv_record(const char *kafka, size_t kn, int have_fb, int64_t fb)
{
	struct str raw = csv_in_raw(csv);
	size_t n = csv_in_nfields(csv);
	struct vals v;

	if (n != nheader) {
		reject(RJ_BAD_CSV, raw.p, raw.n, "expected %zu fields, got %zu", nheader, n);
		return;
	}
	memset(&v, 0, sizeof v);
	v.have_fallback = have_fb;
	v.fallback_ts = fb;
	event_reset(&ev);
	int unexpected = 0;
	for (size_t i = 0; i < n; i++) {
		if (drift_col[i]) {
			(*drift_col[i])++;
			unexpected = 1;
		}
		if (keepcol[i]) {
			struct str s = csv_in_field(csv, i);
			if (s.n && !utf8_valid(s.p, s.n)) {
				reject(RJ_INVALID_UTF8, raw.p, raw.n, "invalid UTF-8 in %.*s",
				       (int)header[i].n, header[i].p);
				return;
			}
			if (s.n)
				event_add_attr(&ev, header[i].p, header[i].n, s.p, s.n);
		}
	}
	for (int f = 0; f < M_N; f++) {
		if (drift_missing[f])
			(*drift_missing[f])++;
		if (mcol[f] >= 0) {
			struct str s = csv_in_field(csv, (size_t)mcol[f]);
			set_val(&v, f, s.p, s.n);
		}
	}
	if (unexpected && O.strict) {
		reject(RJ_UNEXPECTED_FIELD, raw.p, raw.n, "unexpected fields (--strict)");
		return;
	}
	build(&v, raw.p, raw.n, kafka, kn, csv_hash());
}

static void
csv_use_columns(void)
{
	struct str *cols = xcalloc(O.ncolumns, sizeof *cols);

	for (size_t i = 0; i < O.ncolumns; i++)
		cols[i] = (struct str){ O.columns[i], strlen(O.columns[i]) };
	csv_header(cols, O.ncolumns);
	free(cols);
}

static void
run_csv(void)
{
	const char *line;
	size_t n;
	int toolong, r;
	char err[256];
	uint64_t first = 0;

	csv = csv_in_new(O.delim, O.quote, T.max_line);
	while ((r = src_next_file(T.src)) != 0) {
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
		int need_header = O.columns == NULL;
		if (!need_header)
			csv_use_columns();
		while ((r = src_getline(T.src, &line, &n, &toolong)) > 0) {
			if (toolong) {
				(*T.in)++;
				reject(RJ_LINE_TOO_LONG, line, n < 1024 ? n : 1024, "line longer than %zu bytes (--max-line)", T.max_line);
				continue;
			}
			int pending_before = first != 0;
			if (!pending_before)
				first = T.src->line;
			r = csv_in_line(csv, line, n, err, sizeof err);
			if (r == 0) {
				struct str raw = csv_in_raw(csv);
				if (raw.n == 0)
					first = 0; /* a blank line */
				continue;
			}
			uint64_t last = T.src->line;
			T.src->line = first; /* report a record at its first line */
			first = 0;
			if (r < 0) {
				struct str raw = csv_in_raw(csv);
				if (need_header) {
					T.src->line = last;
					die(EXIT_DATA, "%s:%llu: header: %s", T.src->name,
					    (unsigned long long)T.src->line, err);
				}
				(*T.in)++;
				reject(RJ_BAD_CSV, raw.p, raw.n, "%s", err);
			} else if (need_header) {
				size_t nf = csv_in_nfields(csv);
				struct str *cols = xcalloc(nf ? nf : 1, sizeof *cols);
				for (size_t i = 0; i < nf; i++)
					cols[i] = csv_in_field(csv, i);
				/* A byte-order mark is not part of the first name. */
				if (nf && cols[0].n >= 3 && memcmp(cols[0].p, "\xef\xbb\xbf", 3) == 0) {
					cols[0].p += 3;
					cols[0].n -= 3;
				}
				csv_header(cols, nf);
				free(cols);
				need_header = 0;
			} else {
				(*T.in)++;
				tool_tick(&T);
				csv_record(NULL, 0, 0, 0);
			}
			T.src->line = last;
		}
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
		/* Stopped (a signal, a failure): a record in the middle of
		 * its lines is left unread, not rejected. */
		if (reco_stop || T.halt)
			break;
		if (csv_in_end(csv, err, sizeof err)) {
			struct str raw = csv_in_raw(csv);
			if (need_header)
				die(EXIT_DATA, "%s:%llu: header: %s", T.src->name,
				    (unsigned long long)first, err);
			T.src->line = first;
			(*T.in)++;
			reject(RJ_BAD_CSV, raw.p, raw.n, "%s", err);
		}
		first = 0;
	}
}

/* ---- JSON ---- */

static void
jstr_keep(char *s)
{
	if (njstrs == capjstrs) {
		capjstrs = capjstrs ? capjstrs * 2 : 16;
		jstrs = xreallocarray(jstrs, capjstrs, sizeof *jstrs);
	}
	jstrs[njstrs++] = s;
}

static void
jstr_clear(void)
{
	for (size_t i = 0; i < njstrs; i++)
		free(jstrs[i]);
	njstrs = 0;
}

/* The text of a JSON value as a field: strings as they are, numbers and
 * booleans in their JSON form, objects and arrays compact. Return 0, or -1
 * for null. */
static int
jtext(json_t *j, struct str *out)
{
	if (!j || json_is_null(j))
		return -1;
	if (json_is_string(j)) {
		out->p = json_string_value(j);
		out->n = json_string_length(j);
		return 0;
	}
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
	if (!s)
		return -1;
	if (json_is_real(j)) {
		/* The shortest form that reads back the same. */
		tmp.n = 0;
		buf_put_double(&tmp, json_real_value(j));
		free(s);
		s = xstrndup(tmp.p, tmp.n);
	}
	jstr_keep(s);
	out->p = s;
	out->n = strlen(s);
	return 0;
}

static json_t *
jpath(json_t *root, char **path, size_t n)
{
	json_t *j = root;

	for (size_t i = 0; i < n && j; i++) {
		if (json_is_object(j))
			j = json_object_get(j, path[i]);
		else if (json_is_array(j)) {
			char *end;
			long k = strtol(path[i], &end, 10);
			j = *end || k < 0 ? NULL : json_array_get(j, (size_t)k);
		} else
			j = NULL;
	}
	return j;
}

static void
split_paths(void)
{
	for (int f = 0; f < M_N; f++) {
		const char *p = O.map[f] ? O.map[f] : mnames[f];
		size_t n = 1;
		for (const char *c = p; *c; c++)
			n += *c == '.';
		O.mpath[f] = xcalloc(n, sizeof *O.mpath[f]);
		O.mpathn[f] = n;
		size_t i = 0;
		for (const char *c = p;; i++) {
			const char *d = strchr(c, '.');
			O.mpath[f][i] = xstrndup(c, d ? (size_t)(d - c) : strlen(c));
			if (!d)
				break;
			c = d + 1;
		}
	}
}

static int
expected_key(const char *k)
{
	for (int f = 0; f < M_N; f++)
		if (strcmp(O.mpath[f][0], k) == 0)
			return 1;
	for (size_t i = 0; i < O.nkeep; i++)
		if (strcmp(O.keep[i], k) == 0)
			return 1;
	return O.keep_all;
}

/* One JSON object record: line is its text. */
static void
json_record(const char *line, size_t n, const char *kafka, size_t kn,
	    int have_fb, int64_t fb)
{
	json_error_t je;
	json_t *root = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
	struct vals v;
	const char *key;
	json_t *val;

	if (!root) {
		reject(RJ_BAD_JSON, line, n, "invalid JSON: %s", je.text);
		return;
	}
	if (!json_is_object(root)) {
		reject(RJ_BAD_JSON, line, n, "expected a JSON object");
		json_decref(root);
		return;
	}
	memset(&v, 0, sizeof v);
	v.have_fallback = have_fb;
	v.fallback_ts = fb;
	event_reset(&ev);
	int unexpected = 0;
	json_object_foreach(root, key, val) {
		int mapped = 0;
		for (int f = 0; f < M_N; f++)
			if (O.mpathn[f] == 1 && strcmp(O.mpath[f][0], key) == 0)
				mapped = 1;
		int kept = O.keep_all;
		for (size_t i = 0; i < O.nkeep; i++)
			if (strcmp(O.keep[i], key) == 0)
				kept = 1;
		if (kept && !mapped) {
			struct str s;
			if (jtext(val, &s) == 0 && s.n)
				event_add_attr(&ev, key, strlen(key), s.p, s.n);
		}
		if (!expected_key(key)) {
			(*drift(key, strlen(key), "appeared"))++;
			unexpected = 1;
		}
	}
	for (int f = 0; f < M_N; f++) {
		json_t *j = jpath(root, O.mpath[f], O.mpathn[f]);
		struct str s;
		if (j && jtext(j, &s) == 0)
			set_val(&v, f, s.p, s.n);
		else if (O.map[f])
			(*drift(O.map[f], strlen(O.map[f]), "disappeared"))++;
	}
	if (unexpected && O.strict)
		reject(RJ_UNEXPECTED_FIELD, line, n, "unexpected fields (--strict)");
	else
		build(&v, line, n, kafka, kn, 0);
	json_decref(root);
	jstr_clear();
}

/* ---- access logs ---- */

static void
access_record(const char *line, size_t n, const char *kafka, size_t kn)
{
	struct access_rec r;
	char err[256];
	struct vals v;
	struct str item = { 0 };
	int type = -1;

	if (access_parse(line, n, &r, err, sizeof err)) {
		reject(RJ_BAD_ACCESS_LOG, line, n, "%s", err);
		return;
	}
	if (r.status < 200 || r.status > 399) {
		tool_drop(&T, "http_status");
		return;
	}
	size_t i;
	for (i = 0; i < O.nroutes; i++)
		if (route_match(O.routes[i], &r, &item, &type))
			break;
	if (i == O.nroutes) {
		tool_drop(&T, "no_route");
		return;
	}
	memset(&v, 0, sizeof v);
	event_reset(&ev);
	/* The arena holds decoded values; reserve so pointers stay put. */
	buf_reserve(&ev.arena, 2 * n + 64);
	v.have_ts_ms = 1;
	v.ts_ms = r.ts;
	v.present |= 1u << M_TYPE;
	v.v[M_TYPE].p = event_type_names[type];
	v.v[M_TYPE].n = strlen(event_type_names[type]);
	if (item.n)
		set_val(&v, M_ITEM, item.p, item.n);
	if (type == ET_SEARCH && query_param(r.query, O.query_param, &tmp) && tmp.n)
		set_val(&v, M_QUERY, event_arena_copy(&ev, tmp.p, tmp.n), tmp.n);
	struct str u = { 0 };
	switch (O.user_from) {
	case UF_PARAM:
		if (query_param(r.query, O.user_name, &tmp) && tmp.n)
			u = (struct str){ event_arena_copy(&ev, tmp.p, tmp.n), tmp.n };
		break;
	case UF_COOKIE:
		cookie_value(r.cookie, O.user_name, &u);
		break;
	case UF_REMOTE_USER:
		if (!(r.user.n == 1 && r.user.p[0] == '-'))
			u = r.user;
		break;
	default: {
		char hex[18];
		tmp.n = 0;
		buf_put(&tmp, r.ip.p, r.ip.n);
		buf_putc(&tmp, ' ');
		buf_put(&tmp, r.ua.p, r.ua.n);
		hex[0] = 'h';
		hash_hex16(hash64(tmp.p, tmp.n, 0), hex + 1);
		u = (struct str){ event_arena_copy(&ev, hex, 17), 17 };
	}
	}
	if (u.n)
		set_val(&v, M_USER, u.p, u.n);
	if (r.ua.n && !(r.ua.n == 1 && r.ua.p[0] == '-') && utf8_valid(r.ua.p, r.ua.n))
		event_add_attr(&ev, "ua", 2, r.ua.p, r.ua.n);
	build(&v, line, n, kafka, kn, 0);
}

/* ---- canonical events ---- */

static void
event_record(const char *line, size_t n, const char *kafka, size_t kn,
	     int have_fb, int64_t fb)
{
	char err[256];
	static struct buf withts;

	if (event_parse_json(&ev, line, n, err, sizeof err) && have_fb &&
	    strcmp(err, "missing field ts") == 0) {
		/* The Kafka timestamp stands in for a missing event time. */
		size_t i = 0;
		while (i < n && line[i] != '{')
			i++;
		withts.n = 0;
		buf_puts(&withts, "{\"ts\":");
		buf_put_i64(&withts, fb);
		buf_putc(&withts, ',');
		buf_put(&withts, line + i + 1, n - i - 1);
		line = withts.p;
		n = withts.n;
	}
	int why = -event_parse_json(&ev, line, n, err, sizeof err);
	if (why) {
		reject(why, line, n, "%s", err);
		return;
	}
	if (kafka && !O.no_source) {
		event_changed(&ev);
		ev.source.p = event_arena_copy(&ev, kafka, kn);
		ev.source.n = kn;
		ev.has |= EV_SOURCE;
	}
	for (size_t i = 0; i < ev.nunknown; i++)
		(*drift(ev.unknown[i].p, ev.unknown[i].n, "appeared"))++;
	if (ev.nunknown && O.strict) {
		reject(RJ_UNEXPECTED_FIELD, line, n, "unexpected field %s (--strict)", q(ev.unknown[0]));
		return;
	}
	tool_emit(&T, &ev);
}

static void
run_events(void)
{
	struct evin *in = evin_new(&T);

	while (evin_next(in, &ev)) {
		for (size_t i = 0; i < ev.nunknown; i++)
			(*drift(ev.unknown[i].p, ev.unknown[i].n, "appeared"))++;
		if (ev.nunknown && O.strict) {
			struct pos at;
			evin_pos(in, &at);
			tmp.n = 0;
			event_write_json(&tmp, &ev);
			tool_reject(&T, &at, RJ_UNEXPECTED_FIELD, "unexpected fields (--strict)",
				    tmp.p, tmp.n);
			continue;
		}
		tool_emit(&T, &ev);
	}
	evin_free(in);
}

/* ---- kcat -J envelopes ---- */

static void
kcat_record(const char *line, size_t n)
{
	json_error_t je;
	json_t *env = json_loadb(line, n, 0, &je), *pl;
	char kafka[512];
	int kn;

	if (!env || !json_is_object(env)) {
		reject(RJ_BAD_JSON, line, n, "invalid kcat envelope: %s",
		       env ? "not an object" : je.text);
		json_decref(env);
		return;
	}
	json_t *topic = json_object_get(env, "topic"),
	       *part = json_object_get(env, "partition"),
	       *off = json_object_get(env, "offset"),
	       *ts = json_object_get(env, "ts");
	if (!json_is_string(topic) || !json_is_integer(part) || !json_is_integer(off)) {
		reject(RJ_BAD_JSON, line, n, "kcat envelope without topic, partition and offset");
		json_decref(env);
		return;
	}
	kn = snprintf(kafka, sizeof kafka, "kafka:%s/%lld@%lld", json_string_value(topic),
		      (long long)json_integer_value(part), (long long)json_integer_value(off));
	if (kn < 0 || kn >= (int)sizeof kafka)
		kn = (int)sizeof kafka - 1;
	pl = json_object_get(env, "payload");
	if (!pl || json_is_null(pl)) {
		tool_drop(&T, "tombstone");
		json_decref(env);
		return;
	}
	char *dumped = NULL;
	const char *p;
	size_t pn;
	if (json_is_string(pl)) {
		p = json_string_value(pl);
		pn = json_string_length(pl);
	} else {
		dumped = json_dumps(pl, JSON_COMPACT | JSON_ENCODE_ANY);
		p = dumped ? dumped : "";
		pn = strlen(p);
	}
	while (pn > 0 && (p[pn - 1] == '\n' || p[pn - 1] == '\r'))
		pn--;
	int have_fb = json_is_integer(ts);
	int64_t fb = have_fb ? json_integer_value(ts) : 0;
	char err[256];
	switch (O.payload) {
	case FROM_CSV: {
		int r = csv_in_line(csv, p, pn, err, sizeof err);
		if (r == 1)
			csv_record(kafka, (size_t)kn, have_fb, fb);
		else {
			if (r == 0 && csv_in_end(csv, err, sizeof err) == 0)
				snprintf(err, sizeof err, "empty CSV payload");
			reject(RJ_BAD_CSV, p, pn, "%s", err);
		}
		break;
	}
	case FROM_JSON:
		json_record(p, pn, kafka, (size_t)kn, have_fb, fb);
		break;
	case FROM_ACCESS:
		access_record(p, pn, kafka, (size_t)kn);
		break;
	default:
		event_record(p, pn, kafka, (size_t)kn, have_fb, fb);
	}
	free(dumped);
	json_decref(env);
}

/* Line-oriented sources: JSON, access logs, kcat envelopes. */
static void
run_lines(void)
{
	const char *line;
	size_t n;
	int toolong, r;

	while ((r = src_next_file(T.src)) != 0) {
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
		while ((r = src_getline(T.src, &line, &n, &toolong)) > 0) {
			size_t i = 0;
			while (i < n && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
				i++;
			if (i == n && !toolong)
				continue;
			(*T.in)++;
			tool_tick(&T);
			if (toolong) {
				reject(RJ_LINE_TOO_LONG, line, n < 1024 ? n : 1024, "line longer than %zu bytes (--max-line)", T.max_line);
				continue;
			}
			if (n > 0 && line[n - 1] == '\r')
				n--;
			switch (O.from) {
			case FROM_JSON:
				json_record(line, n, NULL, 0, 0, 0);
				break;
			case FROM_ACCESS:
				access_record(line, n, NULL, 0);
				break;
			default:
				kcat_record(line, n);
			}
		}
		if (r < 0)
			die(EXIT_IO, "%s", T.src->err);
	}
}

int
main(int argc, char **argv)
{
	char err[256];

	tool_init(&T, "reco-ingest", usage);
	ts_format_parse(&O.tsf, "auto");
	tool_parse(&T, argc, argv, opts, NULL, on_opt);
	if (O.from == FROM_KCAT && O.payload == FROM_CSV && !O.columns)
		tool_usage_error(&T, "--payload csv needs --columns (payloads have no header row)");
	if ((O.from == FROM_ACCESS || (O.from == FROM_KCAT && O.payload == FROM_ACCESS)) &&
	    O.nroutes == 0)
		for (size_t i = 0; i < sizeof default_routes / sizeof default_routes[0]; i++) {
			O.routes = xreallocarray(O.routes, O.nroutes + 1, sizeof *O.routes);
			if (!(O.routes[O.nroutes++] = route_parse(default_routes[i], err, sizeof err)))
				die(EXIT_IO, "internal error: default route: %s", err);
		}
	split_paths();
	tool_open(&T);
	event_init(&ev);
	if (O.from == FROM_KCAT && O.payload == FROM_CSV) {
		csv = csv_in_new(O.delim, O.quote, T.max_line);
		csv_use_columns();
	}
	switch (O.from) {
	case FROM_EVENT:
		run_events();
		break;
	case FROM_CSV:
		run_csv();
		break;
	default:
		run_lines();
	}
	event_free(&ev);
	csv_in_free(csv);
	buf_free(&srcbuf);
	buf_free(&tmp);
	buf_free(&idbuf);
	return tool_finish(&T);
}
