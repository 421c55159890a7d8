/* Classification of a statement by PostgreSQL's own grammar (libpg_query's JSON parse tree):
 * kind, read-only, session changes, aggregate/GROUP BY/window/join counts and relations. */
#include "routing/route.h"
#include "routing/internal.h"

#include <pg_query.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CTES 32

struct walk {
    const struct route_json *j;
    struct route_class *c;
    bool writes;       /* DML anywhere, row locks, SELECT INTO, a known writing function */
    bool session;      /* CREATE TEMP, set_config(.., false), session advisory locks */
    bool opaque;       /* a call of a function not known to leave session state alone */
    uint8_t pins;      /* ROUTE_PIN_* */
    bool into;
    int n_ctes;
    char ctes[MAX_CTES][ROUTE_REL_NAME_MAX];
};

static const char *const aggregate_names[] = {
    "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "bool_and", "bool_or",
    "every", "bit_and", "bit_or", "bit_xor", "stddev", "stddev_pop", "stddev_samp", "variance",
    "var_pop", "var_samp", "corr", "covar_pop", "covar_samp", "regr_avgx", "regr_avgy",
    "regr_count", "regr_intercept", "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy",
    "percentile_cont", "percentile_disc", "mode", "json_agg", "jsonb_agg", "json_object_agg",
    "jsonb_object_agg", "xmlagg", "range_agg", "range_intersect_agg", NULL,
};

/* Functions that write or need a transaction id, so a standby could not run them. */
static const char *const writing_functions[] = {
    "nextval", "setval", "pg_notify", "txid_current", "pg_current_xact_id", "lo_create",
    "lo_creat", "lo_import", "lo_unlink", "lo_put", "lo_from_bytea", NULL,
};

/* Functions whose effect outlives the transaction: session advisory locks (which pin) and their
 * release (after which a pin may end). */
static const char *const session_functions[] = {
    "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared", NULL,
};
static const char *const unlock_functions[] = {
    "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all", NULL,
};

/*
 * Built-in functions known to leave session state (settings, role, temporary objects, locks,
 * LISTEN) alone. A call of any other function makes the statement opaque: a user function may run
 * SET ROLE, set_config or LISTEN, so the pooler checks the session after the transaction. The list
 * is of names (the schema is ignored): a user function that shadows one of them in a schema
 * searched before pg_catalog is not seen.
 */
static const char *const harmless_functions[] = {
    "abs", "age", "array_append", "array_cat", "array_length", "array_lower", "array_position",
    "array_positions", "array_prepend", "array_remove", "array_replace", "array_to_json",
    "array_to_string", "array_upper", "ascii", "bit_length", "btrim", "cardinality", "cbrt",
    "ceil", "ceiling", "char_length", "character_length", "chr", "clock_timestamp", "concat",
    "concat_ws", "cos", "cume_dist", "current_database", "current_schema", "current_schemas",
    "current_setting", "currval", "date_bin", "date_part", "date_trunc", "decode", "degrees",
    "dense_rank", "div", "encode", "exp", "extract", "first_value", "floor", "format",
    "gen_random_uuid", "generate_series", "generate_subscripts", "get_bit", "get_byte",
    "has_table_privilege", "has_schema_privilege", "has_column_privilege",
    "has_database_privilege", "has_function_privilege", "initcap", "isfinite", "json_array_length",
    "json_build_array", "json_build_object", "json_each", "json_each_text", "json_extract_path",
    "json_extract_path_text", "json_object", "json_populate_record", "json_to_record",
    "json_typeof", "jsonb_array_elements", "jsonb_array_elements_text", "jsonb_array_length",
    "jsonb_build_array", "jsonb_build_object", "jsonb_each", "jsonb_each_text",
    "jsonb_extract_path", "jsonb_extract_path_text", "jsonb_insert", "jsonb_object",
    "jsonb_object_keys", "jsonb_path_exists", "jsonb_path_query", "jsonb_path_query_array",
    "jsonb_path_query_first", "jsonb_populate_record", "jsonb_pretty", "jsonb_set",
    "jsonb_strip_nulls", "jsonb_to_record", "jsonb_typeof", "justify_days", "justify_hours",
    "justify_interval", "lag", "last_value", "lastval", "lead", "left", "length", "ln", "localtime",
    "localtimestamp", "log", "log10", "lower", "lpad", "ltrim", "make_date", "make_interval",
    "make_time", "make_timestamp", "make_timestamptz", "md5", "mod", "now", "nextval",
    "nth_value", "ntile", "octet_length", "overlay", "percent_rank", "pg_backend_pid",
    "pg_column_size", "pg_database_size", "pg_indexes_size", "pg_is_in_recovery",
    "pg_notify", "pg_postmaster_start_time", "pg_relation_size", "pg_size_pretty", "pg_sleep",
    "pg_table_size", "pg_total_relation_size", "pg_typeof", "pi", "position", "power",
    "quote_ident", "quote_literal", "quote_nullable", "radians", "random", "rank",
    "regexp_match", "regexp_matches", "regexp_replace", "regexp_split_to_array",
    "regexp_split_to_table", "repeat", "replace", "reverse", "right", "round", "row_number",
    "row_to_json", "rpad", "rtrim", "setval", "sign", "sin", "split_part", "sqrt",
    "starts_with", "statement_timestamp", "string_to_array", "strpos", "substr", "substring",
    "tan", "timeofday", "to_char", "to_date", "to_hex", "to_json", "to_jsonb", "to_number",
    "to_timestamp", "to_tsquery", "to_tsvector", "transaction_timestamp", "translate", "trim",
    "trunc", "txid_current", "pg_current_xact_id", "unnest", "upper", "uuid_generate_v4",
    "version", "websearch_to_tsquery", "plainto_tsquery", "phraseto_tsquery", "ts_rank",
    "width_bucket", "pg_try_advisory_xact_lock", "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock_shared", "timezone",
    "pg_get_serial_sequence", "pg_listening_channels", "pg_my_temp_schema", "pg_cancel_backend",
    "pg_terminate_backend", "pg_stat_get_activity", "pg_blocking_pids", NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

void route_class_add_relation(struct route_class *c, const char *name, bool truncated)
{
    if (truncated)
        c->relations_truncated = true;
    if (name[0] == '\0')
        return;
    for (int i = 0; i < c->n_relations; i++)
        if (strcmp(c->relations[i], name) == 0)
            return;
    if (c->n_relations >= ROUTE_MAX_RELATIONS) {
        c->relations_truncated = true;
        return;
    }
    char *dst = c->relations[c->n_relations++];
    size_t n = strlen(name);
    if (n >= ROUTE_REL_NAME_MAX) {
        n = ROUTE_REL_NAME_MAX - 1;
        c->relations_truncated = true;
    }
    memcpy(dst, name, n);
    dst[n] = '\0';
}

/* Appends ".part" (or "part" at the start) to buf. */
static void append_part(char *buf, size_t cap, const struct route_json *j, int node,
                        bool *truncated)
{
    size_t o = strlen(buf);
    if (o > 0 && o + 1 < cap) {
        buf[o++] = '.';
        buf[o] = '\0';
    }
    (void)route_json_unescape(j, node, buf + o, cap - o, truncated);
}

/* An object with "relname": a RangeVar, whether labelled or in a "relation"/"rel" field. */
static void visit_rangevar(struct walk *w, int obj)
{
    char name[ROUTE_REL_NAME_MAX * 2] = "";
    bool truncated = false;
    const char *keys[] = {"catalogname", "schemaname", "relname"};
    for (int k = 0; k < 3; k++) {
        int n = route_json_get(w->j, obj, keys[k]);
        if (n >= 0 && w->j->nodes[n].type == ROUTE_JSON_STRING)
            append_part(name, sizeof name, w->j, n, &truncated);
    }
    route_class_add_relation(w->c, name, truncated || strlen(name) >= ROUTE_REL_NAME_MAX);
}

/* The last element of a funcname list ("pg_catalog", "count") into out. */
static void func_name(const struct route_json *j, int call, char *out, size_t cap)
{
    int names = route_json_get(j, call, "funcname");
    bool truncated = false;
    out[0] = '\0';
    if (names < 0)
        return;
    for (int e = j->nodes[names].child; e >= 0; e = j->nodes[e].next) {
        int sval = route_json_get(j, route_json_get(j, e, "String"), "sval");
        if (sval >= 0)
            (void)route_json_unescape(j, sval, out, cap, &truncated);
    }
}

/* set_config(name, value, is_local): session-wide unless is_local is literally true. */
static bool set_config_is_local(const struct route_json *j, int call)
{
    int args = route_json_get(j, call, "args");
    if (args < 0 || j->nodes[args].count < 3)
        return false;
    int a = j->nodes[args].child;
    a = j->nodes[j->nodes[a].next].next;
    int boolval = route_json_get(j, route_json_get(j, a, "A_Const"), "boolval");
    return route_json_true(j, route_json_get(j, boolval, "boolval"));
}

static void visit_funccall(struct walk *w, int call)
{
    const struct route_json *j = w->j;
    char name[64];
    func_name(j, call, name, sizeof name);
    if (route_json_get(j, call, "over") >= 0) {
        w->c->n_windows++;
    } else if (in_list(aggregate_names, name) || route_json_get(j, call, "agg_star") >= 0 ||
               route_json_get(j, call, "agg_distinct") >= 0 ||
               route_json_get(j, call, "agg_within_group") >= 0 ||
               route_json_get(j, call, "agg_filter") >= 0) {
        w->c->n_aggregates++;
    }
    if (in_list(writing_functions, name))
        w->writes = true;
    if (in_list(session_functions, name)) {
        w->session = true;
        w->pins |= ROUTE_PIN_ADVISORY;
    } else if (in_list(unlock_functions, name) ||
               (strcmp(name, "set_config") == 0 && !set_config_is_local(j, call))) {
        w->session = true;
    } else if (strcmp(name, "set_config") != 0 && !in_list(harmless_functions, name) &&
               !in_list(aggregate_names, name) && !in_list(writing_functions, name)) {
        w->opaque = true;
    }
}

static void visit(struct walk *w, int node);

static void visit_member(struct walk *w, int m)
{
    const struct route_json *j = w->j;
    const struct route_jnode *n = &j->nodes[m];
    if (ROUTE_JSON_KEY_IS(j, m, "InsertStmt") || ROUTE_JSON_KEY_IS(j, m, "UpdateStmt") ||
        ROUTE_JSON_KEY_IS(j, m, "DeleteStmt") || ROUTE_JSON_KEY_IS(j, m, "MergeStmt") ||
        ROUTE_JSON_KEY_IS(j, m, "lockingClause")) {
        w->writes = true;
    } else if (ROUTE_JSON_KEY_IS(j, m, "intoClause")) {
        w->writes = w->into = true;
    } else if (ROUTE_JSON_KEY_IS(j, m, "FuncCall")) {
        visit_funccall(w, m);
    } else if (ROUTE_JSON_KEY_IS(j, m, "groupClause")) {
        w->c->has_group_by = true;
    } else if (ROUTE_JSON_KEY_IS(j, m, "JoinExpr")) {
        w->c->n_joins++;
    } else if (ROUTE_JSON_KEY_IS(j, m, "fromClause") && n->type == ROUTE_JSON_ARRAY &&
               n->count > 1) {
        w->c->n_joins = (uint16_t)(w->c->n_joins + n->count - 1);
    } else if (ROUTE_JSON_KEY_IS(j, m, "relpersistence") && route_json_str_is(j, m, "t")) {
        w->session = true;
        w->pins |= ROUTE_PIN_TEMP;
    } else if (ROUTE_JSON_KEY_IS(j, m, "ctename") && n->type == ROUTE_JSON_STRING &&
               w->n_ctes < MAX_CTES) {
        bool truncated = false;
        (void)route_json_unescape(j, m, w->ctes[w->n_ctes++], ROUTE_REL_NAME_MAX, &truncated);
    }
    visit(w, m);
}

static void visit(struct walk *w, int node)
{
    const struct route_jnode *n = &w->j->nodes[node];
    if (n->type == ROUTE_JSON_OBJECT && route_json_get(w->j, node, "relname") >= 0)
        visit_rangevar(w, node);
    if (n->type != ROUTE_JSON_OBJECT && n->type != ROUTE_JSON_ARRAY)
        return;
    for (int c = n->child; c >= 0; c = w->j->nodes[c].next)
        visit_member(w, c);
}

/* DROP TABLE/VIEW/INDEX/...: the names are lists of strings, not RangeVars. */
static void drop_relations(struct walk *w, int body)
{
    const struct route_json *j = w->j;
    int type = route_json_get(j, body, "removeType");
    static const char *const rel_types[] = {
        "OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX", "OBJECT_SEQUENCE",
        "OBJECT_FOREIGN_TABLE", NULL,
    };
    bool is_rel = false;
    for (int i = 0; rel_types[i]; i++)
        is_rel |= route_json_str_is(j, type, rel_types[i]);
    int objects = route_json_get(j, body, "objects");
    if (!is_rel || objects < 0)
        return;
    for (int o = j->nodes[objects].child; o >= 0; o = j->nodes[o].next) {
        int items = route_json_get(j, route_json_get(j, o, "List"), "items");
        char name[ROUTE_REL_NAME_MAX * 2] = "";
        bool truncated = false;
        for (int e = items < 0 ? -1 : j->nodes[items].child; e >= 0; e = j->nodes[e].next) {
            int sval = route_json_get(j, route_json_get(j, e, "String"), "sval");
            if (sval >= 0)
                append_part(name, sizeof name, j, sval, &truncated);
        }
        route_class_add_relation(w->c, name, truncated || strlen(name) >= ROUTE_REL_NAME_MAX);
    }
}

enum { F_RO = 1, F_SESSION = 2 };

struct stmt_kind {
    const char *node;
    enum route_kind kind;
    int flags;
};

static const struct stmt_kind stmt_kinds[] = {
    {"SelectStmt", ROUTE_KIND_SELECT, F_RO},
    {"InsertStmt", ROUTE_KIND_INSERT, 0},
    {"UpdateStmt", ROUTE_KIND_UPDATE, 0},
    {"DeleteStmt", ROUTE_KIND_DELETE, 0},
    {"MergeStmt", ROUTE_KIND_MERGE, 0},
    {"CopyStmt", ROUTE_KIND_COPY, F_RO},
    {"RefreshMatViewStmt", ROUTE_KIND_REFRESH, 0},
    {"VacuumStmt", ROUTE_KIND_VACUUM, 0},
    {"CallStmt", ROUTE_KIND_CALL, 0},
    {"DoStmt", ROUTE_KIND_CALL, 0},
    {"VariableSetStmt", ROUTE_KIND_SET, F_RO},
    {"ConstraintsSetStmt", ROUTE_KIND_SET, F_RO},
    {"VariableShowStmt", ROUTE_KIND_SHOW, F_RO},
    {"TransactionStmt", ROUTE_KIND_TRANSACTION, F_RO},
    {"ExplainStmt", ROUTE_KIND_EXPLAIN, F_RO},
    {"PrepareStmt", ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {"ExecuteStmt", ROUTE_KIND_UTILITY, 0},
    {"DeallocateStmt", ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {"DiscardStmt", ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {"ListenStmt", ROUTE_KIND_UTILITY, F_SESSION},
    {"UnlistenStmt", ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {"LoadStmt", ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {"DeclareCursorStmt", ROUTE_KIND_UTILITY, F_RO},
    {"FetchStmt", ROUTE_KIND_UTILITY, F_RO},
    {"ClosePortalStmt", ROUTE_KIND_UTILITY, F_RO},
    {"TruncateStmt", ROUTE_KIND_DDL, 0},
    {"AlterSystemStmt", ROUTE_KIND_UTILITY, 0},
    {NULL, ROUTE_KIND_UTILITY, 0},
};

static const char *const ddl_prefixes[] = {
    "Create", "Alter", "Drop", "Define", "Rename", "Grant", "Comment", "SecLabel", "Rule",
    "View", "Index", "CompositeType", "ImportForeignSchema", "Reassign", NULL,
};

static struct stmt_kind kind_of(const struct route_json *j, int body)
{
    const char *key = j->text + j->nodes[body].key_off;
    size_t klen = j->nodes[body].key_len;
    for (int i = 0; stmt_kinds[i].node; i++)
        if (route_json_key_is(j, body, stmt_kinds[i].node))
            return stmt_kinds[i];
    for (int i = 0; ddl_prefixes[i]; i++)
        if (klen > strlen(ddl_prefixes[i]) && memcmp(key, ddl_prefixes[i], strlen(ddl_prefixes[i])) == 0)
            return (struct stmt_kind){NULL, ROUTE_KIND_DDL, 0};
    return (struct stmt_kind){NULL, ROUTE_KIND_UTILITY, 0};
}

/* Per-statement details the generic walk cannot see. */
static void refine(struct walk *w, int body, struct route_class *c)
{
    const struct route_json *j = w->j;
    int kind = route_json_get(j, body, "kind");
    if (route_json_key_is(j, body, "CopyStmt") && route_json_true(j, route_json_get(j, body, "is_from")))
        w->writes = true;
    else if (route_json_key_is(j, body, "VacuumStmt") &&
             !route_json_true(j, route_json_get(j, body, "is_vacuumcmd")))
        c->kind = ROUTE_KIND_ANALYZE;
    else if (route_json_key_is(j, body, "VariableSetStmt"))
        w->session |= !route_json_true(j, route_json_get(j, body, "is_local")) &&
                      !route_json_str_is(j, route_json_get(j, body, "name"), "TRANSACTION");
    else if (route_json_key_is(j, body, "DeclareCursorStmt") &&
             (route_json_int(j, route_json_get(j, body, "options")) & 0x20) != 0) {
        w->session = true;
        w->pins |= ROUTE_PIN_CURSOR;
    } else if (route_json_key_is(j, body, "ListenStmt"))
        w->pins |= ROUTE_PIN_LISTEN;
    else if (route_json_key_is(j, body, "PrepareStmt"))
        w->pins |= ROUTE_PIN_PREPARE;
    else if (route_json_key_is(j, body, "DoStmt") || route_json_key_is(j, body, "CallStmt") ||
             route_json_key_is(j, body, "ExecuteStmt"))
        w->opaque = true;
    else if (route_json_key_is(j, body, "DropStmt"))
        drop_relations(w, body);
    else if (route_json_key_is(j, body, "TransactionStmt")) {
        c->is_begin = route_json_str_is(j, kind, "TRANS_STMT_BEGIN") ||
                      route_json_str_is(j, kind, "TRANS_STMT_START");
        c->is_commit_or_rollback = route_json_str_is(j, kind, "TRANS_STMT_COMMIT") ||
                                   route_json_str_is(j, kind, "TRANS_STMT_ROLLBACK");
        if (route_json_str_is(j, kind, "TRANS_STMT_PREPARE") ||
            route_json_str_is(j, kind, "TRANS_STMT_COMMIT_PREPARED") ||
            route_json_str_is(j, kind, "TRANS_STMT_ROLLBACK_PREPARED"))
            w->writes = true;
    }
}

/* Drops unqualified relations that name a CTE of the statement. */
static void drop_cte_names(struct walk *w, struct route_class *c)
{
    int o = 0;
    for (int i = 0; i < c->n_relations; i++) {
        bool cte = false;
        for (int k = 0; k < w->n_ctes && !cte; k++)
            cte = strcmp(c->relations[i], w->ctes[k]) == 0;
        if (!cte && o != i)
            memcpy(c->relations[o], c->relations[i], ROUTE_REL_NAME_MAX);
        o += !cte;
    }
    c->n_relations = (uint8_t)o;
}

static void classify_one(const struct route_json *j, int stmt, struct route_class *c, bool first)
{
    int body = j->nodes[stmt].child;
    struct walk w = {.j = j, .c = c};
    struct stmt_kind k = kind_of(j, body);
    bool prev_ro = c->read_only, prev_session = c->changes_session, prev_opaque = c->opaque;
    uint8_t prev_pins = c->pins;
    bool prev_begin = c->is_begin, prev_end = c->is_commit_or_rollback;
    enum route_kind prev_kind = c->kind;

    c->kind = k.kind;
    visit(&w, stmt);
    refine(&w, body, c);
    if (w.into)
        c->kind = ROUTE_KIND_DDL;   /* SELECT INTO creates a table, like CREATE TABLE AS */
    drop_cte_names(&w, c);
    c->read_only = (k.flags & F_RO) && !w.writes;
    c->changes_session = (k.flags & F_SESSION) || w.session;
    c->opaque = w.opaque;
    c->pins = w.pins;
    if (!first) {
        c->kind = prev_kind;
        c->is_begin = prev_begin;
        c->is_commit_or_rollback = prev_end;
        c->read_only = c->read_only && prev_ro;
        c->changes_session = c->changes_session || prev_session;
        c->opaque = c->opaque || prev_opaque;
        c->pins |= prev_pins;
    }
}

/* Walks {"version":..,"stmts":[{"stmt":{"XStmt":{..}}}, ..]}. Returns -1 on a malformed tree. */
static int classify_tree(const char *tree, struct route_class *c)
{
    struct route_json j;
    int rc = -1;
    if (route_json_parse(&j, tree, strlen(tree)) < 0)
        goto fail;
    int stmts = route_json_get(&j, 0, "stmts");
    c->kind = ROUTE_KIND_OTHER;
    c->read_only = true;
    if (stmts >= 0) {
        bool first = true;
        for (int s = j.nodes[stmts].child; s >= 0; s = j.nodes[s].next) {
            int stmt = route_json_get(&j, s, "stmt");
            if (stmt < 0 || j.nodes[stmt].child < 0)
                goto fail;
            classify_one(&j, stmt, c, first);
            first = false;
        }
    }
    rc = 0;
fail:
    route_json_free(&j);
    return rc;
}

int route_classify(const char *sql, size_t len, struct route_class *out)
{
    char *text = malloc(len + 1);
    if (!text) {
        route_classify_lexer(sql, len, out);
        return -1;
    }
    memcpy(text, sql, len);
    text[len] = '\0';
    /* A NUL inside the text would cut the grammar's input short: let the lexer decide. */
    bool has_nul = strlen(text) != len;
    PgQueryParseResult r = {0};
    if (!has_nul)
        r = pg_query_parse(text);
    memset(out, 0, sizeof *out);
    out->parsed_by = ROUTE_PARSED_BY_GRAMMAR;
    int rc = 0;
    if (has_nul || r.error || !r.parse_tree || classify_tree(r.parse_tree, out) < 0)
        route_classify_lexer(sql, len, out);
    if (!has_nul)
        pg_query_free_parse_result(r);
    free(text);
    return rc;
}

void route_classify_thread_cleanup(void)
{
    pg_query_exit();
}
