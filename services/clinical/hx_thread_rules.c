/* hx_thread_rules — the care thread's checks (see hx_thread_rules.h). */
#include "hx_thread_rules.h"
#include "hx_util.h"

#include <stdio.h>
#include <string.h>

hx_post_kind_t hx_post_kind(const char *s)
{
    if (!s)
        return HX_POST_NONE;
    return strcmp(s, "note") == 0       ? HX_POST_NOTE
           : strcmp(s, "question") == 0 ? HX_POST_QUESTION
           : strcmp(s, "reply") == 0    ? HX_POST_REPLY
           : strcmp(s, "summary") == 0  ? HX_POST_SUMMARY
                                        : HX_POST_NONE;
}

bool hx_thread_post_id_valid(const char *s)
{
    if (!s || strlen(s) != HX_THREAD_POST_ID_LEN || s[0] != 'P' || s[1] != '-')
        return false;
    for (size_t i = 2; i < HX_THREAD_POST_ID_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

int hx_thread_text_check(const char *field, const char *text, char *why, size_t cap)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0) {
        snprintf(why, cap, "%s: required (1 to %d bytes)", field, HX_THREAD_TEXT_MAX);
        return -1;
    }
    if (n > HX_THREAD_TEXT_MAX) {
        snprintf(why, cap, "%s: %zu bytes, at most %d", field, n, HX_THREAD_TEXT_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f) {
            snprintf(why, cap, "%s: byte %zu is a control character (0x%02x)", field, i + 1, ch);
            return -1;
        }
    }
    if (!hx_utf8_valid(text)) {
        snprintf(why, cap, "%s: not valid UTF-8", field);
        return -1;
    }
    return 0;
}

int hx_thread_post_check(const char *kind, const char *text, const char *in_reply_to, char *why, size_t cap)
{
    hx_post_kind_t k = hx_post_kind(kind);
    if (k == HX_POST_NONE) {
        snprintf(why, cap, "kind: '%.40s' is not note, question, reply or summary", kind ? kind : "");
        return -1;
    }
    if (hx_thread_text_check("text", text, why, cap) != 0)
        return -1;
    if (in_reply_to && in_reply_to[0]) {
        if (k != HX_POST_REPLY) {
            snprintf(why, cap, "in_reply_to: only a reply answers a post (this is a %s)", kind);
            return -1;
        }
        if (!hx_thread_post_id_valid(in_reply_to)) {
            snprintf(why, cap, "in_reply_to: '%.40s' is not a post id (P- and 16 hex digits)", in_reply_to);
            return -1;
        }
    }
    return 0;
}

int hx_thread_may_post(const char *sender, hx_post_kind_t kind, bool is_referrer, bool is_holder, char *why,
                       size_t cap)
{
    const char *who = sender ? sender : "";
    if (!is_referrer && !is_holder) {
        snprintf(why, cap, "clinic %.64s is neither the referring clinic nor a receiver of one of its handoffs", who);
        return -1;
    }
    if (kind == HX_POST_SUMMARY && !is_holder) {
        snprintf(why, cap, "kind: a summary is written by a receiving clinic, and %.64s holds no handoff of it", who);
        return -1;
    }
    return 0;
}
