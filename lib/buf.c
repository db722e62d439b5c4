/* buf.c: growing byte buffers, JSON string escaping and number formatting. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

/* Make room for extra more bytes (plus a NUL the callers may add). */
void
buf_reserve(struct buf *b, size_t extra)
{
	size_t need = b->n + extra + 1;

	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

void
buf_put(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

void
buf_puts(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

void
buf_putc(struct buf *b, char c)
{
	buf_reserve(b, 1);
	b->p[b->n++] = c;
}

void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
	char tmp[24];
	int i = 24;

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	buf_put(b, tmp + i, 24 - (size_t)i);
}

void
buf_put_i64(struct buf *b, int64_t v)
{
	if (v < 0) {
		buf_putc(b, '-');
		buf_put_u64(b, (uint64_t)0 - (uint64_t)v);
	} else
		buf_put_u64(b, (uint64_t)v);
}

/*
 * Append d in the shortest decimal form that reads back as the same double,
 * so that a value survives JSON -> Avro -> JSON byte for byte. Prices and
 * the like (up to 6 decimals) take a fast exact path: if m / 10^k == d for
 * an integer m, the decimal m/10^k is what strtod maps back to d.
 */
void
buf_put_double(struct buf *b, double d)
{
	static const double p10[] = { 1, 10, 100, 1e3, 1e4, 1e5, 1e6 };
	char tmp[40];

	if (d == 0 && signbit(d)) {
		buf_puts(b, "-0.0"); /* "-0" would read back as the integer 0 */
		return;
	}
	if (d > -1e9 && d < 1e9 && d != 0) {
		for (int k = 0; k <= 6; k++) {
			double x = d * p10[k];
			long long m = llround(x);
			if ((double)m / p10[k] != d)
				continue;
			unsigned long long a = m < 0 ? (unsigned long long)-m
						     : (unsigned long long)m;
			int i = sizeof tmp;
			for (int j = 0; j < k; j++) {
				tmp[--i] = (char)('0' + a % 10);
				a /= 10;
			}
			if (k)
				tmp[--i] = '.';
			do {
				tmp[--i] = (char)('0' + a % 10);
				a /= 10;
			} while (a);
			if (m < 0)
				tmp[--i] = '-';
			buf_put(b, tmp + i, sizeof tmp - (size_t)i);
			return;
		}
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	buf_puts(b, tmp);
}

/* Append p[0..n) as a JSON string with quotes. The bytes must be valid
 * UTF-8 (the parsers guarantee it); control characters are escaped. */
void
buf_json_str(struct buf *b, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	buf_reserve(b, n + 2);
	b->p[b->n++] = '"';
	for (i = 0; i + 8 <= n; i += 8) {
		/* Eight bytes a step while none needs escaping. */
		const uint64_t ones = 0x0101010101010101ULL,
			       highs = 0x8080808080808080ULL;
		uint64_t x, q, bs;
		memcpy(&x, p + i, 8);
		q = x ^ (ones * '"');
		bs = x ^ (ones * '\\');
		if (((x - ones * 0x20) & ~x & highs) | ((q - ones) & ~q & highs) |
		    ((bs - ones) & ~bs & highs))
			break;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_put(b, p + run, i - run);
		run = i + 1;
		buf_reserve(b, 6);
		b->p[b->n++] = '\\';
		switch (c) {
		case '"': b->p[b->n++] = '"'; break;
		case '\\': b->p[b->n++] = '\\'; break;
		case '\n': b->p[b->n++] = 'n'; break;
		case '\t': b->p[b->n++] = 't'; break;
		case '\r': b->p[b->n++] = 'r'; break;
		case '\b': b->p[b->n++] = 'b'; break;
		case '\f': b->p[b->n++] = 'f'; break;
		default:
			b->p[b->n++] = 'u';
			b->p[b->n++] = '0';
			b->p[b->n++] = '0';
			b->p[b->n++] = hex[c >> 4];
			b->p[b->n++] = hex[c & 15];
		}
	}
	buf_put(b, p + run, n - run);
	buf_putc(b, '"');
}

void
buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

/* Return 1 if p[0..n) is well-formed UTF-8 (no overlongs, no surrogates, no
 * code points past U+10FFFF), else 0. */
int
utf8_valid(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p, *e = s + n;

	while (s < e) {
		unsigned c = *s;
		if (c < 0x80) {
			s++;
			continue;
		}
		size_t len;
		unsigned cp;
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else
			return 0;
		if ((size_t)(e - s) < len)
			return 0;
		for (size_t i = 1; i < len; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		s += len;
	}
	return 1;
}
