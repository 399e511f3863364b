/* cli_keys — the clinic CLI's CURVE keys: where they are looked for when no setting names them
 * (the home directory, ~/.handoff unless --home says otherwise: ID.key for the session's
 * clinic, reviewer or operator, and broker.pub), and the checks every key file gets before
 * anything is sent: both keys or neither, a file that exists and can be read, a secret key
 * only its owner may read (mode 0600 or narrower), and the right kind of key. Each error names
 * the file, the setting or default it came from and what to do. */
#ifndef CLI_KEYS_H
#define CLI_KEYS_H
#include "cli_config.h"

#include <stdbool.h>
#include <stddef.h>

/* The name of the broker's public key file in the home directory. */
#define CLI_BROKER_PUB "broker.pub"

typedef struct {
    bool curve;                 /* both keys loaded: the session uses CURVE */
    char server[41];            /* the broker's public key (Z85) */
    char pub[41], sec[41];      /* this session's key pair (Z85) */
} cli_keys_t;

/* The home directory of the settings: home, else $HOME/.handoff (./.handoff without HOME),
 * into out. */
void cli_keys_dir(const char *home, char *out, size_t cap);

/* Sets server-key to dir/broker.pub and key to dir/NAME.key, each when no flag, variable or
 * config file set it and the file exists (name NULL: no key file is looked for). Returns 0,
 * or -1 when out of memory. */
int cli_keys_defaults(cli_config_t *c, const char *dir, const char *name);

/* Loads the keys the settings name (after cli_keys_defaults) for the session of `who`
 * ("clinic", "reviewer", "operator") named name: 0 with k->curve false when neither is set,
 * 0 with k filled when both load, or -1 with err set: one set and not the other (naming what
 * is set, where from, and where the other was looked for), a file that does not exist or
 * cannot be read, a secret key whose mode lets others read it (with the chmod to run), a file
 * that is not a key of its kind (a .pub file or the broker's public key given as the secret
 * key included). */
int cli_keys_load(const cli_config_t *c, const char *dir, const char *who, const char *name, cli_keys_t *k,
                  char *err, size_t cap);

#endif
