/*
 * proxy/admin/metrics_merge.h — one Prometheus text out of several workers' (proxy/admin/metrics_merge.c).
 * Pure: no libuv, no logging, no globals.
 */
#ifndef PGLANE_PROXY_METRICS_MERGE_H
#define PGLANE_PROXY_METRICS_MERGE_H

#include <stddef.h>

#include "protocol/proto.h"

/* How the samples of one family are combined across workers. */
enum px_merge_rule {
    PX_MERGE_SUM,                  /* counters, histograms, gauges that count things */
    PX_MERGE_MAX,                  /* gauges that are a maximum (the longest wait) */
    PX_MERGE_FIRST,                /* one process-wide view or configuration: the first text's value */
};

/* The rule of family `name` whose TYPE line says `type` (NULL if it has none). */
enum px_merge_rule px_metrics_merge_rule(const char *name, const char *type);

/*
 * Appends to out the merge of texts[0..n-1] (each the text exposition format, as metrics_text.c writes
 * it; texts[i] of lens[i] bytes, NULL or empty for a worker that gave nothing). A sample is identified
 * by everything before its last space; families keep the first text's order, each family's samples
 * stay together (those only later texts have come after the family's others), HELP and TYPE appear once.
 * Returns 0, or -1 when memory ran out (out then holds a partial text, or out->failed is set).
 */
int px_metrics_merge(const char *const *texts, const size_t *lens, int n, struct proto_buf *out)
    __attribute__((warn_unused_result));

#endif
