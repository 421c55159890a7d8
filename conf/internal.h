/*
 * conf/ internals shared by its .c files: the loader state threaded through the inih callbacks,
 * diagnostics helpers and value parsers. Not part of the public interface (conf.h is).
 */
#ifndef PGLANE_CONF_INTERNAL_H
#define PGLANE_CONF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "conf/conf.h"

/* inih (Debian r55) truncates section and key names to 49 bytes; we reject longer ones instead. */
#define CONF_MAX_NAME 49

enum conf_sect_kind { SECT_PGLANE, SECT_SERVER, SECT_LANE, SECT_ROUTE, SECT_PEERS };

struct conf_keyline {          /* a key seen in a section, for duplicate detection and diagnostics */
    char *name;
    int line;
};

struct conf_sect {             /* one [section] header as written in the file */
    enum conf_sect_kind kind;
    char *header;              /* "lane.oltp" */
    const char *name;          /* points into header after the dot ("oltp"); "" for [pglane] */
    int line;
    int index;                 /* into conf.servers / lanes / routes; 0 for [pglane] */
    struct conf_keyline *keys;
    int nkeys;
    char *ref;                 /* lane: server = NAME; route: lane = NAME (resolved by validate) */
    int ref_line;
};

#define CONF_NO_SECTION (-1)   /* keys before the first section header */
#define CONF_IGNORED (-2)      /* inside a section already reported as bad: keys are skipped */

/* State of one load: the struct being built, the diagnostics and the reader's position. */
struct conf_loader {
    struct conf *c;
    struct conf_diag *diag;    /* may be NULL: errors are still counted */
    const char *file;          /* name used in diagnostics */
    int nerr;
    int oom;
    const char *pos, *end;     /* the reader's cursor in the text */
    int lineno;                /* line the reader returned last (= the line the handler sees) */
    struct conf_sect *sects;
    int nsects;
    int cur;                   /* index into sects, or CONF_NO_SECTION / CONF_IGNORED */
};

/* diag.c */
void conf_diag_addf(struct conf_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conf_errf(struct conf_loader *ld, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int conf_read_file(const char *path, char **text, struct conf_diag *diag);

/* values.c: each returns 0 or -1; none of them report errors themselves. */
int conf_parse_int(const char *s, long long min, long long max, long long *out);
int conf_parse_bool(const char *s, int *out);
int conf_parse_enum(const char *s, const char *const *names, int *out);
int conf_parse_hostport(const char *s, struct conf_listen *out);
int conf_parse_memory(const char *s);
int conf_valid_guc_name(const char *s);
int conf_valid_section_name(const char *s);
int conf_parse_cidr(const char *s, uint8_t addr[16], int *family, int *prefix);
int conf_split_list(const char *s, int quoted, char ***out, int *n);
int conf_normalize_table(const char *s, char **out);
void conf_free_list(char **v, int n);
char *conf_resolve_path(const char *file, const char *path);

/* keys.c, keys_lane.c, keys_route.c: the schema, one table of keys per section kind. A setter
 * returns 0, -1 for "bad value" (worded by the caller from the key's description) or -2 when it
 * reported the problem itself. */
struct conf_keydef;
#define SETTER_ARGS struct conf_loader *ld, struct conf_sect *s, void *obj, \
                    const struct conf_keydef *kd, const char *value
typedef int (*conf_setter)(SETTER_ARGS);

struct conf_keydef {
    const char *name;          /* NULL ends a table */
    conf_setter set;
    size_t off;                /* the field in the section's struct */
    size_t off_n;              /* lists: the count field */
    long long min, max;        /* integers */
    const char *const *names;  /* enums, in enum order */
    const char *what;          /* "expected <what>" in diagnostics; NULL: built from min/max/names */
};

#define CONF_FIELD(obj, kd, type) ((type *)(void *)((char *)(obj) + (kd)->off))

int conf_set_str(SETTER_ARGS);
int conf_set_path(SETTER_ARGS);
int conf_set_int(SETTER_ARGS);
int conf_set_duration(SETTER_ARGS);
int conf_set_bool(SETTER_ARGS);
int conf_set_enum(SETTER_ARGS);
int conf_set_list(SETTER_ARGS);
int conf_set_ref(SETTER_ARGS);
char *conf_dup(struct conf_loader *ld, const char *v);   /* strdup that flags out of memory */
/* Splits value (a comma-separated list) into a new zeroed array *arr of one element of `size` per
 * item and parses each item into its element, adding one to *count per item parsed; stops at the
 * first item parse rejects and returns parse's code. A list that does not split: -1, *arr untouched. */
int conf_parse_items(struct conf_loader *ld, const char *value, size_t size, void **arr, int *count,
                     int (*parse)(struct conf_loader *ld, const char *item, void *elem));
void conf_apply_key(struct conf_loader *ld, struct conf_sect *s, const char *key, const char *value);
extern const struct conf_keydef conf_lane_keys[];
extern const struct conf_keydef conf_route_keys[];
int conf_lane_set_tenant_weight(struct conf_loader *ld, struct conf_sect *s, struct conf_lane *lane,
                                const char *key, const char *value);
int conf_lane_set_guc(struct conf_loader *ld, struct conf_sect *s, struct conf_lane *lane,
                      const char *key, const char *value);

/* Table entries: KW has its own description, the others build it from their type. */
#define DURATION_WHAT "a duration such as 250ms, 2s or 10min"
#define BOOL_WHAT "yes or no"
#define KW(name, fn, st, f, what) {name, fn, offsetof(st, f), 0, 0, 0, NULL, what}
#define KINT(name, st, f, lo, hi) {name, conf_set_int, offsetof(st, f), 0, lo, hi, NULL, NULL}
#define KENUM(name, st, f, names) {name, conf_set_enum, offsetof(st, f), 0, 0, 0, names, NULL}
#define KDUR(name, st, f) KW(name, conf_set_duration, st, f, DURATION_WHAT)
#define KBOOL(name, st, f) KW(name, conf_set_bool, st, f, BOOL_WHAT)
#define KLIST(name, st, f, nf, what) \
    {name, conf_set_list, offsetof(st, f), offsetof(st, nf), 0, 0, NULL, what}
#define KEND {NULL, NULL, 0, 0, 0, 0, NULL, NULL}

/* keys_peers.c: one "peer.N = host:port" (or "N = host=H port=P") of [peers], and the checks of
 * peer_id against [peers] once the whole file is read. */
void conf_peer_set(struct conf_loader *ld, const char *key, const char *value);
void conf_validate_peers(struct conf_loader *ld, int peer_id_line);

/* validate.c: cross-section checks after the whole file is read. */
void conf_validate(struct conf_loader *ld);
int conf_sect_key_line(const struct conf_sect *s, const char *key);  /* 0 if not given */

#endif
