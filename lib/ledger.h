/* ledger.h: the per-source position ledger that makes a replay change nothing (reco-profile's store, reco-train's snapshot). */
#ifndef LEDGER_H
#define LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "reco.h"

/*
 * A source position is a stream (a Kafka topic and partition, or a file)
 * and an offset or line in it: kafka:TOPIC/PART@OFFSET or file:NAME:LINE.
 *
 * A stream's ledger entry is its highest position applied (the high mark)
 * and a window of the positions up to it: a bitmap (window / 8 bytes per
 * stream, at most max_streams streams) of those applied. An event is new
 * if its position is above the high mark, or in the window and not applied
 * yet; a position at or below high - window cannot be told from a replay
 * and counts as applied. So events reordered by less than the window (as
 * reco-clean does within its lateness) are each applied once.
 *
 * Poison positions: a position more than max_jump above the high mark is
 * refused (LEDGER_JUMP) and moves nothing. A file's lines count from 1, so
 * a file stream not seen yet has the high mark 0; a Kafka partition not
 * seen yet takes its first offset as it comes (a partition's log may start
 * anywhere).
 */

/* A stream's entry. win: one bit per position of (pos - window, pos], at
 * bit (position % window), for writers (NULL otherwise). dirty and
 * dmin..dmax say which positions changed since the last commit, full that
 * all of win must be written; moved that a position was applied since. */
struct ledger_stream {
	char *name;
	size_t n;
	int64_t pos;            /* the high mark; -1: none */
	unsigned char *win;
	int64_t dmin, dmax;
	int dirty, full, moved;
};

struct ledger {
	uint64_t window;        /* a multiple of 8; 0: only the high mark */
	uint64_t max_streams;   /* 0: no limit */
	uint64_t max_jump;      /* 0: no limit */
	int writer;             /* keep windows */
	struct ledger_stream *streams;
	size_t nstreams;
	struct htab sidx;
};

/* A position as ledger_check found it, for ledger_advance. */
struct ledger_pos {
	uint32_t stream;        /* UINT32_MAX: the event has no position */
	int64_t pos;
};

/* What ledger_check says of a position. */
enum {
	LEDGER_NEW,             /* not applied: apply it, then ledger_advance */
	LEDGER_REPLAYED,        /* applied already */
	LEDGER_BEYOND_WINDOW,   /* at or below high - window: taken as applied */
	LEDGER_JUMP,            /* more than max_jump above the high mark */
	LEDGER_FULL = -1        /* a new stream past max_streams */
};

#define LEDGER_NIL UINT32_MAX
#define LEDGER_WINDOW_DEFAULT ((uint64_t)1 << 20)
#define LEDGER_MAX_STREAMS_DEFAULT 1024
#define LEDGER_MAX_JUMP_DEFAULT ((uint64_t)1 << 20)

/* The options of a ledger in a tool's usage (reco-profile, reco-train). */
#define LEDGER_USAGE \
"      --position-window N  positions per source kept below the highest, for\n" \
"                           events that come out of order (default 1048576;\n" \
"                           a multiple of 8)\n" \
"      --max-sources N      most sources (partitions, files) with positions\n" \
"                           (default 1024)\n" \
"      --max-position-jump N  reject an event whose source position is more\n" \
"                           than N above its source's highest (default\n" \
"                           1048576; 0: no limit)\n"

/* ledger.c */
void ledger_init(struct ledger *l, uint64_t window, uint64_t max_streams,
		 uint64_t max_jump, int writer);
void ledger_free(struct ledger *l);
int ledger_source_parse(struct str src, struct str *stream, int64_t *pos);
uint32_t ledger_stream(struct ledger *l, const char *name, size_t n,
		       int create);
int ledger_check(struct ledger *l, struct str source, struct ledger_pos *sp);
void ledger_advance(struct ledger *l, const struct ledger_pos *sp);
void ledger_raise_all(struct ledger *l, const struct ledger_pos *sp);
int ledger_win_bit(const struct ledger *l, const struct ledger_stream *t,
		   int64_t p);
void ledger_win_set(struct ledger *l, struct ledger_stream *t, int64_t p,
		    int v);
void ledger_sort(struct ledger *l);
void ledger_encode(struct buf *b, struct ledger *l);
int ledger_decode(const char **p, const char *e, struct ledger *l,
		  int windows);
void ledger_clean(struct ledger *l);
const char *ledger_reason(int r);

#endif
