/* store_file.c: the embedded store: every profile in memory, saved whole to a state file (state.c's atomic writes, a CRC-32 over all of it), one writer at a time by a lock. */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_impl.h"

#define STATE_VERSION 3 /* 1: no windows (read, every window full); 1 and
			  * 2: profiles in reco.Profile's encoding (read,
			  * packed again), 3: packed (profile_pack) */

static const char state_magic[] = "reco-profile state\n";
#define STATE_MAGIC_LEN (sizeof state_magic - 1)

/* ---- the embedded state file ---- */

static void
put_meta(struct buf *b, struct store *s)
{
	struct buf st = { 0 };

	ledger_encode(b, &s->L);
	profile_stats_encode(&st, &s->stats);
	buf_put_bytes(b, st.p, st.n);
	buf_free(&st);
}

/* Write the state file: the magic line, the version, the positions, the
 * population, the profiles sorted by user, a CRC-32 of all before it. */
static int
checkpoint(struct store *s, char *err, size_t errlen)
{
	double t0 = store_now();
	struct statew *w = state_begin(s->spec, err, errlen);
	struct buf b = { 0 }, one = { 0 };
	uint32_t crc = 0;
	size_t n;
	unsigned char tail[4];

	if (!w)
		return -1;
	buf_put(&b, state_magic, STATE_MAGIC_LEN);
	buf_put_varint(&b, STATE_VERSION);
	put_meta(&b, s);
	n = store_sorted(s);
	buf_put_varint(&b, (int64_t)n);
	for (size_t i = 0; i < n; i++) {
		one.n = 0;
		store_slot_encode(s, s->order[i], &one);
		buf_put_bytes(&b, one.p, one.n);
		if (b.n >= (1u << 20)) {
			crc = crc32_any(crc, b.p, b.n);
			state_write(w, b.p, b.n);
			b.n = 0;
		}
	}
	crc = crc32_any(crc, b.p, b.n);
	for (int i = 0; i < 4; i++)
		tail[i] = (unsigned char)(crc >> (8 * i));
	buf_put(&b, tail, 4);
	state_write(w, b.p, b.n);
	buf_free(&b);
	buf_free(&one);
	if (state_commit(w, err, errlen))
		return -1;
	stat(s->spec, &s->st);
	s->since_checkpoint = 0;
	s->clean = 1;
	s->c.checkpoints++;
	s->c.checkpoint_s = store_now() - t0;
	return 0;
}

/* Read the state file into memory. Return 0 (also when there is none), or
 * -1 with the reason in err. */
static int
load_file(struct store *s, char *err, size_t errlen)
{
	double t0 = store_now();
	struct buf b = { 0 };
	const char *p, *e;
	int64_t n, version;
	struct str x;
	int r;

	if (stat(s->spec, &s->st) != 0)
		memset(&s->st, 0, sizeof s->st);
	r = state_load(s->spec, &b, err, errlen);
	if (r <= 0) {
		buf_free(&b);
		return r;
	}
	if (b.n < STATE_MAGIC_LEN + 4 ||
	    memcmp(b.p, state_magic, STATE_MAGIC_LEN) != 0) {
		snprintf(err, errlen, "%s: not a reco-profile state file", s->spec);
		goto fail;
	}
	p = b.p + STATE_MAGIC_LEN;
	e = b.p + b.n - 4;
	if (!state_crc_ok(b.p, b.n)) {
		snprintf(err, errlen, "%s: corrupt state file (checksum)", s->spec);
		goto fail;
	}
	if (get_varint(&p, e, &version) || version < 1 || version > STATE_VERSION) {
		snprintf(err, errlen, "%s: state file version %lld; this reco-profile reads versions 1 to %d",
			 s->spec, (long long)version, STATE_VERSION);
		goto fail;
	}
	/* Version 1 has no windows: every position up to pos is applied. */
	if (ledger_decode(&p, e, &s->L, version > 1))
		goto corrupt;
	if (get_bytes(&p, e, &x) || profile_stats_decode(&s->stats, x.p, x.n))
		goto corrupt;
	if (get_varint(&p, e, &n) || n < 0 || n > e - p)
		goto corrupt;
	if (s->o.max_users && (uint64_t)n > s->o.max_users) {
		snprintf(err, errlen, "%s: %lld users, more than --max-users %llu",
			 s->spec, (long long)n, (unsigned long long)s->o.max_users);
		goto fail;
	}
	htab_free(&s->idx);
	htab_init(&s->idx, (size_t)n);
	/* A writer keeps the profiles packed as the file has them (each
	 * checked by decoding it once), or as it would have them, from an
	 * older version; a reader, decoded. */
	struct profile *pr = profile_new("", 0);
	while (n-- > 0) {
		const char *at = p;
		if (get_bytes(&p, e, &x) || profile_decode(pr, x.p, x.n, err, errlen))
			break;
		struct str u = profile_str(pr, pr->user);
		uint64_t h = store_user_hash(u.p, u.n);
		if (store_table_find(s, u.p, u.n, h) != NIL)
			break;
		if (s->pack && version < 3)
			store_table_insert_repacked(s, pr, h);
		else if (s->pack)
			store_table_insert_packed(s, at, h);
		else {
			store_table_insert(s, pr);
			pr = profile_new("", 0);
		}
	}
	profile_free(pr);
	if (n >= 0)
		goto corrupt;
	if (p != e)
		goto corrupt;
	/* A writer's packed profiles are in the file's bytes: they stay. */
	if (s->pack && version >= 3) {
		buf_free(&s->arena);
		s->arena = b;
	} else
		buf_free(&b);
	s->clean = 1;
	s->c.load_s = store_now() - t0;
	return 0;
corrupt:
	snprintf(err, errlen, "%s: corrupt state file", s->spec);
fail:
	buf_free(&b);
	return -1;
}

/* Remove the temporary files (PATH.tmp.PID) that writers killed during a
 * checkpoint left behind, if their process is gone. */
static void
remove_stale_tmp(const char *path)
{
	char *d = xstrdup(path), *b = xstrdup(path), *dir, *base;
	size_t bn;
	DIR *dp;
	struct dirent *de;

	dir = dirname(d);
	base = basename(b);
	bn = strlen(base);
	if (!(dp = opendir(dir)))
		goto out;
	while ((de = readdir(dp))) {
		char *end;
		long pid;
		if (strncmp(de->d_name, base, bn) != 0 ||
		    strncmp(de->d_name + bn, ".tmp.", 5) != 0)
			continue;
		pid = strtol(de->d_name + bn + 5, &end, 10);
		if (*end || pid <= 0 || (kill((pid_t)pid, 0) == -1 && errno != ESRCH))
			continue;
		if (pid == (long)getpid() || kill((pid_t)pid, 0) == -1) {
			char *full = xmalloc(strlen(dir) + strlen(de->d_name) + 2);
			sprintf(full, "%s/%s", dir, de->d_name);
			unlink(full);
			free(full);
		}
	}
	closedir(dp);
out:
	free(d);
	free(b);
}

/* ---- the backend ---- */

static int
file_open(struct store *s, char *err, size_t errlen)
{
	if (s->mode == STORE_READ) {
		struct stat st;
		if (stat(s->spec, &st) != 0) {
			snprintf(err, errlen, "%s: %s", s->spec, strerror(errno));
			return -1;
		}
	}
	if (s->mode == STORE_WRITE && !(s->lock = lock_take(s->spec, err, errlen)))
		return -1;
	if (load_file(s, err, errlen))
		return -1;
	if (s->mode == STORE_WRITE) {
		remove_stale_tmp(s->spec);
		/* Fail now, not at the first checkpoint, if it cannot be
		 * written. */
		struct statew *w = state_begin(s->spec, err, errlen);
		if (!w)
			return -1;
		state_abort(w);
	}
	return 0;
}

static void
file_close(struct store *s)
{
	lock_free(s->lock);
	s->lock = NULL;
}

/* A reader: load the file again if it was replaced since (a writer's
 * checkpoint). */
static int
file_refresh(struct store *s, char *err, size_t errlen)
{
	struct stat st;
	struct store *t;

	if (s->mode != STORE_READ)
		return 0;
	if (stat(s->spec, &st) != 0) {
		snprintf(err, errlen, "%s: %s", s->spec, strerror(errno));
		return -1;
	}
	if (st.st_ino == s->st.st_ino && st.st_dev == s->st.st_dev &&
	    st.st_size == s->st.st_size &&
	    st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec)
		return 0;
	if (!(t = store_open(s->spec, STORE_READ, &s->o, err, errlen)))
		return -1;
	/* Swap the contents, keep the handle. */
	struct store tmp = *s;
	*s = *t;
	*t = tmp;
	store_close(t);
	return 1;
}

static int
file_commit_due(const struct store *s, int checkpoint_now)
{
	/* A checkpoint writes every profile: by default, not more often
	 * than one event per profile held, so that its cost per event stays
	 * bounded however many users there are. */
	uint64_t every = s->o.checkpoint_every;
	if (s->o.checkpoint_auto && every && s->nusers > every)
		every = s->nusers;
	return !s->clean && (checkpoint_now || (every && s->since_checkpoint >= every));
}

static int
file_commit(struct store *s, int checkpoint_now, char *err, size_t errlen)
{
	return file_commit_due(s, checkpoint_now) ? checkpoint(s, err, errlen) : 0;
}

static void
file_settle(struct store *s, uint64_t commits)
{
	(void)commits;
	ledger_clean(&s->L);
}

const struct store_backend store_file_backend = {
	.kind = STORE_FILE,
	.refuse_new = 1,
	.refuse_put = 1,
	.open = file_open,
	.close = file_close,
	.refresh = file_refresh,
	.commit_due = file_commit_due,
	.commit = file_commit,
	.settle = file_settle,
};
