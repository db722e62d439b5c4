/* csv_in.c: CSV records through libcsv, one physical line at a time, keeping raw bytes and line numbers. */
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#include "reco.h"

struct csv_in {
	struct csv_parser p;
	int delim, quote;
	size_t max_record;
	struct buf fields;   /* field bytes, back to back */
	size_t *off, *len;   /* per field, into fields */
	size_t nf, capf;
	struct buf raw;      /* the record's physical lines, joined by \n */
	int done;            /* a record ended during the last feed */
	int pending;         /* inside a multi-line (quoted) record */
	struct str *view;
};

/* Fields are kept exactly: no trimming of spaces. */
static int
no_space(unsigned char c)
{
	(void)c;
	return 0;
}

/* Records end at a newline only: a lone CR is data. */
static int
is_term(unsigned char c)
{
	return c == '\n';
}

static void
reset_parser(struct csv_in *c)
{
	csv_free(&c->p);
	csv_init(&c->p, CSV_STRICT | CSV_STRICT_FINI);
	csv_set_delim(&c->p, (unsigned char)c->delim);
	csv_set_quote(&c->p, (unsigned char)c->quote);
	csv_set_space_func(&c->p, no_space);
	csv_set_term_func(&c->p, is_term);
}

/*
 * A CSV reader with the given delimiter and quote characters; a record
 * (possibly several lines long) may be at most max_record bytes. The caller
 * owns the result (csv_in_free).
 */
struct csv_in *
csv_in_new(int delim, int quote, size_t max_record)
{
	struct csv_in *c = xcalloc(1, sizeof *c);

	c->delim = delim;
	c->quote = quote;
	c->max_record = max_record;
	if (csv_init(&c->p, CSV_STRICT | CSV_STRICT_FINI))
		die(EXIT_IO, "csv: cannot initialise the parser");
	csv_set_delim(&c->p, (unsigned char)delim);
	csv_set_quote(&c->p, (unsigned char)quote);
	csv_set_space_func(&c->p, no_space);
	csv_set_term_func(&c->p, is_term);
	return c;
}

void
csv_in_free(struct csv_in *c)
{
	if (!c)
		return;
	csv_free(&c->p);
	buf_free(&c->fields);
	buf_free(&c->raw);
	free(c->off);
	free(c->len);
	free(c->view);
	free(c);
}

static void
on_field(void *s, size_t n, void *data)
{
	struct csv_in *c = data;

	if (c->done)
		return; /* only one record per feed */
	if (c->nf == c->capf) {
		c->capf = c->capf ? c->capf * 2 : 16;
		c->off = xreallocarray(c->off, c->capf, sizeof *c->off);
		c->len = xreallocarray(c->len, c->capf, sizeof *c->len);
		c->view = xreallocarray(c->view, c->capf, sizeof *c->view);
	}
	c->off[c->nf] = c->fields.n;
	c->len[c->nf] = n;
	buf_put(&c->fields, s ? s : "", n);
	c->nf++;
}

static void
on_record(int term, void *data)
{
	struct csv_in *c = data;

	(void)term;
	c->done = 1;
}

static void
start_record(struct csv_in *c)
{
	c->nf = 0;
	c->fields.n = 0;
	c->raw.n = 0;
	c->done = 0;
}

/*
 * Feed one physical line (without its newline). Return 1 when a record is
 * complete (fields and raw bytes readable until the next call), 0 when the
 * line is blank or the record goes on (an open quote), -1 if the record is
 * malformed (err says why; csv_in_raw has its bytes; the next line starts a
 * new record).
 */
int
csv_in_line(struct csv_in *c, const char *line, size_t n, char *err,
	    size_t errlen)
{
	if (!c->pending) {
		start_record(c);
		if (n == 0 || (n == 1 && line[0] == '\r'))
			return 0;
	} else
		buf_putc(&c->raw, '\n');
	if (n > 0 && line[n - 1] == '\r')
		n--; /* CRLF files */
	buf_put(&c->raw, line, n);
	int bad = csv_parse(&c->p, line, n, on_field, on_record, c) != n ||
		  csv_parse(&c->p, "\n", 1, on_field, on_record, c) != 1;
	if (bad || csv_error(&c->p) != CSV_SUCCESS) {
		snprintf(err, errlen, "malformed CSV: %s",
			 csv_error(&c->p) == CSV_EPARSE
				 ? "misplaced quote"
				 : csv_strerror(csv_error(&c->p)));
		c->pending = 0;
		reset_parser(c);
		return -1;
	}
	if (c->done) {
		c->pending = 0;
		return 1;
	}
	c->pending = 1;
	if (c->raw.n > c->max_record) {
		snprintf(err, errlen,
			 "unterminated quoted field (record over %zu bytes)",
			 c->max_record);
		c->pending = 0;
		reset_parser(c);
		return -1;
	}
	return 0;
}

/* At the end of a file: return -1 if a record was left open (an
 * unterminated quote; err says so, csv_in_raw has it), else 0. */
int
csv_in_end(struct csv_in *c, char *err, size_t errlen)
{
	int open = c->pending;

	c->pending = 0;
	reset_parser(c);
	if (open) {
		snprintf(err, errlen, "unterminated quoted field at end of file");
		return -1;
	}
	return 0;
}

size_t
csv_in_nfields(const struct csv_in *c)
{
	return c->nf;
}

struct str
csv_in_field(const struct csv_in *c, size_t i)
{
	return (struct str){ c->fields.p + c->off[i], c->len[i] };
}

struct str
csv_in_raw(const struct csv_in *c)
{
	return (struct str){ c->raw.p, c->raw.n };
}
