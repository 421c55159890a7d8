/*
 * A raw v3 protocol client for the differential tests: connects (startup + trust, MD5 or SCRAM
 * authentication), sends message batches exactly as written in a small notation, and reads the
 * backend's replies into a normalised text (message types, SQLSTATEs, command tags, row values).
 *
 * Batch notation: messages separated by spaces; arguments in braces, separated by '|':
 *   Q{sql}                    Query
 *   P{name|sql}  P{name|sql|oid,oid}   Parse (unnamed: P{|sql})
 *   B{portal|stmt|v1|v2...}   Bind with text parameters (B alone: unnamed portal and statement)
 *   D{S|name}  D{P|name}      Describe statement / portal
 *   E  E{portal|maxrows}      Execute
 *   C{S|name}  C{P|name}      Close
 *   F{regproc|arg...}         FunctionCall (text arguments, text result; regproc resolved by the caller)
 *   d{data}  c  f{message}    CopyData / CopyDone / CopyFail
 *   S  H  X                   Sync / Flush / Terminate
 *   y                         an empty message of a type PostgreSQL does not know
 *   L{type|length}            a bare message header claiming that length (e.g. below 4, or 1 GiB)
 *   M{type|hex}               a message of that type with the body given in hex (malformed bodies)
 *   /                         send what precedes, wait 50 ms, go on (two writes)
 *   .                         send what precedes, then end the client's stream (shutdown for writing)
 *   ~                         send only the header of the next message
 * In sql, data and parameters, "\n" is a newline and "@<n>K" or "@<n>M" is n KiB / MiB of 'x'.
 *
 * Normalised replies: one token per message, separated by spaces: 1 2 3 n s I t T(ncols)
 * D[first column] C(tag) E(SQLSTATE) N(SQLSTATE) Z(status) G H d[data] c V[value] A(channel:payload),
 * and "EOF" when the server closed; ParameterStatus and BackendKeyData are left out. Repeated
 * identical tokens collapse to "tok*count".
 */
#ifndef PGLANE_TEST_RAWPG_H
#define PGLANE_TEST_RAWPG_H

#include <stddef.h>

struct rp_conn {
    int fd;
    int eof;
};

/*
 * Connects to 127.0.0.1:port as user/password/database with extra startup parameters ("k=v k=v",
 * may be NULL). Returns 0 when ReadyForQuery arrived; otherwise -1 with the normalised refusal
 * (e.g. "E(22023) EOF") in refusal; on success refusal holds the tokens of messages before
 * ReadyForQuery other than ParameterStatus and BackendKeyData (NoticeResponse), usually "".
 */
int rp_connect(struct rp_conn *c, int port, const char *user, const char *password, const char *db,
               const char *params, char *refusal, size_t n);
void rp_close(struct rp_conn *c);

/* Non-zero: ParameterStatus messages after the login are shown too, as S(name=value). */
extern int rp_show_params;

/* A batch for the next rp_connect to send in the same segment as its startup packet
 * (rp_pipeline_at = RP_WITH_STARTUP) or as its last authentication message (RP_WITH_AUTH, not sent
 * if the server asks for none); its replies follow the login's ReadyForQuery. Reset once sent. */
enum { RP_WITH_STARTUP = 0, RP_WITH_AUTH = 1 };
extern const char *rp_pipeline;
extern int rp_pipeline_at;

/* Resolves F{name|...} to a function oid; set by the caller (may be NULL: names must then be oids). */
extern unsigned (*rp_resolve_function)(const char *name);

/* Sends a batch written in the notation above. 0, or -1 (bad notation or write failure). */
int rp_send(struct rp_conn *c, const char *batch);

enum { RP_WAIT_QUIET = -1, RP_WAIT_EOF = -2 };
/*
 * Reads replies and appends their normalised tokens to out (a NUL-terminated string of capacity n):
 *   want_z > 0: until that many ReadyForQuery (or EOF; "TIMEOUT" after timeout_ms);
 *   RP_WAIT_QUIET: until at least min_msgs messages arrived and then nothing for quiet_ms;
 *   RP_WAIT_EOF: until the server closes ("TIMEOUT" after timeout_ms without EOF).
 * Returns the number of messages read.
 */
int rp_read(struct rp_conn *c, int want_z, int min_msgs, int quiet_ms, int timeout_ms, char *out, size_t n);

#endif
