/* hx_attach — a file on a care-thread post (docs/PROTOCOL.md, "Attachments"): PDF, PNG or
 * JPEG, told by its content with libmagic (the library behind file(1)), never by its name. */
#ifndef HX_ATTACH_H
#define HX_ATTACH_H
#include <stddef.h>
#include <stdint.h>

#define HX_ATTACH_MAX 262144        /* bytes: a post goes to up to three mailboxes in one frame */
#define HX_ATTACH_NAME_MAX 128      /* bytes of the file's name */

typedef struct hx_attach_typer hx_attach_typer_t;

/* Loads libmagic's database once; NULL with why in err when it cannot. */
hx_attach_typer_t *hx_attach_typer_open(char *err, size_t cap);
void hx_attach_typer_close(hx_attach_typer_t **self_p);

/* Checks an attachment: name (1..HX_ATTACH_NAME_MAX bytes of UTF-8, no '/', '\\' or control
 * characters), size (1..HX_ATTACH_MAX bytes) and content (a PDF, PNG or JPEG). 0 with
 * *media_type set ("application/pdf", "image/png", "image/jpeg"; static), or -1 with the
 * refusal in why, naming the field ("attachment.data: ...") and what the content is. */
int hx_attach_check(hx_attach_typer_t *t, const char *name, const uint8_t *data, size_t len,
                    const char **media_type, char *why, size_t cap);

/* SHA-256 of data as 64 lowercase hex digits. */
void hx_attach_sha256_hex(const uint8_t *data, size_t len, char hex[65]);

#endif
