/* Unit tests for hx_thread_rules: what a care-thread post may hold, and who may post it. */
#include <criterion/criterion.h>
#include <string.h>

#include "hx_thread_rules.h"

Test(thread_rules, kinds)
{
    cr_expect_eq(hx_post_kind("note"), HX_POST_NOTE);
    cr_expect_eq(hx_post_kind("question"), HX_POST_QUESTION);
    cr_expect_eq(hx_post_kind("reply"), HX_POST_REPLY);
    cr_expect_eq(hx_post_kind("summary"), HX_POST_SUMMARY);
    cr_expect_eq(hx_post_kind("Note"), HX_POST_NONE);
    cr_expect_eq(hx_post_kind(""), HX_POST_NONE);
    cr_expect_eq(hx_post_kind(NULL), HX_POST_NONE);
}

Test(thread_rules, text_limits)
{
    char why[256];
    cr_expect_eq(hx_thread_post_check("note", "ok", "", why, sizeof why), 0);
    cr_expect_eq(hx_thread_post_check("note", "", "", why, sizeof why), -1);
    cr_expect_str_eq(why, "text: required (1 to 4000 bytes)");
    static char big[HX_THREAD_TEXT_MAX + 2];
    memset(big, 'a', HX_THREAD_TEXT_MAX);
    cr_expect_eq(hx_thread_post_check("note", big, "", why, sizeof why), 0, "exactly the limit");
    big[HX_THREAD_TEXT_MAX] = 'a';
    cr_expect_eq(hx_thread_post_check("note", big, "", why, sizeof why), -1);
    cr_expect_str_eq(why, "text: 4001 bytes, at most 4000");
    cr_expect_eq(hx_thread_post_check("note", "line one\nline\ttwo\r\n", "", why, sizeof why), 0);
    cr_expect_eq(hx_thread_post_check("note", "bell\a", "", why, sizeof why), -1);
    cr_expect_str_eq(why, "text: byte 5 is a control character (0x07)");
    cr_expect_eq(hx_thread_post_check("note", "bad \xff utf8", "", why, sizeof why), -1);
    cr_expect_str_eq(why, "text: not valid UTF-8");
    cr_expect_eq(hx_thread_post_check("note", "caf\xc3\xa9", "", why, sizeof why), 0);
}

Test(thread_rules, kind_and_reply_to)
{
    char why[256];
    cr_expect_eq(hx_thread_post_check("gossip", "x", "", why, sizeof why), -1);
    cr_expect_str_eq(why, "kind: 'gossip' is not note, question, reply or summary");
    cr_expect_eq(hx_thread_post_check("reply", "x", "P-0123456789abcdef", why, sizeof why), 0);
    cr_expect_eq(hx_thread_post_check("reply", "x", "", why, sizeof why), 0, "a reply to the open question");
    cr_expect_eq(hx_thread_post_check("note", "x", "P-0123456789abcdef", why, sizeof why), -1);
    cr_expect_str_eq(why, "in_reply_to: only a reply answers a post (this is a note)");
    cr_expect_eq(hx_thread_post_check("reply", "x", "P-0123", why, sizeof why), -1);
    cr_expect_str_eq(why, "in_reply_to: 'P-0123' is not a post id (P- and 16 hex digits)");
    cr_expect(hx_thread_post_id_valid("P-0123456789abcdef"));
    cr_expect_not(hx_thread_post_id_valid("P-0123456789ABCDEF"));
    cr_expect_not(hx_thread_post_id_valid("Q-0123456789abcdef"));
    cr_expect_not(hx_thread_post_id_valid(NULL));
}

Test(thread_rules, who_may_post)
{
    char why[256];
    for (int k = HX_POST_NOTE; k <= HX_POST_REPLY; k++) {
        cr_expect_eq(hx_thread_may_post("a", k, true, false, why, sizeof why), 0);
        cr_expect_eq(hx_thread_may_post("a", k, false, true, why, sizeof why), 0);
        cr_expect_eq(hx_thread_may_post("a", k, true, true, why, sizeof why), 0);
        cr_expect_eq(hx_thread_may_post("stranger", k, false, false, why, sizeof why), -1);
        cr_expect_str_eq(why, "clinic stranger is neither the referring clinic nor a receiver of one of its handoffs");
    }
    cr_expect_eq(hx_thread_may_post("b", HX_POST_SUMMARY, false, true, why, sizeof why), 0);
    cr_expect_eq(hx_thread_may_post("a", HX_POST_SUMMARY, true, false, why, sizeof why), -1);
    cr_expect_str_eq(why, "kind: a summary is written by a receiving clinic, and a holds no handoff of it");
}
