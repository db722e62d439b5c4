/* hash.c: a fast 64-bit hash for derived ids, shards and hash tables. */
#include <stdint.h>
#include <string.h>

#include "reco.h"

/* The hash is part of the data contract (derived event ids and --shard
 * depend on it): never change it without a schema version bump. */
#define K1 0x9e3779b97f4a7c15ULL
#define K2 0xbf58476d1ce4e5b9ULL
#define K3 0x94d049bb133111ebULL

static inline uint64_t
mix(uint64_t x)
{
	x ^= x >> 30;
	x *= K2;
	x ^= x >> 27;
	x *= K3;
	x ^= x >> 31;
	return x;
}

/* Hash n bytes at p; the same bytes and seed give the same value on every
 * platform (words are read little-endian). */
uint64_t
hash64(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *s = p;
	uint64_t h = seed ^ (n * K1), w;
	size_t i;

	for (i = 0; i + 8 <= n; i += 8) {
		w = (uint64_t)s[i] | (uint64_t)s[i + 1] << 8 |
		    (uint64_t)s[i + 2] << 16 | (uint64_t)s[i + 3] << 24 |
		    (uint64_t)s[i + 4] << 32 | (uint64_t)s[i + 5] << 40 |
		    (uint64_t)s[i + 6] << 48 | (uint64_t)s[i + 7] << 56;
		h = mix(h ^ mix(w + K1)) * K1;
	}
	w = 0;
	for (size_t j = 0; i + j < n; j++)
		w |= (uint64_t)s[i + j] << (8 * j);
	h = mix(h ^ mix(w + K1 + (n & 7)));
	return h;
}

/* Write h as 16 lower-case hex digits and a NUL. */
void
hash_hex16(uint64_t h, char out[17])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--) {
		out[i] = hex[h & 15];
		h >>= 4;
	}
	out[16] = '\0';
}
