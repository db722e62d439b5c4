/* console.h: the JSON behind reco-serve's console (reco-serve(1), CONSOLE). */
#ifndef CONSOLE_H
#define CONSOLE_H

#include "serve.h"
#include "table.h"

/* What each source alone would recommend for request q (profile p, or
 * NULL), as a JSON object of arrays of {item, score}, by source name. */
void console_sources(struct buf *b, struct serve_worker *w,
		     const struct serve_snap *s, const struct profile *p,
		     const struct serve_req *q, const struct serve_opts *o);

/* Item id of snapshot s as a JSON object: its attributes (items, or
 * NULL), counts, trend, its first n co-occurrence and sequence
 * neighbours and its n nearest items by factors. Return 0, or -1 if
 * neither the model nor the table knows the item. */
int console_item(struct buf *b, const struct serve_snap *s,
		 const struct table *items, const char *id, size_t idn,
		 size_t n);

/* The console's files, embedded at build time. */
extern const char console_html[], console_js[], console_css[];

#endif
