/* hx_thread_rules — who may post what on a referral's care thread, and what a post may hold
 * (docs/PROTOCOL.md, "Care thread"). Pure: the caller says who the sender is to the referral. */
#ifndef HX_THREAD_RULES_H
#define HX_THREAD_RULES_H
#include <stdbool.h>
#include <stddef.h>

#define HX_THREAD_TEXT_MAX 4000     /* bytes */
#define HX_THREAD_POST_ID_LEN 18    /* "P-" and 16 hex digits */

typedef enum { HX_POST_NONE = 0, HX_POST_NOTE, HX_POST_QUESTION, HX_POST_REPLY, HX_POST_SUMMARY } hx_post_kind_t;

/* "note", "question", "reply", "summary" -> the kind; HX_POST_NONE for anything else. */
hx_post_kind_t hx_post_kind(const char *s);

/* Checks a post's own fields: kind, text (1..HX_THREAD_TEXT_MAX bytes of UTF-8, no control
 * characters but tab, CR and LF), in_reply_to (empty, or a post id, and only on a reply).
 * 0, or -1 with the refusal (which field, what is wrong) in why. */
int hx_thread_post_check(const char *kind, const char *text, const char *in_reply_to, char *why, size_t cap);

/* Checks text as a post's text (1..HX_THREAD_TEXT_MAX bytes of UTF-8, no control characters
 * but tab, CR and LF), naming field in the refusal ("summary: required (1 to 4000 bytes)").
 * 0, or -1 with why. */
int hx_thread_text_check(const char *field, const char *text, char *why, size_t cap);

/* Whether a sender may post a post of this kind: the referring clinic or a clinic holding
 * one of the referral's handoffs; a summary only from a holder. 0, or -1 with why. */
int hx_thread_may_post(const char *sender, hx_post_kind_t kind, bool is_referrer, bool is_holder, char *why,
                       size_t cap);

/* "P-" and 16 lowercase hex digits? */
bool hx_thread_post_id_valid(const char *s);

#endif
