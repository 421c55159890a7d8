#ifndef PGLANE_PROXY_NICE_H
#define PGLANE_PROXY_NICE_H

#include <stddef.h>
#include <stdint.h>

/* Sets the nice value of backend pid (CONF_NICE_IDLE: the SCHED_IDLE policy), the PostgreSQL process
 * at the other end of the server connection fd, after checking that it is (proxy/nice.c). 0, or -1
 * with the reason in why. */
int px_backend_nice(int fd, uint32_t pid, int nice, char *why, size_t whylen);

#endif
