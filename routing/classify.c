/* Classification of a statement by PostgreSQL's own grammar (libpg_query's parse tree, unpacked
 * from its protobuf form into typed nodes): kind, read-only, session changes,
 * aggregate/GROUP BY/window/join counts and relations. */
#include "routing/route.h"
#include "routing/internal.h"

#include <pg_query.h>
#include <pg_query/pg_query.pb-c.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CTES 32
/* Depth limit of the tree walk, in levels of the tree's JSON form (an object or a list each):
 * the limit of the JSON reader this walk replaced. A statement node sits at level 3 there
 * ({"stmts": [{"stmt": {...}}]}). */
#define MAX_DEPTH 2000
#define STMT_DEPTH 3

struct walk {
    struct route_class *c;
    bool writes;       /* DML anywhere, row locks, SELECT INTO, a known writing function */
    bool session;      /* CREATE TEMP, set_config(.., false), session advisory locks */
    bool opaque;       /* a call of a function not known to leave session state alone */
    uint16_t pins;     /* ROUTE_PIN_* */
    bool temp_schema;  /* a name qualified by pg_temp (CREATE FUNCTION pg_temp.f, CREATE TYPE pg_temp.t) */
    bool into;
    bool too_deep;     /* the tree goes below MAX_DEPTH: not read */
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

/* Copies s (NULL reads as "") into out, NUL-terminated; sets *truncated if it did not fit. */
static void copy_name(char *out, size_t cap, const char *s, bool *truncated)
{
    size_t n = s ? strlen(s) : 0;
    if (cap == 0)
        return;
    if (n >= cap) {
        n = cap - 1;
        *truncated = true;
    }
    memcpy(out, s ? s : "", n);
    out[n] = '\0';
}

/* Appends ".part" (or "part" at the start) to buf; an empty part (an absent name) adds nothing. */
static void append_part(char *buf, size_t cap, const char *part, bool *truncated)
{
    size_t o = strlen(buf);
    if (part == NULL || part[0] == '\0')
        return;
    if (o > 0 && o + 1 < cap) {
        buf[o++] = '.';
        buf[o] = '\0';
    }
    copy_name(buf + o, cap - o, part, truncated);
}

/* pg_temp, or pg_temp_N (the backend's own temporary schema by its full name): an object created
 * there is temporary whatever the statement's TEMP says. */
static bool is_temp_schema(const char *s)
{
    if (!s || strncmp(s, "pg_temp", 7) != 0)
        return false;
    if (s[7] == '\0')
        return true;
    if (s[7] != '_' || s[8] == '\0')
        return false;
    for (s += 8; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

static void visit_rangevar(struct walk *w, const PgQuery__RangeVar *rv)
{
    char name[ROUTE_REL_NAME_MAX * 2] = "";
    bool truncated = false;
    append_part(name, sizeof name, rv->catalogname, &truncated);
    append_part(name, sizeof name, rv->schemaname, &truncated);
    append_part(name, sizeof name, rv->relname, &truncated);
    route_class_add_relation(w->c, name, truncated || strlen(name) >= ROUTE_REL_NAME_MAX);
    if ((rv->relpersistence && strcmp(rv->relpersistence, "t") == 0) || is_temp_schema(rv->schemaname)) {
        w->session = true;
        w->pins |= ROUTE_PIN_TEMP;
    }
}

/* The last element of a funcname list ("pg_catalog", "count") into out. */
static void func_name(const PgQuery__FuncCall *call, char *out, size_t cap)
{
    bool truncated = false;
    out[0] = '\0';
    for (size_t i = 0; i < call->n_funcname; i++)
        if (call->funcname[i]->node_case == PG_QUERY__NODE__NODE_STRING)
            copy_name(out, cap, call->funcname[i]->string->sval, &truncated);
}

/* set_config(name, value, is_local): session-wide unless is_local is literally true. */
static bool set_config_is_local(const PgQuery__FuncCall *call)
{
    if (call->n_args < 3 || call->args[2]->node_case != PG_QUERY__NODE__NODE_A_CONST)
        return false;
    const PgQuery__AConst *a = call->args[2]->a_const;
    return a->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL && a->boolval->boolval;
}

/* set_config('seed', ...): seeds random() as SET seed does (local or not). */
static bool set_config_is_seed(const PgQuery__FuncCall *call)
{
    if (call->n_args < 1 || call->args[0]->node_case != PG_QUERY__NODE__NODE_A_CONST)
        return false;
    const PgQuery__AConst *a = call->args[0]->a_const;
    return a->val_case == PG_QUERY__A__CONST__VAL_SVAL && a->sval->sval && strcasecmp(a->sval->sval, "seed") == 0;
}

/* pg_create_{physical,logical}_replication_slot(...): its argument "temporary" (the third, or named)
 * is there and is not the constant false. A temporary slot lives as long as the backend. */
static bool creates_temporary_slot(const PgQuery__FuncCall *call)
{
    const PgQuery__Node *arg = call->n_args > 2 ? call->args[2] : NULL;

    for (size_t i = 0; i < call->n_args; i++)
        if (call->args[i]->node_case == PG_QUERY__NODE__NODE_NAMED_ARG_EXPR &&
            call->args[i]->named_arg_expr->name && strcmp(call->args[i]->named_arg_expr->name, "temporary") == 0)
            arg = call->args[i]->named_arg_expr->arg;
    if (!arg || arg->node_case == PG_QUERY__NODE__NODE_NAMED_ARG_EXPR)
        return false;                 /* not given (the third is another named argument, or none) */
    return !(arg->node_case == PG_QUERY__NODE__NODE_A_CONST &&
             arg->a_const->val_case == PG_QUERY__A__CONST__VAL_BOOLVAL && arg->a_const->boolval &&
             !arg->a_const->boolval->boolval);
}

static void visit_funccall(struct walk *w, const PgQuery__FuncCall *call)
{
    char name[64];
    func_name(call, name, sizeof name);
    if (call->over) {
        w->c->n_windows++;
    } else if (in_list(aggregate_names, name) || call->agg_star || call->agg_distinct ||
               call->agg_within_group || call->agg_filter) {
        w->c->n_aggregates++;
    }
    if (in_list(writing_functions, name))
        w->writes = true;
    if (in_list(session_functions, name)) {
        w->session = true;
        w->pins |= ROUTE_PIN_ADVISORY;
    } else if (strcmp(name, "setseed") == 0 || (strcmp(name, "set_config") == 0 && set_config_is_seed(call))) {
        w->session = true;
        w->pins |= ROUTE_PIN_SEED;
    } else if (strcmp(name, "pg_replication_origin_session_setup") == 0 ||
               ((strcmp(name, "pg_create_physical_replication_slot") == 0 ||
                 strcmp(name, "pg_create_logical_replication_slot") == 0) && creates_temporary_slot(call))) {
        w->session = true;
        w->pins |= ROUTE_PIN_REPLICATION;
    } else if (strcmp(name, "dblink_connect") == 0 || strcmp(name, "dblink_connect_u") == 0) {
        w->session = true;
        w->pins |= ROUTE_PIN_DBLINK;   /* the connection stays in the backend until dblink_disconnect */
    } else if (in_list(unlock_functions, name) ||
               (strcmp(name, "set_config") == 0 && !set_config_is_local(call))) {
        w->session = true;
    } else if (strcmp(name, "set_config") != 0 && !in_list(harmless_functions, name) &&
               !in_list(aggregate_names, name) && !in_list(writing_functions, name)) {
        w->opaque = true;
    }
}

/* What a node (a parse tree's "any node" wrapper) says by its type alone. Only wrapped nodes
 * count: CALL's FuncCall, held directly by CallStmt, is not a function call in an expression. */
static void visit_node(struct walk *w, const PgQuery__Node *n)
{
    switch (n->node_case) {
    case PG_QUERY__NODE__NODE_INSERT_STMT:
    case PG_QUERY__NODE__NODE_UPDATE_STMT:
    case PG_QUERY__NODE__NODE_DELETE_STMT:
    case PG_QUERY__NODE__NODE_MERGE_STMT:
        w->writes = true;
        break;
    case PG_QUERY__NODE__NODE_FUNC_CALL:
        visit_funccall(w, n->func_call);
        break;
    case PG_QUERY__NODE__NODE_JOIN_EXPR:
        w->c->n_joins++;
        break;
    default:
        break;
    }
}

static void visit_select(struct walk *w, const PgQuery__SelectStmt *s)
{
    if (s->into_clause)
        w->writes = w->into = true;
    if (s->n_locking_clause > 0)
        w->writes = true;
    if (s->n_group_clause > 0)
        w->c->has_group_by = true;
    if (s->n_from_clause > 1)
        w->c->n_joins = (uint16_t)(w->c->n_joins + s->n_from_clause - 1);
}

/* The message a node holds (the field of its oneof named by node_case), or NULL. The node's
 * fields are numbered 1.. in order, so the field is found by index. */
static const ProtobufCMessage *node_body(const PgQuery__Node *n)
{
    const ProtobufCMessageDescriptor *d = n->base.descriptor;
    unsigned i = (unsigned)n->node_case - 1;
    if (n->node_case == PG_QUERY__NODE__NODE__NOT_SET || i >= d->n_fields ||
        d->fields[i].id != (unsigned)n->node_case)
        return NULL;
    return *(const ProtobufCMessage *const *)(const void *)((const char *)n + d->fields[i].offset);
}

/* True when a message has a field that is not at its default: one libpg_query's JSON output would
 * have written (it omitted false, 0, NULL and empty lists). */
static bool has_member(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *p = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)(const void *)(base + f->quantifier_offset) > 0)
                return true;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(const void *)(base + f->quantifier_offset) == f->id)
                return true;
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(const char *const *)(const void *)p;
            if (s && (f->type == PROTOBUF_C_TYPE_MESSAGE || s[0] != '\0'))
                return true;
        } else {
            static const char zero[8];
            size_t size = f->type == PROTOBUF_C_TYPE_INT64 || f->type == PROTOBUF_C_TYPE_UINT64 ||
                          f->type == PROTOBUF_C_TYPE_DOUBLE ? 8 : 4;
            if (memcmp(p, zero, size) != 0)
                return true;
        }
    }
    return false;
}

/*
 * Visits a message and, in field order, every message below it. depth is where the message would
 * sit in libpg_query's JSON form of the tree (one level per object and per list), and a tree that
 * goes below MAX_DEPTH there is not read (the lexer decides), as when the JSON form was parsed:
 * it also bounds the recursion.
 */
static void visit(struct walk *w, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (w->too_deep || (depth >= MAX_DEPTH && has_member(m))) {
        w->too_deep = true;
        return;
    }
    if (d == &pg_query__node__descriptor) {
        const ProtobufCMessage *body = node_body((const PgQuery__Node *)m);
        visit_node(w, (const PgQuery__Node *)m);
        if (body)
            visit(w, body, depth + 1);
        return;
    }
    if (d == &pg_query__range_var__descriptor)
        visit_rangevar(w, (const PgQuery__RangeVar *)m);
    else if (d == &pg_query__select_stmt__descriptor)
        visit_select(w, (const PgQuery__SelectStmt *)m);
    else if (d == &pg_query__update_stmt__descriptor) {
        const PgQuery__UpdateStmt *u = (const PgQuery__UpdateStmt *)m;
        if (u->n_from_clause > 1)
            w->c->n_joins = (uint16_t)(w->c->n_joins + u->n_from_clause - 1);
    } else if (d == &pg_query__common_table_expr__descriptor) {
        const PgQuery__CommonTableExpr *cte = (const PgQuery__CommonTableExpr *)m;
        bool truncated = false;
        if (cte->ctename && cte->ctename[0] && w->n_ctes < MAX_CTES)
            copy_name(w->ctes[w->n_ctes++], ROUTE_REL_NAME_MAX, cte->ctename, &truncated);
    }
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const void *p = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)p;
            if (n > 0 && depth + 2 > MAX_DEPTH)
                w->too_deep = true;
            if (n >= 2 && f->descriptor == &pg_query__node__descriptor &&
                ((const PgQuery__Node *)items[0])->node_case == PG_QUERY__NODE__NODE_STRING)
                w->temp_schema |= is_temp_schema(((const PgQuery__Node *)items[0])->string->sval);   /* pg_temp.name */
            for (size_t k = 0; k < n && !w->too_deep; k++)
                visit(w, items[k], depth + 2);
        } else if (!(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) ||
                   *(const uint32_t *)(const void *)(base + f->quantifier_offset) == f->id) {
            const ProtobufCMessage *child = *(const ProtobufCMessage *const *)p;
            if (child)
                visit(w, child, depth + 1);
        }
    }
}

/* DROP TABLE/VIEW/INDEX/...: the names are lists of strings, not RangeVars. */
static void drop_relations(struct walk *w, const PgQuery__DropStmt *drop)
{
    switch (drop->remove_type) {
    case PG_QUERY__OBJECT_TYPE__OBJECT_TABLE:
    case PG_QUERY__OBJECT_TYPE__OBJECT_VIEW:
    case PG_QUERY__OBJECT_TYPE__OBJECT_MATVIEW:
    case PG_QUERY__OBJECT_TYPE__OBJECT_INDEX:
    case PG_QUERY__OBJECT_TYPE__OBJECT_SEQUENCE:
    case PG_QUERY__OBJECT_TYPE__OBJECT_FOREIGN_TABLE:
        break;
    default:
        return;
    }
    for (size_t o = 0; o < drop->n_objects; o++) {
        const PgQuery__Node *obj = drop->objects[o];
        char name[ROUTE_REL_NAME_MAX * 2] = "";
        bool truncated = false;
        if (obj->node_case == PG_QUERY__NODE__NODE_LIST)
            for (size_t e = 0; e < obj->list->n_items; e++)
                if (obj->list->items[e]->node_case == PG_QUERY__NODE__NODE_STRING)
                    append_part(name, sizeof name, obj->list->items[e]->string->sval, &truncated);
        route_class_add_relation(w->c, name, truncated || strlen(name) >= ROUTE_REL_NAME_MAX);
    }
}

enum { F_RO = 1, F_SESSION = 2 };

struct stmt_kind {
    PgQuery__Node__NodeCase node;
    enum route_kind kind;
    int flags;
};

static const struct stmt_kind stmt_kinds[] = {
    {PG_QUERY__NODE__NODE_SELECT_STMT, ROUTE_KIND_SELECT, F_RO},
    {PG_QUERY__NODE__NODE_INSERT_STMT, ROUTE_KIND_INSERT, 0},
    {PG_QUERY__NODE__NODE_UPDATE_STMT, ROUTE_KIND_UPDATE, 0},
    {PG_QUERY__NODE__NODE_DELETE_STMT, ROUTE_KIND_DELETE, 0},
    {PG_QUERY__NODE__NODE_MERGE_STMT, ROUTE_KIND_MERGE, 0},
    {PG_QUERY__NODE__NODE_COPY_STMT, ROUTE_KIND_COPY, F_RO},
    {PG_QUERY__NODE__NODE_REFRESH_MAT_VIEW_STMT, ROUTE_KIND_REFRESH, 0},
    {PG_QUERY__NODE__NODE_VACUUM_STMT, ROUTE_KIND_VACUUM, 0},
    {PG_QUERY__NODE__NODE_CALL_STMT, ROUTE_KIND_CALL, 0},
    {PG_QUERY__NODE__NODE_DO_STMT, ROUTE_KIND_CALL, 0},
    {PG_QUERY__NODE__NODE_VARIABLE_SET_STMT, ROUTE_KIND_SET, F_RO},
    {PG_QUERY__NODE__NODE_CONSTRAINTS_SET_STMT, ROUTE_KIND_SET, F_RO},
    {PG_QUERY__NODE__NODE_VARIABLE_SHOW_STMT, ROUTE_KIND_SHOW, F_RO},
    {PG_QUERY__NODE__NODE_TRANSACTION_STMT, ROUTE_KIND_TRANSACTION, F_RO},
    {PG_QUERY__NODE__NODE_EXPLAIN_STMT, ROUTE_KIND_EXPLAIN, F_RO},
    {PG_QUERY__NODE__NODE_PREPARE_STMT, ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {PG_QUERY__NODE__NODE_EXECUTE_STMT, ROUTE_KIND_UTILITY, 0},
    {PG_QUERY__NODE__NODE_DEALLOCATE_STMT, ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {PG_QUERY__NODE__NODE_DISCARD_STMT, ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {PG_QUERY__NODE__NODE_LISTEN_STMT, ROUTE_KIND_UTILITY, F_SESSION},
    {PG_QUERY__NODE__NODE_UNLISTEN_STMT, ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {PG_QUERY__NODE__NODE_LOAD_STMT, ROUTE_KIND_UTILITY, F_RO | F_SESSION},
    {PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT, ROUTE_KIND_UTILITY, F_RO},
    {PG_QUERY__NODE__NODE_FETCH_STMT, ROUTE_KIND_UTILITY, F_RO},
    {PG_QUERY__NODE__NODE_CLOSE_PORTAL_STMT, ROUTE_KIND_UTILITY, F_RO},
    {PG_QUERY__NODE__NODE_TRUNCATE_STMT, ROUTE_KIND_DDL, 0},
    {PG_QUERY__NODE__NODE_ALTER_SYSTEM_STMT, ROUTE_KIND_UTILITY, 0},
    {PG_QUERY__NODE__NODE__NOT_SET, ROUTE_KIND_UTILITY, 0},
};

/* Node types (message names) of the statements that define or change objects. */
static const char *const ddl_prefixes[] = {
    "Create", "Alter", "Drop", "Define", "Rename", "Grant", "Comment", "SecLabel", "Rule",
    "View", "Index", "CompositeType", "ImportForeignSchema", "Reassign", NULL,
};

static struct stmt_kind kind_of(const PgQuery__Node *stmt, const ProtobufCMessage *body)
{
    const char *name = body->descriptor->short_name;
    for (int i = 0; stmt_kinds[i].node != PG_QUERY__NODE__NODE__NOT_SET; i++)
        if (stmt->node_case == stmt_kinds[i].node)
            return stmt_kinds[i];
    for (int i = 0; ddl_prefixes[i]; i++)
        if (strlen(name) > strlen(ddl_prefixes[i]) &&
            strncmp(name, ddl_prefixes[i], strlen(ddl_prefixes[i])) == 0)
            return (struct stmt_kind){PG_QUERY__NODE__NODE__NOT_SET, ROUTE_KIND_DDL, 0};
    return (struct stmt_kind){PG_QUERY__NODE__NODE__NOT_SET, ROUTE_KIND_UTILITY, 0};
}

static void refine_transaction(struct walk *w, const PgQuery__TransactionStmt *t,
                               struct route_class *c)
{
    c->is_begin = t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN ||
                  t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START;
    c->is_commit_or_rollback = t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT ||
                               t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK;
    if (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_PREPARE ||
        t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_COMMIT_PREPARED ||
        t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_ROLLBACK_PREPARED)
        w->writes = true;
}

/* Per-statement details the generic walk cannot see. */
static void refine(struct walk *w, const PgQuery__Node *stmt, struct route_class *c)
{
    switch (stmt->node_case) {
    case PG_QUERY__NODE__NODE_COPY_STMT:
        w->writes |= stmt->copy_stmt->is_from;
        break;
    case PG_QUERY__NODE__NODE_VACUUM_STMT:
        if (!stmt->vacuum_stmt->is_vacuumcmd)
            c->kind = ROUTE_KIND_ANALYZE;
        break;
    case PG_QUERY__NODE__NODE_VARIABLE_SET_STMT:
        w->session |= !stmt->variable_set_stmt->is_local &&
                      !(stmt->variable_set_stmt->name &&
                        strcmp(stmt->variable_set_stmt->name, "TRANSACTION") == 0);
        /* SET [LOCAL] seed seeds the backend's random(), a SET LOCAL too, as the generator's state is
         * not rolled back (RESET does not seed: PostgreSQL seeds only on a SET). */
        if (stmt->variable_set_stmt->name && strcmp(stmt->variable_set_stmt->name, "seed") == 0 &&
            stmt->variable_set_stmt->kind != PG_QUERY__VARIABLE_SET_KIND__VAR_RESET) {
            w->session = true;
            w->pins |= ROUTE_PIN_SEED;
        }
        break;
    case PG_QUERY__NODE__NODE_DECLARE_CURSOR_STMT:
        if ((stmt->declare_cursor_stmt->options & 0x20) != 0) {   /* CURSOR_OPT_HOLD */
            w->session = true;
            w->pins |= ROUTE_PIN_CURSOR;
        }
        break;
    case PG_QUERY__NODE__NODE_LISTEN_STMT:
        w->pins |= ROUTE_PIN_LISTEN;
        break;
    case PG_QUERY__NODE__NODE_LOAD_STMT:
        w->pins |= ROUTE_PIN_LOAD;   /* no reset unloads a library */
        break;
    case PG_QUERY__NODE__NODE_PREPARE_STMT:
        w->pins |= ROUTE_PIN_PREPARE;
        break;
    case PG_QUERY__NODE__NODE_DO_STMT:
    case PG_QUERY__NODE__NODE_CALL_STMT:
    case PG_QUERY__NODE__NODE_EXECUTE_STMT:
        w->opaque = true;
        break;
    case PG_QUERY__NODE__NODE_DROP_STMT:
        drop_relations(w, stmt->drop_stmt);
        break;
    case PG_QUERY__NODE__NODE_TRANSACTION_STMT:
        refine_transaction(w, stmt->transaction_stmt, c);
        break;
    default:
        break;
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

/* Returns -1 when the tree is too deep to read. */
static int classify_one(const PgQuery__Node *stmt, struct route_class *c, bool first)
{
    struct walk w = {.c = c};
    struct stmt_kind k = kind_of(stmt, node_body(stmt));
    bool prev_ro = c->read_only, prev_session = c->changes_session, prev_opaque = c->opaque;
    uint16_t prev_pins = c->pins;
    bool prev_begin = c->is_begin, prev_end = c->is_commit_or_rollback;
    enum route_kind prev_kind = c->kind;

    c->kind = k.kind;
    visit(&w, &stmt->base, STMT_DEPTH);
    if (w.too_deep)
        return -1;
    refine(&w, stmt, c);
    /* CREATE FUNCTION, TYPE, DOMAIN, OPERATOR, ... in pg_temp: temporary objects no RangeVar shows. */
    if (w.temp_schema && k.kind == ROUTE_KIND_DDL) {
        w.session = true;
        w.pins |= ROUTE_PIN_TEMP;
    }
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
    return 0;
}

/* A DefElem list holds transaction_read_only = true (READ ONLY; a later READ WRITE wins, as in
 * PostgreSQL's grammar, which rejects the pair anyway). */
static bool options_read_only(PgQuery__Node **opts, size_t n)
{
    bool ro = false;

    for (size_t i = 0; i < n; i++) {
        const PgQuery__DefElem *d = opts[i] && opts[i]->node_case == PG_QUERY__NODE__NODE_DEF_ELEM
                                    ? opts[i]->def_elem : NULL;
        const PgQuery__AConst *a;

        if (!d || !d->defname || strcmp(d->defname, "transaction_read_only") != 0 || !d->arg ||
            d->arg->node_case != PG_QUERY__NODE__NODE_A_CONST)
            continue;
        a = d->arg->a_const;
        ro = a && a->val_case == PG_QUERY__A__CONST__VAL_IVAL && a->ival && a->ival->ival != 0;
    }
    return ro;
}

/* BEGIN READ ONLY, START TRANSACTION READ ONLY, SET TRANSACTION READ ONLY. */
static bool tx_read_only(const PgQuery__Node *stmt)
{
    if (stmt->node_case == PG_QUERY__NODE__NODE_TRANSACTION_STMT && stmt->transaction_stmt) {
        const PgQuery__TransactionStmt *t = stmt->transaction_stmt;

        return (t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_BEGIN ||
                t->kind == PG_QUERY__TRANSACTION_STMT_KIND__TRANS_STMT_START) &&
               options_read_only(t->options, t->n_options);
    }
    if (stmt->node_case == PG_QUERY__NODE__NODE_VARIABLE_SET_STMT && stmt->variable_set_stmt) {
        const PgQuery__VariableSetStmt *v = stmt->variable_set_stmt;

        return v->kind == PG_QUERY__VARIABLE_SET_KIND__VAR_SET_MULTI && v->name &&
               strcmp(v->name, "TRANSACTION") == 0 && options_read_only(v->args, v->n_args);
    }
    return false;
}

/* Unpacking allocates from blocks that are freed together: no free per node. */
struct arena {
    struct arena_block *head;
    size_t used, cap;
};

struct arena_block {
    struct arena_block *next;
    max_align_t data[];
};

#define ARENA_BLOCK 16384

static void *arena_alloc(void *data, size_t size)
{
    struct arena *a = data;
    size = (size + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    if (!a->head || a->used + size > a->cap) {
        size_t cap = size > ARENA_BLOCK ? size : ARENA_BLOCK;
        struct arena_block *b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;   /* unpacking fails: the lexer decides */
        b->next = a->head;
        a->head = b;
        a->used = 0;
        a->cap = cap;
    }
    void *p = (char *)a->head->data + a->used;
    a->used += size;
    return p;
}

static void arena_free(void *data, void *p)
{
    (void)data, (void)p;
}

static void arena_destroy(struct arena *a)
{
    while (a->head) {
        struct arena_block *b = a->head;
        a->head = b->next;
        free(b);
    }
}

/* Classifies every statement of the tree. Returns -1 on a malformed or too deep tree. */
static int classify_tree(const PgQueryProtobuf *tree, struct route_class *c)
{
    struct arena arena = {0};
    ProtobufCAllocator alloc = {arena_alloc, arena_free, &arena};
    PgQuery__ParseResult *r =
        pg_query__parse_result__unpack(&alloc, tree->len, (const uint8_t *)tree->data);
    int rc = r ? 0 : -1;
    if (r) {
        c->kind = ROUTE_KIND_OTHER;
        c->read_only = true;
    }
    for (size_t s = 0; r && s < r->n_stmts && rc == 0; s++) {
        const PgQuery__Node *stmt = r->stmts[s]->stmt;
        if (!stmt || !node_body(stmt))
            rc = -1;
        else
            rc = classify_one(stmt, c, s == 0);
        if (s == 0 && rc == 0)
            c->tx_read_only = tx_read_only(stmt);
    }
    arena_destroy(&arena);
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
    PgQueryProtobufParseResult r = {0};
    if (!has_nul)
        r = pg_query_parse_protobuf(text);
    memset(out, 0, sizeof *out);
    out->parsed_by = ROUTE_PARSED_BY_GRAMMAR;
    int rc = 0;
    if (has_nul || r.error || classify_tree(&r.parse_tree, out) < 0)
        route_classify_lexer(sql, len, out);
    if (!has_nul)
        pg_query_free_protobuf_parse_result(r);
    free(text);
    return rc;
}

void route_classify_thread_cleanup(void)
{
    pg_query_exit();
}
