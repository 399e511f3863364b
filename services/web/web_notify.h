/* web_notify — handoff-web's e-mail notices: when a hosted clinic's mailbox brings a new
 * handoff, a question awaiting that clinic's reply or a status change, a notice is queued for
 * each of the clinic's users who asked for that kind (hx_notice_recipients), in the accounts
 * store's outbox, in the same moment the message is stored; a thread of its own sends them
 * through the SMTP server of --smtp-url (libcurl), one recipient per message, and tries a
 * failed one again later (--smtp-retry-ms, doubling, at most an hour; given up after 24 hours).
 * The mailbox sync never waits for a mail server.
 *
 * A notice says which clinic, what kind of event, the referral id and a link to the referral
 * in the portal (--public-url): never a patient's name, birth date, contact, health card,
 * reason or any other detail, in the subject or the body. */
#ifndef HX_WEB_NOTIFY_H
#define HX_WEB_NOTIFY_H
#include "web.h"

#include <stddef.h>
#include <stdint.h>

/* Checks the notice options of cfg (smtp_url: NULL, "" or "none" is off; otherwise smtp:// or
 * smtps:// with a host, smtp_from a valid address, public_url http(s):// of printable ASCII):
 * 0, or -1 with why, naming the option. */
int web_notify_check(const web_config_t *cfg, char *err, size_t cap);
/* Starts the sender (after web_start: the default link is http://127.0.0.1:PORT) when
 * notices are on; nothing when they are off. 0, or -1 with why. */
int web_notify_start(web_t *w, char *err, size_t cap);
/* Stops the sender (a send in progress is abandoned and tried again at the next start). */
void web_notify_stop(web_t *w);
/* One message newly stored for hosted clinic h (its stored type and payload): queues the
 * notices it calls for. Called from the mailbox sync, with h->mu held. */
void web_notify_message(web_t *w, web_hosted_t *h, const char *type, const uint8_t *payload, size_t len);
/* The notices' lines of /metrics (nothing when notices are off). */
void web_notify_metrics(web_t *w, hx_html_t *out);

#endif
