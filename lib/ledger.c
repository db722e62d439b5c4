/* ledger.c: per-source position ledgers (high mark and window of applied positions), their checks and their encoding. */
#include <stdlib.h>
#include <string.h>

#include "reco.h"
#include "ledger.h"

#define STREAM_SEED 0x73747265 /* seed of hash64 for stream names */

/*
 * Set up an empty ledger: window positions per stream (a multiple of 8; 0:
 * only the high mark), at most max_streams streams (0: no limit), jumps of
 * at most max_jump above the high mark (0: any). A writer keeps the
 * windows; a reader only the high marks. Free it with ledger_free.
 */
void
ledger_init(struct ledger *l, uint64_t window, uint64_t max_streams,
	    uint64_t max_jump, int writer)
{
	memset(l, 0, sizeof *l);
	l->window = window;
	l->max_streams = max_streams;
	l->max_jump = max_jump;
	l->writer = writer;
	htab_init(&l->sidx, 16);
}

/* Free what the ledger holds (not l itself). */
void
ledger_free(struct ledger *l)
{
	for (size_t i = 0; i < l->nstreams; i++) {
		free(l->streams[i].name);
		free(l->streams[i].win);
	}
	free(l->streams);
	l->streams = NULL;
	l->nstreams = 0;
	htab_free(&l->sidx);
}

static int
all_digits(const char *p, size_t n)
{
	if (n == 0 || n > 18)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

/*
 * Split a source into its stream and position: kafka:TOPIC/PART@OFFSET
 * (stream kafka:TOPIC/PART) and file:NAME:LINE (stream file:NAME). Return
 * 1, or 0 for a source without a position that can be read again (none,
 * stdin:LINE, anything else).
 */
int
ledger_source_parse(struct str src, struct str *stream, int64_t *pos)
{
	const char *p = src.p, *sep = NULL;
	size_t pre;

	if (src.n > 6 && memcmp(p, "kafka:", 6) == 0) {
		pre = 6;
		for (size_t i = src.n; i-- > pre;)
			if (p[i] == '@') {
				sep = p + i;
				break;
			}
	} else if (src.n > 5 && memcmp(p, "file:", 5) == 0) {
		pre = 5;
		for (size_t i = src.n; i-- > pre;)
			if (p[i] == ':') {
				sep = p + i;
				break;
			}
	} else
		return 0;
	if (!sep || sep == p + pre)
		return 0;
	if (!all_digits(sep + 1, (size_t)(p + src.n - sep - 1)))
		return 0;
	stream->p = p;
	stream->n = (size_t)(sep - p);
	*pos = 0;
	for (const char *d = sep + 1; d < p + src.n; d++)
		*pos = *pos * 10 + (*d - '0');
	return 1;
}

/* The stream named name: found, or added if create (LEDGER_NIL if not). */
uint32_t
ledger_stream(struct ledger *l, const char *name, size_t n, int create)
{
	uint64_t h = hash64(name, n, STREAM_SEED);
	int isnew;
	uint32_t *v = htab_get(&l->sidx, h);
	struct ledger_stream *t;

	if (v && l->streams[*v].n == n &&
	    memcmp(l->streams[*v].name, name, n) == 0)
		return *v;
	if (v) {
		/* A hash shared by two streams: search them all. */
		for (size_t i = 0; i < l->nstreams; i++)
			if (l->streams[i].n == n &&
			    memcmp(l->streams[i].name, name, n) == 0)
				return (uint32_t)i;
	}
	if (!create)
		return LEDGER_NIL;
	v = htab_put(&l->sidx, h, &isnew);
	l->streams = xreallocarray(l->streams, l->nstreams + 1,
				   sizeof *l->streams);
	t = &l->streams[l->nstreams];
	memset(t, 0, sizeof *t);
	t->name = xstrndup(name, n);
	t->n = n;
	t->pos = -1;
	if (l->writer && l->window) {
		t->win = xcalloc(1, l->window / 8);
		t->full = 1;
	}
	if (isnew)
		*v = (uint32_t)l->nstreams;
	return (uint32_t)l->nstreams++;
}

/* Whether position p of t's window is applied. */
int
ledger_win_bit(const struct ledger *l, const struct ledger_stream *t,
	       int64_t p)
{
	uint64_t i = (uint64_t)p % l->window;

	return t->win[i >> 3] >> (i & 7) & 1;
}

/* Mark position p of t's window applied (v 1) or not (v 0). */
void
ledger_win_set(struct ledger *l, struct ledger_stream *t, int64_t p, int v)
{
	uint64_t i = (uint64_t)p % l->window;

	if (v)
		t->win[i >> 3] |= (unsigned char)(1u << (i & 7));
	else
		t->win[i >> 3] &= (unsigned char)~(1u << (i & 7));
}

static void
win_touch(struct ledger_stream *t, int64_t lo, int64_t hi)
{
	if (!t->dirty) {
		t->dmin = lo;
		t->dmax = hi;
		t->dirty = 1;
		return;
	}
	if (lo < t->dmin)
		t->dmin = lo;
	if (hi > t->dmax)
		t->dmax = hi;
}

/* Raise t's high mark to p (above it), with p applied and the positions
 * between not; if all, every position up to p counts as applied. */
static void
stream_raise(struct ledger *l, struct ledger_stream *t, int64_t p, int all)
{
	int64_t w = (int64_t)l->window;

	if (all || p - t->pos >= w) {
		memset(t->win, all ? 0xff : 0, (size_t)(w / 8));
		t->full = 1;
	} else {
		for (int64_t q = t->pos + 1; q < p; q++)
			ledger_win_set(l, t, q, 0);
		win_touch(t, t->pos + 1, p);
	}
	t->pos = p;
	ledger_win_set(l, t, p, 1);
	win_touch(t, p, p);
}

/* Whether position p is a poison jump for the stream named name whose high
 * mark is high (-1: none yet). */
static int
is_jump(const struct ledger *l, const char *name, size_t n, int64_t high,
	int64_t p)
{
	if (!l->max_jump)
		return 0;
	if (high < 0) {
		/* A file's lines count from 1; a partition's log may start
		 * anywhere. */
		if (n > 5 && memcmp(name, "file:", 5) == 0)
			high = 0;
		else
			return 0;
	}
	return p > high && (uint64_t)(p - high) > l->max_jump;
}

/*
 * Look up the position of an event's source. Return LEDGER_NEW if it is
 * not applied yet (or has no position), LEDGER_REPLAYED if it is,
 * LEDGER_BEYOND_WINDOW if it is at or below the high mark less the window
 * (taken as applied), LEDGER_JUMP if it is a poison position (more than
 * max_jump above the high mark: refuse the event; the ledger is unchanged),
 * or LEDGER_FULL if its stream would be one more than max_streams. sp is
 * what ledger_advance takes once the event is applied.
 */
int
ledger_check(struct ledger *l, struct str source, struct ledger_pos *sp)
{
	struct str stream;
	struct ledger_stream *t;

	sp->stream = LEDGER_NIL;
	if (!ledger_source_parse(source, &stream, &sp->pos))
		return LEDGER_NEW;
	sp->stream = ledger_stream(l, stream.p, stream.n, 0);
	if (sp->stream == LEDGER_NIL) {
		if (is_jump(l, stream.p, stream.n, -1, sp->pos))
			return LEDGER_JUMP;
		if (l->max_streams && l->nstreams >= l->max_streams)
			return LEDGER_FULL;
		sp->stream = ledger_stream(l, stream.p, stream.n, 1);
	}
	t = &l->streams[sp->stream];
	if (sp->pos > t->pos)
		return is_jump(l, t->name, t->n, t->pos, sp->pos) ? LEDGER_JUMP
								  : LEDGER_NEW;
	if (!t->win)
		return LEDGER_REPLAYED;
	if (sp->pos <= t->pos - (int64_t)l->window)
		return LEDGER_BEYOND_WINDOW;
	return ledger_win_bit(l, t, sp->pos) ? LEDGER_REPLAYED : LEDGER_NEW;
}

/* Record that the event at sp (LEDGER_NEW from ledger_check) is applied. */
void
ledger_advance(struct ledger *l, const struct ledger_pos *sp)
{
	struct ledger_stream *t;

	if (sp->stream == LEDGER_NIL)
		return;
	t = &l->streams[sp->stream];
	if (!t->win) {
		if (sp->pos <= t->pos)
			return;
		t->pos = sp->pos;
	} else if (sp->pos > t->pos)
		stream_raise(l, t, sp->pos, 0);
	else if (sp->pos > t->pos - (int64_t)l->window) {
		ledger_win_set(l, t, sp->pos, 1);
		win_touch(t, sp->pos, sp->pos);
	} else
		return;
	t->moved = 1;
}

/* Raise the high mark of sp's stream to sp's position with every position
 * up to it applied (when only the highest one applied is known). */
void
ledger_raise_all(struct ledger *l, const struct ledger_pos *sp)
{
	struct ledger_stream *t;

	if (sp->stream == LEDGER_NIL)
		return;
	t = &l->streams[sp->stream];
	if (t->win && sp->pos > t->pos) {
		stream_raise(l, t, sp->pos, 1);
		t->moved = 1;
	} else
		ledger_advance(l, sp);
}

static int
stream_cmp(const void *a, const void *b)
{
	const struct ledger_stream *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->name, y->name, n);

	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Sort the streams by name (the order files have them in); the indexes
 * ledger_check gave before are void. */
void
ledger_sort(struct ledger *l)
{
	if (l->nstreams > 1)
		qsort(l->streams, l->nstreams, sizeof *l->streams, stream_cmp);
	htab_free(&l->sidx);
	htab_init(&l->sidx, 16);
	for (size_t i = 0; i < l->nstreams; i++) {
		int isnew;
		uint64_t h = hash64(l->streams[i].name, l->streams[i].n, STREAM_SEED);
		uint32_t *v = htab_put(&l->sidx, h, &isnew);
		if (isnew)
			*v = (uint32_t)i;
	}
}

/*
 * A stream's window, whatever its size: the positions from pos - 1 down
 * to the window's lowest (not below 0) as alternating runs of applied and
 * not applied ones, the first (applied) maybe empty: a count, then the
 * lengths. Positions below the runs count as applied.
 */
static void
put_window(struct buf *b, struct ledger *l, struct ledger_stream *t)
{
	struct buf runs = { 0 };
	int64_t lo, q, nruns = 0, len = 0;
	int cur = 1;

	lo = t->pos - (int64_t)l->window + 1;
	if (lo < 0)
		lo = 0;
	if (!t->win || t->pos <= 0) {
		buf_put_varint(b, 0);
		return;
	}
	for (q = t->pos - 1; q >= lo; q--) {
		int bit = ledger_win_bit(l, t, q);
		if (bit != cur) {
			buf_put_varint(&runs, len);
			nruns++;
			cur = bit;
			len = 0;
		}
		len++;
	}
	if (len) {
		buf_put_varint(&runs, len);
		nruns++;
	}
	buf_put_varint(b, nruns);
	buf_put(b, runs.p, runs.n);
	buf_free(&runs);
}

/* Read what put_window wrote into t's window (if t has one). Return 0, or
 * -1 if it is corrupt. */
static int
get_window(const char **p, const char *e, struct ledger *l,
	   struct ledger_stream *t)
{
	int64_t nruns, len, q = t->pos - 1, low;
	int cur = 1;

	if (get_varint(p, e, &nruns) || nruns < 0 || nruns > e - *p)
		return -1;
	low = t->pos - (int64_t)l->window;
	if (t->win) {
		memset(t->win, 0xff, l->window / 8);
		t->full = 1;
	}
	while (nruns-- > 0) {
		if (get_varint(p, e, &len) || len < 0 || len > q + 1)
			return -1;
		for (; len > 0 && q > low && t->win; len--, q--)
			ledger_win_set(l, t, q, cur);
		q -= len;
		cur = !cur;
	}
	return 0;
}

/*
 * Append the ledger to b, streams sorted by name: their number, then for
 * each its name (varint length, bytes), its high mark (varint) and its
 * window (put_window). A data contract: reco-profile's state file and
 * reco-train's snapshot (reco-model(5)) hold these bytes.
 */
void
ledger_encode(struct buf *b, struct ledger *l)
{
	ledger_sort(l);
	buf_put_varint(b, (int64_t)l->nstreams);
	for (size_t i = 0; i < l->nstreams; i++) {
		buf_put_bytes(b, l->streams[i].name, l->streams[i].n);
		buf_put_varint(b, l->streams[i].pos);
		put_window(b, l, &l->streams[i]);
	}
}

/* Read what ledger_encode wrote (without the windows unless windows: a
 * file from before they were kept, where every position up to the high
 * mark counts as applied) from *p (up to e) into l. Return 0, or -1 if it
 * is corrupt. */
int
ledger_decode(const char **p, const char *e, struct ledger *l, int windows)
{
	int64_t n, v;
	struct str x;

	if (get_varint(p, e, &n) || n < 0 || n > e - *p)
		return -1;
	while (n-- > 0) {
		if (get_bytes(p, e, &x) || get_varint(p, e, &v) || v < -1)
			return -1;
		uint32_t k = ledger_stream(l, x.p, x.n, 1);
		struct ledger_stream *t = &l->streams[k];
		t->pos = v;
		if (!windows) {
			if (t->win)
				memset(t->win, 0xff, l->window / 8);
		} else if (get_window(p, e, l, t))
			return -1;
	}
	return 0;
}

/* After a commit: nothing is left to write. */
void
ledger_clean(struct ledger *l)
{
	for (size_t i = 0; i < l->nstreams; i++)
		l->streams[i].dirty = l->streams[i].full = l->streams[i].moved = 0;
}

/* The drop or reject reason of a ledger_check result other than
 * LEDGER_NEW (a data contract: the reasons reco-profile(1) and
 * reco-train(1) document). */
const char *
ledger_reason(int r)
{
	switch (r) {
	case LEDGER_REPLAYED:
		return "replayed";
	case LEDGER_BEYOND_WINDOW:
		return "replayed_beyond_window";
	case LEDGER_JUMP:
		return "position_jump";
	}
	return "too_many_sources";
}
