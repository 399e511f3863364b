/* hx_totp — time-based one-time passwords as authenticator apps expect them (RFC 6238: HMAC-SHA1,
 * 30-second steps from the Unix epoch, 6 digits), for the portal's second factor. The codes come
 * from liboath (oath-toolkit); this module only chooses the window, refuses a step already used,
 * compares in constant time and writes the secret as base32 and as an otpauth:// URI.
 * Pure: no store, no clock of its own (the caller passes the time). */
#ifndef HX_TOTP_H
#define HX_TOTP_H
#include <stddef.h>
#include <stdint.h>

#define HX_TOTP_SECRET_BYTES 20     /* 160 bits, as RFC 4226 recommends for HMAC-SHA1 */
#define HX_TOTP_BASE32_LEN 32       /* 20 bytes in base32: 32 letters, no padding */
#define HX_TOTP_DIGITS 6
#define HX_TOTP_STEP_S 30
#define HX_TOTP_DRIFT 1             /* steps either side of now's accepted (a clock off by up to 30 s) */
#define HX_TOTP_URI_MAX 256
#define HX_TOTP_ISSUER "Handoff"

/* Starts liboath (idempotent). 0, or -1. */
int hx_totp_init(void);

/* The code of a step (time / 30), NUL-terminated. 0, or -1. */
int hx_totp_code(const uint8_t *secret, size_t len, uint64_t step, char out[HX_TOTP_DIGITS + 1]);

/* The step whose code `code` is, among now's step and HX_TOTP_DRIFT either side, counting only
 * steps after last_step (-1: none used yet) so that a code once accepted never is again; the
 * earliest such step when several match. -1 when none does (also for anything but 6 digits). */
int64_t hx_totp_match(const uint8_t *secret, size_t len, uint64_t now_s, const char *code, int64_t last_step);

/* The secret as base32 (RFC 4648, upper case, no padding), NUL-terminated. 0, or -1. */
int hx_totp_base32(const uint8_t *secret, size_t len, char out[HX_TOTP_BASE32_LEN + 1]);

/* otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30 (the key
 * URI format authenticator apps read), the account percent-encoded. 0, or -1 when it does not fit. */
int hx_totp_uri(const char *account, const char *base32, char *out, size_t cap);

#endif
