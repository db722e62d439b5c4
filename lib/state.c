/* state.c: atomic state files (temporary file, fsync, rename) and the varint encoding they use. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "reco.h"

struct statew {
	char *path, *tmp;
	int fd;
	struct buf b;
	int failed, err_no;
	uLong crc; /* of every byte written so far */
};

/*
 * Start writing path atomically. Return a writer, or NULL with the reason in
 * err. Nothing is visible at path until state_commit succeeds.
 */
struct statew *
state_begin(const char *path, char *err, size_t errlen)
{
	struct statew *w = xcalloc(1, sizeof *w);

	w->path = xstrdup(path);
	w->tmp = xmalloc(strlen(path) + 32);
	sprintf(w->tmp, "%s.tmp.%ld", path, (long)getpid());
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (w->fd < 0) {
		snprintf(err, errlen, "%s: %s", w->tmp, strerror(errno));
		free(w->path);
		free(w->tmp);
		free(w);
		return NULL;
	}
	w->crc = crc32(0L, Z_NULL, 0);
	return w;
}

static int
write_out(struct statew *w, const char *p, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = write(w->fd, p + off, n - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			w->failed = 1;
			w->err_no = errno;
			return -1;
		}
		off += (size_t)r;
	}
	return 0;
}

static int
flush(struct statew *w)
{
	int rc = write_out(w, w->b.p, w->b.n);

	w->b.n = 0;
	return rc;
}

/* Bytes gathered at most before a write: a snapshot is written while the
 * model is in memory, so the buffer adds to the peak. */
#define STATE_BUF (1u << 18)

/* Append bytes. Return 0, or -1 once writing has failed. A large piece
 * (a snapshot's section) goes straight to the file, not through the
 * buffer: no copy of it in memory. */
int
state_write(struct statew *w, const void *p, size_t n)
{
	if (w->failed)
		return -1;
	w->crc = crc32_any((uint32_t)w->crc, p, n);
	if (n >= STATE_BUF)
		return flush(w) || write_out(w, p, n) ? -1 : 0;
	if (w->b.n + n > STATE_BUF && flush(w))
		return -1;
	buf_put(&w->b, p, n);
	return 0;
}

/* Write what b holds and empty it, for callers that build records in a
 * buffer of their own. Return 0 or -1. */
int
state_put(struct statew *w, struct buf *b)
{
	int rc = state_write(w, b->p, b->n);

	b->n = 0;
	return rc;
}

/* Append the CRC-32 of everything written so far, little-endian: the
 * trailer of a checksummed state file (see state_body). */
int
state_put_crc(struct statew *w)
{
	char c[4];
	uint32_t v = (uint32_t)w->crc;

	for (int i = 0; i < 4; i++)
		c[i] = (char)(v >> (8 * i));
	return state_write(w, c, 4);
}

/*
 * Check a loaded checksummed state file: magic[0..mlen), a varint version
 * (returned in *version), the body, and the CRC-32 of all before it. On
 * success set *p and *e to the body and return 0; return STATE_FOREIGN if
 * the magic is not there, STATE_BAD_VERSION if the version is not want
 * (*version says which it is), STATE_CORRUPT if the checksum or the
 * framing is wrong.
 */
int
state_body(const struct buf *b, const char *magic, size_t mlen, int64_t want,
	   int64_t *version, const char **p, const char **e)
{
	if (b->n < mlen + 5 || memcmp(b->p, magic, mlen) != 0)
		return STATE_FOREIGN;
	*p = b->p + mlen;
	*e = b->p + b->n - 4;
	if (get_varint(p, *e, version))
		return STATE_CORRUPT;
	if (*version != want)
		return STATE_BAD_VERSION;
	return state_crc_ok(b->p, b->n) ? 0 : STATE_CORRUPT;
}

/* zlib's CRC-32 over any length (zlib takes at most 4 GiB at a time). */
uint32_t
crc32_any(uint32_t crc, const void *p, size_t n)
{
	const Bytef *b = p;

	while (n > 0) {
		uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
		crc = (uint32_t)crc32(crc, b, k);
		b += k;
		n -= k;
	}
	return crc;
}

/* 1 if the last 4 bytes of p[0..n) are the CRC-32 of all before them,
 * little-endian. */
int
state_crc_ok(const void *p, size_t n)
{
	const unsigned char *c = (const unsigned char *)p + n - 4;

	if (n < 4)
		return 0;
	return crc32_any(0, p, n - 4) ==
	       ((uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24);
}

/* Eight bytes, little-endian: ids' 64-bit hashes in state files. */
void
buf_put_u64le(struct buf *b, uint64_t v)
{
	char x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (char)(v >> (8 * i));
	buf_put(b, x, 8);
}

int
get_u64le(const char **p, const char *e, uint64_t *v)
{
	const unsigned char *s = (const unsigned char *)*p;

	if (e - *p < 8)
		return -1;
	*v = 0;
	for (int i = 0; i < 8; i++)
		*v |= (uint64_t)s[i] << (8 * i);
	*p += 8;
	return 0;
}

static void
sync_dir(const char *path)
{
	char *copy = xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	free(copy);
}

/* Make the file visible at its path. Return 0, or -1 with the reason in
 * err (the old file, if any, stays as it was). Frees w either way. */
int
state_commit(struct statew *w, char *err, size_t errlen)
{
	int rc = -1;

	if (!w->failed && flush(w) == 0 && fsync(w->fd) == 0) {
		if (close(w->fd) == 0) {
			w->fd = -1;
			if (rename(w->tmp, w->path) == 0) {
				sync_dir(w->path);
				rc = 0;
			}
		}
	}
	if (rc) {
		snprintf(err, errlen, "%s: %s", w->path,
			 strerror(w->failed ? w->err_no : errno));
		if (w->fd >= 0)
			close(w->fd);
		unlink(w->tmp);
	}
	buf_free(&w->b);
	free(w->path);
	free(w->tmp);
	free(w);
	return rc;
}

/* Drop the temporary file; path is untouched. */
void
state_abort(struct statew *w)
{
	if (!w)
		return;
	close(w->fd);
	unlink(w->tmp);
	buf_free(&w->b);
	free(w->path);
	free(w->tmp);
	free(w);
}

/* Read the whole file at path into out. Return 1, 0 if there is no such
 * file, or -1 with the reason in err. */
int
state_load(const char *path, struct buf *out, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	out->n = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Room for the whole file at once, and one byte to see its end: no
	 * copy as it grows, no room to spare. */
	struct stat st;
	if (out->cap == 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > 0) {
		out->cap = (size_t)st.st_size + 2;
		out->p = xmalloc(out->cap);
	}
	for (;;) {
		if (out->cap - out->n < 2)
			buf_reserve(out, 65536);
		r = read(fd, out->p + out->n, out->cap - out->n);
		if (r == 0)
			break;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		out->n += (size_t)r;
	}
	close(fd);
	return 1;
}

/* Append v as a zigzag varint (the Avro long encoding). */
void
buf_put_varint(struct buf *b, int64_t v)
{
	buf_reserve(b, 10);
	b->n = (size_t)(varint_put(b->p + b->n, v) - b->p);
}

/* Read a zigzag varint from *p (not past e). Return 0, or -1 if malformed. */
int
get_varint(const char **p, const char *e, int64_t *v)
{
	const unsigned char *s = (const unsigned char *)*p;

	if (varint_get(&s, (const unsigned char *)e, v))
		return -1;
	*p = (const char *)s;
	return 0;
}

/* Length-prefixed bytes. */
void
buf_put_bytes(struct buf *b, const void *p, size_t n)
{
	buf_put_varint(b, (int64_t)n);
	buf_put(b, p, n);
}

int
get_bytes(const char **p, const char *e, struct str *s)
{
	int64_t n;

	if (get_varint(p, e, &n) || n < 0 || n > e - *p)
		return -1;
	s->p = *p;
	s->n = (size_t)n;
	*p += n;
	return 0;
}
