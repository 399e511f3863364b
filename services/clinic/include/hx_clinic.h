/* hx_clinic — the clinic side of the network, one library for every program a clinic uses
 * (the `handoff` command line and the web portal, `handoff-web`), so that they can never disagree.
 *
 * A clinic has a mailbox at the broker and a local store: one SQLite file per clinic
 * (HOME/CLINIC.db, mode 0600) that holds what the clinic sent and what it received, what
 * can name a patient sealed with the store key (hx_clinic_opts_t).
 * Messages fetched from the mailbox are written to the store in one transaction before they
 * are acked, so each arrives exactly once at the clinic; the mailbox is fetched until the
 * broker hands out nothing more. A clinical type is stored only when its broker-set sender
 * is a service that issues it (hx_issuer.h); anything else is dropped: acked, recorded
 * without its payload in the `dropped` table, and reported to the caller.
 *
 * Errors are HX_E* codes; hx_clinic_error() says what went wrong in words, naming the step
 * ("fetching the mailbox: ...") or the file. Nothing here prints. */
#ifndef HX_CLINIC_H
#define HX_CLINIC_H
#include "hx_client.h"
#include "hx_intake.h"
#include "referral.pb-c.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hx_clinic hx_clinic_t;

typedef struct {
    const char *broker;                 /* the broker's endpoint, e.g. tcp://127.0.0.1:5570 */
    const char *clinic;                 /* this clinic's id: its mailbox and its store's name */
    hx_role_t role;                     /* 0: a clinic; HX_ROLE_REVIEWER: a reviewer of the network,
                                           whose mailbox and store work the same way */
    const char *home;                   /* the store's folder; NULL: $HOME/.handoff */
    int timeout_ms;                     /* for each broker request */
    /* CURVE: all three (Z85 text) or none */
    const char *curve_server, *curve_public, *curve_secret;
    /* When set and it becomes nonzero (a signal handler's flag), a sync stops after the batch
     * in hand: what was fetched is stored and acked first. */
    const volatile sig_atomic_t *stop;
    /* The store key (docs/OPERATIONS.md, "Encryption at rest"). What the store holds of
     * patients is sealed with it (hx_seal.h): every received payload, and of each referral sent
     * the referral, the patient's name and the file it came from; ids, types, times, statuses
     * and clinic ids stay clear for queries. store_key: 32 bytes (handoff-web's subkey for a
     * clinic it hosts, hx_clinic_store_subkey), store_key_from saying where it came from (for
     * errors); else the key file store_key_file (64 hex characters, as `handoff datakey`
     * writes); else HOME/CLINIC.store.key, made (mode 0600) when it is missing and the store
     * holds nothing sealed yet. A store written in clear is sealed in place when it is opened
     * (hx_clinic_sealed_in_place). */
    const uint8_t *store_key;
    const char *store_key_from;
    const char *store_key_file;
} hx_clinic_opts_t;

/* Opens (creating or upgrading) the clinic's local store. The broker session is opened on
 * first need, or by hx_clinic_connect. Returns 0, HX_EINVAL (a bad option), HX_EIO (the
 * store), with why in err. */
int hx_clinic_open(const hx_clinic_opts_t *o, hx_clinic_t **out, char *err, size_t cap);
void hx_clinic_destroy(hx_clinic_t **self_p);

/* ---- the store key ---------------------------------------------------------------------- */

/* The store key of a clinic that handoff-web hosts, from the portal's data key: BLAKE2b-256
 * (crypto_generichash) keyed with the data key, over "handoff clinic store " and the clinic id.
 * One data key thus opens each hosted clinic's store with a key of its own. */
void hx_clinic_store_subkey(const uint8_t data_key[32], const char *clinic, uint8_t out[32]);
/* The default store key file of a clinic: HOME/CLINIC.store.key (home NULL: $HOME/.handoff). */
void hx_clinic_store_key_path(const char *home, const char *clinic, char *out, size_t cap);
/* The id of the key the store is sealed with (8 hex characters, hx_seal_key_id). */
const char *hx_clinic_store_key_id(const hx_clinic_t *c);
/* Where the store key came from ("--store-key FILE", the file made in the home ...). */
const char *hx_clinic_store_key_from(const hx_clinic_t *c);
/* How many clear values this open sealed in place (a store written before its values were
 * sealed): 0 when there were none. Sealing in place is one transaction, then a VACUUM with
 * secure_delete on and the WAL truncated, so no clear page is left in the files. */
size_t hx_clinic_sealed_in_place(const hx_clinic_t *c);
/* Seals every value of the store again with new_key (and any clear one), in one transaction,
 * then VACUUMs as sealing in place does; the handle uses new_key from then on. *count: the
 * values sealed. 0, or HX_EIO (nothing changed). Every other program of this clinic must be
 * given the new key before it opens the store again. */
int hx_clinic_rekey(hx_clinic_t *c, const uint8_t new_key[32], size_t *count);

/* Opens the broker session if it is not open: 0, or hx_client_open's code (HX_ETIMEDOUT:
 * the broker did not answer; HX_EDENIED: it refuses this key; HX_EINVAL: a bad endpoint). */
int hx_clinic_connect(hx_clinic_t *c);
/* Closes the broker session (the next request opens a new one). */
void hx_clinic_disconnect(hx_clinic_t *c);
/* The open session, or NULL. */
hx_client_t *hx_clinic_client(hx_clinic_t *c);
const char *hx_clinic_name(const hx_clinic_t *c);
/* Why the last call failed ("" after a success). */
const char *hx_clinic_error(const hx_clinic_t *c);

/* ---- receiving ------------------------------------------------------------------------ */

/* How a sync reports, and what it looks for; every field may be zero. */
typedef struct {
    /* each message stored for the first time, after it is committed and acked; type is the
     * stored type (a refused StatusUpdate is stored as "handoff.Refusal": an answer to this
     * clinic, not a change) */
    void (*on_new)(void *ud, const hx_msg_t *m, const char *type, uint64_t at_ms);
    /* each message dropped for the first time (its sender does not issue its type), and why */
    void (*on_dropped)(void *ud, const hx_msg_t *m, const char *why);
    void *ud;
    /* When watch is set: the payload of the first trusted message whose correlation id is
     * watch is copied into answer (malloc'd, answer_len bytes; the caller frees it). */
    const uint8_t *watch;
    uint8_t *answer;
    size_t answer_len;
    char answer_type[48];       /* the answer's type ("handoff.StatusUpdate", "handoff.ThreadPost") */
} hx_clinic_sync_t;

/* Moves everything waiting in the mailbox into the store (s may be NULL). 0, or the broker's
 * code (HX_ETIMEDOUT ...), or HX_EIO when the store could not take it (nothing is acked
 * then: the broker hands it out again). */
int hx_clinic_sync(hx_clinic_t *c, hx_clinic_sync_t *s);
/* Messages dropped by this handle's syncs so far. */
size_t hx_clinic_dropped(const hx_clinic_t *c);

/* ---- sending ---------------------------------------------------------------------------- */

/* The network-wide id the referral with this clinic's ref gets (docs/PROTOCOL.md). */
void hx_clinic_referral_id(const hx_clinic_t *c, const char *ref, char rid[HX_REFERRAL_ID_LEN + 1]);
/* A referral id as intake assigns it: "R-" and 16 Crockford base32 characters. */
bool hx_referral_id_valid(const char *s);
/* Whether the store has this referral as accepted by the broker (sent before). */
bool hx_clinic_sent_before(hx_clinic_t *c, const char *referral_id);

/* Submits one referral to intake and, once the broker accepted it, records it in the store
 * with source (the file it came from). 0 with rid set, or the broker's code. */
int hx_clinic_submit(hx_clinic_t *c, const Handoff__Referral *r, const char *source,
                     char rid[HX_REFERRAL_ID_LEN + 1]);

typedef enum { HX_SENT_NOT_YET, HX_SENT_ACCEPTED, HX_SENT_REFUSED } hx_sent_state_t;

/* Submits n referrals with up to window in flight and records each accepted one (with
 * source[i]) in one transaction. state[i] becomes HX_SENT_ACCEPTED or HX_SENT_REFUSED (the
 * broker refused that one: on_refused is told why; the others are sent again with the same
 * ids, so the broker keeps one copy). Returns 0 when every referral got an answer, or the
 * code that stopped it (the rest stay HX_SENT_NOT_YET). n at most HX_MAX_BATCH. */
int hx_clinic_submit_batch(hx_clinic_t *c, Handoff__Referral *const *r, const char *const *source, size_t n,
                           uint32_t window, hx_sent_state_t *state,
                           void (*on_refused)(void *ud, size_t i, const char *why), void *ud);

/* Asks scheduling for a lifecycle change (ch: accept, decline, start, complete, revoke ...)
 * and waits up to wait_ms for its answer in the mailbox, syncing meanwhile. 0 with *answer
 * the StatusUpdate (free with handoff__status_update__free_unpacked), or 0 with *answer NULL
 * when no answer came in time; otherwise the code that stopped it. */
int hx_clinic_change(hx_clinic_t *c, const Handoff__StatusChange *ch, uint32_t wait_ms,
                     Handoff__StatusUpdate **answer);

/* A reviewer's decision on a referral under review (ReviewDecision), sent to scheduling;
 * waits for its answer as hx_clinic_change does. */
int hx_clinic_review_decide(hx_clinic_t *c, const Handoff__ReviewDecision *d, uint32_t wait_ms,
                            Handoff__StatusUpdate **answer);

/* A post to a referral's care thread (ThreadPost: referral_id, kind, text, in_reply_to),
 * sent to scheduling; waits up to wait_ms for its answer as hx_clinic_change does. 0 with
 * *posted (the post as scheduling stored and delivered it; free with
 * handoff__thread_post__free_unpacked) or *refused (why it was not taken), both NULL when no
 * answer came in time; otherwise the code that stopped it. */
int hx_clinic_thread_post(hx_clinic_t *c, const Handoff__ThreadPost *p, uint32_t wait_ms,
                          Handoff__ThreadPost **posted, Handoff__StatusUpdate **refused);

/* The network's figures (StatsRequest: weeks 1..52, 0 = 12), asked of scheduling; waits up to
 * wait_ms for the answer as hx_clinic_change does. 0 with *out the NetworkStats (free with
 * handoff__network_stats__free_unpacked), or 0 with *out NULL when no answer came in time;
 * HX_EINVAL (weeks out of range), HX_EREFUSED (scheduling refused it: hx_clinic_error says
 * why), or the code that stopped it. The answer is aggregates only and is not kept in the
 * store. A clinic's session or a reviewer's may ask. */
int hx_clinic_stats(hx_clinic_t *c, const Handoff__StatsRequest *rq, uint32_t wait_ms, Handoff__NetworkStats **out);

/* ---- reading the store ------------------------------------------------------------------ */

/* Each referral this clinic sent, oldest first. */
int hx_clinic_each_sent(hx_clinic_t *c,
                        void (*fn)(void *ud, const char *referral_id, const char *ref, const char *patient,
                                   uint64_t at_ms),
                        void *ud);

/* The referral this clinic sent with this id, reported as hx_clinic_each_sent reports it (fn
 * called once), or fn not called when it sent none with this id. 0, or HX_EIO. */
int hx_clinic_sent_one(hx_clinic_t *c, const char *referral_id,
                       void (*fn)(void *ud, const char *referral_id, const char *ref, const char *patient,
                                  uint64_t at_ms),
                       void *ud);

/* The referral as this clinic sent it (*out: free with handoff__referral__free_unpacked), or
 * *out NULL when the store does not have it whole (not sent from here, or sent before the
 * store kept referrals whole). 0, or HX_EIO. */
int hx_clinic_sent_referral(hx_clinic_t *c, const char *referral_id, Handoff__Referral **out);

typedef struct {
    const char *type;           /* one stored type; NULL: handoff.Handoff and handoff.StatusUpdate */
    const char *referral_id;    /* only about this referral; NULL: all */
    bool latest;                /* only the latest message of each referral */
} hx_clinic_query_t;

/* Each received message that q selects, in the order they happened (then as stored). */
int hx_clinic_each_received(hx_clinic_t *c, const hx_clinic_query_t *q,
                            void (*fn)(void *ud, const char *type, const uint8_t *payload, size_t len,
                                       uint64_t at_ms),
                            void *ud);

/* The received messages in the order they were stored, for readers that keep a place in
 * the store (a subscription's cursor): each row's sequence number is its rowid, which only
 * grows (rows are never deleted nor renumbered). hx_clinic_last_seq: the newest row's, 0 when
 * none was stored, -1 when the store could not be read. */
int64_t hx_clinic_last_seq(hx_clinic_t *c);
/* Each received message stored after sequence number after (0: from the first), in the order
 * stored, at most limit of them (0: all): its sequence number, stored type, referral id ("" for
 * none), payload and when it happened. 0, HX_EINVAL (no fn), or HX_EIO. */
int hx_clinic_each_received_after(hx_clinic_t *c, int64_t after, size_t limit,
                                  void (*fn)(void *ud, int64_t seq, const char *type, const char *referral_id,
                                             const uint8_t *payload, size_t len, uint64_t at_ms),
                                  void *ud);

/* The patient's name as staff read it ("" when the referral has none). */
void hx_patient_name(const Handoff__Referral *r, char *out, size_t cap);

#endif
