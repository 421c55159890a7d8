/*
 * auth_query (proxy/auth_query.c): the secret of a user who is not in auth_file, looked up in
 * PostgreSQL by running auth_query as auth_user, cached for auth_cache_ttl (found or not).
 *
 * The lookup connection is libpq in non-blocking mode driven by a uv_poll_t, as the lock monitor's
 * (proxy/admin/monitor.c): it is pglane's own connection, never handed to a client, so it needs no
 * pool, no lane and no place in the caps or SHOW POOLS, and libpq brings the TLS modes of
 * [server.NAME], SCRAM and md5 and the parameterised query ($1 as a bound parameter, never spliced
 * into the text). The price: libpq logs in with a plaintext password, so auth_user's auth_file
 * entry must be a plaintext password (or none, where pg_hba trusts it).
 *
 * One connection per database the lookups run in (auth_dbname, or the client's database), to the
 * server of default_lane; it runs one lookup at a time, is kept between lookups and made again when
 * it dies. Concurrent logins of one user share one lookup: the clients wait on its cache entry.
 *
 * With several workers each has its own connections and cache, and a process-wide table (`shared`
 * below) says which worker is looking a user up and keeps the answers: a worker that misses either
 * claims the lookup, or waits for the worker that claimed it (woken when the answer is published,
 * PX_WORKERS_AUTHQ), or takes the answer already there. A user is looked up once per
 * auth_cache_ttl in the process, not once per worker.
 */
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/pgpoll.h"
#include "proxy/proxy.h"

#define TICK_MS 250
#define MAX_ENTRIES 10000          /* cached answers; beyond, answers are used once and not kept */
#define LOG_EVERY_MS 10000         /* a failing lookup connection logs at most this often */

enum aq_state { AQ_IDLE, AQ_CONNECTING, AQ_READY, AQ_BUSY };

struct aq_entry {                  /* the answer for one (database, user) */
    struct aq_entry *next;         /* in authq.entries */
    struct aq_entry *qnext;        /* in its connection's queue while pending */
    char *dbname, *user;
    char *secret;                  /* NULL: no such user (or no password) */
    uint64_t expires_ms;
    int pending;                   /* queued or running on a connection, or remote */
    int remote;                    /* waiting for another worker's lookup (shared_claim: SH_WAIT) */
    int attempts;                  /* connections that died under it */
    struct px_list waiters;        /* px_client.wait_link */
};

struct aq_conn {
    struct aq_conn *next;
    struct authq *aq;
    char *dbname;
    PGconn *pg;
    struct px_pgpoll io;           /* its socket on the event loop */
    enum aq_state state;
    uint64_t state_ms;
    unsigned gen;                  /* proxy.config_gen it was made under */
    struct aq_entry *qhead, *qtail;   /* pending lookups; the head runs while AQ_BUSY */
    PGresult *result;              /* the running lookup's first result */
};

struct authq {
    struct proxy *px;
    struct aq_entry *entries;
    int nentries;
    struct aq_conn *conns;
    uv_timer_t timer;
    unsigned gen;                  /* proxy.config_gen the cache was filled under */
    uint64_t hits, misses, errors, last_log_ms;
    int depth;                     /* inside one of its callbacks (aq_io, on_tick) */
    int stopping;                  /* px_authq_stop was called meanwhile: freed on the way out */
};

static void aq_io(uv_poll_t *h, int status, int events);
static void conn_kick(struct aq_conn *c);

/* ---- answers shared by the workers ---- */

#define CLAIM_MS 60000             /* a claimed lookup not answered by then may be claimed again */

struct shared_answer {
    struct shared_answer *next;
    char *dbname, *user, *secret;  /* secret NULL: no such user (or not answered yet) */
    uint64_t expires_ms;           /* px_now_ms() clock: every worker's loop time is monotonic ms */
    unsigned gen;                  /* the configuration generation it was looked up under */
    int claimed;                   /* a worker is looking it up: no answer yet */
};

/* Every field and every answer in the list is read and written under lock only. */
static struct {
    pthread_mutex_t lock;
    struct shared_answer *list;
    int n;
} shared = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

enum { SH_NOMEM = -1, SH_MINE, SH_WAIT, SH_HIT };

static void shared_free(struct shared_answer *a)
{
    free(a->dbname);
    free(a->user);
    free(a->secret);
    free(a);
}

/* A new answer (copies), not in the list yet; NULL without memory. */
static struct shared_answer *shared_new(const char *dbname, const char *user, const char *secret)
{
    struct shared_answer *a = calloc(1, sizeof(*a));

    if (a && (a->dbname = strdup(dbname)) && (a->user = strdup(user)) && (!secret || (a->secret = strdup(secret))))
        return a;
    if (a)
        shared_free(a);
    return NULL;
}

/* Under lock: drops the expired answers and the one for a's (database, user), then puts a in the list
 * if there is room. NULL if a was taken, else a (for the caller to free once unlocked). */
static struct shared_answer *shared_insert(struct shared_answer *a, unsigned gen, uint64_t expires_ms, uint64_t now)
{
    for (struct shared_answer **pp = &shared.list, *x; (x = *pp);) {
        if (now >= x->expires_ms || (strcmp(x->user, a->user) == 0 && strcmp(x->dbname, a->dbname) == 0)) {
            *pp = x->next;
            shared_free(x);
            shared.n--;
        } else {
            pp = &x->next;
        }
    }
    if (shared.n >= MAX_ENTRIES)
        return a;
    a->gen = gen;
    a->expires_ms = expires_ms;
    a->next = shared.list;
    shared.list = a;
    shared.n++;
    return NULL;
}

/*
 * What a worker that has no answer of its own for (dbname, user) under generation gen does: SH_HIT
 * with *secret (malloc'd, NULL for no such user) when another worker's answer is there, SH_WAIT when
 * another worker is looking it up, SH_MINE when this worker must (its claim is recorded; answered by
 * shared_answer), SH_NOMEM.
 */
static int shared_claim(const char *dbname, const char *user, unsigned gen, uint64_t now, char **secret)
{
    struct shared_answer *x, *a = shared_new(dbname, user, NULL);
    int r = SH_MINE;

    *secret = NULL;
    if (!a)
        return SH_NOMEM;
    a->claimed = 1;
    pthread_mutex_lock(&shared.lock);
    for (x = shared.list; x; x = x->next)
        if (x->gen == gen && now < x->expires_ms && strcmp(x->user, user) == 0 && strcmp(x->dbname, dbname) == 0)
            break;
    if (x && x->claimed)
        r = SH_WAIT;
    else if (x)
        r = x->secret && !(*secret = strdup(x->secret)) ? SH_NOMEM : SH_HIT;
    else
        a = shared_insert(a, gen, now + CLAIM_MS, now);
    pthread_mutex_unlock(&shared.lock);
    if (a)
        shared_free(a);
    return r;
}

/* The claiming worker's answer (secret copied; expires_ms 0: none, the claim is dropped and a waiting
 * worker claims it next). */
static void shared_answer(const char *dbname, const char *user, const char *secret, uint64_t expires_ms,
                          unsigned gen, uint64_t now)
{
    struct shared_answer *a = shared_new(dbname, user, secret), *drop = NULL;

    pthread_mutex_lock(&shared.lock);
    if (a && expires_ms > now) {
        a = shared_insert(a, gen, expires_ms, now);
    } else {                       /* the claim goes (and the answer, if it could not be copied) */
        for (struct shared_answer **pp = &shared.list; *pp; pp = &(*pp)->next)
            if (strcmp((*pp)->user, user) == 0 && strcmp((*pp)->dbname, dbname) == 0) {
                drop = *pp;
                *pp = drop->next;
                shared.n--;
                break;
            }
    }
    pthread_mutex_unlock(&shared.lock);
    if (a)
        shared_free(a);
    if (drop)
        shared_free(drop);
}

/* ---- cache entries ---- */

static void entry_free(struct authq *aq, struct aq_entry *e)
{
    for (struct aq_entry **p = &aq->entries; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            aq->nentries--;
            break;
        }
    free(e->dbname);
    free(e->user);
    free(e->secret);
    free(e);
}

/* Frees the answers that expired (all answers with all = 1); pending lookups stay. */
static void sweep(struct authq *aq, uint64_t now, int all)
{
    struct aq_entry *e = aq->entries, *next;

    for (; e; e = next) {
        next = e->next;
        if (!e->pending && (all || now >= e->expires_ms))
            entry_free(aq, e);
    }
}

/*
 * e's answer: secret (taken over; NULL = no such user), or failed. The waiting clients get their
 * copies first and are called last: a client's callback may close clients (even stop pglane, see
 * px_authq_stop), so nothing of e is used after the first call.
 */
static void entry_answer(struct authq *aq, struct aq_entry *e, char *secret, int failed)
{
    struct px_list woken;
    int found = secret != NULL;

    e->pending = 0;
    e->remote = 0;
    e->secret = secret;
    e->expires_ms = px_now_ms(aq->px) + (uint64_t)aq->px->conf->auth_cache_ttl_ms;
    px_list_init(&woken);
    while (!px_list_empty(&e->waiters)) {
        struct px_client *cl = px_container_of(e->waiters.next, struct px_client, wait_link);

        px_list_remove(&cl->wait_link);
        px_list_append(&woken, &cl->wait_link);
        cl->authq_wait = 0;
        free(cl->authq_secret);
        cl->authq_secret = !failed && found ? strdup(secret) : NULL;
    }
    /* A failure is not an answer to keep; nor is one when the cache is full or the TTL is 0. */
    if (failed || aq->nentries > MAX_ENTRIES || aq->px->conf->auth_cache_ttl_ms <= 0)
        entry_free(aq, e);
    while (!px_list_empty(&woken)) {
        struct px_client *cl = px_container_of(woken.next, struct px_client, wait_link);

        px_list_remove(&cl->wait_link);
        px_client_secret_ready(cl, failed || (found && !cl->authq_secret));
    }
}

/* The lookup at the head of c's queue ended: secret (taken over; NULL = no such user), or failed.
 * With several workers the answer is published and the workers waiting for it are woken. */
static void lookup_done(struct aq_conn *c, char *secret, int failed)
{
    struct authq *aq = c->aq;
    struct proxy *px = aq->px;
    struct aq_entry *e = c->qhead;
    uint64_t now = px_now_ms(px);

    c->qhead = e->qnext;
    if (!c->qhead)
        c->qtail = NULL;
    e->qnext = NULL;
    if (failed)
        aq->errors++;
    else
        aq->misses++;
    if (px->workers) {
        shared_answer(e->dbname, e->user, secret,
                      failed || px->conf->auth_cache_ttl_ms <= 0 ? 0 : now + (uint64_t)px->conf->auth_cache_ttl_ms,
                      aq->gen, now);
        px_workers_ask(px, PX_WORKERS_AUTHQ, NULL);
    }
    entry_answer(aq, e, secret, failed);
}

/* ---- the lookup connection ---- */

static void set_state(struct aq_conn *c, enum aq_state st)
{
    c->state = st;
    c->state_ms = px_now_ms(c->aq->px);
}

/* One log line per failure, at most every LOG_EVERY_MS while the failures go on. */
static void log_failure(struct aq_conn *c, const char *what, const char *why)
{
    struct authq *aq = c->aq;
    uint64_t now = px_now_ms(aq->px);
    char msg[300];
    size_t n;

    if (aq->last_log_ms && now - aq->last_log_ms < LOG_EVERY_MS)
        return;
    aq->last_log_ms = now;
    snprintf(msg, sizeof(msg), "%s", why ? why : "");
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    px_error("auth_query in database \"%s\" as auth_user \"%s\": %s: %s", c->dbname,
             aq->px->conf->auth_user ? aq->px->conf->auth_user : "", what, msg);
}

/* Closes the connection. Its queued lookups fail (failed = 1) or wait for the next connection. */
static void conn_reset(struct aq_conn *c, int fail_queue)
{
    px_pgpoll_close(&c->io);
    if (c->result)
        PQclear(c->result);
    c->result = NULL;
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    set_state(c, AQ_IDLE);
    while (fail_queue && c->qhead)
        lookup_done(c, NULL, 1);
}

/* The connection failed (what: "cannot connect", ...): one log line, and its lookups fail. */
static void conn_failed(struct aq_conn *c, const char *what, const char *why)
{
    log_failure(c, what, why);
    conn_reset(c, 1);
}

/* 1 if a secret is one libpq cannot log in with (md5 and SCRAM secrets are hashes). */
static int hashed(const char *s)
{
    return (strncmp(s, "md5", 3) == 0 && strlen(s) == 35) || strncmp(s, "SCRAM-SHA-256$", 14) == 0;
}

static void conn_start(struct aq_conn *c)
{
    struct proxy *px = c->aq->px;
    const struct conf *conf = px->conf;
    const struct conf_server *cs = px->lanes[conf->default_lane_index]->server;
    const char *pw = conf->auth_user ? conf_userlist_find(&px->users, conf->auth_user) : NULL;

    if (!conf->auth_user) {       /* a reload removed it while lookups waited */
        conn_failed(c, "cannot connect", "auth_user is no longer set");
        return;
    }
    if (pw && hashed(pw)) {
        conn_failed(c, "cannot connect", "auth_user's entry in auth_file is a hashed secret; the lookup "
                                         "connection needs the plaintext password");
        return;
    }
    c->gen = px->config_gen;
    if (px_pgpoll_connect(&c->io, &c->pg, cs, conf->auth_user, c->dbname, "pglane-auth_query", pw) < 0) {
        conn_failed(c, "cannot connect", c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    set_state(c, AQ_CONNECTING);
}

static void connect_step(struct aq_conn *c)
{
    const char *why;

    switch (px_pgpoll_connect_step(&c->io, c->pg, &why)) {
    case 0:
        return;
    case 1:
        px_debug("auth_query: connected to database \"%s\" (backend pid %d)", c->dbname, PQbackendPID(c->pg));
        set_state(c, AQ_READY);
        conn_kick(c);
        return;
    }
    conn_failed(c, "cannot connect", why ? why : PQerrorMessage(c->pg));
}

/* Sends the lookup at the head of the queue: auth_query with the user name as $1. */
static void send_lookup(struct aq_conn *c)
{
    const char *values[1] = { c->qhead->user };

    if (!PQsendQueryParams(c->pg, c->aq->px->conf->auth_query, 1, NULL, values, NULL, NULL, 0)) {
        /* A connection that died while idle says so here: make it again for this lookup. */
        c->qhead->attempts++;
        if (c->qhead->attempts < 2) {
            conn_reset(c, 0);
            conn_kick(c);
        } else {
            conn_failed(c, "query failed", PQerrorMessage(c->pg));
        }
        return;
    }
    set_state(c, AQ_BUSY);
    if (px_pgpoll_flush(&c->io, c->pg) < 0)
        conn_failed(c, "query failed", PQerrorMessage(c->pg));
}

/* The lookup's results are all in: the secret is column 2 of the first row. */
static void take_results(struct aq_conn *c)
{
    PGresult *r = c->result;
    char *secret = NULL;

    c->result = NULL;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) < 2) {
        log_failure(c, "query failed",
                    !r ? "no result" : PQresultStatus(r) == PGRES_TUPLES_OK
                                           ? "auth_query must return two columns (user name, secret)"
                                           : PQresultErrorMessage(r));
        if (r)
            PQclear(r);
        lookup_done(c, NULL, 1);
        return;
    }
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 1) && *PQgetvalue(r, 0, 1) &&
        !(secret = strdup(PQgetvalue(r, 0, 1)))) {
        PQclear(r);
        lookup_done(c, NULL, 1);
        return;
    }
    PQclear(r);
    lookup_done(c, secret, 0);
}

static void read_step(struct aq_conn *c)
{
    PGresult *r;

    if (!PQconsumeInput(c->pg)) {
        /* The connection died under the lookup: once more on a new connection. */
        if (++c->qhead->attempts < 2) {
            conn_reset(c, 0);
            conn_kick(c);
        } else {
            conn_failed(c, "query failed", PQerrorMessage(c->pg));
        }
        return;
    }
    while (!PQisBusy(c->pg)) {
        r = PQgetResult(c->pg);
        if (!r) {
            set_state(c, AQ_READY);
            take_results(c);
            if (c->state == AQ_READY && px_pgpoll_for(&c->io, c->pg, UV_READABLE) < 0)
                conn_reset(c, 0);
            conn_kick(c);
            return;
        }
        if (!c->result)
            c->result = r;
        else
            PQclear(r);
    }
}

static void destroy(struct authq *aq);

/* A callback of the module runs: px_authq_stop waits until the outermost one returns. */
static void enter(struct authq *aq)
{
    aq->depth++;
}

static void leave(struct authq *aq)
{
    if (--aq->depth == 0 && aq->stopping)
        destroy(aq);
}

static void conn_io(struct aq_conn *c, int status)
{
    if (status < 0) {
        conn_failed(c, "connection failed", uv_strerror(status));
        return;
    }
    switch (c->state) {
    case AQ_CONNECTING:
        connect_step(c);
        return;
    case AQ_BUSY:
        if (PQflush(c->pg) < 0) {
            conn_failed(c, "query failed", PQerrorMessage(c->pg));
            return;
        }
        read_step(c);
        return;
    case AQ_READY:
        /* Idle connection readable: a notice, or the server closed it; the next lookup reconnects. */
        if (!PQconsumeInput(c->pg) || PQstatus(c->pg) == CONNECTION_BAD)
            conn_reset(c, 0);
        return;
    case AQ_IDLE:
        return;
    }
}

static void aq_io(uv_poll_t *h, int status, int events)
{
    struct aq_conn *c = h->data;
    struct authq *aq = c->aq;

    (void)events;
    enter(aq);
    conn_io(c, status);
    leave(aq);
}

/* Moves c on: connects when lookups wait and there is no connection, sends the next one when ready. */
static void conn_kick(struct aq_conn *c)
{
    if (!c->qhead || c->aq->stopping)
        return;
    if (c->state == AQ_IDLE)
        conn_start(c);
    else if (c->state == AQ_READY)
        send_lookup(c);
}

/* ---- the module ---- */

static void on_tick(uv_timer_t *t)
{
    struct authq *aq = t->data;
    struct proxy *px = aq->px;
    uint64_t now = px_now_ms(px);
    const struct conf_lane *dl = px->lanes[px->conf->default_lane_index]->conf;
    int64_t limit = dl->server_connect_timeout_ms > 0 ? dl->server_connect_timeout_ms : 15000;

    enter(aq);
    for (struct aq_conn *c = aq->conns; c && !aq->stopping; c = c->next) {
        if ((c->state == AQ_CONNECTING || c->state == AQ_BUSY) && now - c->state_ms > (uint64_t)limit)
            conn_failed(c, c->state == AQ_CONNECTING ? "cannot connect" : "query failed",
                        "no answer within server_connect_timeout");
        else if (c->state == AQ_READY && c->gen != px->config_gen)
            conn_reset(c, 0);     /* made under a previous configuration: the next lookup reconnects */
        conn_kick(c);
    }
    if (!aq->stopping)
        sweep(aq, now, 0);
    leave(aq);
    px_authq_remote(px);          /* a wake-up lost (another worker's full command queue) costs a tick */
}

static struct authq *authq_get(struct proxy *px)
{
    struct authq *aq = px->authq;

    if (aq)
        return aq;
    aq = calloc(1, sizeof(*aq));
    if (!aq)
        return NULL;
    aq->px = px;
    aq->gen = px->config_gen;
    uv_timer_init(px->loop, &aq->timer);
    aq->timer.data = aq;
    uv_timer_start(&aq->timer, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&aq->timer);
    px->authq = aq;
    return aq;
}

static struct aq_conn *conn_get(struct authq *aq, const char *dbname)
{
    struct aq_conn *c;

    for (c = aq->conns; c; c = c->next)
        if (strcmp(c->dbname, dbname) == 0)
            return c;
    c = calloc(1, sizeof(*c));
    if (!c || !(c->dbname = strdup(dbname))) {
        free(c);
        return NULL;
    }
    c->aq = aq;
    px_pgpoll_init(&c->io, aq->px->loop, aq_io, c);
    c->next = aq->conns;
    aq->conns = c;
    return c;
}

static void on_kick(uv_timer_t *t)
{
    struct authq *aq = t->data;

    enter(aq);
    on_tick(t);
    if (!aq->stopping)
        uv_timer_start(t, on_tick, TICK_MS, TICK_MS);
    leave(aq);
}

/* A pending entry for (dbname, user) in aq's cache, no waiter yet; NULL without memory. */
static struct aq_entry *entry_new(struct authq *aq, const char *dbname, const char *user)
{
    struct aq_entry *e = calloc(1, sizeof(*e));

    if (!e || !(e->dbname = strdup(dbname)) || !(e->user = strdup(user))) {
        if (e)
            free(e->dbname);
        free(e);
        return NULL;
    }
    px_list_init(&e->waiters);
    e->pending = 1;
    e->next = aq->entries;
    aq->entries = e;
    aq->nentries++;
    return e;
}

/* Queues e's lookup on the connection of its database; the lookup starts on the next turn of the
 * loop, never inside this call, so that a failure cannot call back into the client that is asking.
 * 0, or -1 without memory for the connection. */
static int lookup_queue(struct authq *aq, struct aq_entry *e)
{
    struct aq_conn *c = conn_get(aq, e->dbname);

    if (!c)
        return -1;
    if (c->qtail)
        c->qtail->qnext = e;
    else
        c->qhead = e;
    c->qtail = e;
    uv_timer_start(&aq->timer, on_kick, 0, 0);
    return 0;
}

void px_authq_remote(struct proxy *px)
{
    struct authq *aq = px->authq;
    uint64_t now = px_now_ms(px);

    if (!aq || !px->workers)
        return;
    enter(aq);
    for (struct aq_entry *e = aq->entries, *next; e && !aq->stopping; e = next) {
        char *secret = NULL;
        int claim;

        next = e->next;
        if (!e->remote || (claim = shared_claim(e->dbname, e->user, aq->gen, now, &secret)) == SH_WAIT ||
            claim == SH_NOMEM)
            continue;
        if (claim == SH_MINE) {    /* the other worker's lookup failed: this worker looks it up */
            e->remote = 0;
            if (lookup_queue(aq, e) == 0)
                continue;
            shared_answer(e->dbname, e->user, NULL, 0, aq->gen, now);   /* the claim is given back */
            aq->errors++;
            entry_answer(aq, e, NULL, 1);
        } else {                   /* the other worker's answer: a hit for each waiting login */
            for (struct px_list *w = e->waiters.next; w != &e->waiters; w = w->next)
                aq->hits++;
            entry_answer(aq, e, secret, 0);
        }
        next = aq->entries;        /* a client's callback may have changed the list: start over */
    }
    leave(aq);
}

int px_authq_lookup(struct px_client *cl)
{
    struct proxy *px = cl->conn.px;
    struct authq *aq = authq_get(px);
    const char *dbname = px->conf->auth_dbname ? px->conf->auth_dbname : cl->database;
    uint64_t now = px_now_ms(px);
    struct aq_entry *e;

    if (!aq || px->exiting)
        return -1;
    if (aq->gen != px->config_gen) {
        sweep(aq, now, 1);        /* a reload may have changed auth_query or auth_user */
        aq->gen = px->config_gen;
    }
    for (e = aq->entries; e; e = e->next)
        if (strcmp(e->user, cl->user) == 0 && strcmp(e->dbname, dbname) == 0)
            break;
    if (e && !e->pending && now >= e->expires_ms) {
        entry_free(aq, e);
        e = NULL;
    }
    if (e && !e->pending) {
        aq->hits++;
        free(cl->authq_secret);
        cl->authq_secret = NULL;
        if (e->secret && !(cl->authq_secret = strdup(e->secret)))
            return -1;
        return 1;
    }
    if (!e) {
        int claim = SH_MINE;
        char *secret = NULL;

        if (px->workers && (claim = shared_claim(dbname, cl->user, aq->gen, now, &secret)) == SH_NOMEM)
            return -1;
        if (claim == SH_HIT) {     /* another worker's answer */
            aq->hits++;
            free(cl->authq_secret);
            cl->authq_secret = secret;
            return 1;
        }
        if (aq->nentries >= MAX_ENTRIES)
            sweep(aq, now, 0);
        e = entry_new(aq, dbname, cl->user);
        if (e)
            e->remote = claim == SH_WAIT;
        if (!e || (!e->remote && lookup_queue(aq, e) < 0)) {
            if (e)
                entry_free(aq, e);
            if (claim == SH_MINE && px->workers)
                shared_answer(dbname, cl->user, NULL, 0, aq->gen, now);   /* the claim is given back */
            return -1;
        }
    }
    px_list_append(&e->waiters, &cl->wait_link);
    cl->authq_wait = 1;
    return 0;
}

void px_authq_forget(struct px_client *cl)
{
    if (!cl->authq_wait)
        return;
    px_list_remove(&cl->wait_link);
    cl->authq_wait = 0;
}

void px_authq_pool_secret(struct px_pool *pool, const char *secret, int fresh)
{
    char *s;

    if (pool->secret && (!pool->own_secret || !fresh))
        return;                   /* auth_file's entry wins */
    if (pool->own_secret && strcmp(pool->own_secret, secret) == 0)
        return;
    if (!(s = strdup(secret)))
        return;
    free(pool->own_secret);
    pool->own_secret = s;
    pool->secret = s;
    pool->have_scram_keys = 0;   /* a new password: the next SCRAM login brings its keys */
}

void px_authq_counts(struct proxy *px, uint64_t *hits, uint64_t *misses, uint64_t *errors)
{
    struct authq *aq = px->authq;

    *hits = aq ? aq->hits : 0;
    *misses = aq ? aq->misses : 0;
    *errors = aq ? aq->errors : 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void destroy(struct authq *aq)
{
    while (aq->conns) {
        struct aq_conn *c = aq->conns;

        aq->conns = c->next;
        conn_reset(c, 0);
        free(c->dbname);
        free(c);
    }
    while (aq->entries) {
        struct aq_entry *e = aq->entries;

        while (!px_list_empty(&e->waiters)) {
            struct px_client *cl = px_container_of(e->waiters.next, struct px_client, wait_link);

            px_list_remove(&cl->wait_link);
            cl->authq_wait = 0;
        }
        e->pending = 0;
        entry_free(aq, e);
    }
    uv_close((uv_handle_t *)&aq->timer, on_timer_closed);
}

void px_authq_stop(struct proxy *px)
{
    struct authq *aq = px->authq;

    if (!aq)
        return;
    px->authq = NULL;
    aq->stopping = 1;
    if (aq->depth == 0)
        destroy(aq);
}
