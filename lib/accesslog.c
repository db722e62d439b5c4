/* accesslog.c: web access logs (combined format) and routes to event types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reco.h"

#define ERR_SNIP 40 /* bytes of bad input quoted in a reason */

static const char *const month_names[12] = {
	"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

/* Write "what" to err, followed by p[0..n) in quotes when p is given. At most
 * ERR_SNIP bytes are quoted and anything but printable ASCII shows as '?', so
 * the reason is always short, printable, valid UTF-8 text. */
static void
set_err(char *err, size_t errlen, const char *what, const char *p, size_t n)
{
	char q[ERR_SNIP + 4];
	size_t i, k = 0;

	if (!err || errlen == 0)
		return;
	if (!p) {
		snprintf(err, errlen, "%s", what);
		return;
	}
	for (i = 0; i < n && k < ERR_SNIP; i++)
		q[k++] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
	if (i < n) {
		memcpy(q + k, "...", 3);
		k += 3;
	}
	q[k] = '\0';
	snprintf(err, errlen, "%s \"%s\"", what, q);
}

static int
str_eq(const char *a, size_t an, const char *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int
is_sp(char c)
{
	return c == ' ' || c == '\t';
}

static const char *
skip_sp(const char *p, const char *e)
{
	while (p < e && is_sp(*p))
		p++;
	return p;
}

/* An unquoted field up to the next blank. Return 0, or -1 if empty. */
static int
scan_token(const char **pp, const char *e, struct str *out)
{
	const char *p = *pp, *s = p;

	while (p < e && !is_sp(*p))
		p++;
	if (p == s)
		return -1;
	out->p = s;
	out->n = (size_t)(p - s);
	*pp = p;
	return 0;
}

/*
 * A quoted field at *pp. Servers escape '"' as \" (Apache, nginx with
 * escape=json) or \x22 (nginx), and '\' as \\ or \x5C, so a backslash always
 * starts a two-byte sequence and the first other '"' closes the field. The
 * raw bytes between the quotes go to out and *pp moves past the closing
 * quote, which must end the line or be followed by a blank. Return 0, -1 if
 * there is no opening quote, -2 if the field is unterminated, -3 if the
 * closing quote is followed by something else.
 */
static int
scan_quoted(const char **pp, const char *e, struct str *out)
{
	const char *p = *pp, *s;

	if (p >= e || *p != '"')
		return -1;
	s = ++p;
	while (p < e && *p != '"') {
		if (*p == '\\' && e - p >= 2)
			p++;
		p++;
	}
	if (p >= e)
		return -2;
	if (p + 1 < e && !is_sp(p[1]))
		return -3;
	out->p = s;
	out->n = (size_t)(p - s);
	*pp = p + 1;
	return 0;
}

/* A quoted field called name; on failure the reason names it. */
static int
quoted_field(const char **pp, const char *e, struct str *out,
	     const char *name, char *err, size_t errlen)
{
	char what[64];
	const char *start = *pp;
	int rc = scan_quoted(pp, e, out);

	if (rc == 0)
		return 0;
	if (rc == -1) {
		snprintf(what, sizeof what, "expected a quoted %s", name);
		set_err(err, errlen, what, NULL, 0);
	} else {
		snprintf(what, sizeof what, "%s %s", rc == -2 ? "unterminated"
			 : "text after the closing quote of the", name);
		set_err(err, errlen, what, start, (size_t)(e - start));
	}
	return -1;
}

static int
num(const char *p, const char *e, int n, int *v)
{
	if (e - p < n)
		return -1;
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*v = *v * 10 + (p[i] - '0');
	}
	return 0;
}

static int
month_days(int y, int m)
{
	static const int dm[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 ? 28 + leap : dm[m - 1];
}

/* 10/Oct/2000:13:55:36 -0700, optionally with a fraction of a second after
 * the seconds (10/Oct/2000:13:55:36.123 -0700). */
static int
parse_clf_time(const char *p, size_t n, int64_t *ms)
{
	const char *e = p + n;
	int d, mo, y, h, mi, s, frac = 0, oh, om, sign;

	if (num(p, e, 2, &d) || e - p < 7 || p[2] != '/' || p[6] != '/')
		return -1;
	for (mo = 0; mo < 12; mo++)
		if (strncasecmp(p + 3, month_names[mo], 3) == 0)
			break;
	if (mo == 12)
		return -1;
	mo++;
	p += 7;
	if (num(p, e, 4, &y) || e - p < 5 || p[4] != ':')
		return -1;
	p += 5;
	if (num(p, e, 2, &h) || e - p < 3 || p[2] != ':' ||
	    num(p + 3, e, 2, &mi) || e - p < 6 || p[5] != ':' ||
	    num(p + 6, e, 2, &s))
		return -1;
	p += 8;
	if (p < e && *p == '.') {
		int nd = 0;
		for (p++; p < e && *p >= '0' && *p <= '9'; p++, nd++)
			if (nd < 3)
				frac = frac * 10 + (*p - '0');
		if (nd == 0)
			return -1;
		for (; nd < 3; nd++)
			frac *= 10;
	}
	if (e - p != 6 || p[0] != ' ' || (p[1] != '+' && p[1] != '-') ||
	    num(p + 2, e, 2, &oh) || num(p + 4, e, 2, &om))
		return -1;
	sign = p[1] == '-' ? -1 : 1;
	if (d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || s > 59 ||
	    oh > 23 || om > 59)
		return -1;
	*ms = ts_from_civil(y, mo, d, h, mi, s) + frac -
	      sign * (oh * 60 + om) * 60000LL;
	return 0;
}

/* An HTTP token character (RFC 9110), as in method names. */
static int
is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "GET /path?query HTTP/1.1": the method is up to the first space, the
 * protocol after the last one, the target (which may hold spaces in broken
 * requests) in between. */
static int
split_request(struct str q, struct access_rec *r)
{
	const char *p = q.p, *e = q.p + q.n, *sp1, *sp2, *qm;

	sp1 = memchr(p, ' ', q.n);
	if (!sp1 || sp1 == p)
		return -1;
	for (const char *m = p; m < sp1; m++)
		if (!is_tchar(*m))
			return -1;
	for (sp2 = e - 1; *sp2 != ' '; sp2--)
		;
	if (sp2 - sp1 < 2 || e - sp2 < 7 ||
	    memcmp(sp2 + 1, "HTTP/", 5) != 0)
		return -1;
	r->method.p = p;
	r->method.n = (size_t)(sp1 - p);
	r->target.p = sp1 + 1;
	r->target.n = (size_t)(sp2 - sp1 - 1);
	r->proto.p = sp2 + 1;
	r->proto.n = (size_t)(e - sp2 - 1);
	qm = memchr(r->target.p, '?', r->target.n);
	r->path.p = r->target.p;
	if (qm) {
		r->path.n = (size_t)(qm - r->target.p);
		r->query.p = qm + 1;
		r->query.n = r->target.n - r->path.n - 1;
	} else {
		r->path.n = r->target.n;
		r->query.p = r->target.p + r->target.n;
		r->query.n = 0;
	}
	return 0;
}

/*
 * Parse one line line[0..n) (no newline; a trailing '\r' is allowed, the
 * line need not be NUL-terminated) of the combined log format
 *   %h %l %u [%d/%b/%Y:%H:%M:%S %z] "%r" %>s %b "%{Referer}i" "%{User-agent}i"
 * optionally followed by a quoted Cookie header, into *r. Every string in *r
 * points into line; nothing is allocated. Return 0, or -1 with a short
 * reason in err (r is then partly filled and meaningless).
 */
int
access_parse(const char *line, size_t n, struct access_rec *r, char *err,
	     size_t errlen)
{
	const char *p = line, *e = line + n, *s, *close;
	struct str req, tok;
	int v;

	memset(r, 0, sizeof *r);
	if (n > 0 && e[-1] == '\r')
		e--;
	while (e > p && is_sp(e[-1]))
		e--;
	p = skip_sp(p, e);
	if (p == e) {
		set_err(err, errlen, "empty line", NULL, 0);
		return -1;
	}
	scan_token(&p, e, &r->ip);
	p = skip_sp(p, e);
	if (scan_token(&p, e, &r->ident)) {
		set_err(err, errlen, "missing fields after the host", NULL, 0);
		return -1;
	}
	p = skip_sp(p, e);
	if (scan_token(&p, e, &r->user)) {
		set_err(err, errlen, "missing fields after the host", NULL, 0);
		return -1;
	}
	p = skip_sp(p, e);
	if (p == e || *p != '[') {
		set_err(err, errlen, "expected a [timestamp]", NULL, 0);
		return -1;
	}
	s = ++p;
	close = memchr(s, ']', (size_t)(e - s));
	if (!close) {
		set_err(err, errlen, "unterminated timestamp", s - 1,
			(size_t)(e - s + 1));
		return -1;
	}
	if (parse_clf_time(s, (size_t)(close - s), &r->ts)) {
		set_err(err, errlen, "bad timestamp", s, (size_t)(close - s));
		return -1;
	}
	p = skip_sp(close + 1, e);
	if (quoted_field(&p, e, &req, "request", err, errlen))
		return -1;
	if (split_request(req, r)) {
		set_err(err, errlen, "bad request", req.p, req.n);
		return -1;
	}
	p = skip_sp(p, e);
	if (scan_token(&p, e, &tok)) {
		set_err(err, errlen, "missing status", NULL, 0);
		return -1;
	}
	if (tok.n != 3 || num(tok.p, e, 3, &v)) {
		set_err(err, errlen, "bad status", tok.p, tok.n);
		return -1;
	}
	r->status = v;
	p = skip_sp(p, e);
	if (scan_token(&p, e, &tok)) {
		set_err(err, errlen, "missing byte count", NULL, 0);
		return -1;
	}
	if (tok.n == 1 && tok.p[0] == '-')
		r->bytes = -1;
	else {
		size_t i;
		r->bytes = 0;
		for (i = 0; i < tok.n && tok.p[i] >= '0' && tok.p[i] <= '9';
		     i++) {
			if (r->bytes > (INT64_MAX - 9) / 10)
				break;
			r->bytes = r->bytes * 10 + (tok.p[i] - '0');
		}
		if (i != tok.n) {
			set_err(err, errlen, "bad byte count", tok.p, tok.n);
			return -1;
		}
	}
	p = skip_sp(p, e);
	if (quoted_field(&p, e, &r->referer, "referer", err, errlen))
		return -1;
	p = skip_sp(p, e);
	if (quoted_field(&p, e, &r->ua, "user agent", err, errlen))
		return -1;
	p = skip_sp(p, e);
	if (p == e)
		return 0;
	if (quoted_field(&p, e, &r->cookie, "cookie field", err, errlen))
		return -1;
	p = skip_sp(p, e);
	if (p != e) {
		set_err(err, errlen, "unexpected text after the cookie field",
			p, (size_t)(e - p));
		return -1;
	}
	return 0;
}

/* ---- routes ---- */

/* What one path segment or one query value of a route pattern matches. */
enum { PC_LIT, PC_ANY, PC_REST, PC_CAP };
struct piece {
	int kind;
	struct str lit; /* PC_LIT: the text; PC_CAP: the literal prefix */
	struct str suf; /* PC_CAP: the literal suffix */
};

/* A query condition: the parameter name must be present and, with has_val,
 * its raw value must match val. */
struct qcond {
	struct str name;
	int has_val;
	struct piece val;
};

struct route {
	char *text; /* a copy of the pattern; the pieces point into it */
	char *method; /* NULL for any */
	struct piece *segs;
	size_t nsegs;
	struct qcond *qs;
	size_t nqs;
	int type;
	int has_item;
};

/* Parse one segment or value s[0..n) of a pattern into pc. Return 0, or -1
 * with the reason in err. */
static int
piece_parse(struct piece *pc, const char *s, size_t n, int *nitems, char *err,
	    size_t errlen)
{
	const char *o = memchr(s, '{', n), *c = memchr(s, '}', n);

	memset(pc, 0, sizeof *pc);
	if (str_eq(s, n, "**", 2)) {
		pc->kind = PC_REST;
		return 0;
	}
	if (str_eq(s, n, "*", 1)) {
		pc->kind = PC_ANY;
		return 0;
	}
	if (memchr(s, '*', n)) {
		set_err(err, errlen, "'*' must be a whole segment in", s, n);
		return -1;
	}
	if (!o && !c) {
		pc->kind = PC_LIT;
		pc->lit.p = s;
		pc->lit.n = n;
		return 0;
	}
	if (!o || !c || c < o || !str_eq(o, (size_t)(c - o + 1), "{item}", 6)) {
		set_err(err, errlen, "only {item} can be captured, in", s, n);
		return -1;
	}
	if (memchr(c + 1, '{', (size_t)(s + n - c - 1)) ||
	    memchr(c + 1, '}', (size_t)(s + n - c - 1))) {
		set_err(err, errlen, "more than one capture in", s, n);
		return -1;
	}
	if (++*nitems > 1) {
		set_err(err, errlen, "more than one {item} in the pattern",
			NULL, 0);
		return -1;
	}
	pc->kind = PC_CAP;
	pc->lit.p = s;
	pc->lit.n = (size_t)(o - s);
	pc->suf.p = c + 1;
	pc->suf.n = (size_t)(s + n - c - 1);
	return 0;
}

/* Parse the query part q[0..n) of a pattern: conditions name=VALUE or name
 * joined by '&'. */
static int
query_pattern_parse(struct route *rt, const char *q, size_t n, int *nitems,
		    char *err, size_t errlen)
{
	const char *p = q, *e = q + n;

	while (p < e) {
		const char *amp = memchr(p, '&', (size_t)(e - p));
		const char *eq;
		struct qcond *c;

		if (!amp)
			amp = e;
		if (amp == p) {
			p = amp + 1;
			continue;
		}
		eq = memchr(p, '=', (size_t)(amp - p));
		rt->qs = xreallocarray(rt->qs, rt->nqs + 1, sizeof *rt->qs);
		c = &rt->qs[rt->nqs++];
		memset(c, 0, sizeof *c);
		c->name.p = p;
		c->name.n = (size_t)((eq ? eq : amp) - p);
		if (c->name.n == 0) {
			set_err(err, errlen, "empty parameter name in", p,
				(size_t)(amp - p));
			return -1;
		}
		if (eq) {
			c->has_val = 1;
			if (piece_parse(&c->val, eq + 1, (size_t)(amp - eq - 1),
					nitems, err, errlen))
				return -1;
			if (c->val.kind == PC_REST) {
				set_err(err, errlen, "'**' in a query value in",
					p, (size_t)(amp - p));
				return -1;
			}
		}
		if (amp == e)
			break;
		p = amp + 1;
	}
	return 0;
}

/*
 * Parse a route "METHOD PATTERN=TYPE", e.g. "GET /product/{item}=view" or
 * "* /item?sku={item}=view": METHOD is a method name or '*' for any; the
 * pattern and the event type are split at the last '='. Path segments are
 * literal except '*' (any one segment), '**' as the last segment (whatever
 * remains, possibly nothing) and one {item} capture with an optional literal
 * prefix and suffix within its segment. After a '?', conditions joined by
 * '&': "name" (present), "name=VALUE" where VALUE is literal, '*' (any
 * non-empty) or holds {item}. Return a route the caller frees with
 * route_free, or NULL with the reason in err.
 */
struct route *
route_parse(const char *spec, char *err, size_t errlen)
{
	struct route *rt;
	const char *p = spec, *m, *pat, *e, *eq, *qm, *pe;
	int nitems = 0;

	while (is_sp(*p))
		p++;
	m = p;
	while (*p && !is_sp(*p))
		p++;
	if (p == m || !*p) {
		set_err(err, errlen, "expected METHOD PATTERN=TYPE, not", spec,
			strlen(spec));
		return NULL;
	}
	rt = xcalloc(1, sizeof *rt);
	if (!str_eq(m, (size_t)(p - m), "*", 1)) {
		for (const char *c = m; c < p; c++)
			if (!is_tchar(*c)) {
				set_err(err, errlen, "bad method", m,
					(size_t)(p - m));
				goto fail;
			}
		rt->method = xstrndup(m, (size_t)(p - m));
	}
	while (is_sp(*p))
		p++;
	pat = p;
	e = p + strlen(p);
	while (e > pat && is_sp(e[-1]))
		e--;
	for (eq = e; eq > pat && eq[-1] != '='; eq--)
		;
	if (eq == pat) {
		set_err(err, errlen, "missing =TYPE after the pattern", pat,
			(size_t)(e - pat));
		goto fail;
	}
	if ((rt->type = event_type_parse(eq, (size_t)(e - eq))) < 0) {
		set_err(err, errlen, "unknown event type", eq,
			(size_t)(e - eq));
		goto fail;
	}
	eq--;
	for (const char *c = pat; c < eq; c++)
		if (is_sp(*c)) {
			set_err(err, errlen, "blank in the pattern", pat,
				(size_t)(eq - pat));
			goto fail;
		}
	if (eq == pat || *pat != '/') {
		set_err(err, errlen, "the pattern must start with '/':", pat,
			(size_t)(eq - pat));
		goto fail;
	}
	rt->text = xstrndup(pat, (size_t)(eq - pat));
	p = rt->text + 1;
	e = rt->text + (eq - pat);
	qm = memchr(p, '?', (size_t)(e - p));
	pe = qm ? qm : e;
	if (pe > p && pe[-1] == '/')
		pe--;
	while (p < pe) {
		const char *sl = memchr(p, '/', (size_t)(pe - p));
		struct piece *pc;

		if (!sl)
			sl = pe;
		rt->segs = xreallocarray(rt->segs, rt->nsegs + 1,
					 sizeof *rt->segs);
		pc = &rt->segs[rt->nsegs++];
		if (piece_parse(pc, p, (size_t)(sl - p), &nitems, err, errlen))
			goto fail;
		if (pc->kind == PC_REST && sl != pe) {
			set_err(err, errlen, "'**' must be the last segment in",
				rt->text, (size_t)(e - rt->text));
			goto fail;
		}
		if (sl == pe)
			break;
		p = sl + 1;
		if (p == pe) {
			/* "/a//": an empty last segment */
			rt->segs = xreallocarray(rt->segs, rt->nsegs + 1,
						 sizeof *rt->segs);
			piece_parse(&rt->segs[rt->nsegs++], p, 0, &nitems,
				    err, errlen);
		}
	}
	if (qm && query_pattern_parse(rt, qm + 1, (size_t)(e - qm - 1),
				      &nitems, err, errlen))
		goto fail;
	rt->has_item = nitems > 0;
	return rt;
fail:
	route_free(rt);
	return NULL;
}

/* Free a route; NULL is allowed. */
void
route_free(struct route *rt)
{
	if (!rt)
		return;
	free(rt->text);
	free(rt->method);
	free(rt->segs);
	free(rt->qs);
	free(rt);
}

static int
piece_match(const struct piece *pc, const char *s, size_t n, struct str *cap)
{
	switch (pc->kind) {
	case PC_LIT:
		return str_eq(s, n, pc->lit.p, pc->lit.n);
	case PC_ANY:
	case PC_REST:
		return n > 0;
	default:
		if (n <= pc->lit.n + pc->suf.n ||
		    !str_eq(s, pc->lit.n, pc->lit.p, pc->lit.n) ||
		    !str_eq(s + n - pc->suf.n, pc->suf.n, pc->suf.p,
			    pc->suf.n))
			return 0;
		cap->p = s + pc->lit.n;
		cap->n = n - pc->lit.n - pc->suf.n;
		return 1;
	}
}

/* Match the path p[0..n) segment by segment, ignoring one trailing '/'. An
 * absolute-form target (http://host/path) is matched by its path. */
static int
path_match(const struct route *rt, const char *p, size_t n, struct str *cap)
{
	const char *e;
	size_t skip = 0;
	int more;

	if (!p)
		return 0;
	e = p + n;
	if (n > 7 && strncasecmp(p, "http://", 7) == 0)
		skip = 7;
	else if (n > 8 && strncasecmp(p, "https://", 8) == 0)
		skip = 8;
	if (skip) {
		const char *sl = memchr(p + skip, '/', n - skip);
		if (sl)
			p = sl;
		else {
			p = "/";
			e = p + 1;
		}
	}
	if (p == e || *p != '/')
		return 0;
	p++;
	if (e > p && e[-1] == '/')
		e--;
	more = p < e;
	for (size_t i = 0; i < rt->nsegs; i++) {
		const struct piece *pc = &rt->segs[i];
		const char *sl;

		if (pc->kind == PC_REST)
			return 1;
		if (!more)
			return 0;
		sl = memchr(p, '/', (size_t)(e - p));
		if (!sl)
			sl = e;
		if (!piece_match(pc, p, (size_t)(sl - p), cap))
			return 0;
		more = sl < e;
		p = more ? sl + 1 : e;
	}
	return !more;
}

/* The raw value of the first parameter name[0..nn) in query, or -1 (no
 * decoding on either side). */
static int
query_raw(struct str query, const char *name, size_t nn, struct str *val)
{
	const char *p = query.p, *e;

	if (!p)
		return -1;
	for (e = p + query.n; p < e;) {
		const char *amp = memchr(p, '&', (size_t)(e - p));
		const char *eq;

		if (!amp)
			amp = e;
		eq = memchr(p, '=', (size_t)(amp - p));
		if (str_eq(p, (size_t)((eq ? eq : amp) - p), name, nn)) {
			val->p = eq ? eq + 1 : amp;
			val->n = (size_t)(amp - val->p);
			return 0;
		}
		if (amp == e)
			break;
		p = amp + 1;
	}
	return -1;
}

/*
 * Match the record r against the route rt: its method, its path and its
 * query conditions. Return 1 and set *type and *item (which points into the
 * record's line, or is {NULL, 0} when the route has no {item}), or 0 and
 * leave them alone.
 */
int
route_match(const struct route *rt, const struct access_rec *r,
	    struct str *item, int *type)
{
	struct str cap = { NULL, 0 }, v;

	if (rt->method && !(r->method.n == strlen(rt->method) &&
			    strncasecmp(r->method.p, rt->method,
					r->method.n) == 0))
		return 0;
	if (!path_match(rt, r->path.p, r->path.n, &cap))
		return 0;
	for (size_t i = 0; i < rt->nqs; i++) {
		const struct qcond *c = &rt->qs[i];
		if (query_raw(r->query, c->name.p, c->name.n, &v))
			return 0;
		if (c->has_val && !piece_match(&c->val, v.p, v.n, &cap))
			return 0;
	}
	*type = rt->type;
	item->p = rt->has_item ? cap.p : NULL;
	item->n = rt->has_item ? cap.n : 0;
	return 1;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Find the first parameter name (compared raw) in query ("a=1&b=2") and
 * set out to its value percent-decoded: '+' is a space, %XX a byte, a '%'
 * not followed by two hex digits stays as it is; out is NUL-terminated
 * after out->n bytes (the value itself may hold NULs). Return 1 if found,
 * 0 if not (out->n is 0 either way first). The caller owns out.
 */
int
query_param(struct str query, const char *name, struct buf *out)
{
	struct str v;

	out->n = 0;
	if (query_raw(query, name, strlen(name), &v))
		return 0;
	buf_reserve(out, v.n);
	for (size_t i = 0; i < v.n; i++) {
		int hi, lo;
		if (v.p[i] == '+')
			out->p[out->n++] = ' ';
		else if (v.p[i] == '%' && v.n - i >= 3 &&
			 (hi = hexval(v.p[i + 1])) >= 0 &&
			 (lo = hexval(v.p[i + 2])) >= 0) {
			out->p[out->n++] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out->p[out->n++] = v.p[i];
	}
	out->p[out->n] = '\0';
	return 1;
}

/*
 * Find the cookie name in a Cookie header value ("a=1; b=2") and point *val
 * at its raw value (into cookies, blanks around it trimmed). Return 1 if
 * found, 0 if not.
 */
int
cookie_value(struct str cookies, const char *name, struct str *val)
{
	const char *p = cookies.p, *e;
	size_t nn = strlen(name);

	if (!p)
		return 0;
	for (e = p + cookies.n; p < e;) {
		const char *semi = memchr(p, ';', (size_t)(e - p));
		const char *eq, *ne, *ve;

		if (!semi)
			semi = e;
		p = skip_sp(p, semi);
		eq = memchr(p, '=', (size_t)(semi - p));
		if (eq) {
			for (ne = eq; ne > p && is_sp(ne[-1]); ne--)
				;
			if (str_eq(p, (size_t)(ne - p), name, nn)) {
				const char *vs = skip_sp(eq + 1, semi);
				for (ve = semi; ve > vs && is_sp(ve[-1]); ve--)
					;
				val->p = vs;
				val->n = (size_t)(ve - vs);
				return 1;
			}
		}
		if (semi == e)
			break;
		p = semi + 1;
	}
	return 0;
}
