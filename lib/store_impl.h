/* store_impl.h: what the parts of the profile store share: the store itself, its table of profiles, and the table of backends (store.c: the API, the table and memory only; store_file.c: the embedded state file; store_redis.c: Redis). */
#ifndef STORE_IMPL_H
#define STORE_IMPL_H

#include <sys/stat.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "reco.h"
#include "profile.h"
#include "store.h"
#include "ledger.h"
#include "lock.h"

#define NIL UINT32_MAX
#define REDIS_CHUNK 1000 /* keys per MGET */

/*
 * A user's place in the table. A writer's profile that was not touched
 * for a while (beyond the --hot-users most recent) is packed (p NULL, pk its encoding after a 4-byte length,
 * one allocation) and unpacked when touched again: a long tail of users
 * costs their encoding, not their decoded form.
 */
enum { LIST_LRU, LIST_HOT };

struct slot {
	struct profile *p;  /* NULL and pk NULL: a free slot (next free in same) */
	unsigned char *pk;  /* the packed profile, when p is NULL: its
			     * length and encoding, in the arena or owned */
	uint64_t h;
	uint32_t same;      /* the next slot with the same hash */
	/* Two lists of slots, least recently used first: all of them
	 * (Redis's cache, memory only), and the unpacked ones (packing). */
	struct slot_link { uint32_t prev, next; } link[2];
	uint8_t changed;
	uint8_t pk_owned;   /* pk is an allocation of its own */
};
#define STORE_HOT_USERS 16384 /* a writer's unpacked profiles, at most
			       * (beyond those of the current batch) */

struct store_backend;

struct store {
	int kind, mode;
	const struct store_backend *be;
	char *spec;
	struct store_opts o;
	struct store_counts c;
	/* the profiles in memory: all of them (embedded) or a cache (Redis) */
	struct htab idx;     /* hash of the user -> first slot */
	struct slot *slots;
	uint32_t nslots, capslots, free_slot;
	struct slot_list { uint32_t head, tail, n; } lists[2]; /* LIST_* */
	uint64_t packed_bytes;
	int pack;            /* pack cold profiles (a writer, not Redis) */
	struct profile *each; /* a packed profile unpacked for store_each */
	struct buf pkbuf;
	struct buf arena;    /* a writer's loaded state file: its profiles
			      * stay there, packed, until touched */
	uint64_t nusers;
	uint32_t *changed;
	size_t nchanged, capchanged;
	struct profile **list;
	uint32_t *order;     /* slots sorted by user (store_sorted) */
	size_t caplist;
	/* source positions and the population, saved with the profiles */
	struct ledger L;
	int meta_dirty;
	int clean;           /* the state file holds what memory holds */
	struct profile_stats stats;
	uint64_t since_checkpoint;
	/* the embedded file, to notice a replacement; the writer's lock */
	struct stat st;
	struct lock *lock;
	/* Redis */
	redisContext *rc;
	char *host, *user, *password;
	int port, db;
	struct buf key, val, cmd, resp;
	struct profile *scratch;
	char *lease_tok, *lease_gen; /* a writer's lease, once held */
	double lease_at;     /* when it was last taken or renewed */
};

/*
 * A backend: where profiles live beside the table in memory. The API
 * (store.c) calls these where the backends differ; a NULL entry does
 * nothing (or, for get, finds nothing beyond the table).
 */
struct store_backend {
	int kind;       /* STORE_MEMORY, STORE_FILE or STORE_REDIS */
	int lru;        /* the table keeps its users in LRU order */
	int refuse_new; /* store_touch refuses users past --max-users */
	int refuse_put; /* store_put refuses users past --max-users */
	int (*open)(struct store *s, char *err, size_t errlen);
	void (*close)(struct store *s);
	/* A reader's user not in the table (not kept in it). */
	int (*get)(struct store *s, const char *user, size_t n,
		   struct profile **p, char *err, size_t errlen);
	/* Bring users not in the table into it. */
	int (*fetch)(struct store *s, const struct str *users, size_t n,
		     char *err, size_t errlen);
	int (*refresh)(struct store *s, char *err, size_t errlen);
	int (*each)(struct store *s, int (*fn)(struct profile *, void *),
		    void *ctx, char *err, size_t errlen);
	int (*commit_due)(const struct store *s, int checkpoint_now);
	/* Make the batch durable; settle then tidies up after it (commits:
	 * the count of commits before). */
	int (*commit)(struct store *s, int checkpoint_now, char *err,
		      size_t errlen);
	void (*settle)(struct store *s, uint64_t commits);
};

extern const struct store_backend store_memory_backend;
extern const struct store_backend store_file_backend;
extern const struct store_backend store_redis_backend;

static inline double
store_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* store.c: the table of profiles. */
uint64_t store_user_hash(const char *u, size_t n);
int store_user_is(const struct profile *p, const char *u, size_t n);
uint32_t store_table_find(const struct store *s, const char *u, size_t n, uint64_t h);
uint32_t store_table_insert(struct store *s, struct profile *p);
void store_table_remove(struct store *s, uint32_t i);
void store_lru_unlink(struct store *s, uint32_t i);
void store_lru_append(struct store *s, uint32_t i);
size_t store_sorted(struct store *s);
struct str store_slot_user(const struct store *s, uint32_t i);
uint32_t store_table_insert_packed(struct store *s, const char *pk, uint64_t h);
uint32_t store_table_insert_repacked(struct store *s, struct profile *p,
				     uint64_t h);
struct profile *store_slot_profile(struct store *s, uint32_t i);
void store_slot_encode(struct store *s, uint32_t i, struct buf *b);
int store_profile_cmp(const void *a, const void *b);

#endif
