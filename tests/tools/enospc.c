/* enospc.c: an LD_PRELOAD shim that makes writes to regular files fail with ENOSPC past ENOSPC_AFTER bytes, a full disk for tests. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t write(int fd, const void *p, size_t n);

static long long room = -1; /* bytes left on the pretend disk */

/* write(2), but a regular file gets at most ENOSPC_AFTER bytes in all:
 * the write that crosses the limit is short, the next one fails. */
ssize_t
write(int fd, const void *p, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	struct stat st;

	if (!real)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (room < 0) {
		const char *e = getenv("ENOSPC_AFTER");
		room = e ? atoll(e) : (1LL << 62);
	}
	if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return real(fd, p, n);
	if (room == 0) {
		errno = ENOSPC;
		return -1;
	}
	if ((long long)n > room)
		n = (size_t)room;
	ssize_t r = real(fd, p, n);
	if (r > 0)
		room -= r;
	return r;
}
