/*
 * Reading pglane's ini file with inih. Our own reader feeds inih one line at a time, so it knows the
 * line number of every key (Debian's inih r55 does not pass it to the handler), opens sections
 * itself (inih does not report a section without keys) and reports syntax errors at their line.
 */
#include <ctype.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

/* inih's inline comment rule (INI_ALLOW_INLINE_COMMENTS = 1, prefix ";"): a ';' after whitespace
 * starts a comment. Returns the first char of `chars`, the comment start or the end of s. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    int was_space = 0;

    while (*s && (chars == NULL || strchr(chars, *s) == NULL) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static size_t rstrip_len(const char *b, const char *e)
{
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    return (size_t)(e - b);
}

static void *grow(struct conf_loader *ld, void *arr, int n, size_t elem)
{
    void *p = realloc(arr, (size_t)(n + 1) * elem);

    if (p == NULL) {
        ld->oom = 1;
        return NULL;
    }
    memset((char *)p + (size_t)n * elem, 0, elem);
    return p;
}

static int add_server(struct conf_loader *ld, struct conf *c, char *name)
{
    struct conf_server *p = grow(ld, c->servers, c->nservers, sizeof *p);

    if (p == NULL)
        return -1;
    c->servers = p;
    p[c->nservers] = (struct conf_server){.name = name, .host = conf_dup(ld, "127.0.0.1"),
                                          .port = 5432, .line = ld->lineno};
    return c->nservers++;
}

static int add_lane(struct conf_loader *ld, struct conf *c, char *name)
{
    struct conf_lane *p = grow(ld, c->lanes, c->nlanes, sizeof *p);

    if (p == NULL)
        return -1;
    c->lanes = p;
    p[c->nlanes] = (struct conf_lane){
        .name = name, .server = -1, .size = 20, .reserve_timeout_ms = 5000,
        .queue_timeout_ms = 120000, .server_connect_timeout_ms = 15000,
        .server_lifetime_ms = 3600000, .idle_transaction_timeout_ms = -1, .server_retry = 2, .guard = CONF_GUARD_OFF, .guard_wait_ms = 250,
        .guard_quarantine = 3, .guard_quarantine_window_ms = 600000, .guard_quarantine_time_ms = 600000,
        .protects_lane = -1, .adapt_interval_ms = 1000, .min_size = 1, .adapt_min_samples = 20, .cancel_on_disconnect = 1,
        .line = ld->lineno};
    return c->nlanes++;
}

static int add_route(struct conf_loader *ld, struct conf *c, char *name)
{
    struct conf_route *p = grow(ld, c->routes, c->nroutes, sizeof *p);

    if (p == NULL)
        return -1;
    c->routes = p;
    p[c->nroutes].name = name;
    p[c->nroutes].lane = -1;
    p[c->nroutes].line = ld->lineno;
    return c->nroutes++;
}

/* Appends the struct of a new section, with its defaults; returns its index or -1. */
static int new_object(struct conf_loader *ld, enum conf_sect_kind kind, const char *name)
{
    char *dup;
    int index = -1;

    if (kind == SECT_PGLANE || kind == SECT_PEERS)
        return 0;
    if ((dup = conf_dup(ld, name)) == NULL)
        return -1;
    switch (kind) {
    case SECT_PGLANE:
    case SECT_PEERS:
        break;
    case SECT_SERVER:
        index = add_server(ld, ld->c, dup);
        break;
    case SECT_LANE:
        index = add_lane(ld, ld->c, dup);
        break;
    case SECT_ROUTE:
        index = add_route(ld, ld->c, dup);
        break;
    }
    if (index < 0)
        free(dup);
    return index;
}

static int section_kind(const char *header, enum conf_sect_kind *kind, const char **name)
{
    static const struct { const char *prefix; enum conf_sect_kind kind; } kinds[] = {
        {"server.", SECT_SERVER}, {"lane.", SECT_LANE}, {"route.", SECT_ROUTE}};

    if (strcmp(header, "pglane") == 0 || strcmp(header, "peers") == 0) {
        *kind = header[1] == 'g' ? SECT_PGLANE : SECT_PEERS;
        *name = header + strlen(header);
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t n = strlen(kinds[i].prefix);

        if (strncmp(header, kinds[i].prefix, n) == 0) {
            *kind = kinds[i].kind;
            *name = header + n;
            return 0;
        }
    }
    return -1;
}

/* Checks a section header; returns 0 if a new section may be opened. */
static int check_section(struct conf_loader *ld, const char *header, enum conf_sect_kind *kind,
                         const char **name)
{
    if (strlen(header) > CONF_MAX_NAME) {
        conf_errf(ld, ld->lineno, "section name [%s] is longer than %d characters", header,
                  CONF_MAX_NAME);
        return -1;
    }
    if (section_kind(header, kind, name) < 0) {
        conf_errf(ld, ld->lineno, "unknown section [%s] (expected [pglane], [server.NAME], "
                  "[lane.NAME], [route.NAME] or [peers])", header);
        return -1;
    }
    if (*kind != SECT_PGLANE && *kind != SECT_PEERS && !conf_valid_section_name(*name)) {
        conf_errf(ld, ld->lineno, "bad section name [%s]: the name after the dot may contain "
                  "only letters, digits, '_' and '-'", header);
        return -1;
    }
    for (int i = 0; i < ld->nsects; i++) {
        if (strcmp(ld->sects[i].header, header) == 0) {
            conf_errf(ld, ld->lineno, "duplicate section [%s] (first at line %d)", header,
                      ld->sects[i].line);
            return -1;
        }
    }
    return 0;
}

static void open_section(struct conf_loader *ld, const char *b, size_t len)
{
    char *header = strndup(b, len);
    enum conf_sect_kind kind;
    const char *name;
    struct conf_sect *s;
    int index;

    ld->cur = CONF_IGNORED;
    if (header == NULL || check_section(ld, header, &kind, &name) < 0 ||
        (s = grow(ld, ld->sects, ld->nsects, sizeof *ld->sects)) == NULL) {
        ld->oom |= header == NULL;
        free(header);
        return;
    }
    ld->sects = s;
    index = new_object(ld, kind, name);
    if (index < 0) {
        free(header);
        return;
    }
    ld->sects[ld->nsects] = (struct conf_sect){.kind = kind, .header = header, .name = name,
                                               .line = ld->lineno, .index = index};
    ld->cur = ld->nsects++;
}

/* "[name]" followed by nothing but a comment. Returns 1 if inih should see the line. */
static int section_line(struct conf_loader *ld, const char *line)
{
    const char *end = find_chars_or_comment(line + 1, "]"), *rest;

    if (*end != ']') {
        conf_errf(ld, ld->lineno, "expected ']' to close the section header");
        return 0;
    }
    rest = end + 1 + strspn(end + 1, " \t\r\n");
    if (*rest != '\0' && *rest != ';' && *rest != '#') {
        conf_errf(ld, ld->lineno, "unexpected text after the section header");
        return 0;
    }
    open_section(ld, line + 1, (size_t)(end - line - 1));
    return 1;
}

/* Checks one lskipped line the way inih will read it. Returns 1 if inih should see it. */
static int classify(struct conf_loader *ld, const char *line)
{
    const char *end;
    size_t nlen;

    if (*line == '\0' || *line == '\n' || *line == '\r' || *line == ';' || *line == '#')
        return 1;
    if (*line == '[')
        return section_line(ld, line);
    end = find_chars_or_comment(line, "=:");
    if (*end != '=' && *end != ':') {
        conf_errf(ld, ld->lineno, "expected 'key = value' or '[section]'");
        return 0;
    }
    nlen = rstrip_len(line, end);
    if (nlen == 0) {
        conf_errf(ld, ld->lineno, "missing key name before '%c'", *end);
        return 0;
    }
    if (nlen > CONF_MAX_NAME) {
        conf_errf(ld, ld->lineno, "key name '%.*s' is longer than %d characters", (int)nlen, line,
                  CONF_MAX_NAME);
        return 0;
    }
    return 1;
}

/*
 * fgets-style reader for ini_parse_stream. Leading blanks are removed, so an indented line is
 * never taken as a continuation of the previous value (inih's multi-line mode) and indented keys
 * work. Lines inih cannot hold or would misread are reported here and handed over as blank lines.
 */
static char *reader(char *str, int num, void *stream)
{
    struct conf_loader *ld = stream;
    const char *b = ld->pos, *e;
    size_t len;

    if (b >= ld->end)
        return NULL;
    e = memchr(b, '\n', (size_t)(ld->end - b));
    e = e ? e : ld->end;
    ld->pos = e < ld->end ? e + 1 : e;
    ld->lineno++;
    if (ld->lineno == 1 && e - b >= 3 && memcmp(b, "\xEF\xBB\xBF", 3) == 0)
        b += 3;
    while (b < e && (*b == ' ' || *b == '\t'))
        b++;
    len = (size_t)(e - b);
    strcpy(str, "\n");
    if (len > (size_t)num - 2) {
        conf_errf(ld, ld->lineno, "line is longer than %d characters (inih's limit)", num - 2);
        return str;
    }
    memcpy(str, b, len);
    strcpy(str + len, "\n");
    if (!classify(ld, str))
        strcpy(str, "\n");
    return str;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
    struct conf_loader *ld = user;
    struct conf_sect *s;
    struct conf_keyline *k;
    int first;

    (void)section;             /* the reader tracks the section, with its line */
    if (ld->cur == CONF_IGNORED)
        return 1;
    if (ld->cur == CONF_NO_SECTION) {
        conf_errf(ld, ld->lineno, "key '%s' is outside of any section", key);
        return 1;
    }
    s = &ld->sects[ld->cur];
    if ((first = conf_sect_key_line(s, key)) > 0) {
        conf_errf(ld, ld->lineno, "duplicate key '%s' in [%s] (first at line %d)", key, s->header,
                  first);
        return 1;
    }
    if ((k = grow(ld, s->keys, s->nkeys, sizeof *s->keys)) == NULL)
        return 1;
    s->keys = k;
    s->keys[s->nkeys] = (struct conf_keyline){.name = strdup(key), .line = ld->lineno};
    if (s->keys[s->nkeys++].name == NULL)
        ld->oom = 1;
    conf_apply_key(ld, s, key, value);
    return 1;
}

static void free_sects(struct conf_loader *ld)
{
    for (int i = 0; i < ld->nsects; i++) {
        for (int k = 0; k < ld->sects[i].nkeys; k++)
            free(ld->sects[i].keys[k].name);
        free(ld->sects[i].keys);
        free(ld->sects[i].header);
        free(ld->sects[i].ref);
    }
    free(ld->sects);
}

static struct conf *conf_new(const char *name)
{
    struct conf *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    *c = (struct conf){.file = strdup(name), .auth_type = CONF_AUTH_SCRAM,
                       .pool_mode = CONF_POOL_TRANSACTION, .max_client_conn = 1000,
                       .default_lane_index = -1, .server_idle_timeout_ms = 600000,
                       .log_level = CONF_LOG_INFO, .client_login_timeout_ms = 60000,
                       .max_prepared_statements = 200, .stats_fingerprints = 1000,
                       .reserve_admin_connections = 3, .max_prepared_statements_per_client = 1000,
                       .pool_idle_timeout_ms = 300000, .max_pools = 5000, .workers = 1,
                       .server_check_delay_ms = 30000, .auth_cache_ttl_ms = 60000,
                       .tls_mode = CONF_TLS_DISABLE, .tcp_keepalive = 1, .tcp_keepidle_ms = 60000,
                       .tcp_keepintvl_ms = 10000, .tcp_keepcnt = 6,
                       .health_check_interval_ms = 1000, .health_check_failures = 3,
                       .tls_protocol_mask = CONF_TLS_V1_2 | CONF_TLS_V1_3};
    if (c->file == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

int conf_load_string(const char *text, const char *name, struct conf **out, struct conf_diag *diag)
{
    struct conf_loader ld = {.diag = diag, .file = name ? name : "<string>",
                             .cur = CONF_NO_SECTION};

    *out = NULL;
    ld.c = conf_new(ld.file);
    ld.pos = text;
    ld.end = text + strlen(text);
    if (ld.c == NULL || ini_parse_stream(reader, &ld, handler, &ld) == -2)
        ld.oom = 1;
    if (!ld.oom)
        conf_validate(&ld);
    if (ld.oom)
        conf_errf(&ld, 0, "out of memory");
    free_sects(&ld);
    if (ld.nerr > 0) {
        conf_free(ld.c);
        return -1;
    }
    *out = ld.c;
    return 0;
}

int conf_load(const char *path, struct conf **out, struct conf_diag *diag)
{
    char *text;
    int rc;

    *out = NULL;
    if (conf_read_file(path, &text, diag) < 0)
        return -1;
    rc = conf_load_string(text, path, out, diag);
    free(text);
    return rc;
}
