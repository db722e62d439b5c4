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

/*
 * MurmurHash2 as Kafka's Java client computes it for keys (Utils.murmur2:
 * seed 0x9747b28c, little-endian 4-byte blocks), which librdkafka's
 * murmur2_random partitioner copies: a key's partition of N is
 * (murmur2_kafka(key) & 0x7fffffff) % N.
 */
uint32_t
murmur2_kafka(const void *p, size_t n)
{
	const uint32_t m = 0x5bd1e995;
	const unsigned char *d = p;
	uint32_t h = 0x9747b28c ^ (uint32_t)n;
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 |
			     (uint32_t)d[i + 2] << 16 | (uint32_t)d[i + 3] << 24;
		k *= m;
		k ^= k >> 24;
		k *= m;
		h *= m;
		h ^= k;
	}
	switch (n & 3) {
	case 3:
		h ^= (uint32_t)d[i + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)d[i + 1] << 8;
		/* fall through */
	case 1:
		h ^= d[i];
		h *= m;
	}
	h ^= h >> 13;
	h *= m;
	h ^= h >> 15;
	return h;
}
