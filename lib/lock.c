/* lock.c: one writer per file: an flock on FILE.lock held while the writer runs, naming its holder. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reco.h"
#include "lock.h"

struct lock {
	int fd;
	char *path;
};

/* This process as a lock or lease names it: "pid PID on HOST". */
void
lock_holder(char *out, size_t n)
{
	char host[256];

	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "unknown host");
	host[sizeof host - 1] = '\0';
	snprintf(out, n, "pid %ld on %s", (long)getpid(), host);
}

/*
 * Become the one writer of path: take an exclusive flock on path.lock
 * (created if need be) and write this process's name in it. The lock
 * lasts until lock_free (which removes the file) or the end of the
 * process, however it ends (a file left by a killed writer is not locked
 * and is taken over). A lock taken on a file that was removed meanwhile
 * is taken again on the new one, so that two writers never lock two
 * different files.
 * Return the lock, or NULL with the reason in err: held by another
 * process (named as its lock file says), or the lock file cannot be
 * opened.
 */
struct lock *
lock_take(const char *path, char *err, size_t errlen)
{
	char *lp = xmalloc(strlen(path) + 6), who[300];
	struct lock *l;
	int fd;

	sprintf(lp, "%s.lock", path);
	for (;;) {
		struct stat a, b;
		fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", lp, strerror(errno));
			free(lp);
			return NULL;
		}
		while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno == EINTR)
				continue;
			if (errno == EWOULDBLOCK) {
				ssize_t r = pread(fd, who, sizeof who - 1, 0);
				who[r > 0 ? r : 0] = '\0';
				who[strcspn(who, "\n")] = '\0';
				snprintf(err, errlen, "%s: another writer holds it (%s; %s)",
					 path, *who ? who : "unknown", lp);
			} else
				snprintf(err, errlen, "%s: %s", lp, strerror(errno));
			close(fd);
			free(lp);
			return NULL;
		}
		if (fstat(fd, &a) == 0 && stat(lp, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			break;
		close(fd);
	}
	lock_holder(who, sizeof who);
	size_t n = strlen(who);
	who[n++] = '\n';
	/* The name is for people; the lock holds without it. */
	if (ftruncate(fd, 0) == 0 && pwrite(fd, who, n, 0) < 0)
		errno = 0;
	l = xmalloc(sizeof *l);
	l->fd = fd;
	l->path = lp;
	return l;
}

/* Release the lock and remove its file (NULL is allowed). */
void
lock_free(struct lock *l)
{
	if (!l)
		return;
	unlink(l->path);
	close(l->fd);
	free(l->path);
	free(l);
}
