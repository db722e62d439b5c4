/* timefmt.c: timestamps in the forms sources use, to epoch milliseconds UTC. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reco.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil algorithm). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 ? 28 + leap : dm[m - 1];
}

/* Milliseconds since the epoch of a UTC civil time. */
int64_t
ts_from_civil(int y, int mon, int d, int h, int mi, int s)
{
	return ((days_from_civil(y, (unsigned)mon, (unsigned)d) * 24 + h) * 60 +
		mi) * 60000LL + s * 1000LL;
}

/* Write ms as 2019-10-01T00:00:00.000Z. */
void
ts_format_iso(int64_t ms, char out[64])
{
	time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)t * 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, frac);
}

/* Parse "auto", "s", "ms", "us", "iso8601" or a strftime-style format
 * (anything with a '%'). Return 0, or -1 if spec is none of these. */
int
ts_format_parse(struct ts_format *f, const char *spec)
{
	memset(f, 0, sizeof *f);
	if (strcmp(spec, "auto") == 0)
		f->kind = TSF_AUTO;
	else if (strcmp(spec, "s") == 0 || strcmp(spec, "epoch") == 0)
		f->kind = TSF_S;
	else if (strcmp(spec, "ms") == 0)
		f->kind = TSF_MS;
	else if (strcmp(spec, "us") == 0)
		f->kind = TSF_US;
	else if (strcmp(spec, "iso8601") == 0 || strcmp(spec, "iso") == 0)
		f->kind = TSF_ISO;
	else if (strchr(spec, '%')) {
		f->kind = TSF_STRF;
		f->strf = xstrdup(spec);
	} else
		return -1;
	return 0;
}

static int
digits(const char *p, const char *e, int n, int *v)
{
	if (e - p < n)
		return -1;
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*v = *v * 10 + (p[i] - '0');
	}
	return 0;
}

/* ISO 8601 and its common relatives: 2019-10-01T00:00:00Z,
 * 2019-10-01 00:00:00.123+02:00, 2019-10-01 00:00:00 UTC, 2019-10-01. */
static int
parse_iso(const char *p, size_t n, int64_t *ms)
{
	const char *e = p + n;
	int y, mo, d, h = 0, mi = 0, s = 0, frac = 0, off = 0;

	if (digits(p, e, 4, &y) || p + 4 >= e || p[4] != '-' ||
	    digits(p + 5, e, 2, &mo) || p + 7 >= e || p[7] != '-' ||
	    digits(p + 8, e, 2, &d))
		return -1;
	p += 10;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
		return -1;
	if (p < e && (*p == 'T' || *p == ' ') && p + 1 < e &&
	    isdigit((unsigned char)p[1])) {
		p++;
		if (digits(p, e, 2, &h) || p + 2 >= e || p[2] != ':' ||
		    digits(p + 3, e, 2, &mi))
			return -1;
		p += 5;
		if (p < e && *p == ':') {
			if (digits(p + 1, e, 2, &s))
				return -1;
			p += 3;
			if (p < e && (*p == '.' || *p == ',')) {
				int nd = 0;
				p++;
				while (p < e && isdigit((unsigned char)*p)) {
					if (nd < 3)
						frac = frac * 10 + (*p - '0');
					nd++;
					p++;
				}
				if (nd == 0)
					return -1;
				for (; nd < 3; nd++)
					frac *= 10;
			}
		}
		if (h > 23 || mi > 59 || s > 59)
			return -1;
	}
	if (p < e && *p == ' ')
		p++;
	if (p == e)
		;
	else if (e - p == 1 && *p == 'Z')
		p++;
	else if (e - p == 3 && memcmp(p, "UTC", 3) == 0)
		p += 3;
	else if (e - p == 3 && memcmp(p, "GMT", 3) == 0)
		p += 3;
	else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1, oh, om = 0;
		p++;
		if (digits(p, e, 2, &oh))
			return -1;
		p += 2;
		if (p < e && *p == ':')
			p++;
		if (p < e) {
			if (digits(p, e, 2, &om))
				return -1;
			p += 2;
		}
		if (oh > 23 || om > 59)
			return -1;
		off = sign * (oh * 60 + om);
	}
	if (p != e)
		return -1;
	*ms = ts_from_civil(y, mo, d, h, mi, s) + frac - off * 60000LL;
	return 0;
}

/* An epoch number with an optional fraction, scaled by unit. */
static int
parse_epoch(const char *p, size_t n, int unit, int64_t *ms)
{
	const char *e = p + n;
	int neg = 0;
	int64_t ip = 0;
	double frac = 0, scale = 0.1;

	if (p < e && *p == '-') {
		neg = 1;
		p++;
	}
	if (p == e || !isdigit((unsigned char)*p))
		return -1;
	while (p < e && isdigit((unsigned char)*p)) {
		if (ip > (INT64_MAX - 9) / 10)
			return -1;
		ip = ip * 10 + (*p++ - '0');
	}
	if (p < e && *p == '.') {
		p++;
		if (p == e)
			return -1;
		while (p < e && isdigit((unsigned char)*p)) {
			frac += (*p++ - '0') * scale;
			scale /= 10;
		}
	}
	if (p != e)
		return -1;
	if (unit == TSF_AUTO)
		unit = ip < 100000000000LL ? TSF_S
		       : ip < 100000000000000LL ? TSF_MS : TSF_US;
	int64_t v;
	switch (unit) {
	case TSF_S:
		if (ip > INT64_MAX / 1000)
			return -1;
		v = ip * 1000 + (int64_t)(frac * 1000 + 0.5);
		break;
	case TSF_MS:
		v = ip + (int64_t)(frac + 0.5);
		break;
	default:
		v = ip / 1000;
		break;
	}
	*ms = neg ? -v : v;
	return 0;
}

static int
parse_strf(const char *fmt, const char *p, size_t n, int64_t *ms)
{
	char tmp[128];
	struct tm tm;
	const char *end;

	if (n >= sizeof tmp)
		return -1;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	memset(&tm, 0, sizeof tm);
	tm.tm_mday = 1;
	end = strptime(tmp, fmt, &tm);
	if (!end || *end != '\0')
		return -1;
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
	    tm.tm_mday > days_in_month(tm.tm_year + 1900, tm.tm_mon + 1) ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
		return -1;
	*ms = ts_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			    tm.tm_hour, tm.tm_min, tm.tm_sec) -
	      (int64_t)tm.tm_gmtoff * 1000;
	return 0;
}

/*
 * Parse the timestamp p[0..n) by f into milliseconds since the epoch.
 * Return 0, or -1 if it does not parse.
 */
int
ts_parse(const struct ts_format *f, const char *p, size_t n, int64_t *ms)
{
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0)
		return -1;
	switch (f->kind) {
	case TSF_AUTO:
		if (n >= 10 && p[4] == '-')
			return parse_iso(p, n, ms);
		return parse_epoch(p, n, TSF_AUTO, ms);
	case TSF_S:
	case TSF_MS:
	case TSF_US:
		return parse_epoch(p, n, f->kind, ms);
	case TSF_ISO:
		return parse_iso(p, n, ms);
	default:
		return parse_strf(f->strf, p, n, ms);
	}
}

/*
 * Parse a duration such as 500ms, 30s, 30m, 1h30m, 7d, 2w; a bare number is
 * seconds. Return 0, or -1 if s is not a duration.
 */
int
duration_parse(const char *s, int64_t *ms)
{
	int64_t total = 0;

	if (!*s)
		return -1;
	while (*s) {
		char *end;
		if (!isdigit((unsigned char)*s))
			return -1;
		double v = strtod(s, &end);
		int64_t unit;
		if (strncmp(end, "ms", 2) == 0) {
			unit = 1;
			end += 2;
		} else if (*end == 's') {
			unit = 1000;
			end++;
		} else if (*end == 'm') {
			unit = 60000;
			end++;
		} else if (*end == 'h') {
			unit = 3600000;
			end++;
		} else if (*end == 'd') {
			unit = 86400000;
			end++;
		} else if (*end == 'w') {
			unit = 7 * 86400000LL;
			end++;
		} else if (*end == '\0')
			unit = 1000;
		else
			return -1;
		if (v * unit > 9e15)
			return -1;
		total += (int64_t)(v * unit + 0.5);
		s = end;
	}
	*ms = total;
	return 0;
}

/*
 * Parse a size such as 4096, 64K, 512M or 2G (binary multiples; a B after
 * the unit is allowed). Return 0, or -1 if s is not a size below 2^62.
 */
int
size_parse(const char *s, uint64_t *bytes)
{
	char *end;
	double v;
	uint64_t unit = 1;

	if (!isdigit((unsigned char)*s))
		return -1;
	v = strtod(s, &end);
	switch (*end) {
	case 'K': case 'k': unit = 1ULL << 10; end++; break;
	case 'M': case 'm': unit = 1ULL << 20; end++; break;
	case 'G': case 'g': unit = 1ULL << 30; end++; break;
	case 'T': case 't': unit = 1ULL << 40; end++; break;
	}
	if (*end == 'B' && unit > 1)
		end++;
	if (*end || !(v >= 0) || v * (double)unit >= 4.6e18)
		return -1;
	*bytes = (uint64_t)(v * (double)unit);
	return 0;
}
