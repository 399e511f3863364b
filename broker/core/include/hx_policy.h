/* hx_policy — who may send what where: one table of rules, role × sender name × destination
 * kind × destination name × message type → allowed. Anything no rule allows is refused
 * (ERR_FORBIDDEN). The broker's built-in table is the Handoff network's (docs/PROTOCOL.md,
 * "Routing policy"); a deployment may replace it with a JSON file (--policy). */
#ifndef HX_POLICY_H
#define HX_POLICY_H
#include <stdbool.h>
#include <stddef.h>

typedef struct hx_policy hx_policy_t;

/* The sender's role, as its session opened (HELLO). */
typedef enum { HX_POLICY_CLINIC = 1, HX_POLICY_SERVICE = 2, HX_POLICY_ADMIN = 3, HX_POLICY_REVIEWER = 4 } hx_policy_role_t;
/* The destination's kind. */
typedef enum { HX_POLICY_TO_SERVICE = 1, HX_POLICY_TO_MAILBOX = 2 } hx_policy_to_t;

/* The built-in table of the Handoff network. NULL only when memory is out. */
hx_policy_t *hx_policy_default(void);
/* A table from JSON text (the format of docs/PROTOCOL.md); NULL with the reason in err,
 * naming the rule and the field. */
hx_policy_t *hx_policy_parse(const char *json, char *err, size_t errcap);
/* The same from a file. */
hx_policy_t *hx_policy_load(const char *path, char *err, size_t errcap);
void hx_policy_destroy(hx_policy_t **self_p);

/* True when a session of `role` named `name` may send a message of `type` to the service or
 * mailbox `to`. */
bool hx_policy_allows(const hx_policy_t *p, hx_policy_role_t role, const char *name, hx_policy_to_t to_kind,
                      const char *to, const char *type);
/* The table as JSON text (malloc'd, NUL-terminated; what --print-policy shows), or NULL. */
char *hx_policy_json(const hx_policy_t *p);
/* Number of rules. */
size_t hx_policy_size(const hx_policy_t *p);

#endif
