/* avromsg.c: Avro records one per message, as Kafka carries them: the Confluent wire format (0, a schema id) and Avro's single-object encoding (C3 01, a fingerprint); framed by length or by a delimiter for kcat. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "reco.h"

/* ---- Parsing Canonical Form and the CRC-64-AVRO fingerprint ---- */

static int
primitive(const char *s)
{
	static const char *const p[] = { "null", "boolean", "int", "long",
					 "float", "double", "bytes", "string",
					 NULL };

	for (size_t i = 0; p[i]; i++)
		if (strcmp(s, p[i]) == 0)
			return 1;
	return 0;
}

/* name in namespace ns, as a full name. */
static json_t *
fullname(const char *name, const char *ns)
{
	char *s;
	json_t *j;

	if (strchr(name, '.') || !ns || !*ns)
		return json_string(name);
	s = xmalloc(strlen(ns) + strlen(name) + 2);
	sprintf(s, "%s.%s", ns, name);
	j = json_string(s);
	free(s);
	return j;
}

/* The namespace part of a full name ("" for none), in buf. */
static const char *
space_of(const char *full, char *buf, size_t n)
{
	const char *dot = strrchr(full, '.');
	size_t k = dot ? (size_t)(dot - full) : 0;

	if (k >= n)
		k = n - 1;
	memcpy(buf, full, k);
	buf[k] = '\0';
	return buf;
}

/* The canonical form of schema s in namespace ns; NULL if s is not a
 * schema. */
static json_t *
canon(json_t *s, const char *ns)
{
	if (json_is_string(s)) {
		const char *v = json_string_value(s);
		return primitive(v) ? json_string(v) : fullname(v, ns);
	}
	if (json_is_array(s)) {
		json_t *out = json_array(), *x;
		size_t i;
		json_array_foreach(s, i, x) {
			json_t *c = canon(x, ns);
			if (!c) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, c);
		}
		return out;
	}
	if (!json_is_object(s))
		return NULL;
	json_t *tj = json_object_get(s, "type");
	if (!json_is_string(tj))
		return tj ? canon(tj, ns) : NULL;
	const char *type = json_string_value(tj);
	if (primitive(type))
		return json_string(type);
	json_t *out = json_object();
	if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0 ||
	    strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0) {
		const char *name = json_string_value(json_object_get(s, "name"));
		const char *own = json_string_value(json_object_get(s, "namespace"));
		char sp[512];
		if (!name)
			goto bad;
		json_t *fn = fullname(name, own && !strchr(name, '.') ? own : ns);
		const char *inner = space_of(json_string_value(fn), sp, sizeof sp);
		json_object_set_new(out, "name", fn);
		json_object_set_new(out, "type", json_string(type));
		if (type[0] == 'r' || (type[0] == 'e' && type[1] == 'r')) {
			json_t *fields = json_object_get(s, "fields"), *f, *cf = json_array();
			size_t i;
			json_object_set_new(out, "fields", cf);
			if (!json_is_array(fields))
				goto bad;
			json_array_foreach(fields, i, f) {
				json_t *fname = json_object_get(f, "name");
				json_t *ft = canon(json_object_get(f, "type"), inner);
				if (!json_is_string(fname) || !ft) {
					json_decref(ft);
					goto bad;
				}
				json_t *o = json_object();
				json_object_set(o, "name", fname);
				json_object_set_new(o, "type", ft);
				json_array_append_new(cf, o);
			}
		} else if (type[0] == 'e') {
			json_t *sym = json_object_get(s, "symbols");
			if (!json_is_array(sym))
				goto bad;
			json_object_set(out, "symbols", sym);
		} else {
			json_t *size = json_object_get(s, "size");
			if (!json_is_integer(size))
				goto bad;
			json_object_set(out, "size", size);
		}
		return out;
	}
	json_object_set_new(out, "type", json_string(type));
	if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
		const char *k = type[0] == 'a' ? "items" : "values";
		json_t *c = canon(json_object_get(s, k), ns);
		if (!c)
			goto bad;
		json_object_set_new(out, k, c);
		return out;
	}
	/* A named type referred to as {"type": "name"}. */
	json_decref(out);
	return fullname(type, ns);
bad:
	json_decref(out);
	return NULL;
}

/*
 * The Parsing Canonical Form of the schema text (malloc'd), or NULL if it
 * is not a schema.
 */
char *
avro_canonical(const char *schema)
{
	json_t *j = json_loads(schema, JSON_DECODE_ANY, NULL), *c;
	char *s = NULL;

	if (!j)
		return NULL;
	if ((c = canon(j, "")))
		s = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	json_decref(c);
	json_decref(j);
	return s;
}

/* CRC-64-AVRO (Rabin) of n bytes. */
uint64_t
avro_crc64(const void *p, size_t n)
{
	static uint64_t table[256];
	const uint64_t empty = 0xc15d213aa4d7a795ULL;
	const unsigned char *b = p;
	uint64_t fp = empty;

	if (!table[1])
		for (uint64_t i = 0; i < 256; i++) {
			uint64_t f = i;
			for (int k = 0; k < 8; k++)
				f = (f >> 1) ^ (empty & (0 - (f & 1)));
			table[i] = f;
		}
	for (size_t i = 0; i < n; i++)
		fp = (fp >> 8) ^ table[(fp ^ b[i]) & 0xff];
	return fp;
}

/* The fingerprint of a schema (of its canonical form): 0 with *fp, or -1
 * if the text is not a schema. */
int
avro_fingerprint(const char *schema, uint64_t *fp)
{
	char *c = avro_canonical(schema);

	if (!c)
		return -1;
	*fp = avro_crc64(c, strlen(c));
	free(c);
	return 0;
}

/* ---- the delimiter, in kcat's escapes ---- */

/*
 * Parse a delimiter written as kcat's -D takes it (\n, \r, \t, \\, \xNN;
 * anything else as it is) into out (room for strlen(s) bytes). Return its
 * length, or 0 if it is empty or an escape is bad.
 */
size_t
delim_parse(const char *s, char *out)
{
	size_t n = 0;

	while (*s) {
		if (*s != '\\') {
			out[n++] = *s++;
			continue;
		}
		s++;
		switch (*s) {
		case 'n': out[n++] = '\n'; s++; break;
		case 'r': out[n++] = '\r'; s++; break;
		case 't': out[n++] = '\t'; s++; break;
		case '\\': out[n++] = '\\'; s++; break;
		case 'x': {
			int v = 0, k;
			s++;
			for (k = 0; k < 2 && ((*s >= '0' && *s <= '9') ||
					      (*s >= 'a' && *s <= 'f') ||
					      (*s >= 'A' && *s <= 'F')); k++, s++)
				v = v * 16 + (*s <= '9' ? *s - '0' : (*s | 32) - 'a' + 10);
			if (k == 0)
				return 0;
			out[n++] = (char)v;
			break;
		}
		default:
			return 0;
		}
	}
	return n;
}

/* ---- reading ---- */

/* A writer schema met in the stream: by Confluent id or fingerprint. */
struct wschema {
	int single;          /* keyed by fingerprint (single-object) */
	uint64_t key;
	struct avro_res *r;  /* NULL: not readable, why says why */
	int owner;           /* r is freed with this entry */
	char *why;
	int why_reason;
};

struct msg_in {
	struct src *s;
	struct registry *reg;
	const char *delim;   /* NULL: 4-byte big-endian lengths (kcat -f '%R%s') */
	size_t dn;
	struct wschema *w;
	size_t nw, cw, nbad;
	struct wschema spare; /* an unreadable one past MAX_UNREADABLE */
	const char *msg;     /* the last message */
	size_t msgn;
	struct buf head;     /* the kept head of an over-long message */
};

static struct wschema *
known(struct msg_in *m, int single, uint64_t key)
{
	for (size_t i = 0; i < m->nw; i++)
		if (m->w[i].single == single && m->w[i].key == key)
			return &m->w[i];
	return NULL;
}

/* Writer schemas that cannot be read are remembered up to this many: a
 * stream of made-up ids or fingerprints costs no more memory. */
#define MAX_UNREADABLE 1024

static struct wschema *
learn(struct msg_in *m, int single, uint64_t key, struct avro_res *r,
      int owner, const char *why, int reason)
{
	if (!r && m->nbad >= MAX_UNREADABLE) {
		/* Not kept: the caller uses it at once. */
		free(m->spare.why);
		m->spare = (struct wschema){ single, key, NULL, 0, xstrdup(why), reason };
		return &m->spare;
	}
	m->nbad += !r;
	if (m->nw == m->cw) {
		m->cw = m->cw ? 2 * m->cw : 8;
		m->w = xreallocarray(m->w, m->cw, sizeof *m->w);
	}
	struct wschema *w = &m->w[m->nw++];
	w->single = single;
	w->key = key;
	w->r = r;
	w->owner = owner;
	w->why = why ? xstrdup(why) : NULL;
	w->why_reason = reason;
	return w;
}

/* A reader of messages on s; reg (may be NULL) finds Confluent ids'
 * schemas; delim (dn bytes) frames the messages, or NULL for lengths. */
struct msg_in *
msg_in_new(struct src *s, struct registry *reg, const char *delim, size_t dn)
{
	struct msg_in *m = xcalloc(1, sizeof *m);
	char err[256];
	uint64_t fp;

	m->s = s;
	m->reg = reg;
	m->delim = delim;
	m->dn = dn;
	/* Our own schema is known by its fingerprint. */
	if (avro_fingerprint(event_avsc, &fp))
		die(EXIT_IO, "internal error: the event schema has no canonical form");
	learn(m, 1, fp, avro_res_new(event_avsc, err, sizeof err), 1, NULL, 0);
	return m;
}

void
msg_in_free(struct msg_in *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nw; i++) {
		if (m->w[i].owner)
			avro_res_free(m->w[i].r);
		free(m->w[i].why);
	}
	free(m->w);
	free(m->spare.why);
	buf_free(&m->head);
	free(m);
}

/* The last message's bytes (for the rejects file). */
void
msg_in_raw(const struct msg_in *m, const char **p, size_t *n)
{
	*p = m->msg;
	*n = m->msgn;
}

/*
 * The next message of the file, framed by a 4-byte length. Return 1, 0 at
 * the end (or a stop at a message boundary), -1 on a read error, -2 for a
 * message cut by the end of the file, -3 for a longer one than max
 * (its first max bytes kept), -4 for a null message (length -1).
 */
static int
next_len(struct msg_in *m, size_t max)
{
	struct src *s = m->s;
	const char *p;
	int k;

	if (reco_stop || s->stop) {
		s->cut = s->end > s->start;
		return 0;
	}
	if ((k = src_peek(s, 4, &p)) < 0)
		return -1;
	if (k == 0)
		return 0;
	s->line++;
	if (k < 4) {
		if (s->cut)
			return 0;
		m->msg = p;
		m->msgn = (size_t)k;
		s->start = s->end;
		return -2;
	}
	const unsigned char *u = (const unsigned char *)p;
	uint32_t len = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
		       (uint32_t)u[2] << 8 | u[3];
	if (len == 0xffffffffu) {
		s->start += 4;
		m->msgn = 0;
		return -4;
	}
	if (len > max) {
		/* Keep the head; skip the rest, length and all. */
		s->start += 4;
		m->head.n = 0;
		for (uint64_t left = len; left > 0;) {
			char tmp[65536];
			size_t want = left < sizeof tmp ? (size_t)left : sizeof tmp;
			int r = src_read(s, tmp, want);
			if (r < 0)
				return -1;
			if (m->head.n < 1024)
				buf_put(&m->head, tmp, (size_t)r < 1024 - m->head.n
							   ? (size_t)r : 1024 - m->head.n);
			if ((size_t)r < want) {
				m->msg = m->head.p;
				m->msgn = m->head.n;
				return s->cut ? 0 : -2;
			}
			left -= (uint64_t)r;
		}
		m->msg = m->head.p;
		m->msgn = m->head.n;
		return -3;
	}
	if ((k = src_peek(s, 4 + (size_t)len, &p)) < 0)
		return -1;
	if ((size_t)k < 4 + (size_t)len) {
		if (s->cut)
			return 0;
		m->msg = p + 4;
		m->msgn = (size_t)k - 4;
		s->start = s->end;
		return -2;
	}
	m->msg = p + 4;
	m->msgn = len;
	s->start += 4 + (size_t)len;
	return 1;
}

/* Decode the message m->msg as an event. Return 1, -1 to reject it (why,
 * err), -5 when the registry cannot be asked (err). */
static int
decode(struct msg_in *m, struct event *ev, int *why, char *err, size_t errlen)
{
	const unsigned char *u = (const unsigned char *)m->msg;
	size_t n = m->msgn, off;
	struct wschema *w;
	char tmp[400];

	if (n >= 5 && u[0] == 0) {
		uint32_t id = (uint32_t)u[1] << 24 | (uint32_t)u[2] << 16 |
			      (uint32_t)u[3] << 8 | u[4];
		off = 5;
		if (!(w = known(m, 0, id))) {
			char *schema = NULL;
			int r;
			if (!m->reg) {
				snprintf(err, errlen, "schema id %u: no --registry to look it up", id);
				*why = RJ_UNKNOWN_SCHEMA;
				return -1;
			}
			r = registry_get(m->reg, id, &schema, tmp, sizeof tmp);
			if (r < 0) {
				snprintf(err, errlen, "%s", tmp);
				return -5;
			}
			if (r > 0)
				w = learn(m, 0, id, NULL, 0, tmp, RJ_UNKNOWN_SCHEMA);
			else {
				struct avro_res *res = avro_res_new(schema, tmp, sizeof tmp);
				uint64_t fp;
				char msg[512];
				snprintf(msg, sizeof msg, "schema id %u: %s", id, tmp);
				w = learn(m, 0, id, res, 1, res ? NULL : msg,
					  RJ_INCOMPATIBLE_SCHEMA);
				/* Single-object messages of the same schema
				 * are readable too. */
				if (res && !avro_fingerprint(schema, &fp) && !known(m, 1, fp))
					learn(m, 1, fp, res, 0, NULL, 0);
				free(schema);
			}
		}
	} else if (n >= 10 && u[0] == 0xc3 && u[1] == 0x01) {
		uint64_t fp = 0;
		for (int k = 7; k >= 0; k--)
			fp = fp << 8 | u[2 + k];
		off = 10;
		if (!(w = known(m, 1, fp))) {
			snprintf(tmp, sizeof tmp,
				 "single-object schema fingerprint %016llx: not a schema met so far",
				 (unsigned long long)fp);
			w = learn(m, 1, fp, NULL, 0, tmp, RJ_UNKNOWN_SCHEMA);
		}
	} else {
		snprintf(err, errlen, n == 0 ? "an empty message"
			 : "not an Avro message: it starts with %02x %02x (Confluent: 00 and a schema id; single-object: c3 01)",
			 n > 0 ? u[0] : 0, n > 1 ? u[1] : 0);
		*why = RJ_BAD_AVRO;
		return -1;
	}
	if (!w->r) {
		snprintf(err, errlen, "%s", w->why);
		*why = w->why_reason;
		return -1;
	}
	if (avro_res_decode(w->r, m->msg + off, n - off, ev, tmp, sizeof tmp)) {
		snprintf(err, errlen, "%s", tmp);
		*why = RJ_BAD_AVRO;
		return -1;
	}
	return 1;
}

/*
 * Read the next message as an event. Return 1 with ev; 0 at the end of
 * the file; -1 for a message to reject (*why an RJ_*, err says why; its
 * bytes by msg_in_raw); -2 for a null message (a tombstone: dropped);
 * -3 on a read error (the source's err); -5 when the registry cannot be
 * asked (err; the message is not consumed... the caller stops).
 */
int
msg_in_next(struct msg_in *m, struct event *ev, size_t max, int *why,
	    char *err, size_t errlen)
{
	int r;

	if (m->delim) {
		int toolong;
		const char *p;
		size_t n;
		r = src_getrec(m->s, m->delim, m->dn, &p, &n, &toolong);
		if (r < 0)
			return -3;
		if (r == 0)
			return 0;
		m->msg = p;
		m->msgn = n;
		if (toolong) {
			snprintf(err, errlen, "message longer than %zu bytes (--max-line)", max);
			*why = RJ_LINE_TOO_LONG;
			return -1;
		}
		if (n == 0)
			return -2; /* kcat -D writes nothing for a null message */
	} else {
		r = next_len(m, max);
		if (r == 0)
			return 0;
		if (r == -1)
			return -3;
		if (r == -2) {
			snprintf(err, errlen, "a message cut by the end of the input");
			*why = RJ_BAD_AVRO;
			return -1;
		}
		if (r == -3) {
			snprintf(err, errlen, "message longer than %zu bytes (--max-line)", max);
			*why = RJ_LINE_TOO_LONG;
			return -1;
		}
		if (r == -4)
			return -2;
	}
	event_reset(ev);
	r = decode(m, ev, why, err, errlen);
	if (r != 1)
		return r;
	if (event_utf8_ok(ev, err, errlen)) {
		*why = RJ_INVALID_UTF8;
		return -1;
	}
	if ((*why = -event_validate(ev, err, errlen)) != 0)
		return -1;
	return 1;
}
