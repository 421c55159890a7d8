/*
 * libFuzzer target: proto_parse_startup on arbitrary bytes, then proto_startup_get. A parsed packet
 * is parsed again from an exact-size copy of its consumed bytes, so that AddressSanitizer sees any
 * read past the packet's own length.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)

static const char *const known[] = {
    "user", "database", "application_name", "options", "replication", "client_encoding", "",
};

static void check_params(const struct proto_startup *s, const uint8_t *buf, size_t len)
{
    CHECK(s->nparams >= 0 && s->nparams <= PROTO_MAX_STARTUP_PARAMS);
    for (int i = 0; i < s->nparams; i++) {
        const char *n = s->params[i].name, *v = s->params[i].value;
        CHECK((const uint8_t *)n >= buf + 8 && (const uint8_t *)v > (const uint8_t *)n);
        CHECK((const uint8_t *)v + strlen(v) < buf + len);   /* the value's NUL is inside */
        CHECK(n[0] != '\0');
        /* The last parameter of that name answers (as in PostgreSQL); it is at index >= i. */
        const char *got = proto_startup_get(s, n);
        CHECK(got != NULL && got >= v);
    }
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
        const char *got = proto_startup_get(s, known[k]);
        CHECK(got == NULL || ((const uint8_t *)got >= buf && (const uint8_t *)got < buf + len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_startup s, t;
    size_t consumed = 0, again = 0;
    const char *err = NULL, *sqlstate = NULL;

    memset(&s, 0, sizeof s);
    int r = proto_parse_startup(data, size, &s, &consumed, &err, &sqlstate);
    if (r == PROTO_FRAME_ERROR) {
        CHECK(err != NULL && sqlstate != NULL && strlen(sqlstate) == 5);
        return 0;
    }
    if (r == PROTO_FRAME_NEED_MORE) {
        CHECK(size < 4 || size < proto_get_u32(data));
        return 0;
    }
    CHECK(r == PROTO_FRAME_OK && consumed >= 8 && consumed <= size &&
          consumed <= PROTO_MAX_STARTUP_LEN);

    uint8_t *copy = malloc(consumed);
    CHECK(copy != NULL);
    memcpy(copy, data, consumed);
    memset(&t, 0, sizeof t);
    CHECK(proto_parse_startup(copy, consumed, &t, &again, &err, &sqlstate) == PROTO_FRAME_OK);
    CHECK(again == consumed && t.kind == s.kind && t.version == s.version && t.nparams == s.nparams);
    switch (t.kind) {
    case PROTO_STARTUP_V3:
        check_params(&t, copy, consumed);
        break;
    case PROTO_STARTUP_SSL:         /* bytes after the code are consumed and ignored */
    case PROTO_STARTUP_GSSENC:
        break;
    case PROTO_STARTUP_CANCEL:      /* the words present, 0 for those missing */
        CHECK(t.cancel_pid == (consumed >= 12 ? proto_get_u32(copy + 8) : 0) &&
              t.cancel_key == (consumed >= 16 ? proto_get_u32(copy + 12) : 0));
        break;
    }
    /* One byte short of the packet must ask for more, never read it. */
    CHECK(proto_parse_startup(copy, consumed - 1, &t, &again, &err, &sqlstate) ==
          PROTO_FRAME_NEED_MORE);
    free(copy);
    return 0;
}
