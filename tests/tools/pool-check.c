/* pool-check: the block pool (lib/pool.c) under random use, and a model whose neighbour lists are moved to a new pool often learning the same as one that never moves them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "pool.h"
#include "reco.h"

static const char usage_text[] =
"usage: pool-check unit [ops]\n"
"       pool-check learn FILE OUT1 OUT2 [MAX_ITEMS]\n"
"unit: check the classes, then run ops (default 200000) random allocations,\n"
"growths and frees over 5000 arrays whose bytes are checked as they move,\n"
"and a move of every array to a new pool; print the counters.\n"
"learn: learn the canonical NDJSON events of FILE twice, the second time\n"
"moving the neighbour lists to a new pool whenever an eighth of the pool is\n"
"free (whatever its size); write the snapshots to OUT1 and OUT2 and print\n"
"how many moves there were. MAX_ITEMS: the models keep at most that many\n"
"items (evictions free lists).\n";

#define NARR 5000

struct arr {
	unsigned char *b;
	size_t n;     /* bytes asked for */
	unsigned tag; /* the pattern of its bytes */
};

static int
fail(const char *what, size_t k)
{
	fprintf(stderr, "pool-check: %s (%zu)\n", what, k);
	return 1;
}

/* Byte j of an array of pattern tag. */
static unsigned char
pat(unsigned tag, size_t j)
{
	return (unsigned char)(tag * 31u + j * 7u + (j >> 8));
}

static void
fill(struct arr *a, size_t from)
{
	for (size_t j = from; j < a->n; j++)
		a->b[j] = pat(a->tag, j);
}

static int
intact(const struct arr *a)
{
	for (size_t j = 0; j < a->n; j++)
		if (a->b[j] != pat(a->tag, j))
			return 0;
	return 1;
}

/* A size: mostly small, now and then past POOL_MAX. */
static size_t
some_size(struct rng *r)
{
	uint64_t u = rng_below(r, 1000);

	if (u < 5)
		return POOL_MAX + 1 + (size_t)rng_below(r, POOL_MAX);
	if (u < 100)
		return 1 + (size_t)rng_below(r, 8192);
	return 1 + (size_t)rng_below(r, 1024);
}

/* Move every array into a new pool, a mapping at a time. */
static void
move_all(struct pool *p, struct arr *v)
{
	size_t nm = pool_maps(p, NULL, NULL, 0);
	char **start = xreallocarray(NULL, nm ? nm : 1, sizeof *start);
	size_t *size = xreallocarray(NULL, nm ? nm : 1, sizeof *size);
	struct pool np;

	pool_maps(p, start, size, nm);
	memset(&np, 0, sizeof np);
	np.large = p->large;
	np.moves = p->moves + 1;
	for (size_t k = 0; k < nm; k++) {
		for (size_t a = 0; a < NARR; a++) {
			if (!v[a].b || v[a].n > POOL_MAX || (char *)v[a].b < start[k] ||
			    (char *)v[a].b >= start[k] + size[k])
				continue;
			unsigned char *nb = pool_alloc(&np, v[a].n);
			memcpy(nb, v[a].b, v[a].n);
			v[a].b = nb;
		}
		pool_unmap(start[k], size[k]);
	}
	*p = np;
	free(size);
	free(start);
}

static int
unit(size_t ops)
{
	struct pool p;
	struct arr *v = xcalloc(NARR, sizeof *v);
	struct rng r;
	size_t grows = 0, frees = 0, allocs = 0, want = 0;

	/* The classes: a fit holds the size, is its own fit, and is at most
	 * an eighth larger (16 bytes below 128). */
	for (size_t s = 1; s <= POOL_MAX + 100; s++) {
		size_t f = pool_fit(s);
		if (f < s || pool_fit(f) != f || (s > POOL_MAX && f != s) ||
		    (s <= POOL_MAX && (f > s + (s <= 128 ? 15 : s / 8) || f % 16 != 0)))
			return fail("pool_fit", s);
	}
	memset(&p, 0, sizeof p);
	rng_seed(&r, 7);
	for (size_t op = 0; op < ops; op++) {
		size_t k = (size_t)rng_below(&r, NARR);
		struct arr *a = &v[k];
		uint64_t u = rng_below(&r, 10);
		if (!a->b) {
			a->n = some_size(&r);
			a->tag = (unsigned)op;
			a->b = pool_alloc(&p, a->n);
			fill(a, 0);
			allocs++;
		} else if (u < 6) {
			/* Grow, as a list does: a new block, the bytes over. */
			if (!intact(a))
				return fail("bytes changed before a growth", k);
			size_t n = a->n + a->n / 4 + 1 + (size_t)rng_below(&r, 64);
			unsigned char *b = pool_alloc(&p, n);
			memcpy(b, a->b, a->n);
			pool_free(&p, a->b, a->n);
			a->b = b;
			size_t old = a->n;
			a->n = n;
			fill(a, old);
			grows++;
		} else {
			if (!intact(a))
				return fail("bytes changed before a free", k);
			pool_free(&p, a->b, a->n);
			a->b = NULL;
			frees++;
		}
		if (op % 50000 == 49999 || pool_sparse(&p)) {
			size_t before = pool_bytes(&p);
			move_all(&p, v);
			if (pool_bytes(&p) > before)
				return fail("a move grew the pool", op);
			for (size_t j = 0; j < NARR; j++)
				if (v[j].b && !intact(&v[j]))
					return fail("bytes changed in a move", j);
		}
	}
	/* What is used is what the arrays hold, by their classes. */
	for (size_t k = 0; k < NARR; k++)
		if (v[k].b && v[k].n <= POOL_MAX)
			want += pool_fit(v[k].n);
	if (p.used != want)
		return fail("used bytes", p.used);
	if (p.carved < p.used || pool_bytes(&p) != p.carved + p.large)
		return fail("carved bytes", p.carved);
	printf("allocs %zu grows %zu frees %zu moves %zu used %zu carved %zu large %zu\n",
	       allocs, grows, frees, p.moves, p.used, p.carved, p.large);
	for (size_t k = 0; k < NARR; k++)
		if (v[k].b && v[k].n > POOL_MAX)
			pool_free(&p, v[k].b, v[k].n);
	if (p.large != 0)
		return fail("large bytes left", p.large);
	pool_clear(&p);
	free(v);
	return 0;
}

static int
learn(const char *in, const char *out1, const char *out2, uint64_t max_items)
{
	struct model_params mp;
	struct model *m[2];
	struct event ev;
	char err[512], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f = fopen(in, "r");

	if (!f)
		return fail("cannot open the events", 0);
	model_params_default(&mp);
	if (max_items)
		mp.max_items = max_items;
	m[0] = model_new(&mp);
	m[1] = model_new(&mp);
	m[1]->nbpool.sparse_min = 1;
	event_init(&ev);
	while ((len = getline(&line, &cap, f)) > 0) {
		if (event_parse_json(&ev, line, (size_t)len, err, sizeof err))
			continue;
		model_learn(m[0], &ev);
		model_learn(m[1], &ev);
	}
	free(line);
	fclose(f);
	event_free(&ev);
	if (model_save(m[0], out1, err, sizeof err) ||
	    model_save(m[1], out2, err, sizeof err)) {
		fprintf(stderr, "pool-check: %s\n", err);
		return 1;
	}
	printf("moves %zu %zu bytes %zu %zu used %zu\n", m[0]->nbpool.moves, m[1]->nbpool.moves,
	       pool_bytes(&m[0]->nbpool), pool_bytes(&m[1]->nbpool), m[0]->nbpool.used);
	model_free(m[0]);
	model_free(m[1]);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "unit") == 0)
		return unit(argc > 2 ? strtoull(argv[2], NULL, 10) : 200000);
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "learn") == 0)
		return learn(argv[2], argv[3], argv[4],
			     argc == 6 ? strtoull(argv[5], NULL, 10) : 0);
	fputs(usage_text, stderr);
	return 2;
}
