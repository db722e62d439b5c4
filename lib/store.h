/* store.h: profile stores (an embedded state file, or Redis) behind one API, for the tools that write and read reco.Profile. */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include "reco.h"
#include "profile.h"
#include "ledger.h"

/*
 * A store is named by a spec, the argument of --store:
 *   PATH                        the embedded store: a state file
 *   redis://[[USER]:PASS@]HOST[:PORT][/DB]   Redis (port 6379, db 0)
 *   NULL or ""                  memory only (nothing is kept after exit)
 *
 * Reading (reco-serve, reco-profile --get):
 *   s = store_open(spec, STORE_READ, NULL, err, sizeof err);
 *   r = store_get(s, user, n, &p, err, sizeof err);  1 found, 0 not, -1
 *   store_refresh(s, ...) reloads an embedded file that was replaced
 *   store_close(s);
 * The embedded store is loaded whole into memory; Redis is asked at each
 * store_get.
 *
 * Writing (reco-profile), one batch at a time:
 *   store_fetch(s, users)          bring the batch's users into memory
 *   store_check / store_touch / profile_apply / store_advance, per event
 *   store_changed(s, &list)        the profiles the batch changed
 *   store_commit(s, ...)           make the batch durable with its source
 *                                  positions, atomically
 * In the embedded store, a commit writes the state file every
 * checkpoint_every events (and always when forced); in Redis, every
 * commit is one MULTI/EXEC of the changed profiles and the positions.
 *
 * The source positions are a ledger (ledger.h), saved with the profiles.
 *
 * One writer per store: a writer of a state file holds a lock on FILE.lock
 * (flock) while it is open; a writer of Redis holds a lease, the key
 * PREFIXlease (PREFIXlease#I/N for a shard), renewed while it runs. A
 * second writer is refused with the holder's name. Readers take neither.
 */

enum { STORE_READ, STORE_WRITE };
enum { STORE_MEMORY, STORE_FILE, STORE_REDIS };
int store_spec_kind(const char *spec);

struct store_opts {
	uint64_t max_users;        /* embedded: refuse more users; 0: no limit */
	uint64_t cache_users;      /* Redis: profiles kept in memory */
	uint64_t hot_users;        /* a writer's profiles kept decoded beyond
				    * the batch's; the others packed */
	uint64_t checkpoint_every; /* embedded: events between state files */
	int checkpoint_auto;       /* ... or the users held, if more (the
				    * default, not --checkpoint-every) */
	const char *prefix;        /* Redis: key prefix */
	int retries;               /* Redis: reconnections before failing */
	int64_t timeout;           /* Redis: ms to wait for a reply */
	int64_t connect_timeout;   /* Redis: ms to connect; 0: timeout */
	int64_t backoff;           /* Redis: ms before the first retry,
				    * doubling after (at most 5 s) */
	int positions;             /* keep source positions (exactly-once) */
	uint64_t window;           /* positions per stream window, a multiple
				    * of 8; 0: only the highest position */
	uint64_t max_streams;      /* most streams (sources); 0: no limit */
	uint64_t max_jump;         /* a position more than this above its
				    * stream's high mark is refused; 0: any */
	const char *lease;         /* Redis: the writer's lease name (a
				    * shard's tag, "" for the whole store) */
	int64_t lease_ms;          /* Redis: lease expiry */
};
void store_opts_default(struct store_opts *o);

/* Counters a tool may publish as metrics. */
struct store_counts {
	uint64_t hits, misses, evictions, retries, checkpoints, commits;
	uint64_t users_evicted;  /* memory only: past max_users */
	double load_s, checkpoint_s; /* the last load and checkpoint */
};

/* A source position: a stream (Kafka topic and partition, or file) and
 * an offset or line in it. */

/* What store_check says of a position (see ledger_check). */
enum {
	STORE_NEW = LEDGER_NEW,
	STORE_REPLAYED = LEDGER_REPLAYED,
	STORE_BEYOND_WINDOW = LEDGER_BEYOND_WINDOW,
	STORE_JUMP = LEDGER_JUMP
};

struct store;

/* store.c */
struct store *store_open(const char *spec, int mode,
			 const struct store_opts *o, char *err, size_t errlen);
void store_close(struct store *s);
int store_kind(const struct store *s);
int store_get(struct store *s, const char *user, size_t n,
	      struct profile **p, char *err, size_t errlen);
int store_refresh(struct store *s, char *err, size_t errlen);
int store_each(struct store *s, int (*fn)(struct profile *, void *),
	       void *ctx, char *err, size_t errlen);

int store_fetch(struct store *s, const struct str *users, size_t n,
		char *err, size_t errlen);
struct profile *store_touch(struct store *s, const char *user, size_t n,
			    char *err, size_t errlen);
int store_put(struct store *s, struct profile *p, char *err, size_t errlen);
int store_source_parse(struct str source, struct str *stream, int64_t *pos);
int store_check(struct store *s, struct str source, struct ledger_pos *sp);
void store_advance(struct store *s, const struct ledger_pos *sp);
struct profile_stats *store_stats(struct store *s);
size_t store_changed(struct store *s, struct profile ***list);
int store_commit_due(const struct store *s, int checkpoint_now);
int store_commit(struct store *s, int checkpoint, char *err, size_t errlen);

uint64_t store_users(const struct store *s);
size_t store_bytes(const struct store *s);
const struct store_counts *store_counts(const struct store *s);

#endif
