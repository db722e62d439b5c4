/* table.h: lookup tables (CSV or NDJSON files) held in memory: rows of string attributes by key. */
#ifndef RECO_TABLE_H
#define RECO_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "reco.h"

/* Table file formats. */
enum { TABLE_AUTO, TABLE_CSV, TABLE_NDJSON };

/* What went wrong with a load: the file could not be read, or its
 * contents are not a table we accept. */
enum { TABLE_ERR_IO = 1, TABLE_ERR_DATA = 2 };

#define TABLE_MAX_COLS 4096 /* distinct columns of one table, at most */

struct table_opts {
	int format;              /* TABLE_AUTO: by extension, else by the
				  * first non-blank byte ('{' is NDJSON) */
	const char *key;         /* the key column, or NULL for the default */
	const char *key_default; /* with key NULL: this column if the table
				  * has it, else the first column */
	char **fields;           /* the columns to keep, in this order;
				  * NULL: every column but the key */
	size_t nfields;
	size_t max_rows;         /* refuse a table with more rows; 0: none */
	size_t max_line;         /* longest line (or CSV record) in bytes */
};

/*
 * A loaded table. Rows are stored back to back in one arena (the key, then
 * (column, value) cells); rows[] holds each row's offset and an htab maps
 * hash64(key) to the row index. Values are kept as text: CSV fields as
 * they are, JSON strings unescaped, other JSON values as their JSON text.
 */
struct table {
	char *path;
	int format;
	char *key;               /* the key column's name */
	char **cols;             /* names of the kept columns */
	size_t ncols;
	struct buf arena;
	uint64_t *rows;          /* offset of each row in arena */
	size_t nrows;
	struct htab idx;         /* hash64(key) -> row index */
	uint64_t dups;           /* rows whose key an earlier row had */
};

/* A position in a row, for table_next. */
struct table_cur {
	const char *p, *e;
};

struct table *table_load(const char *path, const struct table_opts *o,
			 int *kind, char *err, size_t errlen);
void table_free(struct table *t);
int table_find(const struct table *t, const char *key, size_t n,
	       struct table_cur *c);
int table_next(struct table_cur *c, size_t *col, struct str *val);
int table_value(const struct table *t, const char *key, size_t n,
		size_t col, struct str *val);
int table_col_index(const struct table *t, const char *name);
size_t table_bytes(const struct table *t);

#endif
