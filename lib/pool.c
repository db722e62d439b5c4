/* pool.c: blocks of a few sizes, carved from large mappings (see pool.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pool.h"
#include "reco.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_ASAN 1
#endif
#endif
#ifdef POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(a, n) ASAN_POISON_MEMORY_REGION(a, n)
#define UNPOISON(a, n) ASAN_UNPOISON_MEMORY_REGION(a, n)
#else
#define POISON(a, n) ((void)(a), (void)(n))
#define UNPOISON(a, n) ((void)(a), (void)(n))
#endif

#define HUGE_PAGE ((size_t)2 << 20)
#define MAP_MAX ((size_t)256 << 20) /* the largest mapping asked for */

/* The head of a mapping, in its first bytes. */
struct pool_map {
	struct pool_map *next;
	size_t size;
};
#define MAP_HEAD 64 /* bytes kept for the head, so that blocks stay aligned */

/* The class of size bytes (0 < size <= POOL_MAX): 16 bytes apart up to
 * 128, then 8 classes to each power of two (a block is at most an
 * eighth larger than asked for). */
static unsigned
class_of(size_t size)
{
	if (size <= 128)
		return (unsigned)((size - 1) / 16);
	unsigned k = 63 - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
	unsigned j = (unsigned)((size - 1 - ((size_t)1 << k)) >> (k - 3));
	return 8 + (k - 7) * 8 + j;
}

static size_t
class_size(unsigned c)
{
	if (c < 8)
		return 16 * (size_t)(c + 1);
	c -= 8;
	unsigned k = 7 + c / 8, j = c % 8;
	return ((size_t)1 << k) + (size_t)(j + 1) * ((size_t)1 << (k - 3));
}

size_t
pool_fit(size_t size)
{
	return size > POOL_MAX ? size : class_size(class_of(size ? size : 1));
}

/* A new mapping with room for at least need bytes: a quarter of what the
 * pool has mapped, at least 2 MB, in whole huge pages and aligned to
 * them (the kernel backs such a range with huge pages when it can). */
static void
map_more(struct pool *p, size_t need)
{
	size_t size = p->mapped / 4;

	if (size > MAP_MAX)
		size = MAP_MAX;
	if (size < need + MAP_HEAD)
		size = need + MAP_HEAD;
	size = (size + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	char *raw = mmap(NULL, size + HUGE_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		die(EXIT_IO, "out of memory mapping %zu bytes for neighbour lists", size);
	char *base = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (base > raw)
		munmap(raw, (size_t)(base - raw));
	if (base + size < raw + size + HUGE_PAGE)
		munmap(base + size, (size_t)(raw + size + HUGE_PAGE - (base + size)));
#ifdef MADV_HUGEPAGE
	(void)madvise(base, size, MADV_HUGEPAGE);
#endif
	struct pool_map *h = (struct pool_map *)base;
	h->next = p->maps;
	h->size = size;
	p->maps = h;
	p->mapped += size;
	/* The rest of the old mapping is too small for this block: it
	 * stays unused (less than a block of the largest class). */
	p->at = base + MAP_HEAD;
	p->end = base + size;
	POISON(p->at, (size_t)(p->end - p->at));
}

void *
pool_alloc(struct pool *p, size_t size)
{
	if (size > POOL_MAX) {
		p->large += size;
		return xmalloc(size);
	}
	unsigned c = class_of(size ? size : 1);
	size_t n = class_size(c);
	char *b = p->free[c];
	p->used += n;
	if (b) {
		UNPOISON(b, n);
		memcpy(&p->free[c], b, sizeof(void *));
		return b;
	}
	if ((size_t)(p->end - p->at) < n)
		map_more(p, n);
	b = p->at;
	p->at += n;
	p->carved += n;
	UNPOISON(b, n);
	return b;
}

void
pool_free(struct pool *p, void *b, size_t size)
{
	if (!b)
		return;
	if (size > POOL_MAX) {
		p->large -= size;
		free(b);
		return;
	}
	unsigned c = class_of(size ? size : 1);
	p->used -= class_size(c);
	memcpy(b, &p->free[c], sizeof(void *));
	p->free[c] = b;
	POISON(b, class_size(c));
}

size_t
pool_bytes(const struct pool *p)
{
	return p->carved + p->large;
}

void
pool_clear(struct pool *p)
{
	struct pool_map *h = p->maps;

	while (h) {
		struct pool_map *next = h->next;
		UNPOISON(h, h->size);
		munmap(h, h->size);
		h = next;
	}
	memset(p, 0, sizeof *p);
}

int
pool_sparse(const struct pool *p)
{
	size_t min = p->sparse_min ? p->sparse_min : (size_t)16 << 20;

	return p->carved >= min && p->carved - p->used >= p->carved / 8;
}

size_t
pool_maps(const struct pool *p, char **start, size_t *size, size_t max)
{
	size_t n = 0;

	for (const struct pool_map *h = p->maps; h; h = h->next, n++) {
		if (n >= max)
			continue;
		/* Insertion by address: there are a few dozen at most. */
		size_t k = n;
		while (k > 0 && start[k - 1] > (char *)h) {
			start[k] = start[k - 1];
			size[k] = size[k - 1];
			k--;
		}
		start[k] = (char *)h;
		size[k] = h->size;
	}
	return n;
}

void
pool_unmap(char *start, size_t size)
{
	UNPOISON(start, size);
	munmap(start, size);
}
