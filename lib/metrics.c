/* metrics.c: named counters, gauges and histograms, written in the Prometheus
 * text exposition format. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reco.h"

/*
 * The series name{labels} of type type, created at zero if it is new. The
 * first series of a name decides its family's type; a series asked again
 * with another type is a mistake of the tool.
 */
static struct counter *
add(struct metrics *m, const char *name, const char *labels, const char *help,
    enum metric_type type)
{
	for (size_t i = 0; i < m->n; i++) {
		struct counter *c = m->c[i];
		if (strcmp(c->name, name) == 0 &&
		    ((!c->labels && !labels) ||
		     (c->labels && labels && strcmp(c->labels, labels) == 0))) {
			if (c->type != type)
				die(EXIT_IO, "internal error: metric %s asked as two types", name);
			c->decl = 0;
			return c;
		}
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->c = xreallocarray(m->c, m->cap, sizeof *m->c);
	}
	struct counter *c = xcalloc(1, sizeof *c);
	c->name = xstrdup(name);
	c->labels = labels ? xstrdup(labels) : NULL;
	c->help = xstrdup(help ? help : "");
	c->type = type;
	m->c[m->n++] = c;
	return c;
}

/*
 * Declare the family name, its help and type, before any series: it is
 * written in its place, its # HELP and # TYPE even while it has no series.
 */
void
metric_family(struct metrics *m, const char *name, const char *help,
	      enum metric_type type)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->c[i]->name, name) == 0)
			return;
	struct counter *c = add(m, name, NULL, help, type);

	c->decl = 1;
}

/*
 * Return the counter name{labels} (labels like reason="bot", or NULL),
 * creating it at zero. The pointer stays valid until metrics_free. Series
 * of one name are one family: written together under one # HELP and
 * # TYPE, the help of the first.
 */
uint64_t *
metric(struct metrics *m, const char *name, const char *labels,
       const char *help)
{
	return &add(m, name, labels, help, METRIC_COUNTER)->v;
}

uint64_t *
metric_gauge(struct metrics *m, const char *name, const char *labels,
	     const char *help)
{
	return &add(m, name, labels, help, METRIC_GAUGE)->v;
}

/* A gauge in seconds (Prometheus's base unit) that the tool sets in
 * milliseconds: written with three decimals. */
uint64_t *
metric_gauge_ms(struct metrics *m, const char *name, const char *labels,
		const char *help)
{
	struct counter *c = add(m, name, labels, help, METRIC_GAUGE);

	c->milli = 1;
	return &c->v;
}

/* A gauge that takes any value, fractions and negatives too. */
double *
metric_gauge_real(struct metrics *m, const char *name, const char *labels,
		  const char *help)
{
	struct counter *c = add(m, name, labels, help, METRIC_GAUGE);

	c->real = 1;
	return &c->f;
}

/*
 * A histogram with the n upper bounds le (ascending; the +Inf bucket is
 * added): count[i] is the observations in bucket i alone (the last one
 * above le[n - 1]), sum their total. It is written with cumulative
 * _bucket{le} series, _sum and _count.
 */
struct histogram *
metric_histogram(struct metrics *m, const char *name, const char *labels,
		 const char *help, const double *le, size_t n)
{
	struct counter *c = add(m, name, labels, help, METRIC_HISTOGRAM);
	struct histogram *h = &c->h;

	if (!h->count) {
		h->n = n;
		h->le = xcalloc(n ? n : 1, sizeof *h->le);
		if (n)
			memcpy(h->le, le, n * sizeof *le);
		h->count = xcalloc(n + 1, sizeof *h->count);
	}
	return h;
}

/*
 * Append name="value" to the labels in b, after a comma if b has some,
 * with the value escaped as the text format wants (\\, \" and \n). b stays
 * NUL-terminated: b->p is the labels of metric() and its kin.
 */
void
metric_label(struct buf *b, const char *name, const char *value)
{
	if (b->n)
		buf_putc(b, ',');
	buf_printf(b, "%s=\"", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			buf_putc(b, '\\');
		if (*p == '\n')
			buf_puts(b, "\\n");
		else
			buf_putc(b, *p);
	}
	buf_putc(b, '"');
	buf_reserve(b, 1);
	b->p[b->n] = '\0';
}

/* A float as the text format writes it: NaN, +Inf, -Inf or a decimal that
 * reads back the same (buf_put_double: 0.00025, 1, 1569888000.123). */
static void
put_float(struct buf *b, double d)
{
	if (isnan(d))
		buf_puts(b, "NaN");
	else if (isinf(d))
		buf_puts(b, d > 0 ? "+Inf" : "-Inf");
	else
		buf_put_double(b, d);
}

/* The value of c, without the histograms': v, f, or v / 1000 with three
 * decimals for a gauge kept in thousandths. */
void
metric_value(struct buf *b, const struct counter *c)
{
	if (c->real)
		put_float(b, c->f);
	else if (c->milli)
		buf_printf(b, "%llu.%03llu", (unsigned long long)(c->v / 1000),
			   (unsigned long long)(c->v % 1000));
	else
		buf_put_u64(b, c->v);
}

/* name suffix{labels[,extra]} and a space. */
static void
put_series(struct buf *b, const struct counter *c, const char *suffix,
	   const char *extra)
{
	buf_puts(b, c->name);
	buf_puts(b, suffix);
	if (c->labels || extra) {
		buf_putc(b, '{');
		if (c->labels)
			buf_puts(b, c->labels);
		if (c->labels && extra)
			buf_putc(b, ',');
		if (extra)
			buf_puts(b, extra);
		buf_putc(b, '}');
	}
	buf_putc(b, ' ');
}

static void
put_histogram(struct buf *b, const struct counter *c)
{
	const struct histogram *h = &c->h;
	struct buf le = { 0 };
	uint64_t tot = 0;

	for (size_t k = 0; k <= h->n; k++) {
		tot += h->count[k];
		le.n = 0;
		buf_puts(&le, "le=\"");
		if (k < h->n)
			put_float(&le, h->le[k]);
		else
			buf_puts(&le, "+Inf");
		buf_putc(&le, '"');
		buf_putc(&le, '\0');
		put_series(b, c, "_bucket", le.p);
		buf_put_u64(b, tot);
		buf_putc(b, '\n');
	}
	put_series(b, c, "_sum", NULL);
	put_float(b, h->sum);
	buf_putc(b, '\n');
	put_series(b, c, "_count", NULL);
	buf_put_u64(b, tot);
	buf_putc(b, '\n');
	buf_free(&le);
}

/*
 * What every reco process exports beside its own metrics: reco_build_info
 * (1, with the tool and the version as labels, the Prometheus convention
 * for joining a version to other series) and process_start_time_seconds
 * (the wall clock at start, to tell restarts and uptime).
 */
static void
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
 * Append every metric of m to b in the Prometheus text format: each family
 * (the series of one name) under one # HELP and # TYPE, in the order the
 * names were first asked, then reco_build_info and
 * process_start_time_seconds. The one writer of the format: the --metrics
 * files and reco-serve's /metrics.
 */
void
metrics_text(struct buf *b, const struct metrics *m)
{
	static const char *const types[] = {
		[METRIC_COUNTER] = "counter", [METRIC_GAUGE] = "gauge",
		[METRIC_HISTOGRAM] = "histogram"
	};
	char *done = xcalloc(m->n ? m->n : 1, 1);

	for (size_t i = 0; i < m->n; i++) {
		if (done[i])
			continue;
		const struct counter *c = m->c[i];
		buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", c->name, c->help,
			   c->name, types[c->type]);
		for (size_t j = i; j < m->n; j++) {
			const struct counter *d = m->c[j];
			if (done[j] || strcmp(d->name, c->name) != 0)
				continue;
			done[j] = 1;
			if (d->decl)
				continue;
			if (d->type == METRIC_HISTOGRAM) {
				put_histogram(b, d);
				continue;
			}
			put_series(b, d, "", NULL);
			metric_value(b, d);
			buf_putc(b, '\n');
		}
	}
	free(done);
	metrics_identity(b, m);
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

	metrics_text(&b, m);
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
		free(m->c[i]->h.le);
		free(m->c[i]->h.count);
		free(m->c[i]);
	}
	free(m->c);
	free(m->tool);
	m->c = NULL;
	m->n = m->cap = 0;
}
