#include <stdio.h>

#include "greet.h"

void greet(char *buf, size_t size, const char *name) {
	snprintf(buf, size, "hello, %s!", name);
}
