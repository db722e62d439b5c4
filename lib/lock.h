/* lock.h: one writer per file: an flock on FILE.lock held while the writer runs, naming its holder. */
#ifndef LOCK_H
#define LOCK_H

#include <stddef.h>

struct lock;

/* lock.c */
struct lock *lock_take(const char *path, char *err, size_t errlen);
void lock_free(struct lock *l);
void lock_holder(char *out, size_t n);

#endif
