/* hx_booking — the scheduling service's state in SQLite (WAL): referrals it handles, their
 * bookings and lifecycle, the calendar and the directory in force. Two scheduling workers may
 * share the database:
 * every change runs in one IMMEDIATE transaction, and a table with one row per 15-minute
 * slot a therapist holds (primary key therapist + slot) makes a double booking impossible,
 * not merely unlikely. Each handled message's outputs are stored with its effects, so a
 * redelivered message gets exactly the same outputs again. */
#ifndef HX_BOOKING_H
#define HX_BOOKING_H
#include <stddef.h>
#include <stdint.h>
#include "hx_booking_store.h"
#include "hx_schedule.h"
#include "hx_worker.h"

typedef struct hx_booking hx_booking_t;

typedef struct {
    /* the store: a SQLite file (created if missing; also sqlite:PATH) or postgresql://… (its
     * own schema "scheduling"; several workers may share it, see hx_booking.c) */
    const char *db_url;
    hx_minute_t start;              /* book nothing earlier; -1 = now */
    uint32_t horizon_days;          /* look this far ahead */
    uint32_t collab_days;           /* massage within this many days after the PT assessment */
    uint32_t collab_km;             /* a collaborative pair's clinics at most this far apart (0: 100) */
    uint32_t near_days;             /* routine: the nearest clinic among slots this many days ahead
                                       (stat 1, asap 3, urgent 7); 0: 14 */
    const char *audit_path;         /* NULL, or an audit log of every clinic's change, done or refused */
    const struct hx_audit_rotation *audit_rotation;  /* NULL, or when that log rotates */
    const char *reviewers;          /* the reviewers' mailboxes, space or comma separated; NULL: "review" */
    const uint8_t *data_key;        /* NULL, or 32 bytes: the referral, the care thread (text and
                                       attachments) and stored outputs are sealed with it */
    /* NULL, or what "now" is: wall-clock milliseconds since 1970 UTC (tests advance it by
     * hand); NULL = the real clock */
    uint64_t (*clock)(void *clock_arg);
    void *clock_arg;
    uint32_t routine_days;          /* a routine referral waiting longer is escalated; 0 = horizon_days */
} hx_booking_config_t;

hx_booking_t *hx_booking_open(const hx_booking_config_t *cfg, const hx_directory_t *dir, char *err, size_t errcap);
void hx_booking_close(hx_booking_t **self_p);
/* Seals every value the SQLite database at url (a path, or sqlite:PATH) seals (each
 * referral, the care thread's text and attachments, the stored outputs) again with new_key,
 * in one transaction, then VACUUMs it so nothing sealed with the old key (or clear) is left
 * in the file or its WAL (hx_seal_store.h). A PostgreSQL URL is refused.
 * old_key: the data key in use (NULL: the store was written in clear; its values are sealed).
 * A value old_key does not open stops it with nothing changed, err naming the row and the key
 * id it was sealed with. Stop every worker on the database first. *count: the values sealed.
 * 0, or -1 with why in err. */
int hx_booking_rekey(const char *url, const uint8_t *old_key, const uint8_t new_key[32], size_t *count, char *err,
                     size_t cap);
/* Whether key (NULL: none) is the one the database at url (SQLite or PostgreSQL) is sealed
 * with, judged by the first value of each sealed column that carries a key id (after a --rekey
 * they all carry the same). 0 (also for a database with nothing sealed yet), or -1 with err naming the key id the
 * database needs and the one given. */
int hx_booking_key_check(const char *url, const uint8_t *key, char *err, size_t cap);
/* Uses dir from now on (borrowed; the caller keeps the old one until this returns), and
 * writes it into the database's clinics, therapists and hours tables. -1 (and the old one
 * stays) when the database refuses. */
int hx_booking_set_directory(hx_booking_t *b, const hx_directory_t *dir);

/* Handles one message: handoff.Case (book, or ask the reviewers when triage could not place
 * it), handoff.StatusChange (a clinic's accept, decline, start, complete or revoke),
 * handoff.ReviewDecision (a reviewer's decision), handoff.Retry (book an on-hold referral
 * again), handoff.StatsRequest (the network's figures; a query: nothing is stored).
 * Returns 0 with the outputs in out, or -1 (the message is to be delivered again) with err. */
int hx_booking_handle(hx_booking_t *b, const hx_msg_t *in, hx_outbox_t *out, char *err, size_t errcap);

/* A burst of messages in one transaction (hx_worker_batch_t): begin, then hx_booking_handle
 * for each (each in a savepoint of its own: one that fails undoes only itself), then commit
 * (0 once durable) or, when commit failed, rollback (which also drops the cached calendar).
 * begin gives HX_WORKER_STORE_DOWN when PostgreSQL cannot be reached. */
int hx_booking_batch_begin(hx_booking_t *b, char *err, size_t errcap);
int hx_booking_batch_commit(hx_booking_t *b, char *err, size_t errcap);
void hx_booking_batch_rollback(hx_booking_t *b);
/* The store's figures (hx_db_metrics) on m, store="scheduling". 0 or -1. */
int hx_booking_metrics(hx_booking_t *b, hx_metrics_t *m);
/* Whether the store answers now (PostgreSQL: connecting again when it does not). 0 or -1. */
int hx_booking_ping(hx_booking_t *b, char *err, size_t errcap);

/* Referrals on hold, in wait-list order: priority (stat first), then arrival on the wait list
 * (at most cap ids written into ids). */
size_t hx_booking_on_hold(hx_booking_t *b, char (*ids)[32], size_t cap);

/* The referrals a retry tick tries again, in wait-list order: those waiting for a discipline
 * in which some therapist still has a free slot within reach (none when the calendar is full:
 * a patient's own constraints only narrow that search), and those due to be escalated (on
 * the list longer than their priority's bound). At most cap. */
size_t hx_booking_to_retry(hx_booking_t *b, char (*ids)[32], size_t cap);

/* How many handoffs wait on the wait list, by priority (index: Handoff__Priority, 0 =
 * unspecified, 1 routine .. 4 stat): a collaborative referral waiting for both disciplines
 * counts twice. From counts kept as the list changes: no reading of the list. 0, or -1 when
 * the database failed. */
int hx_booking_waiting(hx_booking_t *b, uint64_t by_priority[5]);

#endif
