/* evcheck: check that the lean and the reference NDJSON event parsers agree, line by line, and that the canonical short way agrees with both. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

static const char usage_text[] =
"usage: evcheck [-cp] [--mutate SEED] [--rounds N] [file ...]\n"
"  -c             also show lines both reject for reasons of different kinds\n"
"  -p             print, per line, \"ok JSON\" or \"reject REASON\" from the lean parser\n"
"  --mutate SEED  also check N corrupted copies of every line (deterministic in SEED)\n"
"  --rounds N     mutants per line with --mutate (default 20)\n";

static struct {
	int classes;
	int print;
	int mutate;
	uint64_t seed;
	long rounds;
} opt = { 0, 0, 0, 0, 20 };

static struct {
	uint64_t lines, checked, both_ok, both_reject, disagree, class_diff;
	uint64_t printed_ok, canonical;
} count;

static struct event ev_lean, ev_ref, ev_scan, ev_full;
static struct buf out_lean, out_ref, out_full, mut;
static struct rng rng;

/* Show a line with every byte that is not printable ASCII as \xHH. */
static void
show_bytes(FILE *f, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
}

/* A rejection as not JSON at all (bad_json), from a parser's return. */
static int
is_json_class(int r)
{
	return r == -RJ_BAD_JSON;
}

/*
 * A line that event_scan_canonical takes must be one that the full lean
 * parse and jansson accept, and whose event both write back as the line's
 * very bytes; and the event the scan made, written field by field, must
 * be the line too. Return 0 if so (or if the scan does not take the line),
 * 1 if not (after saying how on stdout).
 */
static int
check_canonical(const char *what, const char *line, size_t n)
{
	char err_full[512], err_ref[512];
	const char *why = NULL;

	if (!event_scan_canonical(&ev_scan, line, n))
		return 0;
	count.canonical++;
	if (!ev_scan.canon.p || ev_scan.canon.p != line || ev_scan.canon.n != n)
		why = "the scan did not keep the line";
	event_changed(&ev_scan);
	out_lean.n = 0;
	event_write_json(&out_lean, &ev_scan);
	if (!why && (out_lean.n != n || memcmp(out_lean.p, line, n)))
		why = "the scanned event, written, is not the line";
	if (!why && event_parse_json_full(&ev_full, line, n, err_full,
					  sizeof err_full))
		why = "the full parse rejects the line";
	out_full.n = 0;
	if (!why)
		event_write_json(&out_full, &ev_full);
	if (!why && (out_full.n != n || memcmp(out_full.p, line, n)))
		why = "the full parse's event, written, is not the line";
	if (!why && event_parse_jansson(&ev_ref, line, n, err_ref,
					sizeof err_ref))
		why = "jansson rejects the line";
	out_ref.n = 0;
	if (!why)
		event_write_json(&out_ref, &ev_ref);
	if (!why && (out_ref.n != n || memcmp(out_ref.p, line, n)))
		why = "jansson's event, written, is not the line";
	if (!why)
		return 0;
	count.disagree++;
	printf("%s: canonical scan: %s\n  input:   ", what, why);
	show_bytes(stdout, line, n);
	printf("\n");
	return 1;
}

/*
 * Run both parsers on one line. Return 0 if they agree, 1 if not (after
 * saying how on stdout). what names the line in messages.
 */
static int
check_line(const char *what, const char *line, size_t n)
{
	char err_lean[512], err_ref[512];
	int rl, rr;

	count.checked++;
	if (check_canonical(what, line, n))
		return 1;
	rl = event_parse_json(&ev_lean, line, n, err_lean, sizeof err_lean);
	rr = event_parse_jansson(&ev_ref, line, n, err_ref, sizeof err_ref);
	out_lean.n = out_ref.n = 0;
	if (rl == 0)
		event_write_json(&out_lean, &ev_lean);
	if (rr == 0)
		event_write_json(&out_ref, &ev_ref);
	if (rl == 0 && rr == 0 && out_lean.n == out_ref.n &&
	    memcmp(out_lean.p, out_ref.p, out_lean.n) == 0) {
		count.both_ok++;
		return 0;
	}
	if (rl != 0 && rr != 0) {
		count.both_reject++;
		if (is_json_class(rl) != is_json_class(rr)) {
			count.class_diff++;
			if (opt.classes) {
				printf("%s: rejected as different kinds\n  input:   ",
				       what);
				show_bytes(stdout, line, n);
				printf("\n  lean:    reject %s\n  jansson: reject %s\n",
				       err_lean, err_ref);
			}
		}
		return 0;
	}
	count.disagree++;
	printf("%s: disagreement\n  input:   ", what);
	show_bytes(stdout, line, n);
	printf("\n  lean:    ");
	if (rl == 0)
		printf("ok %.*s", (int)out_lean.n, out_lean.p);
	else
		printf("reject %s", err_lean);
	printf("\n  jansson: ");
	if (rr == 0)
		printf("ok %.*s", (int)out_ref.n, out_ref.p);
	else
		printf("reject %s", err_ref);
	printf("\n");
	return 1;
}

/* Bytes worth inserting: JSON syntax, escapes' letters, UTF-8 lead and
 * continuation bytes, bytes that are never UTF-8, controls. */
static const char interesting[] =
	"{}[],:\"\\/ \t\r0123456789-+.eEtfnulbru\x01\x1f\x7f\x80\xbf\xc0\xc3"
	"\xe2\xed\xf0\xf4\xf5\xff";

/* Fragments that keep a string valid or nearly so. */
static const char *const fragments[] = {
	"\\u0000", "\\u0001", "\\u001f", "\\u00e9", "\\u20ac", "\\ud83d\\ude00",
	"\\ud83d", "\\ude00", "\\ud800\\u0041", "\\uDBFF\\uDFFF", "\\uFFFF",
	"\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\x", "\\",
	"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\xa0\x80",
	"\xc0\xaf", "\xf4\x90\x80\x80", " ", "  \t", "null", "true", "1e400",
	"-0", "0.0", "1.5", "9223372036854775807", "9223372036854775808",
	"-9223372036854775809", "1E-400", "01", ",\"x\":1", ",\"attrs\":{}",
	",\"attrs\":{\"k\":\"v\"}", ",\"attrs\":null", ",\"item\":null",
	",\"v\":1", ",\"qty\":2", ",\"price\":3.25", ",\"price\":1e308",
	",\"ts\":5", ",\"z\":[[[]]]", ",\"z\":{\"a\":{}}", "\"", "{", "}",
	"[", "]", ":", ","
};

static void
insert(struct buf *b, size_t at, const char *p, size_t n)
{
	buf_reserve(b, n);
	memmove(b->p + at + n, b->p + at, b->n - at);
	memcpy(b->p + at, p, n);
	b->n += n;
}

/* Apply one random edit to b. */
static void
mutate_once(struct buf *b)
{
	size_t at = b->n ? (size_t)rng_below(&rng, b->n + 1) : 0;
	size_t len;
	char c;

	switch (rng_below(&rng, 9)) {
	case 0: /* replace a byte with any byte */
		if (at < b->n)
			b->p[at] = (char)rng_below(&rng, 256);
		break;
	case 1: /* replace a byte with an interesting one */
		if (at < b->n)
			b->p[at] = interesting[rng_below(&rng,
							 sizeof interesting - 1)];
		break;
	case 2: /* insert an interesting byte */
		c = interesting[rng_below(&rng, sizeof interesting - 1)];
		insert(b, at, &c, 1);
		break;
	case 3: /* insert a fragment */
	case 4: {
		const char *f = fragments[rng_below(&rng, sizeof fragments /
						       sizeof fragments[0])];
		insert(b, at, f, strlen(f));
		break;
	}
	case 5: /* delete a run */
		len = 1 + (size_t)rng_below(&rng, 8);
		if (at + len > b->n)
			len = b->n - at;
		memmove(b->p + at, b->p + at + len, b->n - at - len);
		b->n -= len;
		break;
	case 6: /* truncate */
		b->n = at;
		break;
	case 7: /* duplicate a run */
		len = 1 + (size_t)rng_below(&rng, 16);
		if (at + len > b->n)
			len = b->n - at;
		if (len) {
			char tmp[16];
			memcpy(tmp, b->p + at, len);
			insert(b, at, tmp, len);
		}
		break;
	default: /* swap two neighbours */
		if (at + 1 < b->n) {
			c = b->p[at];
			b->p[at] = b->p[at + 1];
			b->p[at + 1] = c;
		}
		break;
	}
}

static void
check_mutants(const char *name, uint64_t lineno, const char *line, size_t n)
{
	char what[512];

	for (long m = 1; m <= opt.rounds; m++) {
		mut.n = 0;
		buf_put(&mut, line, n);
		int edits = 1 + (int)rng_below(&rng, 3);
		for (int k = 0; k < edits; k++)
			mutate_once(&mut);
		snprintf(what, sizeof what, "%s:%llu: mutant %ld", name,
			 (unsigned long long)lineno, m);
		check_line(what, mut.p, mut.n);
	}
}

static void
check_file(const char *name)
{
	FILE *f = strcmp(name, "-") == 0 ? stdin : fopen(name, "r");
	char *line = NULL, what[512];
	size_t cap = 0;
	ssize_t r;
	uint64_t lineno = 0;

	if (!f)
		die(EXIT_IO, "%s:", name);
	while ((r = getline(&line, &cap, f)) >= 0) {
		size_t n = (size_t)r;
		char err[512];
		lineno++;
		count.lines++;
		if (n && line[n - 1] == '\n')
			n--;
		if (opt.print) {
			if (event_parse_json(&ev_lean, line, n, err,
					     sizeof err) == 0) {
				out_lean.n = 0;
				event_write_json(&out_lean, &ev_lean);
				printf("ok %.*s\n", (int)out_lean.n, out_lean.p);
				count.printed_ok++;
			} else
				printf("reject %s\n", err);
			continue;
		}
		snprintf(what, sizeof what, "%s:%llu", name,
			 (unsigned long long)lineno);
		check_line(what, line, n);
		if (opt.mutate)
			check_mutants(name, lineno, line, n);
	}
	if (ferror(f))
		die(EXIT_IO, "%s: read error:", name);
	free(line);
	if (f != stdin)
		fclose(f);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mutate", required_argument, NULL, 'm' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char *end;
	int c;

	err_init("evcheck");
	while ((c = getopt_long(argc, argv, "chp", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			opt.classes = 1;
			break;
		case 'p':
			opt.print = 1;
			break;
		case 'm':
			opt.mutate = 1;
			opt.seed = strtoull(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0')
				die(EXIT_USAGE, "--mutate: bad seed \"%s\"", optarg);
			break;
		case 'r':
			opt.rounds = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || opt.rounds < 1)
				die(EXIT_USAGE, "--rounds: bad number \"%s\"", optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EXIT_OK;
		default:
			fputs(usage_text, stderr);
			return EXIT_USAGE;
		}
	}
	rng_seed(&rng, opt.seed);
	event_init(&ev_lean);
	event_init(&ev_ref);
	event_init(&ev_scan);
	event_init(&ev_full);
	if (optind == argc)
		check_file("-");
	for (int i = optind; i < argc; i++)
		check_file(argv[i]);
	if (opt.print)
		fprintf(stderr, "evcheck: %llu lines: %llu ok, %llu rejected\n",
			(unsigned long long)count.lines,
			(unsigned long long)count.printed_ok,
			(unsigned long long)(count.lines - count.printed_ok));
	else
		fprintf(stderr,
			"evcheck: %llu lines, %llu checked: %llu accepted by both, "
			"%llu rejected by both (%llu classed differently), "
			"%llu canonical, %llu disagreements\n",
			(unsigned long long)count.lines,
			(unsigned long long)count.checked,
			(unsigned long long)count.both_ok,
			(unsigned long long)count.both_reject,
			(unsigned long long)count.class_diff,
			(unsigned long long)count.canonical,
			(unsigned long long)count.disagree);
	event_free(&ev_lean);
	event_free(&ev_ref);
	event_free(&ev_scan);
	event_free(&ev_full);
	buf_free(&out_lean);
	buf_free(&out_ref);
	buf_free(&out_full);
	buf_free(&mut);
	if (fflush(stdout) || ferror(stdout))
		die(EXIT_IO, "standard output: write error:");
	return count.disagree ? EXIT_DATA : EXIT_OK;
}
