/*
 * Reply accounting: which of the client's forwarded messages the server still owes a reply to.
 *
 * The client's scan counts a ReadyForQuery for every Query, FunctionCall and Sync (pending_z), which
 * is what the server sends unless it skips or swallows the message: after an error in an
 * extended-protocol message PostgreSQL skips everything up to the next Sync (a Query or FunctionCall
 * in between gets no ReadyForQuery of its own), and while it reads COPY data it ignores Flush and
 * Sync. This queue (runs of message types, in the order the client sent them) is advanced by the
 * server's replies as PostgreSQL would consume the messages, and corrects pending_z whenever a
 * message will get no ReadyForQuery after all. It also tells how many messages forwarded outside the
 * prepared-statement response queue are unanswered, so that a reply pglane synthesizes waits for them.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

static int is_extended(uint8_t t)
{
    return t == PROTO_FE_PARSE || t == PROTO_FE_BIND || t == PROTO_FE_DESCRIBE || t == PROTO_FE_EXECUTE ||
           t == PROTO_FE_CLOSE || t == PROTO_FE_FLUSH;
}

/* A message of this type gets no reply at all (outside COPY IN): the server reads and drops it. */
static int silent(uint8_t t)
{
    return t == PROTO_FE_FLUSH || t == PROTO_FE_COPY_DATA || t == PROTO_FE_COPY_DONE || t == PROTO_FE_COPY_FAIL;
}

static struct px_flow_run *head(struct px_flow *f)
{
    return f->n ? &f->e[f->head] : NULL;
}

/* Drops `k` messages of the head run as settled `how` (PX_UNNAMED_DONE: answered or consumed,
 * _FAILED: the one that failed, _SKIPPED). */
static void pop(struct px_client *cl, uint32_t k, int how)
{
    struct px_flow *f = &cl->flow;
    struct px_flow_run *h = &f->e[f->head];

    h->n -= k;
    f->popped += k;
    if (h->n == 0) {
        f->head++;
        if (--f->n == 0)
            f->head = 0;
    }
    if (cl->nuchanges)
        px_unnamed_settle(cl, f->popped, how);
}

/* A message the server will answer with nothing (skipped, or read as COPY data): a Query,
 * FunctionCall or Sync among them gets no ReadyForQuery. */
static void discard(struct px_client *cl, uint8_t type, uint32_t k)
{
    if (proto_fe_gets_ready(type))
        cl->pending_z = cl->pending_z > k ? cl->pending_z - k : 0;
}

/* Messages that get no reply leave the head at once, so that the head is always what the server is
 * working on (or will work on next). */
static void normalize(struct px_client *cl)
{
    struct px_flow *f = &cl->flow;
    struct px_flow_run *h;

    while (!f->copy_in && (h = head(f)) && silent(h->type))
        pop(cl, h->n, PX_UNNAMED_DONE);
}

/*
 * While the server reads COPY data for the head message, it consumes the client's following messages:
 * CopyData, Flush and Sync are read and ignored, CopyDone and CopyFail end the copy, and anything else
 * ends it with an error (the message is consumed too).
 */
static void consume_copy(struct px_client *cl)
{
    struct px_flow *f = &cl->flow;

    while (f->copy_in && f->n > 1) {
        struct px_flow_run *r = &f->e[f->head + 1];
        uint8_t type = r->type;
        uint32_t k = type == PROTO_FE_COPY_DATA || type == PROTO_FE_FLUSH || type == PROTO_FE_SYNC ? r->n : 1;
        uint64_t first = f->popped + f->e[f->head].n + 1;   /* the place of r's first message */

        discard(cl, type, k);
        if (type != PROTO_FE_COPY_DATA && type != PROTO_FE_FLUSH && type != PROTO_FE_SYNC)
            f->copy_in = 0;
        r->n -= k;
        f->popped += k;
        if (r->n == 0) {           /* remove the run behind the head: move the head up one slot */
            f->e[f->head + 1] = f->e[f->head];
            f->head++;
            f->n--;
        }
        /* Read as part of the copy, behind the head: only their own changes are settled. */
        if (cl->nuchanges)
            px_unnamed_settle_range(cl, first, first + k - 1, PX_UNNAMED_SKIPPED);
    }
}

int px_flow_push(struct px_client *cl, uint8_t type)
{
    struct px_flow *f = &cl->flow;

    f->pushed++;
    if (f->skipping) {
        if (type != PROTO_FE_SYNC) {
            f->popped++;
            discard(cl, type, 1);
            if (cl->nuchanges)
                px_unnamed_settle(cl, f->popped, PX_UNNAMED_SKIPPED);
            return 0;
        }
        f->skipping = 0;
    }
    if (f->n && f->e[f->head + f->n - 1].type == type && type != PROTO_FE_SYNC) {
        f->e[f->head + f->n - 1].n++;
    } else {
        if (f->head + f->n == f->cap) {
            if (f->head > 0) {
                memmove(f->e, f->e + f->head, sizeof(*f->e) * f->n);
                f->head = 0;
            } else {
                uint32_t cap = f->cap ? f->cap * 2 : 16;
                struct px_flow_run *e = realloc(f->e, sizeof(*e) * cap);

                if (!e)
                    return -1;
                f->e = e;
                f->cap = cap;
            }
        }
        f->e[f->head + f->n] = (struct px_flow_run){ type, 1 };
        f->n++;
    }
    consume_copy(cl);
    normalize(cl);
    return 0;
}

/* After an ErrorResponse to an extended-protocol message: the server skips to the next Sync. */
static void skip_to_sync(struct px_client *cl)
{
    struct px_flow *f = &cl->flow;
    struct px_flow_run *h;

    while ((h = head(f)) && h->type != PROTO_FE_SYNC) {
        discard(cl, h->type, h->n);
        pop(cl, h->n, PX_UNNAMED_SKIPPED);
    }
    if (!h)
        f->skipping = 1;
}

void px_flow_reply(struct px_client *cl, uint8_t type)
{
    struct px_flow *f = &cl->flow;
    struct px_flow_run *h;
    uint8_t want = 0;

    h = head(f);                   /* normalized: the last change of the flow ended with normalize() */
    switch (type) {
    case PROTO_BE_PARSE_COMPLETE:
        want = PROTO_FE_PARSE;
        break;
    case PROTO_BE_BIND_COMPLETE:
        want = PROTO_FE_BIND;
        break;
    case PROTO_BE_CLOSE_COMPLETE:
        want = PROTO_FE_CLOSE;
        break;
    case PROTO_BE_ROW_DESC:
    case PROTO_BE_NO_DATA:
        want = PROTO_FE_DESCRIBE;
        break;
    case PROTO_BE_COMMAND_COMPLETE:
    case PROTO_BE_EMPTY_QUERY:
    case PROTO_BE_PORTAL_SUSPENDED:
        f->copy_in = 0;
        want = PROTO_FE_EXECUTE;
        break;
    case PROTO_BE_COPY_IN:
        if (h) {
            f->copy_in = 1;
            consume_copy(cl);
        }
        break;
    case PROTO_BE_ERROR:
        f->copy_in = 0;
        if (h && is_extended(h->type)) {
            pop(cl, 1, PX_UNNAMED_FAILED);
            skip_to_sync(cl);
        }
        break;
    case PROTO_BE_READY:
        f->copy_in = 0;
        f->skipping = 0;
        /* Normally the head is the Query, FunctionCall or Sync answered; should the count be out of
         * step, everything up to the first such message is taken as answered. */
        while ((h = head(f)) && !proto_fe_gets_ready(h->type))
            pop(cl, h->n, PX_UNNAMED_SKIPPED);
        if (h)
            pop(cl, 1, PX_UNNAMED_DONE);
        break;
    default:
        /* DataRow, NoticeResponse, ParameterStatus...: they answer no message and the flow is
         * normalized already, so there is nothing to do (a result's rows are most of the messages). */
        return;
    }
    if (want && h && h->type == want)
        pop(cl, 1, PX_UNNAMED_DONE);
    normalize(cl);
}

int px_flow_idle(const struct px_client *cl)
{
    return cl->flow.n == 0 && !cl->flow.skipping;
}

int px_flow_owes_flushed(const struct px_client *cl)
{
    const struct px_flow *f = &cl->flow;

    for (uint32_t i = 0; i < f->n; i++) {
        uint8_t t = f->e[f->head + i].type;

        if (proto_fe_gets_ready(t) || t == PROTO_FE_FLUSH)
            return 1;
    }
    return 0;
}

uint8_t px_flow_head_type(const struct px_client *cl)
{
    const struct px_flow *f = &cl->flow;

    return f->n ? f->e[f->head].type : 0;
}

int px_flow_copy_in(const struct px_client *cl)
{
    return cl->flow.copy_in;
}

void px_flow_mark_raw(struct px_client *cl)
{
    cl->flow.raw_mark = cl->flow.pushed;
}

uint64_t px_flow_raw_owed(const struct px_client *cl)
{
    return cl->flow.raw_mark > cl->flow.popped ? cl->flow.raw_mark - cl->flow.popped : 0;
}

void px_flow_reset(struct px_client *cl)
{
    struct px_flow *f = &cl->flow;

    f->head = f->n = 0;
    f->popped = f->pushed;
    f->copy_in = f->skipping = 0;
    if (cl->nuchanges)
        px_unnamed_settle(cl, f->popped, PX_UNNAMED_SKIPPED);
}

void px_flow_free(struct px_client *cl)
{
    free(cl->flow.e);
    memset(&cl->flow, 0, sizeof(cl->flow));
}
