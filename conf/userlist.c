/*
 * auth_file in PgBouncer's userlist format: one `"user" "secret"` per line, a double quote inside
 * a field written twice. Blank lines and lines starting with ';' or '#' are ignored.
 */
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

static const char *skip_blanks(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r'))
        p++;
    return p;
}

/* Reads one "quoted" field at p (before e) into a new string; returns the position after it. */
static const char *quoted(const char *p, const char *e, char **out)
{
    char *buf, *o;

    if (p >= e || *p != '"' || (buf = malloc((size_t)(e - p))) == NULL)
        return NULL;
    for (o = buf, p++; p < e; p++) {
        if (*p == '"' && (p + 1 >= e || p[1] != '"')) {
            *o = '\0';
            *out = buf;
            return p + 1;
        }
        p += *p == '"';        /* "" stands for one quote */
        *o++ = *p;
    }
    free(buf);
    return NULL;
}

/* Parses one non-comment line into u. Returns 0 or -1 (nothing allocated). */
static int parse_line(const char *p, const char *e, struct conf_user *u)
{
    const char *q;

    u->name = u->secret = NULL;
    q = quoted(p, e, &u->name);
    if (q == NULL || q >= e || (*q != ' ' && *q != '\t'))
        goto fail;
    q = quoted(skip_blanks(q, e), e, &u->secret);
    if (q == NULL || skip_blanks(q, e) != e || u->name[0] == '\0')
        goto fail;
    return 0;
fail:
    free(u->name);
    free(u->secret);
    return -1;
}

static int add_user(struct conf_userlist *ul, struct conf_user *u)
{
    struct conf_user *v = realloc(ul->users, (size_t)(ul->n + 1) * sizeof *v);

    if (v == NULL) {
        free(u->name);
        free(u->secret);
        return -1;
    }
    ul->users = v;
    ul->users[ul->n++] = *u;
    return 0;
}

/* Handles one line; returns 0, or -1 after reporting an error. */
static int userlist_line(struct conf_userlist *ul, const char *name, int lineno, const char *p,
                         const char *e, struct conf_diag *diag)
{
    struct conf_user u;

    p = skip_blanks(p, e);
    if (p == e || *p == ';' || *p == '#')
        return 0;
    if (parse_line(p, e, &u) < 0) {
        conf_diag_addf(diag, "%s:%d: expected \"user\" \"password\"", name, lineno);
        return -1;
    }
    if (u.secret[0] == '\0') {   /* PostgreSQL refuses empty passwords too */
        conf_diag_addf(diag, "%s:%d: user '%s' has an empty password; empty passwords are refused", name,
                       lineno, u.name);
        free(u.name);
        free(u.secret);
        return -1;
    }
    if (conf_userlist_find(ul, u.name) != NULL) {
        conf_diag_addf(diag, "%s:%d: user '%s' is listed twice", name, lineno, u.name);
        free(u.name);
        free(u.secret);
        return -1;
    }
    if (add_user(ul, &u) < 0) {
        conf_diag_addf(diag, "%s: out of memory", name);
        return -1;
    }
    return 0;
}

int conf_userlist_parse(const char *text, const char *name, struct conf_userlist *out,
                        struct conf_diag *diag)
{
    const char *p = text, *end = text + strlen(text), *e;
    int lineno = 0, errors = 0;

    out->users = NULL;
    out->n = 0;
    name = name ? name : "<string>";
    for (; p < end; p = e + 1) {
        e = memchr(p, '\n', (size_t)(end - p));
        e = e ? e : end;
        errors += userlist_line(out, name, ++lineno, p, e, diag) < 0;
    }
    if (errors > 0) {
        conf_userlist_free(out);
        return -1;
    }
    return 0;
}

int conf_userlist_load(const char *path, struct conf_userlist *out, struct conf_diag *diag)
{
    char *text;
    int rc;

    out->users = NULL;
    out->n = 0;
    if (conf_read_file(path, &text, diag) < 0)
        return -1;
    rc = conf_userlist_parse(text, path, out, diag);
    free(text);
    return rc;
}

const char *conf_userlist_find(const struct conf_userlist *u, const char *user)
{
    for (int i = 0; i < u->n; i++)
        if (strcmp(u->users[i].name, user) == 0)
            return u->users[i].secret;
    return NULL;
}

void conf_userlist_free(struct conf_userlist *u)
{
    if (u == NULL)
        return;
    for (int i = 0; i < u->n; i++) {
        free(u->users[i].name);
        free(u->users[i].secret);
    }
    free(u->users);
    u->users = NULL;
    u->n = 0;
}
