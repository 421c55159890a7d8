/*
 * cache_unnamed (a lane setting): an unnamed Parse whose text and parameter types PostgreSQL accepted
 * before runs as a shared named statement of proxy/prepared.c, so that the server parses and plans
 * it once per connection instead of at every Parse. The client's unnamed statement then maps to that
 * statement under the client name "" until its next unnamed Parse, simple Query or Close of the
 * unnamed statement, as in PostgreSQL. A statement is keyed by text, parameter types, the client's
 * database, user and search_path and an epoch that DDL and session changes seen through pglane move
 * on, so that a text is never run as a statement analysed under another schema or before an ALTER.
 * This file holds the mapping, the key and what scanning notes; the rewriting is in prepared.c.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/prepared_internal.h"
#include "proxy/proxy.h"
#include "proxy/state.h"
#include "routing/hash.h"

/* ---- the client's unnamed statement as a shared one ---- */

uint32_t unnamed_map_id(struct px_client *cl)
{
    struct px_cstmt *cs = cl->nstmts ? cstmt_find(cl, "") : NULL;

    return cs ? cs->stmt->id : 0;
}

/* Maps the client's unnamed statement to statement id (0 or a statement since freed: no mapping). */
void unnamed_map_set(struct px_client *cl, uint32_t id)
{
    struct px_stmt *s = id ? stmt_by_id(cl->conn.px, id) : NULL;
    struct px_cstmt *cs;

    if (s && cstmt_set(cl, "", s) == 0)
        return;
    if ((cs = cstmt_find(cl, "")) != NULL)
        cstmt_drop(cl, cs);
}

/*
 * A message that changed the client's unnamed statement was answered (ok) or not: skipped after an
 * earlier error, the client's unnamed statement is what it was before (e->prev); failed, there is
 * none (PostgreSQL drops the unnamed statement before it parses the new text). Later messages that
 * changed it again have the last word.
 */
void unnamed_settle(struct px_client *cl, const struct px_prepq_entry *e, int ok)
{
    uint32_t made = (e->flags & Q_UMAP) ? e->stmt : 0;

    if (ok || unnamed_map_id(cl) != made)
        return;
    if (!(e->flags & Q_UFAILED)) {
        unnamed_map_set(cl, e->prev);
        return;
    }
    unnamed_map_set(cl, 0);
    /* A failed Parse of pglane's name left the server's unnamed statement alone: its ErrorResponse
     * settles the client's unnamed Parse as failed (proxy/unnamed.c), so that should the client bind
     * "" again the server's is closed (26000, as directly) rather than this text replayed. */
}

/* ---- which texts, under which key ---- */

static int any_lane_caches(const struct proxy *px)
{
    for (int i = 0; i < px->nlanes; i++)
        if (px->lanes[i]->conf->cache_unnamed)
            return 1;
    return 0;
}

/* The first word of sql, lowercased into w (at most n - 1 letters), after spaces and parentheses. */
static void first_word(const char *sql, size_t len, char *w, size_t n)
{
    size_t i = 0, k = 0;

    while (i < len && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r' || sql[i] == '('))
        i++;
    while (i < len && k + 1 < n && ((sql[i] >= 'a' && sql[i] <= 'z') || (sql[i] >= 'A' && sql[i] <= 'Z')))
        w[k++] = (char)(sql[i++] | 0x20);
    w[k] = '\0';
}

static int mentions(const char *sql, size_t len, const char *word)
{
    size_t wl = strlen(word);

    for (size_t i = 0; i + wl <= len; i++)
        if ((sql[i] | 0x20) == word[0] && strncasecmp(sql + i, word, wl) == 0)
            return 1;
    return 0;
}

/* mentions(sql, len, "search_path"), found from its '_' (memchr) rather than letter by letter: it is
 * asked of every statement a caching lane parses. */
static int mentions_search_path(const char *sql, size_t len)
{
    const char *p = sql, *end = sql + len;

    while ((p = memchr(p, '_', (size_t)(end - p))) != NULL) {
        if (p - sql >= 6 && end - p >= 5 && strncasecmp(p - 6, "search", 6) == 0 &&
            strncasecmp(p + 1, "path", 4) == 0)
            return 1;
        p++;
    }
    return 0;
}

/* Whether w is one of the words of list (NULL-terminated), compared from their first letter. */
static int word_in(const char *w, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (list[i][0] == w[0] && strcmp(w, list[i]) == 0)
            return 1;
    return 0;
}

/* Statements whose plan is worth keeping: the rest (utility statements) are not cached. */
static int plannable(const char *sql, size_t len)
{
    static const char *const words[] = { "select", "insert", "update", "delete", "with", "values", "table", NULL };
    char w[8];

    first_word(sql, len, w, sizeof(w));
    return word_in(w, words);
}

/* DDL, or a change of what names resolve to (search_path, role): cached unnamed statements retire. */
static int retires(const char *sql, size_t len)
{
    static const char *const ddl[] = { "alter", "create", "drop", "comment", "do", "call", "discard", "truncate",
                                       "reindex", "cluster", "import", "security", "load", NULL };
    static const char *const set[] = { "set", "reset", NULL };
    char w[10];

    first_word(sql, len, w, sizeof(w));
    if (word_in(w, ddl))
        return 1;
    if (word_in(w, set))
        return mentions_search_path(sql, len) || mentions(sql, len, "role") ||
               mentions(sql, len, "authorization") || mentions(sql, len, "all");
    return mentions_search_path(sql, len);    /* set_config('search_path', ...) */
}

static void retire_all(struct proxy *px)
{
    uint32_t *epoch = unnamed_epoch(px);

    if (epoch)
        ++*epoch;
}

int px_prep_unnamed_scan(struct px_client *cl, const struct proto_frame *f)
{
    struct proxy *px = cl->conn.px;
    struct proto_fe_parse parse;
    struct proto_fe_bind bind;
    struct proto_fe_target t;
    int caches = any_lane_caches(px);

    if (!caches && !cl->nstmts)
        return 0;
    switch (f->type) {
    case PROTO_FE_QUERY:           /* drops the unnamed statement: in order with the rest */
        if (caches && retires((const char *)f->body, f->len ? f->len - 1 : 0))
            retire_all(px);
        return unnamed_map_id(cl) != 0;
    case PROTO_FE_PARSE:
        if (px_client_parse(cl, f, &parse) < 0)
            return 0;
        if (caches && retires(parse.query, parse.query_len))
            retire_all(px);
        return parse.name_len == 0 && (caches || unnamed_map_id(cl) != 0);
    case PROTO_FE_BIND:
        return proto_parse_fe_bind_names(f->body, f->len, &bind) == 0 && bind.statement_len == 0 &&
               unnamed_map_id(cl) != 0;
    case PROTO_FE_DESCRIBE:
    case PROTO_FE_CLOSE:
        return (f->type == PROTO_FE_CLOSE ? proto_parse_fe_close(f->body, f->len, &t)
                                          : proto_parse_fe_describe(f->body, f->len, &t)) == 0 &&
               t.kind == 'S' && t.name_len == 0 && unnamed_map_id(cl) != 0;
    default:
        return 0;
    }
}

void px_prep_unnamed_on_tag(struct px_server *sv, const char *tag)
{
    if ((tag[0] == 'A' && strncmp(tag, "ALTER ", 6) == 0) || (tag[0] == 'D' && strncmp(tag, "DROP ", 5) == 0) ||
        (tag[0] == 'C' && strcmp(tag, "CREATE VIEW") == 0)) {
        px_prep_ddl_seen();        /* named statements too (prepared_registry.c): again at its end */
        sv->named_ddl = 1;
    }
    if ((tag[0] == 'A' && strncmp(tag, "ALTER", 5) == 0) || (tag[0] == 'C' && strncmp(tag, "CREATE", 6) == 0) ||
        (tag[0] == 'D' && (strncmp(tag, "DROP", 4) == 0 || strcmp(tag, "DO") == 0 || strncmp(tag, "DISCARD", 7) == 0)))
        if (any_lane_caches(sv->conn.px)) {
            retire_all(sv->conn.px);
            sv->unnamed_ddl = 1;   /* and again when its transaction ends, committed or rolled back */
        }
}

void px_prep_unnamed_tx_end(struct px_server *sv)
{
    sv->unnamed_ddl = 0;
    retire_all(sv->conn.px);
}

/*
 * The shared statement for an unnamed Parse of text (query\0, parameter types: tlen bytes) on server
 * sv, or NULL when it is not to be cached: the lane does not cache, the text is not a plannable
 * statement, or the transaction may have changed session state pglane does not know yet or ran DDL
 * (cached statements would see catalogs it may roll back).
 */
struct px_stmt *unnamed_stmt(struct px_client *cl, struct px_server *sv, const uint8_t *text, uint32_t tlen)
{
    struct proxy *px = cl->conn.px;
    const uint8_t *z = memchr(text, 0, tlen);
    uint32_t *epoch, ddl;
    uint64_t key;

    if (!sv->pool || !sv->pool->lane->conf->cache_unnamed || px_settings_unsure(cl, cl->pass_ord) || (sv->dirty & PX_DIRTY_CHECK) ||
        sv->unnamed_ddl ||
        !z || !plannable((const char *)text, (size_t)(z - text)) || !(epoch = unnamed_epoch(px)))
        return NULL;
    ddl = px_prep_ddl_epoch();     /* the named statements' DDL count too (SCHEMA CHANGED) */
    key = route_fnv1a(route_fnv1a(stmt_context(cl), epoch, sizeof(*epoch)), &ddl, sizeof(ddl)) | 1;
    return stmt_get_variant(px, text, tlen, key, NULL, 0);
}
