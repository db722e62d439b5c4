/* accesslog-check: what the access log parser and routes make of each line. */
/*
 * usage: accesslog-check [--route SPEC]... [--param NAME]... [--cookie NAME]...
 *
 * Every line of standard input (without its '\n'; a '\r' before it is left
 * to the parser) is parsed with access_parse. A line that does not parse
 * prints exactly one line:
 *
 *   err REASON
 *
 * Without options, a line that parses prints:
 *
 *   ok ts=MS method=M path=P query=Q status=S bytes=B ua=UA cookie=C
 *
 * (ts in milliseconds since the epoch, bytes -1 for "-", query without the
 * '?', cookie empty when the line has no cookie field). With options, it
 * prints instead, in this order:
 *
 *   route TYPE item=ITEM     the first --route (in command line order) that
 *   noroute                  matches, ITEM empty if it has no {item}; or none
 *   param NAME=VALUE         for each --param: the percent-decoded value of
 *   noparam NAME             query parameter NAME; or it is absent
 *   cookie NAME=VALUE        for each --cookie: the raw value of cookie NAME
 *   nocookie NAME            in the cookie field; or it is absent
 *
 * The route line appears only if some --route is given. In every value,
 * bytes below 0x20 and 0x7f are shown as \xHH; all other bytes (backslashes
 * and UTF-8 included) are printed as they are. A bad --route prints
 * "accesslog-check: REASON" to stderr and exits 2.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

static const char usage_text[] =
"usage: accesslog-check [--route SPEC]... [--param NAME]... "
"[--cookie NAME]...\n";

static void
show(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
}

static void
show_str(const char *name, struct str s)
{
	printf(" %s=", name);
	show(s.p, s.n);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "route", required_argument, NULL, 'r' },
		{ "param", required_argument, NULL, 'p' },
		{ "cookie", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct route **routes = NULL;
	const char **params = NULL, **cookies = NULL;
	size_t nroutes = 0, nparams = 0, ncookies = 0;
	struct access_rec r;
	struct buf val = { 0 };
	char err[256], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int c;

	err_init(argv[0]);
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			routes = xreallocarray(routes, nroutes + 1,
					       sizeof *routes);
			routes[nroutes] = route_parse(optarg, err, sizeof err);
			if (!routes[nroutes])
				die(EXIT_USAGE, "%s", err);
			nroutes++;
			break;
		case 'p':
			params = xreallocarray(params, nparams + 1,
					       sizeof *params);
			params[nparams++] = optarg;
			break;
		case 'c':
			cookies = xreallocarray(cookies, ncookies + 1,
						sizeof *cookies);
			cookies[ncookies++] = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		size_t n = (size_t)len;
		if (n > 0 && line[n - 1] == '\n')
			n--;
		if (access_parse(line, n, &r, err, sizeof err)) {
			printf("err %s\n", err);
			continue;
		}
		if (nroutes + nparams + ncookies == 0) {
			printf("ok ts=%lld", (long long)r.ts);
			show_str("method", r.method);
			show_str("path", r.path);
			show_str("query", r.query);
			printf(" status=%d bytes=%lld", r.status,
			       (long long)r.bytes);
			show_str("ua", r.ua);
			show_str("cookie", r.cookie);
			putchar('\n');
			continue;
		}
		if (nroutes > 0) {
			struct str item;
			int type;
			size_t i;
			for (i = 0; i < nroutes; i++)
				if (route_match(routes[i], &r, &item, &type))
					break;
			if (i < nroutes) {
				printf("route %s item=",
				       event_type_names[type]);
				show(item.p, item.n);
				putchar('\n');
			} else
				puts("noroute");
		}
		for (size_t i = 0; i < nparams; i++) {
			if (query_param(r.query, params[i], &val)) {
				printf("param %s=", params[i]);
				show(val.p, val.n);
				putchar('\n');
			} else
				printf("noparam %s\n", params[i]);
		}
		for (size_t i = 0; i < ncookies; i++) {
			struct str cv;
			if (cookie_value(r.cookie, cookies[i], &cv)) {
				printf("cookie %s=", cookies[i]);
				show(cv.p, cv.n);
				putchar('\n');
			} else
				printf("nocookie %s\n", cookies[i]);
		}
	}
	free(line);
	buf_free(&val);
	for (size_t i = 0; i < nroutes; i++)
		route_free(routes[i]);
	free(routes);
	free(params);
	free(cookies);
	if (ferror(stdin))
		die(EXIT_IO, "standard input:");
	if (fflush(stdout) || ferror(stdout))
		die(EXIT_IO, "standard output:");
	return EXIT_OK;
}
