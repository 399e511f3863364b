/* load — the crash loop's traffic, for the tests that kill brokers under it (test_durability's
 * single broker, test_cluster's replicated one): a submitter thread sends batches of unique
 * sequence numbers to the service "echo" (each message under a new random id; a batch refused
 * or unanswered is sent again with the same ids, on a new client), and a consumer thread
 * fetches the mailbox "sink" (where hx-test-worker --mode echo forwards them) and acks. It
 * counts what was acked (hx_client_submit returned 0) and, per sequence number, the distinct
 * message ids that arrived: an acked number that never arrives is lost; a number that arrives
 * under two ids was accepted twice. */
#ifndef HX_LOAD_H
#define HX_LOAD_H
#include <stdbool.h>
#include <stddef.h>

typedef struct load load_t;

typedef struct {
    size_t acked, received, lost, duplicated, redelivered, submit_retries;
    bool drained;               /* every acked number arrived */
    bool stalled;               /* nothing new arrived for 60 s before that */
    char fatal[256];            /* a refusal the load does not retry, or an unexpected message */
} load_result_t;

/* Starts both threads against endpoint (one, or a replicated broker's list). */
load_t *load_start(const char *endpoint);
/* What was acked and received so far. */
void load_progress(load_t *L, size_t *acked, size_t *received);
/* Stops submitting, waits (at most drain_ms) until every acked number arrived, stops the
 * consumer, and frees the load; *out says how it went. */
void load_finish(load_t *L, int drain_ms, load_result_t *out);

#endif
