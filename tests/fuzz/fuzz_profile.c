/* fuzz_profile.c: libFuzzer target for the two binary forms of a profile (lib/profile.c): reco.Profile's encoding and the packed form of state files. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"
#include "profile.h"

/*
 * The input is decoded as a profile record, whichever form it is in. No
 * read may leave it. A record that decodes is written in both forms; each
 * must decode again to the same profile (the same JSON) and encode to the
 * same bytes: neither form loses anything the other keeps.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same(const struct buf *a, const struct buf *b, const char *what)
{
	if (a->n != b->n || memcmp(a->p, b->p, a->n) != 0) {
		fprintf(stderr, "fuzz_profile: %s differ\n", what);
		abort();
	}
}

/* Decode x into p, which must succeed. */
static void
decode(struct profile *p, const struct buf *x, const char *what)
{
	char err[256];

	if (profile_decode(p, x->p, x->n, err, sizeof err)) {
		fprintf(stderr, "fuzz_profile: %s does not decode: %s\n", what, err);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct profile *p = profile_new("", 0), *q = profile_new("", 0);
	struct buf avro = { 0 }, packed = { 0 }, again = { 0 }, j1 = { 0 },
		   j2 = { 0 };
	char err[256];

	if (profile_decode(p, (const char *)data, size, err, sizeof err) == 0) {
		profile_encode(&avro, p);
		profile_pack(&packed, p);
		if (packed.n == 0 || (unsigned char)packed.p[0] != PROFILE_PACKED)
			abort();
		profile_write_json(&j1, p);

		decode(q, &packed, "the packed form");
		profile_write_json(&j2, q);
		same(&j1, &j2, "JSON before and after packing");
		profile_pack(&again, q);
		same(&packed, &again, "packed forms");
		again.n = 0;
		profile_encode(&again, q);
		same(&avro, &again, "encodings of the packed profile");

		decode(q, &avro, "the encoding");
		again.n = 0;
		profile_pack(&again, q);
		same(&packed, &again, "packed forms of the encoding");
	}
	profile_free(p);
	profile_free(q);
	buf_free(&avro);
	buf_free(&packed);
	buf_free(&again);
	buf_free(&j1);
	buf_free(&j2);
	return 0;
}
