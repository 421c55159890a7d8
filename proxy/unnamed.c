/*
 * The client's unnamed prepared statement as PostgreSQL would have it (transaction pooling with
 * prepared-statement mapping), so that pglane can replay it on a server connection whose own unnamed
 * statement is not the client's (proxy/prepared.c, unnamed_own).
 *
 * The messages that change it (an unnamed Parse, a Close of the unnamed statement, a simple Query)
 * are noted in the order the client sent them, with their place in the reply accounting
 * (proxy/flow.c: the count of messages pushed). When the server's replies settle one of them, the
 * change takes effect or not, as in PostgreSQL:
 *   - an unnamed Parse carried out makes its text the client's; one that fails leaves none
 *     (PostgreSQL drops the old statement before it parses); one skipped after an earlier error
 *     leaves the old one;
 *   - a Close carried out, or a simple Query run (whatever its result), leaves none; skipped, nothing.
 * cl->unnamed is the statement as the settled messages left it. A replay between two messages uses
 * the latest change noted before them, settled or not: a Bind or Describe that relies on an earlier
 * group's unnamed statement is scanned only once earlier changes are settled (client_scan.c), so the
 * unsettled ones a replay can meet are those of its own group.
 *
 * Which server connection holds the client's statement: px_unnamed_owned (the server's owner is the
 * client, and the client's latest change went to that connection; any change noted makes every
 * connection's copy older until it is forwarded somewhere). While a write is forwarded, a message
 * asks px_unnamed_owned_at: changes noted behind it in the same write do not count yet.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static void set_settled(struct px_client *cl, uint8_t *text, uint32_t len)
{
    free(cl->unnamed);
    cl->unnamed = text;
    cl->unnamed_len = len;
}

int px_unnamed_owned(const struct px_server *sv, const struct px_client *cl)
{
    return sv->unnamed_owner == cl->conn.id && cl->unnamed_at == sv->conn.id;
}

int px_unnamed_held(const struct px_server *sv, const struct px_client *cl)
{
    return sv->unnamed_owner == cl->conn.id && cl->unnamed_sent_at == sv->conn.id;
}

int px_unnamed_owned_at(const struct px_server *sv, const struct px_client *cl, uint64_t ord)
{
    return px_unnamed_owned(sv, cl) || (px_unnamed_held(sv, cl) && cl->unnamed_unsent_from > ord);
}

void px_unnamed_own(struct px_server *sv, struct px_client *cl)
{
    sv->unnamed_owner = cl->conn.id;
    cl->unnamed_at = cl->unnamed_sent_at = sv->conn.id;
    cl->unnamed_unsent_from = 0;
}

void px_unnamed_parse_sent(struct px_server *sv, struct px_client *cl, uint64_t from, uint64_t upto)
{
    uint8_t held = (uint8_t)px_unnamed_held(sv, cl);

    for (uint32_t i = 0; i < cl->nuchanges; i++) {
        struct px_unnamed_change *c = &cl->uchanges[i];

        if (c->kind == PX_UNNAMED_PARSE && c->ord > from && c->ord <= upto) {
            c->held = held;
            held = 1;
        }
    }
    px_unnamed_own(sv, cl);
}

int px_unnamed_note(struct px_client *cl, uint8_t kind, const uint8_t *text, uint32_t len)
{
    struct px_unnamed_change *c;

    cl->unnamed_at = 0;            /* every server's copy is older until this change is forwarded */
    if (!cl->unnamed_unsent_from)
        cl->unnamed_unsent_from = cl->flow.pushed + 1;
    if (kind != PX_UNNAMED_PARSE && !cl->unnamed && cl->nuchanges == 0)
        return 0;                  /* a Query or Close with no statement before: none after, whatever its fate */

    if (cl->nuchanges == cl->capuchanges) {
        uint32_t cap = cl->capuchanges ? cl->capuchanges * 2 : 4;
        struct px_unnamed_change *e = realloc(cl->uchanges, sizeof(*e) * cap);

        if (!e)
            return -1;
        cl->uchanges = e;
        cl->capuchanges = cap;
    }
    c = &cl->uchanges[cl->nuchanges];
    *c = (struct px_unnamed_change){ .ord = cl->flow.pushed + 1, .kind = kind };
    if (kind == PX_UNNAMED_PARSE && cl->nuchanges == 0 && cl->unnamed && cl->unnamed_len == len &&
        memcmp(cl->unnamed, text, len) == 0) {
        /* The settled text again (a driver's same statement each time), nothing unsettled before
         * it: it stays the settled one until this settles, so no copy is kept. */
        c->same = 1;
    } else if (kind == PX_UNNAMED_PARSE) {
        if (!(c->text = malloc(len ? len : 1)))
            return -1;
        memcpy(c->text, text, len);
        c->len = len;
    }
    cl->nuchanges++;
    return 0;
}

void px_unnamed_settle_range(struct px_client *cl, uint64_t from, uint64_t upto, int how)
{
    uint32_t kept = 0;

    for (uint32_t i = 0; i < cl->nuchanges; i++) {
        struct px_unnamed_change *c = &cl->uchanges[i];

        if (c->ord < from || c->ord > upto) {
            cl->uchanges[kept++] = *c;
            continue;
        }
        if (c->kind == PX_UNNAMED_PARSE && how == PX_UNNAMED_DONE) {
            if (!c->same) {
                set_settled(cl, c->text, c->len);
                c->text = NULL;
            }
        } else if ((c->kind == PX_UNNAMED_PARSE && how == PX_UNNAMED_FAILED) ||
                   (c->kind == PX_UNNAMED_CLOSE && how == PX_UNNAMED_DONE) ||
                   (c->kind == PX_UNNAMED_QUERY && how != PX_UNNAMED_SKIPPED)) {
            set_settled(cl, NULL, 0);
        }
        if (c->kind == PX_UNNAMED_PARSE && how != PX_UNNAMED_DONE) {
            /* The server's unnamed statement is not this text: a later Bind of the unnamed
             * statement on this server goes through unnamed_own again. Unless it was skipped where
             * the server held the client's statement: the server's and the client's are both what
             * they were (a replay would meet the failed transaction with 25P02, where PostgreSQL
             * answers the Bind, e.g. 08P01 for a wrong parameter count). */
            cl->unnamed_parsed = 0;
            if (cl->server && !(how == PX_UNNAMED_SKIPPED && c->held)) {
                if (px_unnamed_owned(cl->server, cl))
                    cl->server->unnamed_owner = 0;
                else if (cl->unnamed_unsent_from)
                    cl->unnamed_unsent_from = 1;   /* a change noted since (pipelined): not owned as of
                                                    * any message (px_unnamed_owned_at) until sent again */
            }
        }
        free(c->text);
    }
    cl->nuchanges = kept;
}

void px_unnamed_settle(struct px_client *cl, uint64_t upto, int how)
{
    px_unnamed_settle_range(cl, 0, upto, how);
}

const uint8_t *px_unnamed_as_of(const struct px_client *cl, uint64_t ord, uint32_t *len)
{
    for (uint32_t i = cl->nuchanges; i-- > 0;) {
        const struct px_unnamed_change *c = &cl->uchanges[i];

        if (c->ord > ord)
            continue;
        if (c->same)
            break;                 /* the settled text */
        *len = c->len;
        return c->kind == PX_UNNAMED_PARSE ? c->text : NULL;
    }
    *len = cl->unnamed_len;
    return cl->unnamed;
}

void px_unnamed_forget_all(struct px_client *cl)
{
    for (uint32_t i = 0; i < cl->nuchanges; i++)
        free(cl->uchanges[i].text);
    cl->nuchanges = 0;
    set_settled(cl, NULL, 0);
}

void px_unnamed_free(struct px_client *cl)
{
    px_unnamed_forget_all(cl);
    free(cl->uchanges);
    cl->uchanges = NULL;
    cl->capuchanges = 0;
}
