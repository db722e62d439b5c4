/* fuzz_avro.c: fuzzing of the Avro event codec, of the container file reader and of the message reader (Confluent and single-object messages, framed by length or delimiter). */
#define _GNU_SOURCE /* memfd_create */
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
const char *__asan_default_options(void);
const char *__lsan_default_suppressions(void);

/* No input of at most a few kilobytes holds this many records. */
#define MAX_CALLS 100000

/* Undefined behaviour is a finding too, not a warning to scroll past. */
const char *
__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

/*
 * Avro C allocates a string's declared length before reading it, so a few
 * bytes of a file read through schema resolution can ask for terabytes:
 * make such a request fail as it would without the sanitizer (Avro C then
 * reports an error) instead of stopping the run.
 */
const char *
__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=1024";
}

/*
 * Avro C (1.11) leaks the buffer of a string or bytes value that a record
 * cuts short; its frames do not unwind into our code anyway. Leaks of what
 * we allocate, jansson's included, are still reported.
 */
const char *
__lsan_default_suppressions(void)
{
	return "leak:libavro.so\n";
}

static void
fail(const char *why, const struct buf *a, const struct buf *b)
{
	fprintf(stderr, "fuzz_avro: %s\n", why);
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

/*
 * One record from arbitrary bytes: no read outside them, and what decodes
 * re-encodes canonically (encode(decode(encode(x))) == encode(x)) and to the
 * same event.
 */
static void
check_record(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1); /* exact size: overreads show */
	struct event ev, ev2;
	struct buf j1 = { 0 }, j2 = { 0 }, e1 = { 0 }, e2 = { 0 };
	size_t used = 0;

	if (!in)
		abort();
	if (size)
		memcpy(in, data, size);
	event_init(&ev);
	event_init(&ev2);
	if (avro_decode_event(in, size, &used, &ev) == 0) {
		if (used > size)
			fail("avro_decode_event used more bytes than it had",
			     NULL, NULL);
		event_write_json(&j1, &ev);
		avro_encode_event(&e1, &ev);
		if (avro_decode_event(e1.p, e1.n, &used, &ev2) != 0)
			fail("avro_decode_event rejects avro_encode_event "
			     "output", &j1, NULL);
		if (used != e1.n)
			fail("re-encoded record not consumed whole", &j1, NULL);
		event_write_json(&j2, &ev2);
		if (!same(&j1, &j2))
			fail("decode -> encode -> decode changed the event",
			     &j1, &j2);
		avro_encode_event(&e2, &ev2);
		if (!same(&e1, &e2))
			fail("re-encoding is not canonical", &e1, &e2);
	}
	event_free(&ev);
	event_free(&ev2);
	buf_free(&j1);
	buf_free(&j2);
	buf_free(&e1);
	buf_free(&e2);
	free(in);
}

/*
 * A valid event read from Avro must also be a valid NDJSON line: a tool
 * downstream reads what this one wrote.
 */
static void
check_as_json(const struct event *ev)
{
	struct buf j = { 0 }, j2 = { 0 };
	struct event e2;
	char err[256];

	event_init(&e2);
	event_write_json(&j, ev);
	if (event_parse_json(&e2, j.p, j.n, err, sizeof err) != 0) {
		fprintf(stderr, "event_parse_json: %s\n", err);
		fail("an event accepted from Avro is rejected as NDJSON", &j,
		     NULL);
	}
	event_write_json(&j2, &e2);
	if (!same(&j, &j2))
		fail("an event from Avro changes through NDJSON", &j, &j2);
	event_free(&e2);
	buf_free(&j);
	buf_free(&j2);
}

/* A memory file: its descriptor, and a path that opens it anew. */
struct memfile {
	int fd;
	char path[64];
};

static void
memfile_init(struct memfile *m, const char *name)
{
	if (m->path[0])
		return;
	m->fd = memfd_create(name, 0);
	if (m->fd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
}

static void
memfile_set(struct memfile *m, const void *p, size_t n)
{
	/* A writer on a dup of fd writes at their shared offset. */
	if (ftruncate(m->fd, 0) != 0 || lseek(m->fd, 0, SEEK_SET) != 0 ||
	    (n && pwrite(m->fd, p, n, 0) != (ssize_t)n)) {
		perror("memfd");
		abort();
	}
}

/*
 * Read path as evin.c reads an Avro file: header, then records until the
 * end or an error that ends the file. Append the JSON of every accepted
 * event to jsons and write the event to out if not NULL. Return the last
 * value of avro_in_next (0 at a clean end), -3 if the header was refused;
 * count the rejected records in *rejected.
 */
static int
read_file(char *path, struct buf *jsons, struct avro_out *out, int *rejected)
{
	char *files[1] = { path };
	char err[512];
	struct src *s;
	struct avro_in *a;
	struct event ev;
	struct buf raw = { 0 };
	int r = -3;

	*rejected = 0;
	s = src_new(files, 1, 1 << 16);
	if (src_next_file(s) != 1) {
		fprintf(stderr, "%s\n", s->err);
		abort();
	}
	a = avro_in_open(s, err, sizeof err);
	if (a) {
		event_init(&ev);
		for (int calls = 0;; calls++) {
			if (calls == MAX_CALLS)
				fail("avro_in_next does not reach an end", NULL,
				     NULL);
			r = avro_in_next(a, &ev, err, sizeof err);
			if (r == 1) {
				if (event_validate(&ev, err, sizeof err) != 0) {
					fprintf(stderr, "%s\n", err);
					fail("avro_in_next returned an invalid "
					     "event", NULL, NULL);
				}
				check_as_json(&ev);
				event_write_json(jsons, &ev);
				buf_putc(jsons, '\n');
				if (out && avro_out_event(out, &ev))
					fail("avro_out_event failed", NULL, NULL);
			} else if (r == -1) {
				/* evin.c puts the rejected event in the
				 * rejects file as JSON. */
				(*rejected)++;
				raw.n = 0;
				event_write_json(&raw, &ev);
			} else if (r == 0 || r == -2)
				break;
			else
				fail("avro_in_next returned an unknown value",
				     NULL, NULL);
			(void)avro_in_block(a);
			(void)avro_in_record(a);
		}
		event_free(&ev);
		avro_in_free(a);
	}
	buf_free(&raw);
	src_free(s);
	return r;
}

/*
 * The container reader on the bytes as a file; then the events it accepted
 * written again by avro_out (null or deflate codec) must read back the
 * same, with no error.
 */
static void
check_container(const uint8_t *data, size_t size)
{
	static struct memfile in, again;
	struct buf j1 = { 0 }, j2 = { 0 };
	struct wout *w;
	struct avro_out *out;
	int rejected, r;

	memfile_init(&in, "fuzz_avro_in");
	memfile_init(&again, "fuzz_avro_again");
	memfile_set(&in, data, size);
	memfile_set(&again, NULL, 0);
	w = wout_fd(dup(again.fd), "again");
	out = avro_out_new(w, size % 2 ? CODEC_DEFLATE : CODEC_NULL);
	read_file(in.path, &j1, out, &rejected);
	if (avro_out_close(out) || wout_close(w))
		fail("writing the events again failed", NULL, NULL);
	r = read_file(again.path, &j2, NULL, &rejected);
	if (r != 0 || rejected)
		fail("the events written again do not read back cleanly",
		     &j1, &j2);
	if (!same(&j1, &j2))
		fail("the events written again read back different", &j1, &j2);
	buf_free(&j1);
	buf_free(&j2);
}

/*
 * Read path as evin.c reads Avro messages (no registry; framed by their
 * length, or by delim if not NULL): append the JSON of every accepted
 * event to jsons and write it to out if not NULL. Return the number of
 * messages rejected.
 */
static int
read_messages(char *path, const char *delim, struct buf *jsons,
	      struct avro_out *out)
{
	char *files[1] = { path };
	char err[512];
	struct src *s = src_new(files, 1, 1 << 12);
	struct msg_in *m;
	struct event ev;
	int rejected = 0, why, r;

	if (src_next_file(s) != 1)
		abort();
	m = msg_in_new(s, NULL, delim, delim ? strlen(delim) : 0);
	event_init(&ev);
	for (int calls = 0;; calls++) {
		if (calls == MAX_CALLS)
			fail("msg_in_next does not reach an end", NULL, NULL);
		r = msg_in_next(m, &ev, 1 << 12, &why, err, sizeof err);
		if (r == 0)
			break;
		if (r == 1) {
			if (event_validate(&ev, err, sizeof err) != 0)
				fail("msg_in_next returned an invalid event", NULL, NULL);
			check_as_json(&ev);
			event_write_json(jsons, &ev);
			buf_putc(jsons, '\n');
			if (out && avro_out_event(out, &ev) == -1)
				fail("writing a message failed", NULL, NULL);
		} else if (r == -1) {
			const char *raw;
			size_t n;
			msg_in_raw(m, &raw, &n);
			if (why <= RJ_NONE || why >= RJ_N)
				fail("a rejected message without a reason", NULL, NULL);
			rejected++;
		} else if (r != -2)
			fail("msg_in_next returned an unexpected value", NULL, NULL);
	}
	event_free(&ev);
	msg_in_free(m);
	src_free(s);
	return rejected;
}

/*
 * The message reader on the bytes, framed by length and by a newline; the
 * events it accepted, written again as single-object messages, must read
 * back the same with no reject.
 */
static void
check_messages(const uint8_t *data, size_t size)
{
	static struct memfile in, again;
	static const unsigned char head[10] = { 0xc3, 0x01 };
	const char *delim = size % 2 ? "\n" : NULL;
	struct buf j1 = { 0 }, j2 = { 0 };
	struct wout *w;
	struct avro_out *out;
	unsigned char h[10];
	uint64_t fp;

	memfile_init(&in, "fuzz_msg_in");
	memfile_init(&again, "fuzz_msg_again");
	memfile_set(&in, data, size);
	memfile_set(&again, NULL, 0);
	if (avro_fingerprint(event_avsc, &fp))
		fail("the event schema has no fingerprint", NULL, NULL);
	memcpy(h, head, 2);
	for (int k = 0; k < 8; k++)
		h[2 + k] = (unsigned char)(fp >> (8 * k));
	w = wout_fd(dup(again.fd), "again");
	out = avro_out_new_msg(w, event_avsc, h, sizeof h, NULL, 0);
	read_messages(in.path, delim, &j1, out);
	if (avro_out_close(out) || wout_close(w))
		fail("writing the messages again failed", NULL, NULL);
	if (read_messages(again.path, NULL, &j2, NULL) != 0)
		fail("the messages written again are rejected", &j1, &j2);
	if (!same(&j1, &j2))
		fail("the messages written again read back different", &j1, &j2);
	buf_free(&j1);
	buf_free(&j2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_record(data, size);
	check_container(data, size);
	check_messages(data, size);
	return 0;
}
