#ifndef GREET_H
#define GREET_H

#include <stddef.h>

/* greet writes "hello, NAME!" into buf (at most size bytes, NUL-terminated). */
void greet(char *buf, size_t size, const char *name);

#endif
