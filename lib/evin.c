/* evin.c: read canonical events (NDJSON or Avro, detected per file), rejecting bad records through the tool. */
#include <stdlib.h>
#include <string.h>

#include "reco.h"

struct evin {
	struct tool *t;
	struct src *s;
	struct avro_in *avro;
	struct msg_in *msg;   /* -I confluent, avro-single */
	int open;
	char err[512];
	struct buf raw;
	const char *line; /* the last NDJSON line read */
	size_t linen;
	int first;        /* the next line is the file's first record */
};

/* A reader of the tool's input files; t must be open (tool_open). */
struct evin *
evin_new(struct tool *t)
{
	struct evin *in = xcalloc(1, sizeof *in);

	in->t = t;
	in->s = t->src;
	/* --shard: the events of other shards go no further than here. */
	t->shard_at_input = 1;
	return in;
}

void
evin_free(struct evin *in)
{
	if (!in)
		return;
	avro_in_free(in->avro);
	msg_in_free(in->msg);
	buf_free(&in->raw);
	free(in);
}

/* Where the last record came from. */
void
evin_pos(const struct evin *in, struct pos *at)
{
	memset(at, 0, sizeof *at);
	at->file = in->s->name ? in->s->name : "-";
	if (in->msg)
		at->message = in->s->line;
	else if (in->avro) {
		at->block = avro_in_block(in->avro);
		at->record = avro_in_record(in->avro);
	} else
		at->line = in->s->line;
}

/*
 * The raw bytes of the last event read, for a rejects or drops file: the
 * NDJSON line as it came, or for Avro the event as JSON. Valid until the
 * next evin_next.
 */
void
evin_raw(struct evin *in, const struct event *ev, const char **p, size_t *n)
{
	if (in->avro) {
		in->raw.n = 0;
		event_write_json(&in->raw, ev);
		*p = in->raw.p;
		*n = in->raw.n;
	} else {
		*p = in->line;
		*n = in->linen;
	}
}

/* Reject a record that is not an event: with --shard, only shard 0 does
 * (its user, and so its shard, is not known). */
static void
reject_record(struct tool *t, const struct pos *at, int reason,
	      const char *msg, const char *raw, size_t rawn)
{
	t->shard_unknown = 1;
	tool_reject(t, at, reason, msg, raw, rawn);
	t->shard_unknown = 0;
}

static int
open_next(struct evin *in)
{
	struct tool *t = in->t;
	const char *p;

	for (;;) {
		int r = src_next_file(in->s);
		if (r == 0)
			return 0;
		if (r < 0) {
			warn("%s", in->s->err);
			tool_fail(t, EXIT_IO);
			return 0;
		}
		if (t->in_fmt == FMT_CONFLUENT || t->in_fmt == FMT_AVRO_SINGLE) {
			/* Messages start with a length (00 ..) or, framed by
			 * a delimiter, with 00 or c3: not with these. */
			int n = src_peek(in->s, 4, &p);
			if (n < 0) {
				warn("%s", in->s->err);
				tool_fail(t, EXIT_IO);
				return 0;
			}
			if (n > 0 && (p[0] == '{' || (n == 4 && memcmp(p, "Obj\1", 4) == 0))) {
				warn("%s: this looks like %s, not Avro messages: stopping (-I %s reads it)",
				     in->s->name, p[0] == '{' ? "NDJSON" : "an Avro container file",
				     p[0] == '{' ? "ndjson" : "avro");
				tool_fail(t, EXIT_DATA);
				return 0;
			}
			in->msg = msg_in_new(in->s, t->reg, t->dn ? t->delim : NULL, t->dn);
			in->open = 1;
			in->first = 1;
			return 1;
		}
		int avro = t->in_fmt == FMT_AVRO;
		if (t->in_fmt == FMT_AUTO) {
			int n = src_peek(in->s, 4, &p);
			if (n < 0) {
				warn("%s", in->s->err);
				tool_fail(t, EXIT_IO);
				return 0;
			}
			avro = n == 4 && memcmp(p, "Obj\1", 4) == 0;
		}
		if (avro) {
			in->avro = avro_in_open(in->s, in->err, sizeof in->err);
			if (!in->avro) {
				warn("%s: %s", in->s->name, in->err);
				t->status = EXIT_DATA;
				continue;
			}
		}
		in->open = 1;
		in->first = 1;
		return 1;
	}
}

static void
close_file(struct evin *in)
{
	avro_in_free(in->avro);
	in->avro = NULL;
	msg_in_free(in->msg);
	in->msg = NULL;
	in->open = 0;
}

/*
 * The first record of an NDJSON file is not JSON: if it is clearly another
 * format, stop (status 1) with a hint rather than reject every record.
 */
static int
wrong_format(struct evin *in, const struct pos *at, const char *line,
	     size_t n)
{
	int kind = sniff_line(line, n);

	if (kind == SNIFF_NONE)
		return 0;
	warn("%s:%llu: this looks like %s, not NDJSON events: stopping (%s)",
	     at->file, (unsigned long long)at->line, sniff_name(kind),
	     kind == SNIFF_AVRO ? "-I auto or -I avro reads it"
	     : kind == SNIFF_CSV ? "reco-ingest --from csv turns it into events"
				 : "reco-ingest --from access-log turns it into events");
	tool_fail(in->t, EXIT_DATA);
	return 1;
}

/*
 * Read the next valid event into ev. Invalid records are counted and
 * rejected on the way. Return 1, or 0 when every file is done, the tool
 * stops (t->halt: a failure, see t->status) or a signal ended the input at
 * a record boundary.
 */
int
evin_next(struct evin *in, struct event *ev)
{
	struct tool *t = in->t;
	struct pos at;

	for (;;) {
		if (t->halt || reco_stop)
			return 0;
		if (!in->open && !open_next(in))
			return 0;
		if (in->msg) {
			int why = 0, r = msg_in_next(in->msg, ev, t->max_line, &why,
						     in->err, sizeof in->err);
			if (r == 0) {
				close_file(in);
				continue;
			}
			if (r == -3) {
				warn("%s", in->s->err);
				tool_fail(t, EXIT_IO);
				return 0;
			}
			(*t->in)++;
			tool_tick(t);
			if (r == 1) {
				in->first = 0;
				if (t->shard_n > 1 && !tool_shard_keep(t, ev))
					continue;
				return 1;
			}
			if (r == -2) {
				t->shard_unknown = 1;
				tool_drop(t, "null_message");
				t->shard_unknown = 0;
				continue;
			}
			evin_pos(in, &at);
			if (r == -5) {
				warn("%s: %s", at.file, in->err);
				tool_fail(t, EXIT_IO);
				return 0;
			}
			const char *raw;
			size_t rawn;
			msg_in_raw(in->msg, &raw, &rawn);
			reject_record(t, &at, why, in->err, raw, rawn > 1024 ? 1024 : rawn);
			in->first = 0;
			continue;
		}
		if (in->avro) {
			int r = avro_in_next(in->avro, ev, in->err, sizeof in->err);
			if (r == 1) {
				(*t->in)++;
				tool_tick(t);
				if (t->shard_n > 1 && !tool_shard_keep(t, ev))
					continue;
				return 1;
			}
			if (r == 0) {
				close_file(in);
				continue;
			}
			evin_pos(in, &at);
			if (r == -1) {
				char tmp[256];
				int why = -event_validate(ev, tmp, sizeof tmp);
				(*t->in)++;
				in->raw.n = 0;
				event_write_json(&in->raw, ev);
				reject_record(t, &at, why ? why : RJ_INVALID_UTF8,
					      in->err, in->raw.p, in->raw.n);
				continue;
			}
			if (reco_stop || in->s->stop)
				return 0; /* a block cut by the stop: unread */
			warn("%s: block %llu: %s", at.file,
			     (unsigned long long)at.block, in->err);
			t->status = EXIT_DATA;
			close_file(in);
			continue;
		}
		const char *line;
		size_t n;
		int toolong;
		int r = src_getline(in->s, &line, &n, &toolong);
		if (r < 0) {
			warn("%s", in->s->err);
			tool_fail(t, EXIT_IO);
			return 0;
		}
		if (r == 0) {
			close_file(in);
			continue;
		}
		size_t i = 0;
		while (i < n && (line[i] == ' ' || line[i] == '\t' ||
				 line[i] == '\r'))
			i++;
		if (i == n && !toolong)
			continue; /* blank lines are not records */
		(*t->in)++;
		tool_tick(t);
		evin_pos(in, &at);
		if (toolong) {
			snprintf(in->err, sizeof in->err,
				 "line longer than %zu bytes (--max-line)",
				 t->max_line);
			reject_record(t, &at, RJ_LINE_TOO_LONG, in->err, line,
				      n > 1024 ? 1024 : n);
			in->first = 0;
			continue;
		}
		in->line = line;
		in->linen = n;
		int why = -event_parse_json(ev, line, n, in->err, sizeof in->err);
		if (why == 0) {
			in->first = 0;
			if (t->shard_n > 1 && !tool_shard_keep(t, ev))
				continue;
			return 1;
		}
		reject_record(t, &at, why, in->err, line, n);
		if (in->first && why == RJ_BAD_JSON &&
		    wrong_format(in, &at, line, n))
			return 0;
		in->first = 0;
	}
}
