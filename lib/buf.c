/* buf.c: growing byte buffers, JSON string escaping and number formatting. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

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

/* Write v in decimal at o (room for 20 bytes); return the end. Two digits
 * a division. */
char *
u64_put(char *o, uint64_t v)
{
	static const char pairs[] =
		"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
		"8081828384858687888990919293949596979899";
	char tmp[20];
	int i = 20;

	while (v >= 100) {
		unsigned d = (unsigned)(v % 100) * 2;
		v /= 100;
		tmp[--i] = pairs[d + 1];
		tmp[--i] = pairs[d];
	}
	if (v >= 10) {
		tmp[--i] = pairs[v * 2 + 1];
		tmp[--i] = pairs[v * 2];
	} else
		tmp[--i] = (char)('0' + v);
	memcpy(o, tmp + i, 20 - (size_t)i);
	return o + 20 - i;
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
	buf_reserve(b, 20);
	b->n = (size_t)(u64_put(b->p + b->n, v) - b->p);
}

/* The same for a signed v (room for 21 bytes). */
char *
i64_put(char *o, int64_t v)
{
	if (v < 0) {
		*o++ = '-';
		return u64_put(o, (uint64_t)0 - (uint64_t)v);
	}
	return u64_put(o, (uint64_t)v);
}

void
buf_put_i64(struct buf *b, int64_t v)
{
	buf_reserve(b, 21);
	b->n = (size_t)(i64_put(b->p + b->n, v) - b->p);
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

/*
 * The length of the longest prefix of p[0..n) that a JSON string holds as
 * it is: no quote, backslash or control byte. If high is not NULL, set it
 * to whether that prefix has a byte past ASCII.
 */
size_t
json_plain_run(const char *p, size_t n, int *high)
{
	const uint64_t ones = 0x0101010101010101ULL,
		       highs = 0x8080808080808080ULL;
	size_t i = 0;
	unsigned hi = 0;

#ifdef __SSE2__
	/* Sixteen bytes a step (SSE2 is in every x86-64). */
	const __m128i quote = _mm_set1_epi8('"'), bsl = _mm_set1_epi8('\\'),
		      c1f = _mm_set1_epi8(0x1f);
	for (; i + 16 <= n; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		__m128i sp = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bsl)),
			_mm_cmpeq_epi8(_mm_max_epu8(x, c1f), c1f));
		unsigned m = (unsigned)_mm_movemask_epi8(sp),
			 h = (unsigned)_mm_movemask_epi8(x);
		if (m) {
			unsigned k = (unsigned)__builtin_ctz(m);
			hi |= h & ((1u << k) - 1);
			i += k;
			goto out;
		}
		hi |= h;
	}
#endif
	/* Eight bytes a step while none is special (the hasless and haszero
	 * bit tricks, exact as yes/no answers). */
	for (; i + 8 <= n; i += 8) {
		uint64_t x, q, bs;
		memcpy(&x, p + i, 8);
		q = x ^ (ones * '"');
		bs = x ^ (ones * '\\');
		if (((x - ones * 0x20) & ~x & highs) | ((q - ones) & ~q & highs) |
		    ((bs - ones) & ~bs & highs))
			break;
		hi |= (x & highs) != 0;
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == '"' || c == '\\')
			break;
		hi |= c & 0x80;
	}
out:
	if (high)
		*high = hi != 0;
	return i;
}

/* Write p[0..n) as a JSON string with quotes at o, which has room for
 * 6 n + 2 bytes; return the end. The bytes must be valid UTF-8 (the
 * parsers guarantee it); control characters are escaped. */
char *
json_str_put(char *o, const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0;

	*o++ = '"';
	for (;;) {
		size_t run = json_plain_run(p + i, n - i, NULL);
		memcpy(o, p + i, run);
		o += run;
		i += run;
		if (i == n)
			break;
		unsigned char c = (unsigned char)p[i++];
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\t': *o++ = 't'; break;
		case '\r': *o++ = 'r'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o++ = '"';
	return o;
}

/* Append p[0..n) as a JSON string with quotes (see json_str_put). */
void
buf_json_str(struct buf *b, const char *p, size_t n)
{
	buf_reserve(b, 6 * n + 2);
	b->n = (size_t)(json_str_put(b->p + b->n, p, n) - b->p);
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
			/* Ids and names are mostly ASCII: 8 bytes at a time
			 * while no byte has its high bit set. */
			uint64_t w;
			while ((size_t)(e - s) >= 8 &&
			       (memcpy(&w, s, 8), !(w & 0x8080808080808080ULL)))
				s += 8;
			while (s < e && *s < 0x80)
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
