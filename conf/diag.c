/*
 * Diagnostics of conf/: a growable list of "file:line: message" strings, and whole-file reading
 * that reports "path: cannot open: <reason>".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

static void diag_push(struct conf_diag *d, char *msg)
{
    char **v;

    if (d == NULL || msg == NULL) {
        free(msg);
        return;
    }
    v = realloc(d->msgs, (size_t)(d->n + 1) * sizeof *v);
    if (v == NULL) {
        free(msg);
        return;
    }
    d->msgs = v;
    d->msgs[d->n++] = msg;
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s;

    if (vasprintf(&s, fmt, ap) < 0)
        return NULL;
    return s;
}

void conf_diag_addf(struct conf_diag *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    diag_push(d, vformat(fmt, ap));
    va_end(ap);
}

/* Records one error of the file being loaded; line 0 means "no particular line". */
void conf_errf(struct conf_loader *ld, int line, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    ld->nerr++;
    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    if (msg == NULL)
        return;
    if (line > 0)
        conf_diag_addf(ld->diag, "%s:%d: %s", ld->file, line, msg);
    else
        conf_diag_addf(ld->diag, "%s: %s", ld->file, msg);
    free(msg);
}

void conf_diag_free(struct conf_diag *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < d->n; i++)
        free(d->msgs[i]);
    free(d->msgs);
    d->msgs = NULL;
    d->n = 0;
}

static int read_all(FILE *f, char **text, size_t *len)
{
    size_t cap = 4096, n = 0, got;
    char *buf = malloc(cap), *nb;

    while (buf != NULL && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 > 0)
            continue;
        nb = realloc(buf, cap * 2);
        if (nb == NULL)
            free(buf);
        buf = nb;
        cap *= 2;
    }
    if (buf == NULL)
        return -1;
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return ferror(f) ? -1 : 0;
}

/* Reads a whole text file into *text (NUL-terminated, caller frees). Returns 0 or -1 with a diag. */
int conf_read_file(const char *path, char **text, struct conf_diag *diag)
{
    FILE *f = fopen(path, "r");
    size_t len = 0;
    int rc;

    *text = NULL;
    if (f == NULL) {
        conf_diag_addf(diag, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    rc = read_all(f, text, &len);
    if (rc < 0)
        conf_diag_addf(diag, "%s: cannot read: %s", path, errno ? strerror(errno) : "I/O error");
    else if (memchr(*text, '\0', len) != NULL) {
        conf_diag_addf(diag, "%s: contains a NUL byte; expected a text file", path);
        rc = -1;
    }
    fclose(f);
    if (rc < 0) {
        free(*text);
        *text = NULL;
    }
    return rc;
}
