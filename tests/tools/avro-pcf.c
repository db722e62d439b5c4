/* avro-pcf: check reco's Parsing Canonical Form and CRC-64-AVRO fingerprints against published vectors, or print a schema's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reco.h"

/*
 * avro-pcf VECTORS: each line "INPUT<TAB>CANONICAL<TAB>FINGERPRINT" (the
 * fingerprint as a signed decimal, as Avro's schema-tests.txt gives it);
 * print every mismatch, then "N vectors, M failed"; exit 1 if any did.
 * avro-pcf -s FILE: print FILE's canonical form and fingerprint (hex).
 */
int
main(int argc, char **argv)
{
	char line[8192];
	int n = 0, bad = 0;
	FILE *f;

	if (argc == 3 && strcmp(argv[1], "-s") == 0) {
		struct buf b = { 0 };
		char tmp[4096];
		size_t k;
		uint64_t fp;
		if (!(f = fopen(argv[2], "r")))
			return 3;
		while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
			buf_put(&b, tmp, k);
		fclose(f);
		buf_putc(&b, '\0');
		char *c = avro_canonical(b.p);
		if (!c || avro_fingerprint(b.p, &fp))
			return 1;
		printf("%s\n%016llx\n", c, (unsigned long long)fp);
		free(c);
		buf_free(&b);
		return 0;
	}
	if (argc != 2 || !(f = fopen(argv[1], "r"))) {
		fputs("usage: avro-pcf VECTORS | avro-pcf -s SCHEMA\n", stderr);
		return 2;
	}
	while (fgets(line, sizeof line, f)) {
		char *in = line, *canon, *fps;
		line[strcspn(line, "\n")] = '\0';
		if (!*line || *line == '#')
			continue;
		if (!(canon = strchr(in, '\t')) || !(fps = strchr(canon + 1, '\t'))) {
			fprintf(stderr, "bad vector line: %s\n", line);
			return 2;
		}
		*canon++ = '\0';
		*fps++ = '\0';
		uint64_t want = (uint64_t)strtoll(fps, NULL, 10), got = 0;
		char *c = avro_canonical(in);
		n++;
		if (!c || strcmp(c, canon) != 0 || avro_fingerprint(in, &got) ||
		    got != want) {
			printf("FAIL %s\n  canonical %s\n  expected  %s\n  fingerprint %lld, expected %s\n",
			       in, c ? c : "(none)", canon, (long long)got, fps);
			bad++;
		}
		free(c);
	}
	fclose(f);
	printf("%d vectors, %d failed\n", n, bad);
	return bad ? 1 : 0;
}
