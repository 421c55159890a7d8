/*
 * Per-stage timing of sampled transactions (proxy/admin/stages.h): the sample's running sums, the
 * totals SHOW STAGES prints. Regions nest (a server's release hands it to a queued client, whose read
 * callback then runs inside): only the outermost region of each side is timed, and the stages timed
 * inside it (writes, prepared, release) are subtracted from its own stage, so stages never overlap
 * and their sum stays within the transaction's duration.
 */
#include <string.h>
#include <time.h>

#include "proxy/admin/console.h"
#include "proxy/admin/stages.h"

_Thread_local uint64_t px_stage_active;   /* per worker: each samples its own clients */

static _Thread_local struct {   /* per worker: its own sampled transaction and totals */
    uint64_t tick;
    uint64_t begin;            /* when the sampled transaction's first client read began */
    uint64_t last_client_end;  /* end of its last client region (a queue wait starts there) */
    uint64_t sent;             /* when its bytes went to the server, 0 once the reply arrived */
    uint64_t cur[PX_STAGES];
    int depth;                 /* timed regions open */
    int sent_pending;          /* bytes went out inside a region: the server wait starts at its end */
    int ended;                 /* the transaction ended inside a region: finish at its end */
    struct px_stage_totals tot;
} st;

static const char *const names[PX_STAGES] = {
    [PX_ST_CLIENT_SCAN] = "client_scan",   [PX_ST_SERVER_WRITE] = "server_write",
    [PX_ST_PREPARED] = "prepared",         [PX_ST_QUEUE] = "queue",
    [PX_ST_SERVER] = "server",             [PX_ST_SERVER_SCAN] = "server_scan",
    [PX_ST_CLIENT_WRITE] = "client_write", [PX_ST_RELEASE] = "release",
};

uint64_t px_stage_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *px_stage_name(enum px_stage s)
{
    return names[s];
}

static void finish(uint64_t now)
{
    st.tot.samples++;
    st.tot.tx_ns += now - st.begin;
    for (int i = 0; i < PX_STAGES; i++)
        st.tot.ns[i] += st.cur[i];
    px_stage_active = 0;
}

static uint64_t inner_sum(void)
{
    return st.cur[PX_ST_SERVER_WRITE] + st.cur[PX_ST_PREPARED] + st.cur[PX_ST_CLIENT_WRITE] + st.cur[PX_ST_RELEASE];
}

/* Region start: the time, the inner stages' sum so far is kept in inner0. */
static _Thread_local uint64_t inner0[2];

/* Region handles: 0 = not timed, 1 = nested in a timed region, else the region's start time. */
uint64_t px_stage_client_enter(struct px_client *cl)
{
    uint64_t now;

    if (cl->state == CL_IDLE && ++st.tick % PX_STAGE_SAMPLE_EVERY == 0 && st.depth == 0) {
        now = px_stage_now();
        /* A sample whose client sat in its transaction for over a second is dropped for a new one. */
        if (px_stage_active == 0 || now - st.begin > 1000000000u) {
            memset(st.cur, 0, sizeof(st.cur));
            px_stage_active = cl->conn.id;
            st.begin = now;
            st.sent = st.last_client_end = 0;
            st.sent_pending = st.ended = 0;
        }
    }
    if (!PX_STAGE_ON(cl->conn.id))
        return 0;
    if (st.depth++ > 0)
        return 1;
    inner0[0] = inner_sum();
    return px_stage_now();
}

uint64_t px_stage_server_enter(struct px_server *sv)
{
    uint64_t now;

    if (!sv->client || !PX_STAGE_ON(sv->client->conn.id))
        return 0;
    if (st.depth++ > 0)
        return 1;
    now = px_stage_now();
    if (st.sent) {
        st.cur[PX_ST_SERVER] += now - st.sent;
        st.sent = 0;
    }
    inner0[1] = inner_sum();
    return now;
}

static void leave(uint64_t t, enum px_stage s, int side)
{
    uint64_t now;

    if (t == 0)
        return;
    if (st.depth > 0)
        st.depth--;
    if (t == 1 || px_stage_active == 0)
        return;
    now = px_stage_now();
    st.cur[s] += (now - t) - (inner_sum() - inner0[side]);
    if (st.ended) {
        finish(now);
        return;
    }
    if (side == 0)
        st.last_client_end = now;
    if (st.sent_pending) {
        st.sent_pending = 0;
        st.sent = now;
    }
}

void px_stage_client_leave(uint64_t t)
{
    leave(t, PX_ST_CLIENT_SCAN, 0);
}

void px_stage_server_leave(uint64_t t)
{
    leave(t, PX_ST_SERVER_SCAN, 1);
}

void px_stage_add(enum px_stage s, uint64_t t)
{
    if (px_stage_active)
        st.cur[s] += px_stage_now() - t;
}

void px_stage_sent(void)
{
    if (!px_stage_active)
        return;
    if (st.depth > 0)
        st.sent_pending = 1;
    else
        st.sent = px_stage_now();
}

void px_stage_attached(void)
{
    if (px_stage_active && st.depth == 0 && st.last_client_end)
        st.cur[PX_ST_QUEUE] += px_stage_now() - st.last_client_end;
}

void px_stage_tx_end(void)
{
    if (!px_stage_active)
        return;
    if (st.depth > 0)
        st.ended = 1;
    else
        finish(px_stage_now());
}

void px_stage_abandon(uint64_t client_id)
{
    if (px_stage_active == client_id) {
        px_stage_active = 0;
        st.depth = 0;
    }
}

void px_stage_recs(struct proxy *px, struct proto_buf *out)
{
    (void)px;
    proto_put_bytes(out, &st.tot, sizeof(st.tot));
}

/* Every worker's totals summed: the averages and shares of the process's sampled transactions. */
void px_stage_send(struct px_client *cl, const uint8_t *recs, size_t len)
{
    static const char *const cols[] = { "stage", "samples", "total_us", "avg_us", "share", NULL };
    struct px_stage_totals sum = { 0 }, one;
    struct px_table t;

    for (; len >= sizeof(one); recs += sizeof(one), len -= sizeof(one)) {
        memcpy(&one, recs, sizeof(one));
        sum.samples += one.samples;
        sum.tx_ns += one.tx_ns;
        for (int i = 0; i < PX_STAGES; i++)
            sum.ns[i] += one.ns[i];
    }
    px_table_begin_typed(&t, cols, "sqqss");
    for (int i = 0; i <= PX_STAGES; i++) {
        uint64_t ns = i < PX_STAGES ? sum.ns[i] : sum.tx_ns, n = sum.samples;

        px_table_cell(&t, "%s", i < PX_STAGES ? names[i] : "transaction");
        px_table_cell(&t, "%llu", (unsigned long long)n);
        px_table_cell(&t, "%llu", (unsigned long long)(ns / 1000u));
        px_table_cell(&t, "%.2f", n ? (double)ns / 1000.0 / (double)n : 0.0);
        px_table_cell(&t, "%.3f", sum.tx_ns ? (double)ns / (double)sum.tx_ns : 0.0);
    }
    px_table_send(&t, cl, "SHOW");
}

void px_show_stages(struct px_client *cl, const char *arg)
{
    (void)arg;
    px_show_list(cl, PX_GATHER_STAGES);
}
