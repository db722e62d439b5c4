/* sniff.c: tell what a line that is not NDJSON looks like (CSV, an access log, Avro), for a hint. */
#include <string.h>

#include "reco.h"

/* A field of a CSV header or record: a short run of plain characters. */
static int
plain_field(const char *p, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') &&
		    !(c >= 'A' && c <= 'Z') && !strchr("_-.:+ \"'/", c))
			return 0;
	}
	return 1;
}

/* Three or more plain fields split by one separator: a CSV line. */
static int
csv_like(const char *line, size_t n)
{
	static const char seps[] = ",;\t";

	while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' '))
		n--;
	for (const char *sep = seps; *sep; sep++) {
		size_t fields = 0, start = 0;
		int ok = 1;
		for (size_t i = 0; i <= n && ok; i++)
			if (i == n || line[i] == *sep) {
				ok = plain_field(line + start, i - start);
				fields++;
				start = i + 1;
			}
		if (ok && fields >= 3)
			return 1;
	}
	return 0;
}

/*
 * What the line (a first record that is not JSON) looks like: SNIFF_AVRO,
 * SNIFF_ACCESS_LOG, SNIFF_CSV, or SNIFF_NONE when it is not clearly one of
 * them (then it is just a bad record).
 */
int
sniff_line(const char *line, size_t n)
{
	struct access_rec r;
	char err[128];

	if (n >= 4 && memcmp(line, "Obj\1", 4) == 0)
		return SNIFF_AVRO;
	if (n == 0 || line[0] == '{' || line[0] == '[' || memchr(line, '\0', n))
		return SNIFF_NONE;
	if (access_parse(line, n, &r, err, sizeof err) == 0)
		return SNIFF_ACCESS_LOG;
	if (csv_like(line, n))
		return SNIFF_CSV;
	return SNIFF_NONE;
}

/* The name of a kind of sniff_line, for messages. */
const char *
sniff_name(int kind)
{
	switch (kind) {
	case SNIFF_CSV:
		return "CSV";
	case SNIFF_ACCESS_LOG:
		return "a web access log";
	case SNIFF_AVRO:
		return "an Avro container file";
	}
	return "something else";
}
