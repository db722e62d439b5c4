/* metrics.c: named counters, written as Prometheus text exposition. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reco.h"

static uint64_t *
add(struct metrics *m, const char *name, const char *labels, const char *help,
    int gauge)
{
	for (size_t i = 0; i < m->n; i++) {
		struct counter *c = m->c[i];
		if (strcmp(c->name, name) == 0 &&
		    ((!c->labels && !labels) ||
		     (c->labels && labels && strcmp(c->labels, labels) == 0)))
			return &c->v;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->c = xreallocarray(m->c, m->cap, sizeof *m->c);
	}
	struct counter *c = xcalloc(1, sizeof *c);
	c->name = xstrdup(name);
	c->labels = labels ? xstrdup(labels) : NULL;
	c->help = xstrdup(help ? help : "");
	c->gauge = gauge;
	m->c[m->n++] = c;
	return &c->v;
}

/*
 * Return the counter name{labels} (labels like reason="bot", or NULL),
 * creating it at zero. The pointer stays valid until metrics_free.
 */
uint64_t *
metric(struct metrics *m, const char *name, const char *labels,
       const char *help)
{
	return add(m, name, labels, help, 0);
}

uint64_t *
metric_gauge(struct metrics *m, const char *name, const char *labels,
	     const char *help)
{
	return add(m, name, labels, help, 1);
}

/* A gauge in seconds (Prometheus's base unit) that the tool sets in
 * milliseconds: written with three decimals. */
uint64_t *
metric_gauge_ms(struct metrics *m, const char *name, const char *labels,
		const char *help)
{
	uint64_t *v = add(m, name, labels, help, 1);

	for (size_t i = 0; i < m->n; i++)
		if (&m->c[i]->v == v)
			m->c[i]->milli = 1;
	return v;
}

/* v, or v / 1000 with three decimals for a gauge kept in thousandths. */
static void
put_value(struct buf *b, const struct counter *c)
{
	if (c->milli)
		buf_printf(b, " %llu.%03llu\n", (unsigned long long)(c->v / 1000),
			   (unsigned long long)(c->v % 1000));
	else
		buf_printf(b, " %llu\n", (unsigned long long)c->v);
}

/*
 * What every reco process exports beside its own metrics: reco_build_info
 * (1, with the tool and the version as labels, the Prometheus convention
 * for joining a version to other series) and process_start_time_seconds
 * (the wall clock at start, to tell restarts and uptime).
 */
void
metrics_identity(struct buf *b, const struct metrics *m)
{
	buf_printf(b, "# HELP reco_build_info The tool and its version.\n"
		   "# TYPE reco_build_info gauge\n"
		   "reco_build_info{tool=\"%s\",version=\"%s\"} 1\n",
		   m->tool ? m->tool : "", RECO_VERSION);
	buf_printf(b, "# HELP process_start_time_seconds Start time of the process since the epoch, in seconds.\n"
		   "# TYPE process_start_time_seconds gauge\n"
		   "process_start_time_seconds %lld.%03lld\n",
		   (long long)(m->start_ms / 1000), (long long)(m->start_ms % 1000));
}

/*
 * Write every metric to path in Prometheus text format, atomically (a
 * temporary file, fsync, rename). Return 0, or -1 with errno set.
 */
int
metrics_write(const struct metrics *m, const char *path)
{
	struct buf b = { 0 };
	char *tmp;
	int fd, rc = -1;
	char *done = xcalloc(m->n ? m->n : 1, 1);

	for (size_t i = 0; i < m->n; i++) {
		if (done[i])
			continue;
		const struct counter *c = m->c[i];
		buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", c->name, c->help,
			   c->name, c->gauge ? "gauge" : "counter");
		for (size_t j = i; j < m->n; j++) {
			const struct counter *d = m->c[j];
			if (done[j] || strcmp(d->name, c->name) != 0)
				continue;
			done[j] = 1;
			if (d->labels)
				buf_printf(&b, "%s{%s}", d->name, d->labels);
			else
				buf_puts(&b, d->name);
			put_value(&b, d);
		}
	}
	free(done);
	metrics_identity(&b, m);
	tmp = xmalloc(strlen(path) + 16);
	sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		goto out;
	size_t off = 0;
	while (off < b.n) {
		ssize_t r = write(fd, b.p + off, b.n - off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(tmp);
			goto out;
		}
		off += (size_t)r;
	}
	if (fsync(fd) || close(fd) || rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		errno = e;
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	buf_free(&b);
	return rc;
}

void
metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->c[i]->name);
		free(m->c[i]->labels);
		free(m->c[i]->help);
		free(m->c[i]);
	}
	free(m->c);
	free(m->tool);
	m->c = NULL;
	m->n = m->cap = 0;
}
