/* hx_curve — CURVE keys and the broker's allow-list: which public key is which principal
 * ("clinic:<id>", "service:<name>", "admin:<name>"), and the ZAP answer libzmq asks for at
 * every handshake. Without a ZAP handler libzmq accepts any CURVE key, so the broker runs
 * one (a REP socket at inproc://zeromq.zap.01, in broker_main.c, answering from the
 * allow-list here) bound before its ROUTER socket. */
#ifndef HX_CURVE_H
#define HX_CURVE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HX_KEY_Z85 40                   /* a 32-byte key as Z85 text */
#define HX_PRINCIPAL_MAX 88

typedef struct hx_allow hx_allow_t;

/* Loads an allow-list: one line per key, "<Z85 public key> <clinic|service|admin|reviewer> <name>",
 * blank lines and lines starting with # ignored. NULL with "line N: why" in err. A file
 * that was deleted or replaced after it was opened (st_nlink 0: what a file bind-mounted on
 * its own shows once an editor or `sed -i` replaced it on the host) is refused, saying so. */
hx_allow_t *hx_allow_load(const char *path, char *err, size_t errcap);
hx_allow_t *hx_allow_parse(const char *text, char *err, size_t errcap);
void hx_allow_destroy(hx_allow_t **self_p);
/* The principal of a 32-byte public key ("clinic:northpoint"), or NULL when not allowed. */
const char *hx_allow_find(const hx_allow_t *a, const uint8_t key[32]);
size_t hx_allow_count(const hx_allow_t *a);
/* True when some key of the list is principal. */
bool hx_allow_has_principal(const hx_allow_t *a, const char *principal);

/* An empty list (NULL when out of memory). */
hx_allow_t *hx_allow_new(void);
/* Adds key as principal, or renames it when listed. 0, or -1 when out of memory. */
int hx_allow_put(hx_allow_t *a, const uint8_t key[32], const char *principal);
/* Takes key out of the list; true when it was listed. */
bool hx_allow_remove(hx_allow_t *a, const uint8_t key[32]);

/* Called with each key of a list, its principal ("" when none) and the key as Z85 text. */
typedef void (*hx_allow_fn)(void *arg, const uint8_t key[32], const char *principal, const char *z85);
/* Calls fn for every key of a that b does not list with the same principal, in the
 * order of a's file. */
void hx_allow_each_missing(const hx_allow_t *a, const hx_allow_t *b, hx_allow_fn fn, void *arg);
/* Takes out of a every key that revoked lists, calling fn (may be NULL) for each one taken
 * out. Returns how many were taken out. */
size_t hx_allow_subtract(hx_allow_t *a, const hx_allow_t *revoked, hx_allow_fn fn, void *arg);

/* The record of revoked keys (deploy/keys.sh writes it): one line per key,
 * "<Z85 public key> [<role> <name> [anything else: date, why]]"; blank lines and # comments
 * ignored; a key listed twice counts once. The role and name, when valid, become the
 * principal. NULL with the reason in err; the file rules are hx_allow_load's. */
hx_allow_t *hx_revoked_load(const char *path, char *err, size_t errcap);
hx_allow_t *hx_revoked_parse(const char *text, char *err, size_t errcap);

/* A new key pair as Z85 text (41 bytes each with the NUL). */
int hx_key_generate(char pub[HX_KEY_Z85 + 1], char sec[HX_KEY_Z85 + 1]);
/* Reads a secret key file (its first line: 40 Z85 characters) and derives the public key.
 * -1 with the reason in err. */
int hx_key_load(const char *path, char pub[HX_KEY_Z85 + 1], char sec[HX_KEY_Z85 + 1], char *err, size_t errcap);
/* Writes one key (text) as a new file of the given mode; never overwrites. -1 with the
 * reason in err. */
int hx_key_file_write(const char *path, const char *text, int mode, char *err, size_t errcap);
/* A new random data key (for the broker's --data-key) as 64 hex characters. */
void hx_data_key_generate(char hex[65]);
/* Reads a data key file (first line, 64 hex characters). -1 with the reason in err. */
int hx_data_key_load(const char *path, uint8_t key[32], char *err, size_t errcap);

/* Reads a public key file (first line, 40 Z85 characters). */
int hx_key_load_public(const char *path, char pub[HX_KEY_Z85 + 1], char *err, size_t errcap);

#endif
