/* fuzz_show.h: what the fuzz targets share: printing an input readably when they report a finding. */
#ifndef FUZZ_SHOW_H
#define FUZZ_SHOW_H

#include <stdio.h>

/* Print p[0..n) on stderr as a C-like string, non-printable bytes as \xHH. */
static void
show(const char *what, const char *p, size_t n)
{
	fprintf(stderr, "%s (%zu bytes): \"", what, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '"' || c == '\\')
			fprintf(stderr, "\\%c", c);
		else if (c >= 0x20 && c < 0x7f)
			fputc(c, stderr);
		else
			fprintf(stderr, "\\x%02x", c);
	}
	fprintf(stderr, "\"\n");
}

#endif
