/* What the hx_clinic files share; not for its users. */
#ifndef HX_CLINIC_INTERNAL_H
#define HX_CLINIC_INTERNAL_H
#include "hx_attach.h"
#include "hx_clinic.h"
#include "hx_intake.h"
#include "hx_seal.h"

#include <sqlite3.h>
#include <stdarg.h>

struct hx_clinic {
    char *broker, *clinic;
    char curve_server[41], curve_public[41], curve_secret[41];
    int timeout_ms;
    hx_role_t role;
    const volatile sig_atomic_t *stop;
    hx_client_t *client;
    sqlite3 *db;
    size_t dropped;
    hx_attach_typer_t *typer;           /* opened on the first attachment */
    uint8_t key[HX_SEAL_KEY_LEN];       /* the store key: what can name a patient is sealed with it */
    char key_id[HX_SEAL_ID_TEXT];
    char key_from[4400];                /* where it came from, for errors */
    size_t sealed_in_place;
    char err[1024];
};

/* Sets c->err (printf-style) and returns code. */
int cl_fail(hx_clinic_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* cl_fail with the client library's detail appended: "what: <code text>[: detail]". */
int cl_broker_fail(hx_clinic_t *c, int code, const char *what);
/* Records a referral the broker accepted (inside the caller's transaction, if any). */
int cl_record_sent(hx_clinic_t *c, const char *rid, const Handoff__Referral *r, const char *source);
bool cl_stopping(const hx_clinic_t *c);
/* Binds a value to store sealed with the store key. 0, or -1 out of memory. */
int cl_bind_sealed(hx_clinic_t *c, sqlite3_stmt *st, int idx, const void *data, size_t len);
/* The clear value of column col (malloc'd, NUL-terminated after *len bytes): opened when
 * sealed, copied when clear. 0, or HX_EIO with c->err naming the key id it needs. */
int cl_column_open(hx_clinic_t *c, sqlite3_stmt *st, int col, uint8_t **out, size_t *len);

#endif
