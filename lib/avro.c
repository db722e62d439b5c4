/* avro.c: Avro object container files of reco.Event: a fast codec for our schema, Avro C for resolving others. */
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>
#include <zlib.h>

#include "reco.h"

#define BLOCK_BYTES (64u << 10)  /* close a block at this size ... */
#define BLOCK_RECORDS 4096       /* ... or at this many records */
#define MAX_BLOCK (64u << 20)    /* a larger block is taken as corrupt */

static const char magic[4] = { 'O', 'b', 'j', 1 };

/* ---- varints ---- */

static void
buf_long(struct buf *b, int64_t v)
{
	buf_reserve(b, 10);
	b->n = (size_t)(varint_put(b->p + b->n, v) - b->p);
}

static void
buf_avro_str(struct buf *b, const char *p, size_t n)
{
	buf_long(b, (int64_t)n);
	buf_put(b, p, n);
}

/* ---- the event codec ---- */

static inline char *
put_str(char *p, const struct str *s)
{
	p = varint_put(p, (int64_t)s->n);
	memcpy(p, s->p, s->n);
	return p + s->n;
}

static inline char *
put_opt_str(char *p, int has, const struct str *s)
{
	if (!has) {
		*p++ = 0;
		return p;
	}
	*p++ = 2; /* branch 1 */
	return put_str(p, s);
}

/* Append the Avro binary encoding of ev (schema reco.Event v1) to b. */
void
avro_encode_event(struct buf *b, const struct event *ev)
{
	size_t need = 128 + ev->event_id.n + ev->user.n + ev->item.n +
		      ev->session.n + ev->query.n + ev->source.n;

	for (size_t i = 0; i < ev->nattrs; i++)
		need += 20 + ev->attrs[i].key.n + ev->attrs[i].val.n;
	buf_reserve(b, need);
	char *p = b->p + b->n;
	p = put_str(p, &ev->event_id);
	p = varint_put(p, ev->ts);
	p = put_str(p, &ev->user);
	p = varint_put(p, ev->type);
	p = put_opt_str(p, ev->has & EV_ITEM, &ev->item);
	p = put_opt_str(p, ev->has & EV_SESSION, &ev->session);
	if (ev->has & EV_QTY) {
		*p++ = 2;
		p = varint_put(p, ev->qty);
	} else
		*p++ = 0;
	if (ev->has & EV_PRICE) {
		*p++ = 2;
		memcpy(p, &ev->price, 8); /* little-endian hosts only */
		p += 8;
	} else
		*p++ = 0;
	p = put_opt_str(p, ev->has & EV_QUERY, &ev->query);
	p = put_opt_str(p, ev->has & EV_SOURCE, &ev->source);
	if (ev->has & EV_ATTRS) {
		*p++ = 2;
		if (ev->nattrs) {
			p = varint_put(p, (int64_t)ev->nattrs);
			for (size_t i = 0; i < ev->nattrs; i++) {
				p = put_str(p, &ev->attrs[i].key);
				p = put_str(p, &ev->attrs[i].val);
			}
		}
		*p++ = 0;
	} else
		*p++ = 0;
	p = varint_put(p, ev->v);
	b->n = (size_t)(p - b->p);
}

static int
get_str(const unsigned char **p, const unsigned char *e, struct str *s)
{
	int64_t n;

	if (varint_get(p, e, &n) || n < 0 || n > e - *p)
		return -1;
	s->p = (const char *)*p;
	s->n = (size_t)n;
	*p += n;
	return 0;
}

static int
get_branch(const unsigned char **p, const unsigned char *e, int *branch)
{
	int64_t b;

	if (varint_get(p, e, &b) || (b != 0 && b != 1))
		return -1;
	*branch = (int)b;
	return 0;
}

static int
get_opt_str(const unsigned char **p, const unsigned char *e, struct event *ev,
	    unsigned bit, struct str *s)
{
	int br;

	if (get_branch(p, e, &br))
		return -1;
	if (br == 0)
		return 0;
	ev->has |= bit;
	return get_str(p, e, s);
}

/*
 * Decode one reco.Event v1 record from p[0..n) into ev; strings point into
 * p. Set *used to the bytes consumed. Return 0, or -1 if the bytes are not
 * a well-formed record.
 */
int
avro_decode_event(const char *data, size_t n, size_t *used, struct event *ev)
{
	const unsigned char *p = (const unsigned char *)data, *e = p + n;
	int64_t t;
	int br;

	event_reset(ev);
	if (get_str(&p, e, &ev->event_id) || varint_get(&p, e, &ev->ts) ||
	    get_str(&p, e, &ev->user) || varint_get(&p, e, &t) || t < 0 ||
	    t >= ET_NTYPES)
		return -1;
	ev->type = (int)t;
	if (get_opt_str(&p, e, ev, EV_ITEM, &ev->item) ||
	    get_opt_str(&p, e, ev, EV_SESSION, &ev->session) ||
	    get_branch(&p, e, &br))
		return -1;
	if (br) {
		if (varint_get(&p, e, &ev->qty))
			return -1;
		ev->has |= EV_QTY;
	}
	if (get_branch(&p, e, &br))
		return -1;
	if (br) {
		if (e - p < 8)
			return -1;
		memcpy(&ev->price, p, 8);
		p += 8;
		ev->has |= EV_PRICE;
	}
	if (get_opt_str(&p, e, ev, EV_QUERY, &ev->query) ||
	    get_opt_str(&p, e, ev, EV_SOURCE, &ev->source) ||
	    get_branch(&p, e, &br))
		return -1;
	if (br) {
		ev->has |= EV_ATTRS;
		for (;;) {
			int64_t cnt, bytes;
			if (varint_get(&p, e, &cnt))
				return -1;
			if (cnt == 0)
				break;
			if (cnt < 0) {
				if (cnt == INT64_MIN)
					return -1;
				cnt = -cnt;
				if (varint_get(&p, e, &bytes))
					return -1;
			}
			if (cnt > e - p)
				return -1;
			for (int64_t i = 0; i < cnt; i++) {
				struct str k, v;
				if (get_str(&p, e, &k) || get_str(&p, e, &v))
					return -1;
				event_add_attr(ev, k.p, k.n, v.p, v.n);
			}
		}
	}
	if (varint_get(&p, e, &t))
		return -1;
	ev->v = t >= 0 && t < 1000000 ? (int)t : -1;
	*used = (size_t)(p - (const unsigned char *)data);
	return 0;
}

/* Check the strings of a decoded event: Avro strings must be UTF-8. */
int
event_utf8_ok(const struct event *ev, char *err, size_t errlen)
{
	const struct str *f[] = { &ev->event_id, &ev->user, &ev->item,
				  &ev->session, &ev->query, &ev->source };
	static const char *names[] = { "event_id", "user", "item", "session",
				       "query", "source" };

	/* NUL is valid UTF-8 but no JSON reader here accepts it. */
	for (size_t i = 0; i < 6; i++)
		if (f[i]->n && (!utf8_valid(f[i]->p, f[i]->n) ||
				memchr(f[i]->p, 0, f[i]->n))) {
			snprintf(err, errlen, "invalid UTF-8 in %s", names[i]);
			return -1;
		}
	for (size_t i = 0; i < ev->nattrs; i++)
		if (!utf8_valid(ev->attrs[i].key.p, ev->attrs[i].key.n) ||
		    !utf8_valid(ev->attrs[i].val.p, ev->attrs[i].val.n) ||
		    memchr(ev->attrs[i].key.p, 0, ev->attrs[i].key.n) ||
		    memchr(ev->attrs[i].val.p, 0, ev->attrs[i].val.n)) {
			snprintf(err, errlen, "invalid UTF-8 in attrs");
			return -1;
		}
	return 0;
}

/* ---- the schema ---- */

static avro_schema_t our_schema;

static avro_schema_t
event_schema(void)
{
	if (!our_schema &&
	    avro_schema_from_json_length(event_avsc, strlen(event_avsc),
					 &our_schema))
		die(EXIT_IO, "internal error: bad event schema: %s",
		    avro_strerror());
	return our_schema;
}

/* ---- the container: header and blocks, for any record ---- */

/* A zigzag varint from s; 0, or -1 at the end or past 10 bytes. */
int
src_read_long(struct src *s, int64_t *v)
{
	uint64_t z = 0;

	for (int shift = 0; shift < 64; shift += 7) {
		unsigned char b;
		if (src_read(s, &b, 1) != 1)
			return -1;
		z |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
			return 0;
		}
	}
	return -1;
}

static int
read_bytes(struct src *s, struct buf *b, size_t max)
{
	int64_t n;

	if (src_read_long(s, &n) || n < 0 || (uint64_t)n > max)
		return -1;
	b->n = 0;
	buf_reserve(b, (size_t)n);
	if (src_read(s, b->p, (size_t)n) != n)
		return -1;
	b->n = (size_t)n;
	b->p[n] = '\0';
	return 0;
}

/*
 * Read an object container file's header from s (positioned at the
 * magic): its schema (f->schema, the writer's JSON), its codec and its
 * sync marker. Return 0, or -1 with the reason in err (not an Avro file,
 * a bad header, an unknown codec, no schema). avro_file_free frees f
 * either way.
 */
int
avro_file_open(struct avro_file *f, struct src *s, char *err, size_t errlen)
{
	char m[4];
	struct buf key = { 0 }, val = { 0 };

	memset(f, 0, sizeof *f);
	f->s = s;
	if (src_read(s, m, 4) != 4 || memcmp(m, magic, 4) != 0) {
		snprintf(err, errlen, "not an Avro object container file");
		goto fail;
	}
	for (;;) {
		int64_t cnt, bytes;
		if (src_read_long(s, &cnt))
			goto bad;
		if (cnt == 0)
			break;
		if (cnt < 0) {
			if (cnt == INT64_MIN)
				goto bad;
			cnt = -cnt;
			if (src_read_long(s, &bytes))
				goto bad;
		}
		for (int64_t i = 0; i < cnt; i++) {
			if (read_bytes(s, &key, 1 << 20) ||
			    read_bytes(s, &val, 16 << 20))
				goto bad;
			if (strcmp(key.p, "avro.schema") == 0) {
				free(f->schema);
				f->schema = xstrndup(val.p, val.n);
			} else if (strcmp(key.p, "avro.codec") == 0) {
				if (strcmp(val.p, "deflate") == 0)
					f->deflate = 1;
				else if (strcmp(val.p, "null") != 0) {
					snprintf(err, errlen,
						 "unsupported Avro codec \"%.32s\"",
						 val.p);
					goto fail;
				}
			}
		}
	}
	if (src_read(s, f->sync, 16) != 16)
		goto bad;
	if (!f->schema) {
		snprintf(err, errlen, "Avro header has no schema");
		goto fail;
	}
	buf_free(&key);
	buf_free(&val);
	return 0;
bad:
	snprintf(err, errlen, "bad or truncated Avro header");
fail:
	buf_free(&key);
	buf_free(&val);
	return -1;
}

void
avro_file_free(struct avro_file *f)
{
	free(f->schema);
	buf_free(&f->block);
	buf_free(&f->raw);
	memset(f, 0, sizeof *f);
}

static int
inflate_block(struct avro_file *a, char *err, size_t errlen)
{
	z_stream z;
	int rc;

	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, -15) != Z_OK) {
		snprintf(err, errlen, "inflate: cannot initialise");
		return -1;
	}
	a->raw.n = 0;
	buf_reserve(&a->raw, a->block.n * 4 + 1024);
	z.next_in = (unsigned char *)a->block.p;
	z.avail_in = (unsigned)a->block.n;
	for (;;) {
		z.next_out = (unsigned char *)a->raw.p + a->raw.n;
		z.avail_out = (unsigned)(a->raw.cap - a->raw.n - 1);
		rc = inflate(&z, Z_NO_FLUSH);
		a->raw.n = a->raw.cap - 1 - z.avail_out;
		if (rc == Z_STREAM_END)
			break;
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			inflateEnd(&z);
			snprintf(err, errlen, "corrupt deflate data in block %llu",
				 (unsigned long long)a->nblock);
			return -1;
		}
		if (z.avail_in == 0 && rc == Z_BUF_ERROR) {
			inflateEnd(&z);
			snprintf(err, errlen, "truncated deflate data in block %llu",
				 (unsigned long long)a->nblock);
			return -1;
		}
		if (a->raw.n > MAX_BLOCK * 4u) {
			inflateEnd(&z);
			snprintf(err, errlen, "block %llu inflates past the limit",
				 (unsigned long long)a->nblock);
			return -1;
		}
		buf_reserve(&a->raw, a->raw.cap);
	}
	inflateEnd(&z);
	return 0;
}

/*
 * Read the next block: its records' bytes in f->p .. f->e (inflated),
 * f->left of them. Return 1, 0 at the end of the file, -2 if it is
 * truncated or corrupt (err says which). With f->keep_cut, the complete
 * records of an uncompressed block cut short are kept (f->truncated set,
 * 1 returned after the message in err).
 */
int
avro_file_block(struct avro_file *a, char *err, size_t errlen)
{
	int64_t cnt, size;
	char sync[16];
	const char *peek;

	if (src_peek(a->s, 1, &peek) == 0)
		return 0;
	a->nblock++;
	if (src_read_long(a->s, &cnt) || src_read_long(a->s, &size)) {
		snprintf(err, errlen, "truncated Avro block %llu header",
			 (unsigned long long)a->nblock);
		return -2;
	}
	if (cnt < 0 || size < 0 || (uint64_t)size > MAX_BLOCK) {
		snprintf(err, errlen, "corrupt Avro block %llu (count %lld, size %lld)",
			 (unsigned long long)a->nblock, (long long)cnt,
			 (long long)size);
		return -2;
	}
	a->block.n = 0;
	buf_reserve(&a->block, (size_t)size);
	int got = src_read(a->s, a->block.p, (size_t)size);
	if (got < 0) {
		snprintf(err, errlen, "%s", a->s->err);
		return -2;
	}
	a->block.n = (size_t)got;
	a->left = cnt;
	if (got < size || src_read(a->s, sync, 16) != 16) {
		snprintf(err, errlen, "truncated Avro block %llu",
			 (unsigned long long)a->nblock);
		a->truncated = 1;
		if (a->deflate || !a->keep_cut) {
			a->left = 0;
			return -2;
		}
	} else if (memcmp(sync, a->sync, 16) != 0) {
		snprintf(err, errlen, "corrupt Avro block %llu (sync marker mismatch)",
			 (unsigned long long)a->nblock);
		a->left = 0;
		return -2;
	}
	if (a->deflate) {
		if (inflate_block(a, err, errlen)) {
			a->left = 0;
			return -2;
		}
		a->p = (const unsigned char *)a->raw.p;
		a->e = a->p + a->raw.n;
	} else {
		a->p = (const unsigned char *)a->block.p;
		a->e = a->p + a->block.n;
	}
	return 1;
}

/* ---- reading events ---- */

/* How to read records of one writer schema as events: our own codec
 * when the schema is ours, else Avro C's resolver. */
struct avro_res {
	int fast;                 /* the writer schema is ours */
	avro_schema_t wschema, rschema;
	int *typemap;             /* writer's enum index -> ET_*, or -1 */
	int ntypemap;
	avro_value_iface_t *resolver, *riface;
	avro_value_t resolved, value;
	int have_values;
	avro_reader_t mem;        /* a message's bytes (avro_res_decode) */
};

struct avro_in {
	struct avro_file f;       /* the container: header and blocks */
	struct avro_res r;
	uint64_t nrec;
};

/*
 * Prepare to read a file written with another schema: the reader schema is
 * reco.Event less the fields the writer does not have (Avro C's resolver
 * does not fill defaults; event_from_value does). Return 0, or -1 with the
 * reason in err if the writer's records cannot be read as events.
 */
static int
reader_schema(struct avro_res *a, char *err, size_t errlen)
{
	json_t *root = json_loads(event_avsc, 0, NULL), *fields, *keep, *f;
	size_t i;
	int rc = -1;

	if (!is_avro_record(a->wschema) ||
	    strcmp(avro_schema_type_name(a->wschema), "Event") != 0) {
		snprintf(err, errlen, "incompatible schema: records are %s, not reco.Event",
			 avro_schema_type_name(a->wschema));
		json_decref(root);
		return -1;
	}
	fields = json_object_get(root, "fields");
	keep = json_array();
	json_array_foreach(fields, i, f) {
		const char *name = json_string_value(json_object_get(f, "name"));
		if (avro_schema_record_field_get_index(a->wschema, name) >= 0)
			json_array_append(keep, f);
		else if (!json_object_get(f, "default")) {
			snprintf(err, errlen, "incompatible schema: no field %s, which has no default",
				 name);
			json_decref(keep);
			goto out;
		}
	}
	json_object_set_new(root, "fields", keep);
	/* Avro C passes a writer's enum index through unresolved: map the
	 * writer's symbols to ours by name. */
	avro_schema_t wt = avro_schema_record_field_get(a->wschema, "type");
	if (!wt || !is_avro_enum(wt)) {
		snprintf(err, errlen, "incompatible schema: field type is not an enum");
		goto out;
	}
	a->ntypemap = avro_schema_enum_number_of_symbols(wt);
	a->typemap = xcalloc((size_t)(a->ntypemap > 0 ? a->ntypemap : 1), sizeof *a->typemap);
	for (int k = 0; k < a->ntypemap; k++) {
		const char *sym = avro_schema_enum_get(wt, k);
		a->typemap[k] = sym ? event_type_parse(sym, strlen(sym)) : -1;
	}
	char *text = json_dumps(root, JSON_COMPACT);
	if (avro_schema_from_json_length(text, strlen(text), &a->rschema)) {
		snprintf(err, errlen, "incompatible schema: %s", avro_strerror());
		free(text);
		goto out;
	}
	free(text);
	a->resolver = avro_resolved_writer_new(a->wschema, a->rschema);
	if (!a->resolver) {
		snprintf(err, errlen, "incompatible schema: cannot read it as reco.Event: %s",
			 avro_strerror());
		goto out;
	}
	a->riface = avro_generic_class_from_schema(a->rschema);
	avro_generic_value_new(a->riface, &a->value);
	avro_resolved_writer_new_value(a->resolver, &a->resolved);
	avro_resolved_writer_set_dest(&a->resolved, &a->value);
	a->have_values = 1;
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/*
 * Prepare r to read records of the writer schema (JSON text) as events.
 * Return 0, or -1 with the reason in err (a bad schema, or one that
 * cannot be read as reco.Event).
 */
static int
res_init(struct avro_res *r, const char *schema, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	if (strcmp(schema, event_avsc) == 0) {
		r->fast = 1;
		return 0;
	}
	if (avro_schema_from_json_length(schema, strlen(schema), &r->wschema)) {
		snprintf(err, errlen, "bad Avro schema: %s", avro_strerror());
		return -1;
	}
	if (avro_schema_equal(r->wschema, event_schema())) {
		r->fast = 1;
		return 0;
	}
	return reader_schema(r, err, errlen);
}

static void
res_free(struct avro_res *r)
{
	if (r->have_values) {
		avro_value_decref(&r->resolved);
		avro_value_decref(&r->value);
	}
	if (r->resolver)
		avro_value_iface_decref(r->resolver);
	if (r->riface)
		avro_value_iface_decref(r->riface);
	if (r->wschema)
		avro_schema_decref(r->wschema);
	if (r->rschema)
		avro_schema_decref(r->rschema);
	if (r->mem)
		avro_reader_free(r->mem);
	free(r->typemap);
	memset(r, 0, sizeof *r);
}

static int event_from_value(struct avro_res *a, avro_value_t *v,
			    struct event *ev);

/* Records of r's writer schema are to be read from p[0..n). */
static void
res_source(struct avro_res *r, const char *p, size_t n)
{
	if (!r->mem)
		r->mem = avro_reader_memory(p, (int64_t)n);
	else
		avro_reader_memory_set_source(r->mem, p, (int64_t)n);
}

/* Read one record of r's writer schema from rd as an event. */
static int
res_read(struct avro_res *r, avro_reader_t rd, struct event *ev)
{
	avro_value_reset(&r->value);
	return avro_value_read(rd, &r->resolved) ||
	       event_from_value(r, &r->value, ev) ? -1 : 0;
}

/* A reader of records of one writer schema, for messages (see
 * avromsg.c); NULL with the reason in err. */
struct avro_res *
avro_res_new(const char *schema, char *err, size_t errlen)
{
	struct avro_res *r = xmalloc(sizeof *r);

	if (res_init(r, schema, err, errlen)) {
		res_free(r);
		free(r);
		return NULL;
	}
	return r;
}

void
avro_res_free(struct avro_res *r)
{
	if (r) {
		res_free(r);
		free(r);
	}
}

/* Decode the record that is all of p[0..n) as an event. Return 0, or -1
 * with the reason in err. */
int
avro_res_decode(struct avro_res *r, const char *p, size_t n,
		struct event *ev, char *err, size_t errlen)
{
	if (r->fast) {
		size_t used;
		if (avro_decode_event(p, n, &used, ev)) {
			snprintf(err, errlen, "corrupt record");
			return -1;
		}
		if (used != n) {
			snprintf(err, errlen, "%zu bytes after the record", n - used);
			return -1;
		}
		return 0;
	}
	res_source(r, p, n);
	if (res_read(r, r->mem, ev)) {
		snprintf(err, errlen, "corrupt record: %s", avro_strerror());
		return -1;
	}
	return 0;
}

/*
 * Read the container header from s (positioned at the magic). Return a
 * reader, or NULL with the reason in err (not an Avro file, bad header,
 * an unknown codec, a schema that cannot be read as reco.Event).
 */
struct avro_in *
avro_in_open(struct src *s, char *err, size_t errlen)
{
	struct avro_in *a = xcalloc(1, sizeof *a);

	if (avro_file_open(&a->f, s, err, errlen))
		goto fail;
	if (res_init(&a->r, a->f.schema, err, errlen))
		goto fail;
	/* Our own records can be read up to a cut in an uncompressed
	 * block; resolved ones cannot. */
	a->f.keep_cut = a->r.fast;
	return a;
fail:
	avro_in_free(a);
	return NULL;
}

void
avro_in_free(struct avro_in *a)
{
	if (!a)
		return;
	res_free(&a->r);
	avro_file_free(&a->f);
	free(a);
}

/* The next block, and for records not of our schema Avro C's reader on
 * it. Return as avro_file_block. */
static int
next_block(struct avro_in *a, char *err, size_t errlen)
{
	int r = avro_file_block(&a->f, err, errlen);

	a->nrec = 0;
	if (r == 1 && !a->r.fast) {
		res_source(&a->r, (const char *)a->f.p, (size_t)(a->f.e - a->f.p));
	}
	return r;
}

static int
get_value_str(avro_value_t *v, struct str *s)
{
	const char *p;
	size_t n;

	if (avro_value_get_string(v, &p, &n))
		return -1;
	s->p = p;
	s->n = n ? n - 1 : 0; /* Avro C counts the NUL */
	return 0;
}

/* Field name of the reader's record, or absent (its default applies). */
static int
field(avro_value_t *rec, const char *name, avro_value_t *f)
{
	return avro_value_get_by_name(rec, name, f, NULL) == 0;
}

/* An optional field: 1 with *br set to its value, 0 if null or absent,
 * -1 on a bad value. */
static int
opt_field(avro_value_t *rec, const char *name, avro_value_t *br)
{
	avro_value_t f;
	int disc;

	if (!field(rec, name, &f))
		return 0;
	if (avro_value_get_discriminant(&f, &disc))
		return -1;
	if (disc == 0)
		return 0;
	return avro_value_get_current_branch(&f, br) ? -1 : 1;
}

static int
opt_str(avro_value_t *rec, const char *name, struct event *ev, unsigned bit,
	struct str *s)
{
	avro_value_t br;
	int r = opt_field(rec, name, &br);

	if (r <= 0)
		return r;
	ev->has |= bit;
	return get_value_str(&br, s);
}

/* An event from the generic (resolved) value; absent fields get their
 * defaults. */
static int
event_from_value(struct avro_res *a, avro_value_t *v, struct event *ev)
{
	avro_value_t f, br;
	int sym, r;
	int32_t i32;

	event_reset(ev);
	if (!field(v, "event_id", &f) || get_value_str(&f, &ev->event_id) ||
	    !field(v, "ts", &f) || avro_value_get_long(&f, &ev->ts) ||
	    !field(v, "user", &f) || get_value_str(&f, &ev->user) ||
	    !field(v, "type", &f) || avro_value_get_enum(&f, &sym))
		return -1;
	if (sym < 0 || sym >= a->ntypemap)
		return -1;
	ev->type = a->typemap[sym]; /* -1 for a symbol we do not know */
	if (opt_str(v, "item", ev, EV_ITEM, &ev->item) < 0 ||
	    opt_str(v, "session", ev, EV_SESSION, &ev->session) < 0 ||
	    opt_str(v, "query", ev, EV_QUERY, &ev->query) < 0 ||
	    opt_str(v, "source", ev, EV_SOURCE, &ev->source) < 0)
		return -1;
	if ((r = opt_field(v, "qty", &br)) < 0 ||
	    (r && avro_value_get_long(&br, &ev->qty)))
		return -1;
	ev->has |= r ? EV_QTY : 0;
	if ((r = opt_field(v, "price", &br)) < 0 ||
	    (r && avro_value_get_double(&br, &ev->price)))
		return -1;
	ev->has |= r ? EV_PRICE : 0;
	if ((r = opt_field(v, "attrs", &br)) < 0)
		return -1;
	if (r) {
		size_t n;
		if (avro_value_get_size(&br, &n))
			return -1;
		ev->has |= EV_ATTRS;
		for (size_t i = 0; i < n; i++) {
			avro_value_t mv;
			const char *k;
			struct str sv;
			if (avro_value_get_by_index(&br, i, &mv, &k) || get_value_str(&mv, &sv))
				return -1;
			event_add_attr(ev, k, strlen(k), sv.p, sv.n);
		}
	}
	if (field(v, "v", &f)) {
		if (avro_value_get_int(&f, &i32))
			return -1;
		ev->v = i32;
	} else
		ev->v = 1;
	return 0;
}

/*
 * Read the next event. Return 1 with ev filled, 0 at the end of the file,
 * -1 if this record is invalid (err says why; reading can go on), -2 if the
 * file is truncated or corrupt (err says where; stop reading this file).
 */
int
avro_in_next(struct avro_in *a, struct event *ev, char *err, size_t errlen)
{
	while (a->f.left == 0) {
		if (a->f.truncated)
			return -2;
		int r = next_block(a, err, errlen);
		if (r <= 0)
			return r;
	}
	a->f.left--;
	a->nrec++;
	if (a->r.fast) {
		size_t used;
		if (avro_decode_event((const char *)a->f.p, (size_t)(a->f.e - a->f.p),
				      &used, ev)) {
			if (!a->f.truncated)
				snprintf(err, errlen,
					 "corrupt record %llu in Avro block %llu",
					 (unsigned long long)a->nrec,
					 (unsigned long long)a->f.nblock);
			a->f.left = 0;
			return -2;
		}
		a->f.p += used;
	} else {
		if (res_read(&a->r, a->r.mem, ev)) {
			/* The rest of the block cannot be trusted. */
			snprintf(err, errlen, "corrupt record %llu in Avro block %llu: %s",
				 (unsigned long long)a->nrec,
				 (unsigned long long)a->f.nblock, avro_strerror());
			a->f.left = 0;
			return -2;
		}
	}
	if (event_utf8_ok(ev, err, errlen) || event_validate(ev, err, errlen))
		return -1;
	return 1;
}

uint64_t
avro_in_block(const struct avro_in *a)
{
	return a->f.nblock;
}

uint64_t
avro_in_record(const struct avro_in *a)
{
	return a->nrec;
}

/* ---- writing ---- */

struct avro_out {
	struct wout *w;
	const char *schema;
	int codec;
	int header_done;
	char sync[16];
	struct buf block, z, hdr;
	size_t count;
	/* One record per message (avro_out_new_msg): block holds the
	 * message, its first prefix bytes the header. */
	int msg;
	size_t prefix;
	const char *delim;        /* NULL: each message after its length */
	size_t dn;
	struct buf key;           /* the next message's key (avro_out_key) */
	int has_key;
};

/*
 * An Avro writer of records of the given schema (its JSON text, which must
 * outlive the writer) on w. The sync marker is derived from the schema, not
 * drawn at random, so the same records always give the same bytes.
 */
struct avro_out *
avro_out_new_schema(struct wout *w, int codec, const char *schema)
{
	struct avro_out *a = xcalloc(1, sizeof *a);
	uint64_t h1 = hash64(schema, strlen(schema), 1);
	uint64_t h2 = hash64(schema, strlen(schema), 2);

	a->w = w;
	a->schema = schema;
	a->codec = codec;
	memcpy(a->sync, &h1, 8);
	memcpy(a->sync + 8, &h2, 8);
	return a;
}

/*
 * A writer of one record per message on w, each message the header head
 * (hn bytes: Confluent's 0 and schema id, or single-object's C3 01 and
 * fingerprint) and the record; framed by the delimiter delim (dn bytes,
 * for kcat -P -D; it must outlive the writer) or, if delim is NULL, by a
 * 4-byte big-endian length (as kcat -f '%R%s' reads them).
 */
struct avro_out *
avro_out_new_msg(struct wout *w, const char *schema, const void *head,
		 size_t hn, const char *delim, size_t dn)
{
	struct avro_out *a = xcalloc(1, sizeof *a);

	a->w = w;
	a->schema = schema;
	a->msg = 1;
	a->delim = delim;
	a->dn = dn;
	a->prefix = hn;
	buf_put(&a->block, head, hn);
	return a;
}

/* The key written before the next message and a tab (kcat -K '\t');
 * only with a delimiter. */
void
avro_out_key(struct avro_out *a, const char *k, size_t n)
{
	a->key.n = 0;
	buf_put(&a->key, k, n);
	a->has_key = 1;
}

/* Write the message in block; 0, -1 if the output failed, -2 if the
 * delimiter occurs in the message or its key (nothing written). */
static int
write_msg(struct avro_out *a)
{
	const char *p = a->block.p;
	size_t n = a->block.n;

	if (a->delim) {
		if (mem_find(p, n, a->delim, a->dn) ||
		    (a->has_key && mem_find(a->key.p, a->key.n, a->delim, a->dn)))
			return -2;
		if (a->has_key && (wout_write(a->w, a->key.p, a->key.n) ||
				   wout_write(a->w, "\t", 1)))
			return -1;
		return wout_write(a->w, p, n) || wout_write(a->w, a->delim, a->dn)
		       ? -1 : 0;
	}
	unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
				 (unsigned char)(n >> 8), (unsigned char)n };
	return wout_write(a->w, len, 4) || wout_write(a->w, p, n) ? -1 : 0;
}

/* An Avro writer of events (reco.Event) on w. */
struct avro_out *
avro_out_new(struct wout *w, int codec)
{
	return avro_out_new_schema(w, codec, event_avsc);
}

static int
write_header(struct avro_out *a)
{
	struct buf *b = &a->hdr;

	a->header_done = 1;
	b->n = 0;
	buf_put(b, magic, 4);
	buf_long(b, 2);
	buf_avro_str(b, "avro.schema", 11);
	buf_avro_str(b, a->schema, strlen(a->schema));
	buf_avro_str(b, "avro.codec", 10);
	if (a->codec == CODEC_DEFLATE)
		buf_avro_str(b, "deflate", 7);
	else
		buf_avro_str(b, "null", 4);
	buf_long(b, 0);
	buf_put(b, a->sync, 16);
	return wout_write(a->w, b->p, b->n);
}

static int
write_block(struct avro_out *a)
{
	struct buf *b = &a->hdr;
	const char *data = a->block.p;
	size_t n = a->block.n;

	if (!a->header_done && write_header(a))
		return -1;
	if (a->count == 0)
		return 0;
	if (a->codec == CODEC_DEFLATE) {
		z_stream z;
		memset(&z, 0, sizeof z);
		if (deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return -1;
		a->z.n = 0;
		buf_reserve(&a->z, deflateBound(&z, n));
		z.next_in = (unsigned char *)a->block.p;
		z.avail_in = (unsigned)n;
		z.next_out = (unsigned char *)a->z.p;
		z.avail_out = (unsigned)(a->z.cap - 1);
		int rc = deflate(&z, Z_FINISH);
		a->z.n = z.total_out;
		deflateEnd(&z);
		if (rc != Z_STREAM_END)
			return -1;
		data = a->z.p;
		n = a->z.n;
	}
	b->n = 0;
	buf_long(b, (int64_t)a->count);
	buf_long(b, (int64_t)n);
	if (wout_write(a->w, b->p, b->n) || wout_write(a->w, data, n) ||
	    wout_write(a->w, a->sync, 16))
		return -1;
	a->block.n = 0;
	a->count = 0;
	return 0;
}

/* Append an event. Return 0, or -1 if the output failed. */
int
avro_out_event(struct avro_out *a, const struct event *ev)
{
	avro_encode_event(&a->block, ev);
	return avro_out_next(a);
}

/* The buffer the next record's binary encoding is appended to; call
 * avro_out_next once it is complete. */
struct buf *
avro_out_record(struct avro_out *a)
{
	return &a->block;
}

/* One more record is in the block: close the block when it is full.
 * Return 0, or -1 if the output failed. */
int
avro_out_next(struct avro_out *a)
{
	if (a->msg) {
		int rc = write_msg(a);
		a->block.n = a->prefix;
		a->has_key = 0;
		return rc;
	}
	if (++a->count >= BLOCK_RECORDS || a->block.n >= BLOCK_BYTES)
		return write_block(a);
	return 0;
}

/* Close the current block so that a reader sees every event so far. */
int
avro_out_flush(struct avro_out *a)
{
	return a && !a->msg ? write_block(a) : 0;
}

/* Write what is pending (a header at least) and free the writer; the
 * caller closes w. Return 0 or -1. */
int
avro_out_close(struct avro_out *a)
{
	int rc;

	if (!a)
		return 0;
	rc = a->msg ? 0 : write_block(a);
	buf_free(&a->key);
	buf_free(&a->block);
	buf_free(&a->z);
	buf_free(&a->hdr);
	free(a);
	return rc;
}
