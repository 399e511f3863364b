/* hx_totp — RFC 6238 codes through liboath (see hx_totp.h). */
#include "hx_totp.h"

#include <liboath/oath.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int hx_totp_init(void)
{
    /* process-wide and idempotent; never undone with oath_done, as another store may still be open */
    return oath_init() == OATH_OK ? 0 : -1;
}

int hx_totp_code(const uint8_t *secret, size_t len, uint64_t step, char out[HX_TOTP_DIGITS + 1])
{
    out[0] = '\0';
    if (!secret || !len || step > (uint64_t)INT64_MAX / HX_TOTP_STEP_S)
        return -1;
    /* the time at the start of the step: liboath counts steps from the epoch in HX_TOTP_STEP_S */
    time_t at = (time_t)(step * HX_TOTP_STEP_S);
    if (oath_totp_generate2((const char *)secret, len, at, HX_TOTP_STEP_S, OATH_TOTP_DEFAULT_START_TIME,
                            HX_TOTP_DIGITS, 0 /* HMAC-SHA1 */, out) != OATH_OK) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int64_t hx_totp_match(const uint8_t *secret, size_t len, uint64_t now_s, const char *code, int64_t last_step)
{
    if (!code || strlen(code) != HX_TOTP_DIGITS || strspn(code, "0123456789") != HX_TOTP_DIGITS)
        return -1;
    uint64_t now = now_s / HX_TOTP_STEP_S;
    int64_t found = -1;
    /* every step of the window is computed and compared, whether an earlier one matched or not */
    for (int d = -HX_TOTP_DRIFT; d <= HX_TOTP_DRIFT; d++) {
        if (d < 0 && now < (uint64_t)-d)
            continue;
        uint64_t step = now + (uint64_t)(int64_t)d;
        char want[HX_TOTP_DIGITS + 1];
        if (hx_totp_code(secret, len, step, want) != 0)
            continue;
        bool same = sodium_memcmp(want, code, HX_TOTP_DIGITS) == 0;
        sodium_memzero(want, sizeof want);
        if (same && (int64_t)step > last_step && found < 0)
            found = (int64_t)step;
    }
    return found;
}

int hx_totp_base32(const uint8_t *secret, size_t len, char out[HX_TOTP_BASE32_LEN + 1])
{
    char *b32 = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (len != HX_TOTP_SECRET_BYTES || oath_base32_encode((const char *)secret, len, &b32, &n) != OATH_OK)
        return -1;
    while (n && b32[n - 1] == '=')
        n--;
    int rc = n == HX_TOTP_BASE32_LEN ? 0 : -1;
    if (rc == 0) {
        memcpy(out, b32, n);
        out[n] = '\0';
    }
    sodium_memzero(b32, strlen(b32));
    free(b32);
    return rc;
}

/* s percent-encoded (RFC 3986 unreserved kept) onto out at *at; false when it does not fit. */
static bool put_encoded(char *out, size_t cap, size_t *at, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
                    *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (*at + (keep ? 1 : 3) >= cap)
            return false;
        if (keep) {
            out[(*at)++] = (char)*p;
        } else {
            out[(*at)++] = '%';
            out[(*at)++] = hex[*p >> 4];
            out[(*at)++] = hex[*p & 15];
        }
    }
    out[*at] = '\0';
    return true;
}

int hx_totp_uri(const char *account, const char *base32, char *out, size_t cap)
{
    size_t at = 0;
    int n = snprintf(out, cap, "otpauth://totp/%s:", HX_TOTP_ISSUER);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    at = (size_t)n;
    if (!put_encoded(out, cap, &at, account))
        return -1;
    n = snprintf(out + at, cap - at, "?secret=%s&issuer=%s&algorithm=SHA1&digits=%d&period=%d", base32,
                 HX_TOTP_ISSUER, HX_TOTP_DIGITS, HX_TOTP_STEP_S);
    return n < 0 || (size_t)n >= cap - at ? -1 : 0;
}
