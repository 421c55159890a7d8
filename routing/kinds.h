/* The statement kinds, defined once: X(NAME, "name") for each, in enum order. routing/route.h
 * builds enum route_kind (ROUTE_KIND_NAME) and the kind names from it, conf/ the names a route's
 * kind = list accepts. */
#ifndef PGLANE_ROUTE_KINDS_H
#define PGLANE_ROUTE_KINDS_H

#define ROUTE_KINDS(X)                                                                            \
    X(SELECT, "select")                                                                           \
    X(INSERT, "insert")                                                                           \
    X(UPDATE, "update")                                                                           \
    X(DELETE, "delete")                                                                           \
    X(MERGE, "merge")                                                                             \
    X(COPY, "copy")                                                                               \
    X(DDL, "ddl")                   /* CREATE/ALTER/DROP/TRUNCATE/GRANT/COMMENT..., SELECT INTO */\
    X(REFRESH, "refresh")           /* REFRESH MATERIALIZED VIEW */                               \
    X(VACUUM, "vacuum")                                                                           \
    X(ANALYZE, "analyze")                                                                         \
    X(CALL, "call")                 /* CALL and DO */                                             \
    X(SET, "set")                   /* SET, RESET, SET CONSTRAINTS */                             \
    X(SHOW, "show")                                                                               \
    X(TRANSACTION, "transaction")   /* BEGIN, START TRANSACTION, COMMIT, ROLLBACK, ... */         \
    X(EXPLAIN, "explain")                                                                         \
    X(UTILITY, "utility")           /* PREPARE, EXECUTE, DISCARD, LISTEN, LOCK, CHECKPOINT, ... */\
    X(OTHER, "other")               /* empty or unrecognizable */

#endif
