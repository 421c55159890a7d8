/* The proxy's own monitoring connection per server: lock graph sampling and the contention guard. */
#include "proxy/proxy.h"

int px_monitor_start(struct proxy *px)
{
    (void)px;
    return 0;
}

void px_monitor_stop(struct proxy *px)
{
    (void)px;
}
