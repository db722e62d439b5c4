/* failwrite.c: an LD_PRELOAD shim for tests: writes to the files whose path contains $FAILWRITE_MATCH fail with ENOSPC once $FAILWRITE_AFTER bytes went to them, as on a full disk. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXFD 4096

static signed char state[MAXFD]; /* 0 unknown, 1 counted, -1 not */
static long long written;

static int
counted(int fd)
{
	char link[64], path[4096];
	const char *m = getenv("FAILWRITE_MATCH");
	ssize_t n;

	if (fd < 0 || fd >= MAXFD || !m || !*m)
		return 0;
	if (state[fd] == 0) {
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		n = readlink(link, path, sizeof path - 1);
		path[n > 0 ? n : 0] = '\0';
		state[fd] = n > 0 && strstr(path, m) ? 1 : -1;
	}
	return state[fd] == 1;
}

ssize_t
write(int fd, const void *p, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	const char *a = getenv("FAILWRITE_AFTER");
	long long after = a ? atoll(a) : 0;

	if (!real)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (counted(fd)) {
		if (written >= after) {
			errno = ENOSPC;
			return -1;
		}
		if ((long long)n > after - written)
			n = (size_t)(after - written);
		ssize_t r = real(fd, p, n);
		if (r > 0)
			written += r;
		return r;
	}
	return real(fd, p, n);
}

int
close(int fd)
{
	static int (*real)(int);

	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "close");
	if (fd >= 0 && fd < MAXFD)
		state[fd] = 0;
	return real(fd);
}
