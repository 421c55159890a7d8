/* Small helpers shared by proxy/: intrusive lists, clocks, growing arrays and the tracked session
 * parameters. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "proxy/proxy.h"

void px_list_init(struct px_list *l)
{
    l->next = l->prev = l;
}

void px_list_append(struct px_list *head, struct px_list *item)
{
    item->prev = head->prev;
    item->next = head;
    head->prev->next = item;
    head->prev = item;
}

void px_list_prepend(struct px_list *head, struct px_list *item)
{
    item->next = head->next;
    item->prev = head;
    head->next->prev = item;
    head->next = item;
}

void px_list_remove(struct px_list *item)
{
    item->prev->next = item->next;
    item->next->prev = item->prev;
    item->next = item->prev = item;
}

int px_list_empty(const struct px_list *head)
{
    return head->next == head;
}

int px_grow(void **arr, int *cap, int first, size_t elem)
{
    int ncap = *cap ? *cap * 2 : first;
    void *n = realloc(*arr, elem * (size_t)ncap);

    if (!n)
        return -1;
    *arr = n;
    *cap = ncap;
    return 0;
}

uint64_t px_now_ms(struct proxy *px)
{
    return uv_now(px->loop);
}

uint64_t px_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Session parameters that follow a client from one server connection to the next in transaction
 * pooling. The reported ones come back from PostgreSQL as ParameterStatus when they change; for the
 * others pglane knows only what it set itself.
 */
static const struct {
    const char *name;
    int reported;
} params[PX_P_COUNT] = {
    [PX_P_CLIENT_ENCODING] = { "client_encoding", 1 },
    [PX_P_DATESTYLE] = { "DateStyle", 1 },
    [PX_P_TIMEZONE] = { "TimeZone", 1 },
    [PX_P_INTERVALSTYLE] = { "IntervalStyle", 1 },
    [PX_P_APPLICATION_NAME] = { "application_name", 1 },
    [PX_P_EXTRA_FLOAT_DIGITS] = { "extra_float_digits", 0 },
    [PX_P_SEARCH_PATH] = { "search_path", 0 },
};

void px_put_text(struct proto_buf *q, const char *v, size_t n, const char *encoding)
{
    static const char hex[] = "0123456789abcdef";
    size_t plain = 0, e = 0;

    while (plain < n && (unsigned char)v[plain] < 0x80 && v[plain] != '\\' && v[plain] != '\0')
        plain++;
    if (plain == n) {
        proto_put_bytes(q, "'", 1);
        for (size_t i = 0; i < n; i++) {
            proto_put_bytes(q, &v[i], 1);
            if (v[i] == '\'')
                proto_put_bytes(q, "'", 1);
        }
        proto_put_bytes(q, "'", 1);
        return;
    }
    /* Bytes of another encoding (or a backslash): named by their hex digits, converted by the server
     * from the encoding they were read in, so that neither the connection's client_encoding when the
     * query arrives nor a backslash byte inside a character (SJIS) changes them. */
    while (encoding && encoding[e] && (encoding[e] == '_' || (encoding[e] >= '0' && encoding[e] <= '9') ||
                                       ((encoding[e] | 0x20) >= 'a' && (encoding[e] | 0x20) <= 'z')))
        e++;
    proto_put_bytes(q, "pg_catalog.convert_from(pg_catalog.decode('", 43);
    for (size_t i = 0; i < n; i++) {
        char x[2] = { hex[(unsigned char)v[i] >> 4], hex[(unsigned char)v[i] & 15] };

        proto_put_bytes(q, x, 2);
    }
    proto_put_bytes(q, "','hex'),'", 10);
    if (e > 0 && !encoding[e])
        proto_put_bytes(q, encoding, e);
    else
        proto_put_bytes(q, "SQL_ASCII", 9);   /* unknown: the bytes as they are, checked by the server */
    proto_put_bytes(q, "')", 2);
}

const char *px_client_encoding(const struct px_client *cl)
{
    if (cl->want.v[PX_P_CLIENT_ENCODING])
        return cl->want.v[PX_P_CLIENT_ENCODING];
    return cl->pool ? cl->pool->defaults.v[PX_P_CLIENT_ENCODING] : NULL;
}

int px_param_find(const char *name)
{
    for (int i = 0; i < PX_P_COUNT; i++)
        if (strcasecmp(params[i].name, name) == 0)
            return i;
    return -1;
}

const char *px_param_name(int i)
{
    return params[i].name;
}

int px_param_reported(int i)
{
    return params[i].reported;
}

void px_params_set(struct px_params *p, int i, const char *value)
{
    if (p->v[i] && value && strcmp(p->v[i], value) == 0)
        return;
    free(p->v[i]);
    p->v[i] = value ? strdup(value) : NULL;
}

void px_params_clear(struct px_params *p)
{
    for (int i = 0; i < PX_P_COUNT; i++) {
        free(p->v[i]);
        p->v[i] = NULL;
    }
}

int px_kvlist_set(struct px_kvlist *l, const char *name, const char *value)
{
    struct px_kv *kv = px_kvlist_find(l, name), *n;
    char *v;

    if (kv) {
        if (strcmp(kv->value, value) == 0)
            return 0;
        if (!(v = strdup(value)))
            return -1;
        free(kv->value);
        kv->value = v;
        return 0;
    }
    n = realloc(l->v, sizeof(*n) * (size_t)(l->n + 1));
    if (!n)
        return -1;
    l->v = n;
    n[l->n].name = strdup(name);
    n[l->n].value = strdup(value);
    if (!n[l->n].name || !n[l->n].value) {
        free(n[l->n].name);
        free(n[l->n].value);
        return -1;
    }
    l->n++;
    return 0;
}

struct px_kv *px_kvlist_find(const struct px_kvlist *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcasecmp(l->v[i].name, name) == 0)
            return &l->v[i];
    return NULL;
}

void px_kvlist_remove(struct px_kvlist *l, int i)
{
    free(l->v[i].name);
    free(l->v[i].value);
    l->v[i] = l->v[--l->n];
}

void px_kvlist_clear(struct px_kvlist *l)
{
    while (l->n > 0)
        px_kvlist_remove(l, l->n - 1);
    free(l->v);
    l->v = NULL;
}
