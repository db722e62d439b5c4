/* io.c: byte input over a list of files with line splitting, and buffered output. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reco.h"

#define IO_BUF (1u << 20) /* a 1 MiB buffer saves 15-20% per stage */

static char *stdin_name[] = { "-" };

/*
 * Open a reader over files[0..nfiles) (none means stdin). Lines longer than
 * max_line are cut and flagged. The caller owns the result (src_free).
 */
struct src *
src_new(char **files, int nfiles, size_t max_line)
{
	struct src *s = xcalloc(1, sizeof *s);
	struct stat st;

	if (nfiles == 0) {
		files = stdin_name;
		nfiles = 1;
	}
	s->files = files;
	s->nfiles = nfiles;
	s->cur = -1;
	s->fd = -1;
	s->max_line = max_line;
	s->cap = IO_BUF;
	if (s->cap < max_line + 1)
		s->cap = max_line + 1;
	s->buf = xmalloc(s->cap);
	for (int i = 0; i < nfiles; i++) {
		int ok = strcmp(files[i], "-") == 0 ? fstat(0, &st) == 0
						    : stat(files[i], &st) == 0;
		if (ok && S_ISREG(st.st_mode))
			s->total_size += (uint64_t)st.st_size;
	}
	return s;
}

void
src_free(struct src *s)
{
	if (!s)
		return;
	if (s->fd > 0)
		close(s->fd);
	free(s->buf);
	free(s->head);
	free(s);
}

/*
 * Move to the next file. Return 1 when one is open, 0 when all are done, -1
 * if it cannot be opened (the reason is in s->err).
 */
int
src_next_file(struct src *s)
{
	struct stat st;

	if (s->fd > 0)
		close(s->fd);
	s->fd = -1;
	if (s->cur >= 0)
		s->done_size += s->size;
	if (reco_stop || s->stop)
		return 0; /* stopped: no further file */
	if (++s->cur >= s->nfiles)
		return 0;
	s->name = s->files[s->cur];
	s->start = s->end = 0;
	s->eof = 0;
	s->line = 0;
	s->offset = 0;
	s->size = 0;
	if (strcmp(s->name, "-") == 0)
		s->fd = 0;
	else if ((s->fd = open(s->name, O_RDONLY)) < 0) {
		snprintf(s->err, sizeof s->err, "%s: %s", s->name,
			 strerror(errno));
		return -1;
	}
	if (fstat(s->fd, &st) == 0 && S_ISREG(st.st_mode))
		s->size = (uint64_t)st.st_size;
	else if (S_ISDIR(st.st_mode)) {
		snprintf(s->err, sizeof s->err, "%s: %s", s->name,
			 strerror(EISDIR));
		return -1;
	}
	return 1;
}

/* Read more bytes into the buffer; first, if the read would block, let the
 * owner flush its output. Return bytes read, 0 at EOF, -1 on error. */
static ssize_t
fill(struct src *s)
{
	ssize_t r;

	if (s->eof)
		return 0;
	if (reco_stop || s->stop) {
		s->eof = 1;
		s->cut = s->end > s->start;
		return 0;
	}
	if (s->start > 0) {
		memmove(s->buf, s->buf + s->start, s->end - s->start);
		s->offset += s->start;
		s->end -= s->start;
		s->start = 0;
	}
	if (s->end == s->cap)
		return -2; /* full: the caller handles over-long records */
	if (s->on_idle && s->size == 0) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		if (poll(&p, 1, 0) == 0) {
			s->on_idle(s->idle_ctx);
			/* Wait for input; meanwhile, keep the progress line
			 * and the metrics file current. */
			while (s->on_wait && !reco_stop && poll(&p, 1, 1000) == 0)
				s->on_wait(s->idle_ctx);
		}
		if (reco_stop || s->stop) {
			/* A signal while waiting: the end of the input. */
			s->eof = 1;
			s->cut = s->end > s->start;
			return 0;
		}
	}
	do
		r = read(s->fd, s->buf + s->end, s->cap - s->end);
	while (r < 0 && errno == EINTR && !reco_stop);
	if (r < 0 && reco_stop) {
		/* Stopped by a signal: the end of the input. */
		s->eof = 1;
		s->cut = s->end > s->start;
		return 0;
	}
	if (r < 0) {
		snprintf(s->err, sizeof s->err, "%s: read error: %s", s->name,
			 strerror(errno));
		return -1;
	}
	if (r == 0)
		s->eof = 1;
	s->end += (size_t)r;
	return r;
}

/*
 * Return the next line of the current file without its newline in *line,
 * *n. A line longer than max_line is returned cut to max_line bytes with
 * *toolong set, the rest skipped. Return 1, 0 at the end of the file, -1 on
 * a read error. The line stays valid until the next call. After a signal
 * (reco_stop) or s->stop the input ends at this record boundary: a line
 * not read whole is left unread (s->cut says so), never returned cut.
 */
int
src_getline(struct src *s, const char **line, size_t *n, int *toolong)
{
	return src_getrec(s, "\n", 1, line, n, toolong);
}

/* The first occurrence of d (dn bytes, at least 1) in p[0..n), or NULL. */
const char *
mem_find(const char *p, size_t n, const char *d, size_t dn)
{
	const char *e = p + n, *q;

	while ((q = memchr(p, d[0], (size_t)(e - p))) != NULL) {
		if ((size_t)(e - q) < dn)
			return NULL;
		if (memcmp(q, d, dn) == 0)
			return q;
		p = q + 1;
	}
	return NULL;
}

/* Where a search for the delimiter resumes after more bytes arrive: the
 * last dn - 1 bytes seen may begin one. */
static size_t
rescan(size_t from, size_t to, size_t dn)
{
	return to - from >= dn - 1 ? to - (dn - 1) : from;
}

/* As src_getline, with records ended by the delimiter d of dn bytes (a
 * message of kcat -D) rather than a newline. */
int
src_getrec(struct src *s, const char *d, size_t dn, const char **line,
	   size_t *n, int *toolong)
{
	size_t scan = s->start;
	char *nl;

	*toolong = 0;
	if (reco_stop || s->stop) {
		s->cut = s->end > s->start;
		return 0;
	}
	for (;;) {
		nl = (char *)mem_find(s->buf + scan, s->end - scan, d, dn);
		if (nl)
			break;
		if (s->end - s->start > s->max_line) {
			/* Too long: keep the head for the rejects, skip the
			 * rest up to the next delimiter. */
			if (!s->head)
				s->head = xmalloc(s->max_line);
			memcpy(s->head, s->buf + s->start, s->max_line);
			s->start = rescan(s->start, s->end, dn);
			for (;;) {
				ssize_t r = fill(s);
				if (r < 0)
					return -1;
				if (r == 0 && s->cut)
					return 0; /* stopped inside the line */
				if (r == 0)
					break;
				nl = (char *)mem_find(s->buf + s->start,
						      s->end - s->start, d, dn);
				if (nl) {
					s->start = (size_t)(nl - s->buf) + dn;
					break;
				}
				s->start = rescan(s->start, s->end, dn);
			}
			*toolong = 1;
			*line = s->head;
			*n = s->max_line;
			s->line++;
			return 1;
		}
		size_t have = s->end - s->start;
		ssize_t r = fill(s);
		if (r < 0)
			return -1;
		scan = rescan(s->start, s->start + have, dn);
		if (r == 0) {
			if (s->end == s->start || s->cut)
				return 0;
			/* A last line without a newline. */
			*line = s->buf + s->start;
			*n = s->end - s->start;
			s->start = s->end;
			s->line++;
			if (*n > s->max_line) {
				*n = s->max_line;
				*toolong = 1;
			}
			return 1;
		}
	}
	*line = s->buf + s->start;
	*n = (size_t)(nl - (s->buf + s->start));
	s->start += *n + dn;
	s->line++;
	if (*n > s->max_line) {
		*n = s->max_line;
		*toolong = 1;
	}
	return 1;
}

/* Make at least n bytes visible at *p if the file has them. Return how many
 * are visible (less than n only at EOF), or -1 on error. */
int
src_peek(struct src *s, size_t n, const char **p)
{
	while (s->end - s->start < n) {
		ssize_t r = fill(s);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
	}
	*p = s->buf + s->start;
	return (int)(s->end - s->start < n ? s->end - s->start : n);
}

/* Read up to n bytes into dst; return how many (less than n only at the end
 * of the file), or -1 on error. */
int
src_read(struct src *s, void *dst, size_t n)
{
	size_t got = 0;

	while (got < n) {
		if (s->end == s->start) {
			ssize_t r = fill(s);
			if (r < 0)
				return -1;
			if (r == 0)
				break;
		}
		size_t k = s->end - s->start;
		if (k > n - got)
			k = n - got;
		memcpy((char *)dst + got, s->buf + s->start, k);
		s->start += k;
		got += k;
	}
	return (int)got;
}

/* ---- output ---- */

/* Buffered output on fd; name is used in messages. */
struct wout *
wout_fd(int fd, const char *name)
{
	struct wout *w = xcalloc(1, sizeof *w);

	w->fd = fd;
	w->name = name;
	w->cap = IO_BUF;
	w->buf = xmalloc(w->cap);
	return w;
}

/* Open path for writing ("-" is stdout). Return NULL with errno set. */
struct wout *
wout_open(const char *path)
{
	int fd;

	if (!path || strcmp(path, "-") == 0)
		return wout_fd(1, "standard output");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		return NULL;
	return wout_fd(fd, path);
}

/*
 * A write failed after done bytes of p went out. A regular NDJSON file is
 * cut back to the end of its last complete line, so that a full disk never
 * leaves a record cut in the middle.
 */
static void
cut_to_line(struct wout *w, const char *p, size_t done)
{
	struct stat st;

	if (!w->lines || fstat(w->fd, &st) || !S_ISREG(st.st_mode))
		return;
	while (done > 0 && p[done - 1] != '\n')
		done--;
	uint64_t keep = w->off + done;
	/* Whole records are buffered, so every write starts at a record
	 * boundary: the file ended with a complete line before this one. */
	if (ftruncate(w->fd, (off_t)keep) == 0) {
		w->off = keep;
		lseek(w->fd, (off_t)keep, SEEK_SET);
	}
}

static int
write_all(struct wout *w, const char *p, size_t n)
{
	const char *p0 = p;

	while (n > 0) {
		ssize_t r = write(w->fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			w->failed = 1;
			w->err_no = errno;
			cut_to_line(w, p0, (size_t)(p - p0));
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	w->off += (uint64_t)(p - p0);
	return 0;
}

/* Write the buffer out. Return 0, or -1 with w->err_no set. */
int
wout_flush(struct wout *w)
{
	if (!w || w->failed)
		return w ? -1 : 0;
	if (w->n == 0)
		return 0;
	int rc = write_all(w, w->buf, w->n);
	w->n = 0;
	return rc;
}

/* Append n bytes. Return 0, or -1 once the output has failed. */
int
wout_write(struct wout *w, const void *p, size_t n)
{
	if (w->failed)
		return -1;
	if (n <= w->cap - w->n) {
		memcpy(w->buf + w->n, p, n);
		w->n += n;
		return 0;
	}
	if (wout_flush(w))
		return -1;
	if (n >= w->cap)
		return write_all(w, p, n);
	memcpy(w->buf, p, n);
	w->n = n;
	return 0;
}

/* Append p[0..n) and a newline, one record, if both fit in the room the
 * buffer has left: return 1, or 0 with nothing written (the caller takes
 * the general way, wout_write). */
int
wout_try_line(struct wout *w, const void *p, size_t n)
{
	if (w->failed || w->cap - w->n < n + 1)
		return 0;
	memcpy(w->buf + w->n, p, n);
	w->buf[w->n + n] = '\n';
	w->n += n + 1;
	return 1;
}

/* Flush and close (standard output stays open). Return 0 or -1. */
int
wout_close(struct wout *w)
{
	int rc;

	if (!w)
		return 0;
	rc = wout_flush(w);
	if (w->fd > 2 && close(w->fd) && rc == 0) {
		w->err_no = errno;
		rc = -1;
	}
	free(w->buf);
	free(w);
	return rc;
}
