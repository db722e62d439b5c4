/* crc-check: the checksum framing of state files at sizes past 4 GiB, on a body of zeros mapped without memory behind it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <zlib.h>

#include "reco.h"

/* zlib's own CRC-32 of p[0..n), in pieces below 4 GiB joined by
 * crc32_combine64: the reference crc32_any must agree with. */
static uint32_t
reference(const unsigned char *p, size_t n)
{
	size_t half = n / 2;
	uLong a = crc32(0, Z_NULL, 0), b = crc32(0, Z_NULL, 0);

	for (size_t off = 0, k; off < half; off += k) {
		k = half - off < 0x7fffffffu ? half - off : 0x7fffffffu;
		a = crc32(a, p + off, (uInt)k);
	}
	for (size_t off = half, k; off < n; off += k) {
		k = n - off < 0x7fffffffu ? n - off : 0x7fffffffu;
		b = crc32(b, p + off, (uInt)k);
	}
	return (uint32_t)crc32_combine64(a, b, (z_off64_t)(n - half));
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: crc-check BYTES\n");
		return 2;
	}
	size_t n = (size_t)strtoull(argv[1], NULL, 10), body = n - 4;
	unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (n < 16 || p == MAP_FAILED) {
		perror("crc-check: mmap");
		return 1;
	}
	memcpy(p, "reco-state\n", 11);
	p[body / 2] = 0x5a;
	p[body - 1] = 0xa5;
	uint32_t crc = crc32_any(0, p, body);
	if (crc != reference(p, body)) {
		fprintf(stderr, "crc-check: crc32_any %08x, zlib %08x\n", crc, reference(p, body));
		return 1;
	}
	for (int i = 0; i < 4; i++)
		p[body + i] = (unsigned char)(crc >> (8 * i));
	if (!state_crc_ok(p, n)) {
		fprintf(stderr, "crc-check: a good body of %zu bytes is refused\n", n);
		return 1;
	}
	p[body - 1] ^= 1; /* the last byte of the body, past 4 GiB */
	if (state_crc_ok(p, n)) {
		fprintf(stderr, "crc-check: a damaged byte at %zu is not seen\n", body - 1);
		return 1;
	}
	printf("%zu bytes: %08x\n", n, crc);
	return 0;
}
