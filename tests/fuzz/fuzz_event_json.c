/* fuzz_event_json.c: differential fuzzing of the lean and the jansson NDJSON event parsers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "reco.h"
#include "fuzz_show.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* Undefined behaviour is a finding too, not a warning to scroll past. */
const char *
__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

static void
fail(const char *why, const char *in, size_t n, const struct buf *a,
     const struct buf *b)
{
	fprintf(stderr, "fuzz_event_json: %s\n", why);
	show("input", in, n);
	if (a)
		show("first", a->p, a->n);
	if (b)
		show("second", b->p, b->n);
	abort();
}

static int
same(const struct buf *a, const struct buf *b)
{
	return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* The JSON of ev, in a fresh buffer. */
static void
to_json(struct buf *b, const struct event *ev)
{
	b->n = 0;
	event_write_json(b, ev);
}

/* A string of an accepted event: UTF-8, no NUL (JSON cannot carry one). */
static void
check_str(const char *in, size_t n, const struct str *s, const char *what)
{
	if (s->n && (!utf8_valid(s->p, s->n) || memchr(s->p, '\0', s->n))) {
		fprintf(stderr, "field %s\n", what);
		fail("an accepted string is not UTF-8 without NUL", in, n,
		     NULL, NULL);
	}
}

/* The names of the unknown top-level fields (schema drift) agree. */
static void
check_unknown(const char *in, size_t n, const struct event *a,
	      const struct event *b)
{
	int ok = a->nunknown == b->nunknown;

	for (size_t i = 0; ok && i < a->nunknown; i++)
		ok = a->unknown[i].n == b->unknown[i].n &&
		     memcmp(a->unknown[i].p, b->unknown[i].p, a->unknown[i].n) == 0;
	if (!ok) {
		for (size_t i = 0; i < a->nunknown; i++)
			show("lean unknown", a->unknown[i].p, a->unknown[i].n);
		for (size_t i = 0; i < b->nunknown; i++)
			show("jansson unknown", b->unknown[i].p, b->unknown[i].n);
		fail("the parsers see different unknown fields", in, n, NULL,
		     NULL);
	}
}

/* Everything that must hold for the accepted line in[0..n) whose JSON is j. */
static void
check_accepted(const char *in, size_t n, const struct event *ev,
	       const struct buf *j)
{
	struct event e2;
	struct buf j2 = { 0 }, avro = { 0 };
	char err[256];
	size_t used = 0;

	check_str(in, n, &ev->event_id, "event_id");
	check_str(in, n, &ev->user, "user");
	check_str(in, n, &ev->item, "item");
	check_str(in, n, &ev->session, "session");
	check_str(in, n, &ev->query, "query");
	check_str(in, n, &ev->source, "source");
	for (size_t i = 0; i < ev->nattrs; i++) {
		check_str(in, n, &ev->attrs[i].key, "attrs key");
		check_str(in, n, &ev->attrs[i].val, "attrs value");
	}

	/* The output is canonical: it parses, on both paths, to itself. */
	event_init(&e2);
	if (event_parse_json(&e2, j->p, j->n, err, sizeof err) != 0) {
		fprintf(stderr, "lean: %s\n", err);
		fail("own output rejected by event_parse_json", in, n, j, NULL);
	}
	to_json(&j2, &e2);
	if (!same(j, &j2))
		fail("output not idempotent through event_parse_json", in, n,
		     j, &j2);
	if (event_parse_jansson(&e2, j->p, j->n, err, sizeof err) != 0) {
		fprintf(stderr, "jansson: %s\n", err);
		fail("own output rejected by event_parse_jansson", in, n, j,
		     NULL);
	}
	to_json(&j2, &e2);
	if (!same(j, &j2))
		fail("output not idempotent through event_parse_jansson", in,
		     n, j, &j2);

	/* JSON -> Avro -> JSON gives the same bytes. */
	avro_encode_event(&avro, ev);
	if (avro_decode_event(avro.p, avro.n, &used, &e2) != 0)
		fail("avro_decode_event rejects avro_encode_event output", in,
		     n, j, NULL);
	if (used != avro.n)
		fail("avro_decode_event did not consume the whole record", in,
		     n, j, NULL);
	to_json(&j2, &e2);
	if (!same(j, &j2))
		fail("JSON -> Avro -> JSON changed the event", in, n, j, &j2);
	if (event_validate(&e2, err, sizeof err) != 0) {
		fprintf(stderr, "validate: %s\n", err);
		fail("event invalid after the Avro round trip", in, n, j, NULL);
	}

	event_free(&e2);
	buf_free(&j2);
	buf_free(&avro);
}

/* Unreadable bytes after every line: reads past its end fault at once. */
#define GUARD (64 << 10)

struct guarded {
	char *base, *p;
	size_t len;
};

static void
guarded_copy(struct guarded *g, const uint8_t *data, size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t body = (n + page - 1) / page * page + page;

	g->len = body + GUARD;
	g->base = mmap(NULL, g->len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->base == MAP_FAILED || mprotect(g->base + body, GUARD, PROT_NONE))
		abort();
	g->p = g->base + body - n;
	if (n)
		memcpy(g->p, data, n);
}

/*
 * Parse a longer line first, as a tool does when a long line comes before a
 * short one: the lean parser's token array then holds stale tokens that
 * point past the n bytes of the next line, into its guard, and reading one
 * faults.
 */
static void
prime(size_t n)
{
	static struct buf line;
	struct event ev;
	char err[256];

	line.n = 0;
	buf_putc(&line, '[');
	for (size_t i = 0; i < n; i++)
		buf_putc(&line, ' ');
	for (size_t i = 0; i < n + 8; i++)
		buf_puts(&line, "1,");
	buf_puts(&line, "1]");
	event_init(&ev);
	event_parse_json(&ev, line.p, line.n, err, sizeof err);
	event_free(&ev);
}

/* Both parsers on one line (no newline), each into a fresh event so that
 * their arenas start empty and grow while parsing. */
static void
check_line(const uint8_t *data, size_t n)
{
	struct guarded g;
	char *in;
	struct event lean, ref;
	struct buf jl = { 0 }, jr = { 0 };
	char errl[256], errr[256];
	int rl, rr;

	guarded_copy(&g, data, n);
	in = g.p;
	event_init(&lean);
	event_init(&ref);
	errl[0] = errr[0] = '\0';
	prime(n);
	rl = event_parse_json(&lean, in, n, errl, sizeof errl);
	rr = event_parse_jansson(&ref, in, n, errr, sizeof errr);
	if ((rl == 0) != (rr == 0)) {
		fprintf(stderr, "event_parse_json: %d %s\n", rl, rl ? errl : "");
		fprintf(stderr, "event_parse_jansson: %d %s\n", rr,
			rr ? errr : "");
		fail("the parsers disagree on acceptance", in, n, NULL, NULL);
	}
	/* The same reason in the rejects file (bad_json, unknown_type, ...):
	 * both return it, negated. */
	if (rl != rr) {
		fprintf(stderr, "event_parse_json: %s: %s\n",
			reject_reason_names[-rl], errl);
		fprintf(stderr, "event_parse_jansson: %s: %s\n",
			reject_reason_names[-rr], errr);
		fail("the parsers reject for different reasons", in, n, NULL,
		     NULL);
	}
	/* A line the canonical scan takes is one jansson accepts and whose
	 * event it writes back as the very bytes of the line. */
	struct event scan;
	event_init(&scan);
	if (event_scan_canonical(&scan, in, n)) {
		struct buf line = { (char *)in, n, n };
		if (rr != 0)
			fail("the canonical scan takes a line jansson rejects",
			     in, n, NULL, NULL);
		to_json(&jr, &ref);
		if (!same(&jr, &line))
			fail("the canonical scan takes a line that is not "
			     "written back as it is (second: jansson)", in, n,
			     &line, &jr);
	}
	event_free(&scan);
	if (rl == 0) {
		to_json(&jl, &lean);
		to_json(&jr, &ref);
		if (!same(&jl, &jr))
			fail("the parsers give different events "
			     "(first: lean, second: jansson)", in, n, &jl, &jr);
		check_unknown(in, n, &lean, &ref);
		check_accepted(in, n, &lean, &jl);
	}
	event_free(&lean);
	event_free(&ref);
	buf_free(&jl);
	buf_free(&jr);
	munmap(g.base, g.len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_line(data, size);
	if (size > 0 && data[size - 1] == '\n')
		check_line(data, size - 1);
	return 0;
}
