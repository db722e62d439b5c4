/* reco.h: the map of libreco, the library every reco tool links. */
#ifndef RECO_H
#define RECO_H

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The version comes from the file VERSION, through the Makefile
 * (-DRECO_VERSION_NUMBER=x.y.z). */
#define RECO_STR_(x) #x
#define RECO_STR(x) RECO_STR_(x)
#ifdef RECO_VERSION_NUMBER
#define RECO_VERSION RECO_STR(RECO_VERSION_NUMBER)
#else
#define RECO_VERSION "unknown"
#endif

/* Exit statuses, the same for every tool and documented in every man page. */
enum reco_exit {
	EXIT_OK = 0,    /* success */
	EXIT_DATA = 1,  /* data problems past --max-rejects, truncated input,
			 * input that cannot be right */
	EXIT_USAGE = 2, /* bad command line */
	EXIT_IO = 3,    /* I/O or resource failure */
	EXIT_INT = 130, /* interrupted by SIGINT */
	EXIT_PIPE = 141,/* the reader went away (broken pipe), quietly */
	EXIT_TERM = 143 /* interrupted by SIGTERM */
};

/* Why a record is rejected: the label (reject_reason_names) is the
 * contract of --rejects and the metrics; the message is for people. The
 * parsers return -RJ_* so that no caller reads meaning from message text. */
enum reject_reason {
	RJ_NONE,
	RJ_BAD_JSON,
	RJ_BAD_CSV,
	RJ_BAD_ACCESS_LOG,
	RJ_BAD_TIMESTAMP,
	RJ_BAD_NUMBER,
	RJ_NEGATIVE,
	RJ_MISSING_FIELD,
	RJ_MISSING_ITEM,
	RJ_UNKNOWN_TYPE,
	RJ_INVALID_UTF8,
	RJ_INVALID_EVENT,
	RJ_UNEXPECTED_FIELD,
	RJ_LINE_TOO_LONG,
	RJ_FUTURE,
	RJ_TOO_OLD,
	RJ_LATE,
	RJ_BOT,
	RJ_INVALID_PROFILE,
	RJ_POSITION_JUMP,
	RJ_BAD_AVRO,
	RJ_UNKNOWN_SCHEMA,
	RJ_INCOMPATIBLE_SCHEMA,
	RJ_DELIMITER,
	RJ_N
};
extern const char *const reject_reason_names[RJ_N];

/* A byte string that need not be NUL-terminated; p may point into an input
 * buffer or a record arena. */
struct str {
	const char *p;
	size_t n;
};

/* err.c */
extern const char *progname;
extern int verbosity; /* -1 with -q, 0 by default, 1 or more with -v */
/* Set to the signal's number by SIGINT and SIGTERM (tool_open installs the
 * handler): input ends at the next record boundary, so the tool finishes
 * cleanly, saves its state and exits 128 + the signal's number. */
extern atomic_int reco_stop;
void err_init(const char *argv0);
void die(int status, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 2, 3)));
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void vwarn(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* mem.c: allocation that dies (status 3) on exhaustion or size overflow. */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* buf.c: a growing byte buffer and JSON text helpers. */
struct buf {
	char *p;
	size_t n, cap;
};
void buf_reserve(struct buf *b, size_t extra);
void buf_put(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_put_u64(struct buf *b, uint64_t v);
void buf_put_i64(struct buf *b, int64_t v);
void buf_put_double(struct buf *b, double d);
void buf_json_str(struct buf *b, const char *p, size_t n);
char *u64_put(char *o, uint64_t v);
char *i64_put(char *o, int64_t v);
char *json_str_put(char *o, const char *p, size_t n);
size_t json_plain_run(const char *p, size_t n, int *high);
void buf_free(struct buf *b);
int utf8_valid(const char *p, size_t n);

/* hash.c: fast 64-bit hashing for ids, shards and hash tables. */
uint64_t hash64(const void *p, size_t n, uint64_t seed);
uint32_t murmur2_kafka(const void *p, size_t n);
void hash_hex16(uint64_t h, char out[17]);

/* rng.c: a seedable PRNG (xoshiro256**), the same sequence on every
 * platform, so that --seed makes runs reproducible. */
struct rng {
	uint64_t s[4];
};
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
double rng_double(struct rng *r);              /* uniform in [0, 1) */
uint64_t rng_below(struct rng *r, uint64_t n); /* uniform in [0, n) */

/* accesslog.c: web server access logs in the combined log format. */
struct access_rec {
	struct str ip, ident, user;   /* %h %l %u ("-" is kept as is) */
	int64_t ts;                   /* [10/Oct/2000:13:55:36 -0700] in ms UTC */
	struct str method, target;    /* from the request line */
	struct str path, query;       /* target split at '?' (query without '?') */
	struct str proto;
	int status;
	int64_t bytes;                /* -1 for "-" */
	struct str referer, ua;       /* "-" is kept as is */
	struct str cookie;            /* an optional extra quoted field after the
				       * user agent, else empty */
};
int access_parse(const char *line, size_t n, struct access_rec *r, char *err,
		 size_t errlen);
struct route;
struct route *route_parse(const char *spec, char *err, size_t errlen);
int route_match(const struct route *rt, const struct access_rec *r,
		struct str *item, int *type);
void route_free(struct route *rt);
int query_param(struct str query, const char *name, struct buf *out);
int cookie_value(struct str cookies, const char *name, struct str *val);

/* csv_in.c: CSV records (libcsv), fed one physical line at a time so that
 * every record keeps its raw bytes and its first line number. */
struct csv_in;
struct csv_in *csv_in_new(int delim, int quote, size_t max_record);
int csv_in_line(struct csv_in *c, const char *line, size_t n, char *err,
		size_t errlen);
int csv_in_end(struct csv_in *c, char *err, size_t errlen);
size_t csv_in_nfields(const struct csv_in *c);
struct str csv_in_field(const struct csv_in *c, size_t i);
struct str csv_in_raw(const struct csv_in *c);
void csv_in_free(struct csv_in *c);

/* htab.c: an open-addressing hash table from 64-bit keys (hashes of ids,
 * see hash64) to 32-bit values, with deletion. Two ids with the same 64-bit
 * hash share an entry: at 10^7 live ids the chance of any such pair is
 * about 3e-6. */
struct htab {
	uint64_t *keys; /* 0 marks an empty slot; key 0 is stored as 1 */
	uint32_t *vals;
	size_t cap, n;  /* cap is a power of two */
};
void htab_init(struct htab *h, size_t hint);
uint32_t *htab_get(const struct htab *h, uint64_t key);
uint32_t *htab_put(struct htab *h, uint64_t key, int *isnew);
int htab_del(struct htab *h, uint64_t key);
void htab_free(struct htab *h);
size_t htab_bytes(const struct htab *h);

/* Deleting from a table probed linearly (htab and the others like it):
 * with place i emptied, the entry at j, further along the same run, whose
 * probe starts at home, moves back to i unless home lies cyclically in
 * (i, j] (then it is found without passing i). */
static inline int
probe_moves_back(size_t i, size_t j, size_t home)
{
	return (j > i && (home <= i || home > j)) ||
	       (j < i && (home <= i && home > j));
}

/* state.c: state and snapshot files, written atomically (a temporary file
 * in the same directory, fsync, rename, fsync of the directory), so that a
 * crash at any moment leaves the old file or the new one, never a mix. */
struct statew;
struct statew *state_begin(const char *path, char *err, size_t errlen);
int state_write(struct statew *w, const void *p, size_t n);
int state_commit(struct statew *w, char *err, size_t errlen);
void state_abort(struct statew *w);
int state_load(const char *path, struct buf *out, char *err, size_t errlen);
int state_put(struct statew *w, struct buf *b);
int state_put_crc(struct statew *w);
enum { STATE_FOREIGN = -1, STATE_BAD_VERSION = -2, STATE_CORRUPT = -3 };
int state_body(const struct buf *b, const char *magic, size_t mlen,
	       int64_t want, int64_t *version, const char **p, const char **e);
uint32_t crc32_any(uint32_t crc, const void *p, size_t n);
int state_crc_ok(const void *p, size_t n);
void buf_put_u64le(struct buf *b, uint64_t v);
int get_u64le(const char **p, const char *e, uint64_t *v);
/* Zigzag varints (the Avro long encoding), the one codec of state files,
 * snapshots, profiles and Avro records: v at p (room for 10 bytes), the
 * end returned; and v from *pp (not past e), 0 or -1 if malformed. */
static inline char *
varint_put(char *p, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

	while (z >= 0x80) {
		*p++ = (char)(z | 0x80);
		z >>= 7;
	}
	*p++ = (char)z;
	return p;
}

static inline int
varint_get(const unsigned char **pp, const unsigned char *e, int64_t *v)
{
	const unsigned char *p = *pp;
	uint64_t z = 0;

	for (int shift = 0; shift < 64 && p < e; shift += 7) {
		unsigned b = *p++;
		z |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
			*pp = p;
			return 0;
		}
	}
	return -1;
}
void buf_put_varint(struct buf *b, int64_t v);
int get_varint(const char **p, const char *e, int64_t *v);
void buf_put_bytes(struct buf *b, const void *p, size_t n);
int get_bytes(const char **p, const char *e, struct str *s);

/* timefmt.c: event time, always milliseconds since the epoch, UTC. */
enum ts_unit { TS_AUTO, TS_S, TS_MS, TS_US };
struct ts_format {
	int kind;       /* TSF_AUTO, TSF_S, TSF_MS, TSF_US, TSF_ISO, TSF_STRF */
	char *strf;     /* strftime-style format for TSF_STRF */
};
enum { TSF_AUTO, TSF_S, TSF_MS, TSF_US, TSF_ISO, TSF_STRF };
int ts_format_parse(struct ts_format *f, const char *spec);
int ts_parse(const struct ts_format *f, const char *p, size_t n, int64_t *ms);
int64_t ts_from_civil(int y, int mon, int d, int h, int mi, int s);
void ts_format_iso(int64_t ms, char out[64]);
int duration_parse(const char *s, int64_t *ms);
int size_parse(const char *s, uint64_t *bytes);

/* event.c: the canonical event reco.Event, version 1. */
#define EVENT_VERSION 1
enum event_type {
	ET_VIEW,
	ET_CLICK,
	ET_SEARCH,
	ET_ADD_TO_CART,
	ET_REMOVE_FROM_CART,
	ET_PURCHASE,
	ET_IMPRESSION,
	ET_NTYPES
};
extern const char *const event_type_names[ET_NTYPES];
int event_type_parse(const char *p, size_t n); /* -1 if unknown */
int event_type_needs_item(int type);

struct attr {
	struct str key, val;
};

/* Field presence bits for the optional fields. */
enum {
	EV_ITEM = 1 << 0,
	EV_SESSION = 1 << 1,
	EV_QTY = 1 << 2,
	EV_PRICE = 1 << 3,
	EV_QUERY = 1 << 4,
	EV_SOURCE = 1 << 5,
	EV_ATTRS = 1 << 6
};

/* An event. Strings point into the record being parsed or into arena, so an
 * event lives until the next call that fills it. */
struct event {
	struct str event_id, user, item, session, query, source;
	int64_t ts, qty;
	double price;
	int type;
	int v;
	unsigned has; /* EV_* bits */
	struct attr *attrs;
	size_t nattrs, attrs_cap;
	struct buf arena; /* unescaped strings */
	/* The line the lean parser read this event from: strings that lie in
	 * it had no escapes there, so they are written back as they are. */
	const char *clean_lo, *clean_hi;
	/* The line itself, while it is exactly what event_write_json would
	 * write for the event (event_scan_canonical found it so): written as
	 * it is. Whoever changes a field after the parse clears it
	 * (event_changed); event_reset and the attribute setters do. */
	struct str canon;
	/* Names of unknown top-level fields of the last parse (schema drift). */
	struct str unknown[8];
	size_t nunknown;
};
void event_init(struct event *ev);
void event_reset(struct event *ev);
/* The event no longer says what the line it was read from says. */
static inline void event_changed(struct event *ev)
{
	ev->canon.p = NULL;
	ev->canon.n = 0;
}
void event_free(struct event *ev);
const char *event_arena_copy(struct event *ev, const char *p, size_t n);
void event_add_attr(struct event *ev, const char *k, size_t kn, const char *v,
		    size_t vn);
void event_append_attr(struct event *ev, const char *k, size_t kn,
		       const char *v, size_t vn);
const struct str *event_get_attr(const struct event *ev, const char *k);
const struct str *event_get_attr_n(const struct event *ev, const char *k,
				   size_t kn);
int event_validate(const struct event *ev, char *err, size_t errlen);
void event_write_json(struct buf *b, const struct event *ev);
int event_field(const struct event *ev, const char *name, struct buf *out);
void event_copy(struct event *dst, const struct event *src);

/* event_json.c: the lean NDJSON path (jsmn + strict validation) and the
 * reference path (jansson). Both return 0 and fill ev, or -RJ_* (the reject
 * reason, negated) and write a message to err; both accept and reject
 * exactly the same lines. event_validate returns the same way. The lean
 * path first tries event_scan_canonical (1: a valid event in the form
 * event_write_json writes, ev filled and ev->canon set; 0: anything else,
 * ev undefined), then the full parse (event_parse_json_full, which the
 * checks call to compare the two). */
int event_parse_json(struct event *ev, const char *line, size_t n, char *err,
		     size_t errlen);
int event_parse_json_full(struct event *ev, const char *line, size_t n,
			  char *err, size_t errlen);
int event_scan_canonical(struct event *ev, const char *line, size_t n);
int event_parse_jansson(struct event *ev, const char *line, size_t n,
			char *err, size_t errlen);

/* schema_text.c (generated from schema/): the schemas, as text. */
extern const char event_avsc[];
extern const char event_json_schema[];
extern const char request_json_schema[], response_json_schema[];

/* io.c: byte input over a list of files, and buffered output. */
typedef void (*idle_fn)(void *ctx);
struct src {
	char **files;
	int nfiles, cur;
	const char *name;      /* current file name, "-" for stdin */
	int fd;
	char *buf, *head;
	size_t cap, start, end; /* unread bytes are buf[start..end) */
	int eof;
	uint64_t line;          /* line number of the last line returned */
	uint64_t offset;        /* file offset of buf[start] */
	uint64_t size;          /* file size, 0 if unknown (pipe) */
	uint64_t total_size, done_size; /* over all files, for --progress */
	size_t max_line;
	int stop;               /* set by the owner: the input ends at the
				 * next record boundary */
	int cut;                /* the input ended (stop or a signal) with a
				 * partial record left unread */
	idle_fn on_idle;
	idle_fn on_wait;        /* then every second while the input stays
				 * idle (progress and metrics); idle_ctx */
	void *idle_ctx;
	char err[256];
};
struct src *src_new(char **files, int nfiles, size_t max_line);
void src_free(struct src *s);
int src_next_file(struct src *s);
int src_peek(struct src *s, size_t n, const char **p);
int src_getline(struct src *s, const char **line, size_t *n, int *toolong);
int src_read(struct src *s, void *dst, size_t n);
int src_getrec(struct src *s, const char *d, size_t dn, const char **line,
	       size_t *n, int *toolong);
const char *mem_find(const char *p, size_t n, const char *d, size_t dn);

struct wout {
	int fd;
	const char *name;
	char *buf;
	size_t n, cap;
	int failed;
	int err_no;
	int reported;    /* the failure has been reported (tool.c) */
	int lines;       /* NDJSON: on a failed write to a regular file the
			  * file is cut back to its last complete line */
	uint64_t off;    /* bytes written to fd */
};
struct wout *wout_open(const char *path);
struct wout *wout_fd(int fd, const char *name);
int wout_write(struct wout *w, const void *p, size_t n);
int wout_flush(struct wout *w);
int wout_close(struct wout *w);
int wout_try_line(struct wout *w, const void *p, size_t n);

/* File formats. */
enum { FMT_AUTO, FMT_NDJSON, FMT_AVRO, FMT_CONFLUENT, FMT_AVRO_SINGLE };
int fmt_parse(const char *s);
/* Whether format f is one of Avro's (a container or messages). */
static inline int fmt_avro(int f)
{
	return f == FMT_AVRO || f == FMT_CONFLUENT || f == FMT_AVRO_SINGLE;
}

/* avro.c: Avro object container files for events (own fast codec for the
 * reco.Event schema, Avro C for schema parsing and resolution). */
/* An object container file being read: the header, then block by block
 * (the records' decoding is the caller's). */
struct avro_file {
	struct src *s;
	char *schema;             /* the writer's schema, JSON */
	char sync[16];
	int deflate;
	int keep_cut;             /* keep the records of a cut, uncompressed block */
	struct buf block, raw;
	const unsigned char *p, *e; /* the current block's records */
	int64_t left;             /* records left in it */
	uint64_t nblock;
	int truncated;
};
int src_read_long(struct src *s, int64_t *v);
int avro_file_open(struct avro_file *f, struct src *s, char *err, size_t errlen);
int avro_file_block(struct avro_file *f, char *err, size_t errlen);
void avro_file_free(struct avro_file *f);
struct avro_in;
struct avro_in *avro_in_open(struct src *s, char *err, size_t errlen);
int avro_in_next(struct avro_in *a, struct event *ev, char *err,
		 size_t errlen);
uint64_t avro_in_block(const struct avro_in *a);
uint64_t avro_in_record(const struct avro_in *a);
void avro_in_free(struct avro_in *a);
int avro_decode_event(const char *p, size_t n, size_t *used,
		      struct event *ev);

enum { CODEC_NULL, CODEC_DEFLATE };
struct avro_res;
struct avro_res *avro_res_new(const char *schema, char *err, size_t errlen);
int avro_res_decode(struct avro_res *r, const char *p, size_t n,
		    struct event *ev, char *err, size_t errlen);
void avro_res_free(struct avro_res *r);
struct avro_out;
struct avro_out *avro_out_new(struct wout *w, int codec);
struct avro_out *avro_out_new_schema(struct wout *w, int codec,
				     const char *schema);
struct avro_out *avro_out_new_msg(struct wout *w, const char *schema,
				  const void *head, size_t hn,
				  const char *delim, size_t dn);
void avro_out_key(struct avro_out *a, const char *k, size_t n);
struct buf *avro_out_record(struct avro_out *a);
int avro_out_next(struct avro_out *a);
int avro_out_event(struct avro_out *a, const struct event *ev);
int avro_out_flush(struct avro_out *a);
int avro_out_close(struct avro_out *a);
void avro_encode_event(struct buf *b, const struct event *ev);
int event_utf8_ok(const struct event *ev, char *err, size_t errlen);

/* avromsg.c: Avro records one per message (Kafka): the Confluent wire
 * format and single-object encoding, framed by length or delimiter. */
char *avro_canonical(const char *schema);
uint64_t avro_crc64(const void *p, size_t n);
int avro_fingerprint(const char *schema, uint64_t *fp);
size_t delim_parse(const char *s, char *out);
struct registry;
struct msg_in;
struct msg_in *msg_in_new(struct src *s, struct registry *reg,
			  const char *delim, size_t dn);
int msg_in_next(struct msg_in *m, struct event *ev, size_t max, int *why,
		char *err, size_t errlen);
void msg_in_raw(const struct msg_in *m, const char **p, size_t *n);
void msg_in_free(struct msg_in *m);

/* registry.c: a Confluent-compatible schema registry (libcurl, loaded by
 * the first registry_new). */
struct registry *registry_new(const char *url, char *err, size_t errlen);
int registry_get(struct registry *r, uint32_t id, char **schema, char *err,
		 size_t errlen);
int registry_register(struct registry *r, const char *subject,
		      const char *schema, uint32_t *id, char *err,
		      size_t errlen);
void registry_free(struct registry *r);

/* metrics.c: counters, gauges and histograms, for --stats and the
 * Prometheus text format (the --metrics files and reco-serve's /metrics). */
enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };
struct histogram {
	size_t n;        /* upper bounds, +Inf not counted */
	double *le;      /* the n upper bounds, ascending */
	uint64_t *count; /* n + 1: observations per bucket, not cumulative */
	double sum;      /* of the observations */
};
struct counter {
	char *name;   /* full metric name */
	char *labels; /* e.g. reason="bot", or NULL */
	char *help;
	enum metric_type type;
	int milli;    /* v is in thousandths: written as v / 1000 */
	int real;     /* a gauge whose value is f */
	int decl;     /* no series: the family declared (metric_family) */
	uint64_t v;
	double f;
	struct histogram h; /* METRIC_HISTOGRAM */
};
struct metrics {
	struct counter **c;
	size_t n, cap;
	char *tool; /* e.g. "ingest" */
	int64_t start_ms; /* when the process started, ms since the epoch */
};
void metric_family(struct metrics *m, const char *name, const char *help,
		   enum metric_type type);
uint64_t *metric(struct metrics *m, const char *name, const char *labels,
		 const char *help);
uint64_t *metric_gauge(struct metrics *m, const char *name,
		       const char *labels, const char *help);
uint64_t *metric_gauge_ms(struct metrics *m, const char *name,
			  const char *labels, const char *help);
double *metric_gauge_real(struct metrics *m, const char *name,
			  const char *labels, const char *help);
struct histogram *metric_histogram(struct metrics *m, const char *name,
				   const char *labels, const char *help,
				   const double *le, size_t n);
void metric_label(struct buf *b, const char *name, const char *value);
void metric_value(struct buf *b, const struct counter *c);
void metrics_text(struct buf *b, const struct metrics *m);
int metrics_write(const struct metrics *m, const char *path);
void metrics_free(struct metrics *m);

/* rejects.c */
struct pos {
	const char *file;
	uint64_t line;   /* line, or 0 */
	uint64_t block;  /* Avro block, or 0 */
	uint64_t record; /* record within an Avro block */
	uint64_t message; /* message of an Avro message stream, or 0 */
};

/* tool.c: what every tool shares: the common options, output, rejects,
 * stats, metrics and progress. */
struct tool;
typedef int (*opt_fn)(struct tool *t, int c, const char *arg);
struct tool {
	const char *name;      /* "reco-ingest" */
	const char *usage;     /* synopsis and the tool's own options; -h
				* adds the common options */
	int no_input;          /* a generator: no input options in -h */
	const char *writes;    /* what a tool that writes no events writes
				* ("model snapshots"): no -O, --codec, --key */
	int no_rejects;        /* answers bad records itself: no -I,
				* --rejects, --max-rejects, --max-initial-rejects */
	/* common options */
	const char *output;
	int in_fmt, out_fmt;
	const char *key;
	const char *rejects_path;
	long long max_rejects;
	int stats;
	const char *metrics_path;
	int progress;
	size_t max_line;
	int codec;
	char **files;
	int nfiles;
	/* --shard I/N: keep only the events of the users of shard I, those
	 * with shard_of(shard_by, user, N) == I; the others are dropped
	 * with reason other_shard. shard_n 0: no sharding. */
	uint32_t shard_i, shard_n;
	int shard_by;          /* --shard-by: SHARD_BY_HASH, ... */
	/* Avro messages (-I/-O confluent, avro-single) */
	const char *registry_url; /* --registry */
	struct registry *reg;
	const char *subject;   /* --subject: where -O confluent registers */
	char delim[64];        /* --message-delimiter, parsed; dn 0: lengths */
	size_t dn;
	char shard_tag[16];    /* "#I/N", the suffix of a shard's source
				* streams ("" without --shard or for N 1) */
	int no_events;         /* reads requests, not events: no --shard */
	const char *schema_help; /* the --schema line of -h, if not the event's */
	int shard_at_input;    /* events are sharded as read (evin), not as
				* written (tool_emit) */
	int shard_unknown;     /* the record being rejected is not an event
				* yet: its user, and so its shard, is unknown */
	/* state */
	struct wout *out;
	struct avro_out *avro;
	struct wout *rej;
	struct src *src;
	struct metrics m;
	uint64_t *in, *out_n, *rejected, *dropped_total;
	uint64_t nrej_msgs;
	double t0, last_tick, last_metrics;
	uint64_t ticks;
	struct buf line;
	int status;            /* the exit status so far (the first failure) */
	int halt;              /* stop reading: past --max-rejects, every
				* early record rejected, or a failed output */
	long long max_initial_rejects; /* stop if the first N records are
				* all rejected (0: never) */
	uint64_t *metrics_errors;
	int metrics_warned;
};
enum {
	OPT_COMMON_FIRST = 1000,
	OPT_KEY = 1000,
	OPT_REJECTS,
	OPT_MAX_REJECTS,
	OPT_STATS,
	OPT_METRICS,
	OPT_PROGRESS,
	OPT_NO_PROGRESS,
	OPT_MAX_LINE,
	OPT_SCHEMA,
	OPT_CODEC,
	OPT_SHARD,
	OPT_SHARD_BY,
	OPT_OPTIONS,
	OPT_CONFIG,
	OPT_MAX_INITIAL_REJECTS,
	OPT_REGISTRY,
	OPT_SUBJECT,
	OPT_MSG_DELIM,
	OPT_TOOL_FIRST = 2000
};
struct option;
void tool_init(struct tool *t, const char *name, const char *usage);
int tool_parse_args(struct tool *t, int argc, char **argv,
		    const struct option *tool_opts, const char *tool_short,
		    opt_fn fn);
struct avro_out *tool_avro_out(struct tool *t, int fmt, const char *schema);
void tool_key_clean(char *p, size_t n);
int tool_schema_print(struct tool *t, const char *which,
		      const char *const names[], const char *const texts[],
		      size_t n);
int tool_usage_msg(struct tool *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int tool_start(struct tool *t);
void tool_fail(struct tool *t, int status);
int tool_output_failed(struct tool *t, struct wout *w);
void tool_emit(struct tool *t, const struct event *ev);
void tool_emit_line(struct tool *t, const char *p, size_t n);
void tool_reject(struct tool *t, const struct pos *at, int reason,
		 const char *msg, const char *raw, size_t rawn);
void tool_drop(struct tool *t, const char *reason);
void tool_tick(struct tool *t);
void tool_idle(void *t);
int tool_flush(struct tool *t);
int tool_finish(struct tool *t);
void tool_pos(struct tool *t, struct pos *at);
/* Sharding by user (--shard I/N). The seed is part of the contract: every
 * tool, and anything else that shards reco's users, must use it. */
#define SHARD_SEED 0x7368617264ULL /* "shard" */
#define SHARD_MAX 65536
/* --shard-by: the project's hash; Kafka's Java clients' (and librdkafka's
 * murmur2_random); librdkafka's and kcat's default (consistent_random). */
enum { SHARD_BY_HASH, SHARD_BY_MURMUR2, SHARD_BY_CRC32 };
uint32_t shard_of(int by, const char *user, size_t n, uint32_t nshards);
int tool_in_shard(const struct tool *t, const char *user, size_t n);
int tool_shard_keep(struct tool *t, const struct event *ev);

/* evin.c: read events (NDJSON or Avro, auto-detected per file) with every
 * bad record rejected through the tool. */
struct evin;
struct evin *evin_new(struct tool *t);
int evin_next(struct evin *in, struct event *ev);
void evin_pos(const struct evin *in, struct pos *at);
void evin_free(struct evin *in);
void evin_raw(struct evin *in, const struct event *ev, const char **p,
	      size_t *n);

/* sniff.c: what a line that is not NDJSON looks like, for a hint. */
enum { SNIFF_NONE, SNIFF_CSV, SNIFF_ACCESS_LOG, SNIFF_AVRO };
int sniff_line(const char *line, size_t n);
const char *sniff_name(int kind);

/*
 * For cmd/ only (built with -DRECO_CMD): the library returns a status and
 * the tool's own code exits with it. These keep the call sites of the
 * command line short; each expands to an exit() in cmd/.
 */
#ifdef RECO_CMD
#include <stdlib.h>
/* Print a usage error and a hint, and exit 2. */
#define tool_usage_error(t, ...) exit(tool_usage_msg((t), __VA_ARGS__))
/* Print a schema (or a usage error) and exit. */
#define tool_schema(t, ...) exit(tool_schema_print((t), __VA_ARGS__))
/* Parse the command line; -h, -V and usage errors exit here. */
#define tool_parse(t, ...)                                        \
	do {                                                      \
		if (tool_parse_args((t), __VA_ARGS__))            \
			exit((t)->status);                        \
	} while (0)
/* Open the output, the rejects file and the input, or exit 3. */
#define tool_open(t)                                              \
	do {                                                      \
		if (tool_start(t))                                \
			exit(tool_finish(t));                     \
	} while (0)
#endif

#endif
