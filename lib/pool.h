/* pool.h: blocks of a few sizes, carved from large mappings, for many small arrays that grow (a model's neighbour lists). */
#ifndef POOL_H
#define POOL_H

#include <stddef.h>

/*
 * A block's size is one of a few classes: 16 to 128 bytes by 16, then
 * eight to each power of two (144, 160, ... 256, 288, ...), up to
 * POOL_MAX; pool_fit says which, and a caller that grows an array takes
 * the whole class (it would be padding otherwise). A freed block waits
 * on its class's free list for the next block of that class. Blocks come
 * from mappings of 2 MB and more, aligned to 2 MB and marked for huge
 * pages where the kernel has them: carving is a pointer's step, and the
 * pages of a large model are a five-hundredth as many page faults and
 * TLB entries. Blocks larger than POOL_MAX are malloc's.
 *
 * Compared with malloc: no header, no search for a fit, no merging of
 * neighbours (a list that grows moves to the next class and leaves its
 * block to the next list that reaches that size). Arrays that all grow
 * leave their old blocks behind, which nothing of that size may come
 * to take: pool_sparse says when the free blocks have come to an eighth
 * of the pool, and the owner of the blocks (which alone knows where they
 * are) moves them, a mapping at a time, into a new pool (pool_maps,
 * pool_unmap), so that the memory held stays within a seventh above what
 * is used, and the move's peak within a mapping above it.
 *
 * Under AddressSanitizer, free blocks and the mappings' uncarved rest
 * are poisoned: a use after pool_free is reported as with free.
 */
#define POOL_MAX 65536
#define POOL_CLASSES (8 + 8 * 9) /* 16 .. 128, then 8 per power 144 .. 65536 */

struct pool {
	void *free[POOL_CLASSES]; /* free blocks of each class, a list */
	char *at, *end;           /* the current mapping's uncarved rest */
	struct pool_map *maps;    /* every mapping, newest first */
	size_t mapped;            /* bytes of the mappings */
	size_t carved;            /* bytes carved from them, in blocks */
	size_t used;              /* bytes of the carved blocks in use */
	size_t large;             /* bytes of the blocks above POOL_MAX */
	size_t sparse_min;        /* pool_sparse's least carved bytes, 0: 16 MB */
	size_t moves;             /* times the owner moved the blocks to a new pool */
};

/* The size of the class of size bytes (size itself past POOL_MAX). */
size_t pool_fit(size_t size);
/* A block of pool_fit(size) bytes; exits with a message if memory is out. */
void *pool_alloc(struct pool *p, size_t size);
/* Give back block b of size bytes (any size of the class it was given
 * for); NULL is ignored. */
void pool_free(struct pool *p, void *b, size_t size);
/* The bytes the pool holds: carved blocks, used or free, and large ones. */
size_t pool_bytes(const struct pool *p);
/* Unmap every mapping (large blocks must have been given back). */
void pool_clear(struct pool *p);
/* Whether an eighth or more of the carved bytes are in free blocks, in
 * a pool of 16 MB or more (sparse_min, if set). */
int pool_sparse(const struct pool *p);
/* The mappings, by address: up to max of their starts and sizes; the
 * number there are. */
size_t pool_maps(const struct pool *p, char **start, size_t *size, size_t max);
/* Unmap the mapping at start (of pool_maps), its blocks moved out: p
 * must then be given up for the pool they went to. */
void pool_unmap(char *start, size_t size);

#endif
