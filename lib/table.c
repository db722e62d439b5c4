/* table.c: lookup tables from CSV or NDJSON files: rows in one arena, an index from key hashes to rows. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reco.h"
#include "table.h"

#define KEY_SEED 0x7265636f7461626cULL /* hash seed of table keys */
#define COL_SEED 0x7265636f636f6c73ULL /* hash seed of column names */
#define PEEK 4096                      /* bytes sniffed for the format */

/* What one load works with; the table is the result. */
struct loader {
	struct table *t;
	const struct table_opts *o;
	struct src *s;
	const char *name;       /* the file, for messages */
	char *err;
	size_t errlen;
	int kind;
	size_t row_start;       /* arena offset of the row being added */
	struct htab colidx;     /* NDJSON: hash64(column name) -> index */
	int fixed_cols;         /* the columns are o->fields, no others */
	struct buf tmp;
	struct cell {           /* NDJSON: the values of a row, in tmp */
		size_t col, off, n;
	} *cells;
	size_t capcells;
};

static int
fail(struct loader *l, int kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct loader *l, int kind, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(l->err, l->errlen, "%s:", l->name);

	if (l->s && l->s->line && kind == TABLE_ERR_DATA)
		n += snprintf(l->err + n, l->errlen > (size_t)n ? l->errlen - n : 0,
			      "%llu:", (unsigned long long)l->s->line);
	if ((size_t)n + 1 < l->errlen) {
		l->err[n++] = ' ';
		va_start(ap, fmt);
		vsnprintf(l->err + n, l->errlen - n, fmt, ap);
		va_end(ap);
	}
	l->kind = kind;
	return -1;
}

/* A read error: the reader's message already names the file. */
static void
io_fail(struct loader *l)
{
	snprintf(l->err, l->errlen, "%s", l->s->err);
	l->kind = TABLE_ERR_IO;
}

/* Release a table and everything it holds; NULL is fine. */
void
table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncols; i++)
		free(t->cols[i]);
	free(t->cols);
	free(t->key);
	free(t->path);
	buf_free(&t->arena);
	free(t->rows);
	htab_free(&t->idx);
	free(t);
}

/* Bytes the table holds: the arena, the row offsets and the index. */
size_t
table_bytes(const struct table *t)
{
	return t->arena.cap + t->nrows * sizeof *t->rows + htab_bytes(&t->idx);
}

/* Return the index of the kept column name, or -1. */
int
table_col_index(const struct table *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i], name) == 0)
			return (int)i;
	return -1;
}

static size_t
add_col(struct loader *l, const char *name, size_t n)
{
	struct table *t = l->t;

	t->cols = xreallocarray(t->cols, t->ncols + 1, sizeof *t->cols);
	t->cols[t->ncols] = xstrndup(name, n);
	return t->ncols++;
}

/* ---- rows ---- */

static void
row_begin(struct loader *l, const char *key, size_t n)
{
	l->row_start = l->t->arena.n;
	buf_put_bytes(&l->t->arena, key, n);
}

static void
row_cell(struct loader *l, size_t col, const char *p, size_t n)
{
	buf_put_varint(&l->t->arena, (int64_t)col + 1);
	buf_put_bytes(&l->t->arena, p, n);
}

/* End the row and index it. Return 0, or -1 past max_rows or on two keys
 * with the same hash. */
static int
row_end(struct loader *l, const char *key, size_t n)
{
	struct table *t = l->t;
	int isnew;

	buf_putc(&t->arena, 0);
	if (l->o->max_rows && t->nrows >= l->o->max_rows)
		return fail(l, TABLE_ERR_DATA,
			    "more than %zu rows (--max-table-rows)",
			    l->o->max_rows);
	if (t->nrows >= UINT32_MAX)
		return fail(l, TABLE_ERR_DATA, "too many rows");
	if ((t->nrows & (t->nrows - 1)) == 0)
		t->rows = xreallocarray(t->rows, t->nrows ? t->nrows * 2 : 16,
					sizeof *t->rows);
	t->rows[t->nrows] = l->row_start;
	uint32_t *v = htab_put(&t->idx, hash64(key, n, KEY_SEED), &isnew);
	if (!isnew) {
		const char *p = t->arena.p + t->rows[*v];
		struct str k;
		if (get_bytes(&p, t->arena.p + t->arena.n, &k) || k.n != n ||
		    memcmp(k.p, key, n) != 0)
			return fail(l, TABLE_ERR_DATA,
				    "two keys with the same 64-bit hash: \"%.*s\" and \"%.*s\"",
				    (int)k.n, k.p, (int)n, key);
		t->dups++; /* the later row wins */
	}
	*v = (uint32_t)t->nrows++;
	return 0;
}

/*
 * Find the row of key[0..n). Return 1 with c at its first cell, or 0 if the
 * table has no such key.
 */
int
table_find(const struct table *t, const char *key, size_t n,
	   struct table_cur *c)
{
	const uint32_t *v;
	const char *p, *e;
	struct str k;

	if (!t || t->nrows == 0)
		return 0;
	if (!(v = htab_get(&t->idx, hash64(key, n, KEY_SEED))))
		return 0;
	p = t->arena.p + t->rows[*v];
	e = t->arena.p + t->arena.n;
	if (get_bytes(&p, e, &k) || k.n != n || memcmp(k.p, key, n) != 0)
		return 0;
	c->p = p;
	c->e = e;
	return 1;
}

/*
 * The next cell of a row: its column index and value (pointing into the
 * table, valid until table_free). Return 1, or 0 after the last cell.
 * Columns without a value in this row (an empty CSV field, a JSON null or
 * a missing JSON key) have no cell.
 */
int
table_next(struct table_cur *c, size_t *col, struct str *val)
{
	int64_t ci;

	if (get_varint(&c->p, c->e, &ci) || ci <= 0 ||
	    get_bytes(&c->p, c->e, val))
		return 0;
	*col = (size_t)(ci - 1);
	return 1;
}

/* The value of column col in the row of key: return 1, or 0 if there is
 * no such row or the row has no value there. */
int
table_value(const struct table *t, const char *key, size_t n, size_t col,
	    struct str *val)
{
	struct table_cur c;
	size_t ci;

	if (!table_find(t, key, n, &c))
		return 0;
	while (table_next(&c, &ci, val))
		if (ci == col)
			return 1;
	return 0;
}

/* ---- CSV ---- */

static void
strip_bom(const char **p, size_t *n)
{
	if (*n >= 3 && memcmp(*p, "\xef\xbb\xbf", 3) == 0) {
		*p += 3;
		*n -= 3;
	}
}

static int
load_csv(struct loader *l)
{
	struct table *t = l->t;
	const struct table_opts *o = l->o;
	struct csv_in *csv = csv_in_new(',', '"', o->max_line);
	const char *line;
	size_t n, nhead = 0, keycol = 0;
	int toolong, r, rc = -1, have_header = 0;
	long *map = NULL;    /* header column -> kept column, or -1 */
	size_t *from = NULL; /* kept column -> header column */
	char err[256];
	uint64_t first = 0;

	while ((r = src_getline(l->s, &line, &n, &toolong)) > 0) {
		if (toolong) {
			fail(l, TABLE_ERR_DATA, "line longer than %zu bytes",
			     o->max_line);
			goto out;
		}
		if (!have_header && l->s->line == 1)
			strip_bom(&line, &n);
		if (!first)
			first = l->s->line;
		r = csv_in_line(csv, line, n, err, sizeof err);
		if (r == 0) {
			if (csv_in_raw(csv).n == 0)
				first = 0;
			continue;
		}
		uint64_t last = l->s->line;
		l->s->line = first;
		first = 0;
		if (r < 0) {
			fail(l, TABLE_ERR_DATA, "%s", err);
			goto out;
		}
		size_t nf = csv_in_nfields(csv);
		for (size_t i = 0; i < nf; i++) {
			struct str f = csv_in_field(csv, i);
			if (!utf8_valid(f.p, f.n) || memchr(f.p, '\0', f.n)) {
				fail(l, TABLE_ERR_DATA,
				     "field %zu is not UTF-8 text", i + 1);
				goto out;
			}
		}
		if (!have_header) {
			have_header = 1;
			nhead = nf;
			map = xcalloc(nf ? nf : 1, sizeof *map);
			int found = -1;
			for (size_t i = 0; i < nf; i++) {
				struct str f = csv_in_field(csv, i);
				map[i] = -1;
				for (size_t j = 0; j < i; j++) {
					struct str g = csv_in_field(csv, j);
					if (g.n == f.n && memcmp(g.p, f.p, f.n) == 0) {
						fail(l, TABLE_ERR_DATA,
						     "header: column \"%.*s\" twice",
						     (int)f.n, f.p);
						goto out;
					}
				}
				const char *want = o->key ? o->key : o->key_default;
				if (want && strlen(want) == f.n &&
				    memcmp(want, f.p, f.n) == 0)
					found = (int)i;
			}
			if (found < 0 && o->key) {
				fail(l, TABLE_ERR_DATA, "header: no key column \"%s\"",
				     o->key);
				goto out;
			}
			keycol = found < 0 ? 0 : (size_t)found;
			struct str k = csv_in_field(csv, keycol);
			t->key = xstrndup(k.p, k.n);
			if (o->fields) {
				for (size_t j = 0; j < o->nfields; j++) {
					size_t i;
					for (i = 0; i < nf; i++) {
						struct str f = csv_in_field(csv, i);
						if (strlen(o->fields[j]) == f.n &&
						    memcmp(o->fields[j], f.p, f.n) == 0)
							break;
					}
					if (i == nf) {
						fail(l, TABLE_ERR_DATA,
						     "header: no column \"%s\"",
						     o->fields[j]);
						goto out;
					}
					if (i == keycol)
						continue;
					if (map[i] < 0)
						map[i] = (long)add_col(l, o->fields[j],
								       strlen(o->fields[j]));
				}
			} else
				for (size_t i = 0; i < nf; i++)
					if (i != keycol) {
						struct str f = csv_in_field(csv, i);
						map[i] = (long)add_col(l, f.p, f.n);
					}
			from = xcalloc(t->ncols ? t->ncols : 1, sizeof *from);
			for (size_t i = 0; i < nf; i++)
				if (map[i] >= 0)
					from[map[i]] = i;
			l->s->line = last;
			continue;
		}
		if (nf != nhead) {
			fail(l, TABLE_ERR_DATA, "%zu fields, the header has %zu",
			     nf, nhead);
			goto out;
		}
		struct str key = csv_in_field(csv, keycol);
		if (key.n == 0) {
			fail(l, TABLE_ERR_DATA, "empty key");
			goto out;
		}
		row_begin(l, key.p, key.n);
		/* Cells in column order, so that attributes come out in the
		 * order of the fields option. */
		for (size_t c = 0; c < t->ncols; c++) {
			struct str f = csv_in_field(csv, from[c]);
			if (f.n)
				row_cell(l, c, f.p, f.n);
		}
		if (row_end(l, key.p, key.n))
			goto out;
		l->s->line = last;
	}
	if (r < 0) {
		io_fail(l);
		goto out;
	}
	if (csv_in_end(csv, err, sizeof err)) {
		fail(l, TABLE_ERR_DATA, "%s", err);
		goto out;
	}
	if (!have_header) {
		fail(l, TABLE_ERR_DATA, "empty table (no header)");
		goto out;
	}
	rc = 0;
out:
	free(map);
	free(from);
	csv_in_free(csv);
	return rc;
}

/* ---- NDJSON ---- */

/* Append the text of a JSON value: strings as they are, numbers in their
 * shortest form, other values as compact JSON. Return -1 for null. */
static int
json_text(struct buf *b, json_t *v)
{
	char *s;

	switch (json_typeof(v)) {
	case JSON_STRING:
		buf_put(b, json_string_value(v), json_string_length(v));
		return 0;
	case JSON_INTEGER:
		buf_put_i64(b, (int64_t)json_integer_value(v));
		return 0;
	case JSON_REAL:
		buf_put_double(b, json_real_value(v));
		return 0;
	case JSON_TRUE:
		buf_puts(b, "true");
		return 0;
	case JSON_FALSE:
		buf_puts(b, "false");
		return 0;
	case JSON_NULL:
		return -1;
	default:
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY |
				       JSON_REAL_PRECISION(17));
		if (!s) /* only when out of memory, as xmalloc dies */
			die(EXIT_IO, "out of memory");
		buf_puts(b, s);
		free(s);
		return 0;
	}
}

/* The index of column name (adding it unless the columns are fixed), or
 * -1 if it is not kept. */
static long
ndjson_col(struct loader *l, const char *name, size_t n)
{
	struct table *t = l->t;
	uint64_t h = hash64(name, n, COL_SEED);
	uint32_t *v = htab_get(&l->colidx, h);
	int isnew;

	if (v) {
		/* Tell apart two names with the same hash. */
		if (strlen(t->cols[*v]) == n && memcmp(t->cols[*v], name, n) == 0)
			return *v;
		for (size_t i = 0; i < t->ncols; i++)
			if (strlen(t->cols[i]) == n &&
			    memcmp(t->cols[i], name, n) == 0)
				return (long)i;
	}
	if (l->fixed_cols)
		return -1;
	if (t->ncols >= TABLE_MAX_COLS)
		return -2;
	size_t c = add_col(l, name, n);
	v = htab_put(&l->colidx, h, &isnew);
	if (isnew)
		*v = (uint32_t)c;
	return (long)c;
}

static int
load_ndjson(struct loader *l)
{
	struct table *t = l->t;
	const struct table_opts *o = l->o;
	const char *line;
	size_t n;
	int toolong, r, rc = -1;
	json_t *obj = NULL;
	json_error_t je;
	struct buf keybuf = { 0 };

	htab_init(&l->colidx, 16);
	while ((r = src_getline(l->s, &line, &n, &toolong)) > 0) {
		if (toolong) {
			fail(l, TABLE_ERR_DATA, "line longer than %zu bytes",
			     o->max_line);
			goto out;
		}
		if (l->s->line == 1)
			strip_bom(&line, &n);
		size_t i = 0;
		while (i < n && (line[i] == ' ' || line[i] == '\t' ||
				 line[i] == '\r'))
			i++;
		if (i == n)
			continue;
		json_decref(obj);
		obj = json_loadb(line, n, JSON_REJECT_DUPLICATES, &je);
		if (!obj) {
			fail(l, TABLE_ERR_DATA, "invalid JSON: %s", je.text);
			goto out;
		}
		if (!json_is_object(obj)) {
			fail(l, TABLE_ERR_DATA, "not a JSON object");
			goto out;
		}
		if (!t->key) {
			const char *want = o->key ? o->key : o->key_default;
			if (want && json_object_get(obj, want))
				t->key = xstrdup(want);
			else if (o->key) {
				fail(l, TABLE_ERR_DATA, "no key field \"%s\"", o->key);
				goto out;
			} else if (json_object_size(obj) == 0) {
				fail(l, TABLE_ERR_DATA, "no key field (an empty object)");
				goto out;
			} else
				t->key = xstrdup(json_object_iter_key(json_object_iter(obj)));
			/* The columns, once the key (never one of them) is
			 * known. */
			if (o->fields) {
				for (size_t j = 0; j < o->nfields; j++)
					if (strcmp(o->fields[j], t->key) != 0)
						ndjson_col(l, o->fields[j],
							   strlen(o->fields[j]));
				l->fixed_cols = 1;
			}
		}
		json_t *kv = json_object_get(obj, t->key);
		if (!kv || !(json_is_string(kv) || json_is_number(kv))) {
			fail(l, TABLE_ERR_DATA, "%s key field \"%s\"",
			     kv ? "not a string or number:" : "no", t->key);
			goto out;
		}
		keybuf.n = 0;
		json_text(&keybuf, kv);
		if (keybuf.n == 0) {
			fail(l, TABLE_ERR_DATA, "empty key");
			goto out;
		}
		/* Cells in column order: the order of the fields option, or
		 * the order in which the fields first appeared. */
		row_begin(l, keybuf.p, keybuf.n);
		if (l->fixed_cols) {
			for (size_t c = 0; c < t->ncols; c++) {
				json_t *v = json_object_get(obj, t->cols[c]);
				l->tmp.n = 0;
				if (v && json_text(&l->tmp, v) == 0)
					row_cell(l, c, l->tmp.p ? l->tmp.p : "", l->tmp.n);
			}
		} else {
			const char *k;
			json_t *v;
			size_t nc = 0;
			l->tmp.n = 0;
			buf_reserve(&l->tmp, 256); /* never NULL below */
			json_object_foreach(obj, k, v) {
				if (strcmp(k, t->key) == 0)
					continue;
				long c = ndjson_col(l, k, strlen(k));
				if (c == -2) {
					fail(l, TABLE_ERR_DATA,
					     "more than %d distinct fields",
					     TABLE_MAX_COLS);
					goto out;
				}
				size_t off = l->tmp.n;
				if (json_text(&l->tmp, v) < 0)
					continue;
				if (nc == l->capcells) {
					l->capcells = l->capcells ? l->capcells * 2 : 16;
					l->cells = xreallocarray(l->cells, l->capcells,
								 sizeof *l->cells);
				}
				/* Keep the cells in column order. */
				size_t j = nc++;
				while (j > 0 && l->cells[j - 1].col > (size_t)c) {
					l->cells[j] = l->cells[j - 1];
					j--;
				}
				l->cells[j].col = (size_t)c;
				l->cells[j].off = off;
				l->cells[j].n = l->tmp.n - off;
			}
			for (size_t j = 0; j < nc; j++)
				row_cell(l, l->cells[j].col, l->tmp.p + l->cells[j].off,
					 l->cells[j].n);
		}
		if (row_end(l, keybuf.p, keybuf.n))
			goto out;
	}
	if (r < 0) {
		io_fail(l);
		goto out;
	}
	if (!t->key) {
		fail(l, TABLE_ERR_DATA, "empty table");
		goto out;
	}
	rc = 0;
out:
	json_decref(obj);
	buf_free(&keybuf);
	htab_free(&l->colidx);
	return rc;
}

/* ---- loading ---- */

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int
sniff(struct loader *l)
{
	const char *p;
	int n;

	if (ends_with(l->name, ".ndjson") || ends_with(l->name, ".jsonl") ||
	    ends_with(l->name, ".json"))
		return TABLE_NDJSON;
	if (ends_with(l->name, ".csv"))
		return TABLE_CSV;
	if ((n = src_peek(l->s, PEEK, &p)) < 0)
		return -1;
	int i = 0;
	if (n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' ||
			 p[i] == '\n'))
		i++;
	return i < n && p[i] == '{' ? TABLE_NDJSON : TABLE_CSV;
}

/*
 * Load the table in the file at path with the options o. Return the table
 * (the caller frees it with table_free), or NULL with the reason in err and
 * *kind set to TABLE_ERR_IO (the file cannot be read) or TABLE_ERR_DATA
 * (a malformed file, a row past o->max_rows, a missing column). Rules: CSV
 * has a header row; a CSV row must have as many fields as the header; every
 * row needs a non-empty key; the last of several rows with the same key
 * wins (counted in dups).
 */
struct table *
table_load(const char *path, const struct table_opts *o, int *kind,
	   char *err, size_t errlen)
{
	struct loader l;
	char *files[1];
	int r;

	memset(&l, 0, sizeof l);
	l.t = xcalloc(1, sizeof *l.t);
	l.t->path = xstrdup(path);
	l.o = o;
	l.name = l.t->path;
	l.err = err;
	l.errlen = errlen;
	htab_init(&l.t->idx, 16);
	files[0] = l.t->path;
	l.s = src_new(files, 1, o->max_line ? o->max_line : 1 << 20);
	if ((r = src_next_file(l.s)) <= 0) {
		io_fail(&l);
		goto fail;
	}
	l.t->format = o->format;
	if (l.t->format == TABLE_AUTO && (l.t->format = sniff(&l)) < 0) {
		io_fail(&l);
		goto fail;
	}
	if ((l.t->format == TABLE_CSV ? load_csv(&l) : load_ndjson(&l)) < 0)
		goto fail;
	/* Give back what the growth left over. */
	if (l.t->arena.n) {
		l.t->arena.p = xrealloc(l.t->arena.p, l.t->arena.n);
		l.t->arena.cap = l.t->arena.n;
	}
	if (l.t->nrows)
		l.t->rows = xreallocarray(l.t->rows, l.t->nrows, sizeof *l.t->rows);
	src_free(l.s);
	buf_free(&l.tmp);
	free(l.cells);
	return l.t;
fail:
	*kind = l.kind;
	src_free(l.s);
	buf_free(&l.tmp);
	free(l.cells);
	table_free(l.t);
	return NULL;
}
