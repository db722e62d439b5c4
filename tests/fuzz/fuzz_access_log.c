/* fuzz_access_log.c: libFuzzer target for access log lines, routes, parameters, cookies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const specs[] = {
	"GET /product/{item}=view",
	"POST /cart/{item}=add_to_cart",
	"* /p/{item}.html=view",
	"GET /search=search",
	"GET /item?sku={item}=view",
	"* /shop/*/sku-{item}/detail=click",
	"* /static/**=impression",
	"DELETE /cart?id=x-{item}-y&confirm=1&all=*&flag=purchase",
	"* /=view"
};
#define NSPECS (sizeof specs / sizeof specs[0])

static struct route *routes[NSPECS];
static struct buf val;

/* Abort unless s lies inside [lo, hi); read every byte of it. */
static void
inside(struct str s, const char *lo, const char *hi)
{
	volatile unsigned sum = 0;

	if (s.n == 0)
		return;
	if (!s.p || s.p < lo || s.p > hi || (size_t)(hi - s.p) < s.n)
		abort();
	for (size_t i = 0; i < s.n; i++)
		sum += (unsigned char)s.p[i];
	(void)sum;
}

/* Parse one line from its own exact-size copy, so that any read past its
 * end is caught, and try everything on the fields of the record. */
static void
one_line(const char *p, size_t n, const struct route *extra)
{
	static const char *const names[] = { "q", "sku", "id", "", "a=b" };
	struct access_rec r;
	struct str item, cv;
	char err[256];
	char *line = malloc(n ? n : 1);
	int type;

	if (!line)
		abort();
	memcpy(line, p, n);
	if (access_parse(line, n, &r, err, sizeof err)) {
		if (strlen(err) == 0 || strlen(err) >= sizeof err)
			abort();
		free(line);
		return;
	}
	const char *e = line + n;
	inside(r.ip, line, e);
	inside(r.ident, line, e);
	inside(r.user, line, e);
	inside(r.method, line, e);
	inside(r.target, line, e);
	inside(r.path, line, e);
	inside(r.query, line, e);
	inside(r.proto, line, e);
	inside(r.referer, line, e);
	inside(r.ua, line, e);
	inside(r.cookie, line, e);
	if (r.ip.n == 0 || r.method.n == 0 || r.target.n == 0 ||
	    r.path.p != r.target.p || memchr(r.path.p, '?', r.path.n) ||
	    (r.path.n != r.target.n &&
	     r.path.n + 1 + r.query.n != r.target.n) ||
	    r.proto.n == 0 || r.status < 0 || r.status > 999 || r.bytes < -1)
		abort();
	for (size_t i = 0; i < NSPECS; i++)
		if (routes[i] && route_match(routes[i], &r, &item, &type)) {
			inside(item, line, e);
			if (type < 0 || type >= ET_NTYPES)
				abort();
		}
	if (extra && route_match(extra, &r, &item, &type))
		inside(item, line, e);
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (query_param(r.query, names[i], &val) && val.n > r.query.n)
			abort();
		if (cookie_value(r.cookie, names[i], &cv))
			inside(cv, r.cookie.p, r.cookie.p + r.cookie.n);
		query_param(r.cookie, names[i], &val);
		cookie_value(r.query, names[i], &cv);
	}
	free(line);
}

/*
 * The whole input is one line, then each of its lines is one; the first
 * line, NUL-terminated, is also tried as a route spec and matched against
 * the records.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *e = p + size;
	const char *nl = memchr(p, '\n', size);
	size_t first = nl ? (size_t)(nl - p) : size;
	struct route *extra;
	char spec[256], err[256];

	if (!routes[0])
		for (size_t i = 0; i < NSPECS; i++)
			if (!(routes[i] = route_parse(specs[i], err,
						      sizeof err)))
				abort();
	if (first >= sizeof spec)
		first = sizeof spec - 1;
	memcpy(spec, p, first);
	spec[first] = '\0';
	extra = route_parse(spec, err, sizeof err);
	one_line(p, size, extra);
	while (p < e) {
		nl = memchr(p, '\n', (size_t)(e - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
		one_line(p, n, extra);
		p += n + (nl != NULL);
	}
	route_free(extra);
	return 0;
}
