/* handoff store key|rekey — the key a clinic's store is sealed with (docs/OPERATIONS.md,
 * "Encryption at rest"): which one is in use, and sealing the whole store with a new one. */
#include "cli_cmd.h"
#include "hx_curve.h"
#include "hx_seal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The new key of a rekey into key (and hex, when it goes to a file), and whether it replaces
 * the home's default key file (the key in use came from there). EXIT_OK, or an exit code after saying why. */
static int new_key(cli_t *c, const char *clinic, uint8_t key[32], char hex[65], bool *to_default)
{
    char err[4400];
    *to_default = !c->store_key && !c->data_key;
    if (c->new_key && c->new_data_key) {
        fprintf(stderr, "handoff: store rekey: give --new-key or --new-data-key, not both\n");
        return EXIT_USAGE;
    }
    if (c->new_data_key) {
        uint8_t data_key[32];
        if (hx_data_key_load(c->new_data_key, data_key, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: store rekey: --new-data-key: %s\n", err);
            return EXIT_USAGE;
        }
        hx_clinic_store_subkey(data_key, clinic, key);
        sodium_memzero(data_key, sizeof data_key);
        *to_default = false;        /* a hosted clinic's key lives in the portal's data key, not a file */
        return EXIT_OK;
    }
    if (c->new_key) {
        if (hx_data_key_load(c->new_key, key, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: store rekey: --new-key: %s\n", err);
            return EXIT_USAGE;
        }
        sodium_bin2hex(hex, 65, key, 32);
        return EXIT_OK;
    }
    if (!*to_default) {
        fprintf(stderr, "handoff: store rekey: the store key comes from %s: name the new one with --new-key FILE "
                        "(handoff datakey FILE makes one) or --new-data-key FILE\n",
                c->store_key ? "--store-key" : "--data-key");
        return EXIT_USAGE;
    }
    hx_data_key_generate(hex);
    size_t n = 0;
    sodium_hex2bin(key, 32, hex, 64, NULL, &n, NULL);
    return EXIT_OK;
}

static int rekey(cli_t *c)
{
    const char *clinic = hx_clinic_name(c->store);
    uint8_t key[32];
    char hex[65] = "", file[4400], next[4500], err[4600], old_id[HX_SEAL_ID_TEXT], new_id[HX_SEAL_ID_TEXT];
    bool to_default;
    int rc = new_key(c, clinic, key, hex, &to_default);
    if (rc != EXIT_OK)
        return rc;
    hx_seal_key_id(key, new_id);
    snprintf(old_id, sizeof old_id, "%s", hx_clinic_store_key_id(c->store));
    /* the default file's new key goes to FILE.new before the store changes, and over FILE after
     * it did: a stop in between leaves the key the store needs in FILE.new, which opening names */
    hx_clinic_store_key_path(c->home, clinic, file, sizeof file);
    snprintf(next, sizeof next, "%s.new", file);
    if (to_default) {
        unlink(next);                   /* a stale one: the store opened with FILE's key */
        if (hx_key_file_write(next, hex, 0600, err, sizeof err) != 0) {
            fprintf(stderr, "handoff: store rekey: %s\n", err);
            sodium_memzero(key, sizeof key);
            sodium_memzero(hex, sizeof hex);
            return EXIT_FAIL;
        }
    }
    sodium_memzero(hex, sizeof hex);
    size_t count = 0;
    int hrc = hx_clinic_rekey(c->store, key, &count);
    sodium_memzero(key, sizeof key);
    if (hrc != 0 && count == 0) {
        if (to_default)
            unlink(next);
        return cli_clinic_failure(c, hrc);
    }
    if (to_default && rename(next, file) != 0) {
        fprintf(stderr, "handoff: store rekey: the store is sealed with the new key (id %s), but %s could not be "
                        "moved to %s: move it there before the next command\n", new_id, next, file);
        return EXIT_FAIL;
    }
    if (hrc != 0)
        fprintf(stderr, "handoff: %s\n", hx_clinic_error(c->store));
    if (c->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "clinic", clinic, "old_key_id", old_id, "key_id", new_id,
                              "values", (json_int_t)count);
        cli_print_json(j);
    } else {
        printf("%s: %zu value(s) sealed again with the key of id %s (was %s)\n", clinic, count, new_id, old_id);
        if (to_default)
            printf("the new key is in %s; the old one no longer opens anything in the store\n", file);
        else if (c->new_data_key)
            printf("start handoff-web with --data-key %s from now on\n", c->new_data_key);
        else
            printf("give --store-key %s (HANDOFF_STORE_KEY) from now on\n", c->new_key);
    }
    return hrc ? EXIT_FAIL : EXIT_OK;
}

int cmd_store(cli_t *c, int argc, char **argv)
{
    if (argc != 1 || (strcmp(argv[0], "key") != 0 && strcmp(argv[0], "rekey") != 0)) {
        fprintf(stderr, "handoff: usage: handoff --clinic ID store key|rekey [--new-key FILE | --new-data-key FILE]\n");
        return EXIT_USAGE;
    }
    if (strcmp(argv[0], "rekey") == 0)
        return rekey(c);
    if (c->json)
        cli_print_json(json_pack("{s:s, s:s, s:s}", "clinic", hx_clinic_name(c->store), "key_id",
                                 hx_clinic_store_key_id(c->store), "from", hx_clinic_store_key_from(c->store)));
    else
        printf("%s: the store is sealed with the key of id %s, from %s\n", hx_clinic_name(c->store),
               hx_clinic_store_key_id(c->store), hx_clinic_store_key_from(c->store));
    return EXIT_OK;
}
