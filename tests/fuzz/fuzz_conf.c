/*
 * libFuzzer target: conf/ on arbitrary text: the ini loader with its validation pass, and the
 * auth_file (userlist) parser. Everything is freed, diagnostics included, so LeakSanitizer sees
 * any leak on an error path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) __builtin_trap(); } while (0)
#define NAME "/etc/pglane/fuzz.ini"

static void check_diag(const struct conf_diag *d, int failed)
{
    CHECK(!failed || d->n > 0);
    for (int i = 0; i < d->n; i++)
        CHECK(d->msgs[i] != NULL && strncmp(d->msgs[i], NAME, strlen(NAME)) == 0);
}

static void ini(const char *text)
{
    struct conf *c = NULL;
    struct conf_diag diag = { 0 };

    int rc = conf_load_string(text, NAME, &c, &diag);
    check_diag(&diag, rc < 0);
    if (rc == 0) {
        CHECK(c != NULL && c->nlanes > 0);
        CHECK(conf_lane_find(c, c->default_lane) == c->default_lane_index);
        for (int i = 0; i < c->nlanes; i++)
            CHECK(c->lanes[i].server >= 0 && c->lanes[i].server < c->nservers);
        for (int i = 0; i < c->nroutes; i++)
            CHECK(c->routes[i].lane >= 0 && c->routes[i].lane < c->nlanes);
        for (int i = 0; i < c->nservers; i++)
            CHECK(conf_server_find(c, c->servers[i].name) == i);
        conf_free(c);
    } else {
        CHECK(c == NULL);
    }
    conf_diag_free(&diag);
}

static void userlist(const char *text)
{
    struct conf_userlist ul;
    struct conf_diag diag = { 0 };

    int rc = conf_userlist_parse(text, NAME, &ul, &diag);
    check_diag(&diag, rc < 0);
    if (rc == 0)
        for (int i = 0; i < ul.n; i++)
            CHECK(conf_userlist_find(&ul, ul.users[i].name) == ul.users[i].secret);
    else
        CHECK(ul.n == 0 && ul.users == NULL);
    conf_userlist_free(&ul);
    conf_diag_free(&diag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    int64_t ms;

    CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    ini(text);
    userlist(text);
    if (size < 64 && conf_parse_duration(text, &ms) == 0)
        CHECK(ms >= 0);
    free(text);
    return 0;
}
