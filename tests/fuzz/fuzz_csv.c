/* fuzz_csv.c: libFuzzer target for the CSV record reader (lib/csv_in.c) and the timestamp parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

/*
 * The input is split into lines as reco-ingest splits them and fed to a
 * reader with a small record limit; every field of every complete record
 * must lie inside the reader's buffers, and every field is also tried as a
 * timestamp in each format.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ts_format f[5];
	static int init;
	const char *p = (const char *)data, *e = p + size;
	char err[256];
	int64_t ms;

	if (!init) {
		ts_format_parse(&f[0], "auto");
		ts_format_parse(&f[1], "iso8601");
		ts_format_parse(&f[2], "s");
		ts_format_parse(&f[3], "us");
		ts_format_parse(&f[4], "%d/%b/%Y:%H:%M:%S %z");
		init = 1;
	}
	int delim = size > 0 && data[0] == ';' ? ';' : ',';
	struct csv_in *c = csv_in_new(delim, '"', 512);
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(e - p);
		int r = csv_in_line(c, p, n, err, sizeof err);
		if (r == 1) {
			size_t nf = csv_in_nfields(c);
			struct str raw = csv_in_raw(c);
			volatile size_t sum = raw.n;
			for (size_t i = 0; i < nf; i++) {
				struct str s = csv_in_field(c, i);
				for (size_t k = 0; k < s.n; k++)
					sum += (unsigned char)s.p[k];
				for (int j = 0; j < 5; j++)
					ts_parse(&f[j], s.p, s.n, &ms);
			}
			(void)sum;
		}
		p += n + (nl != NULL);
	}
	csv_in_end(c, err, sizeof err);
	csv_in_free(c);
	return 0;
}
