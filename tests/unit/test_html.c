/* Unit: the portal's HTML writer (services/web/hx_html): values are escaped wherever they
 * go — a reason holding <script> or "onmouseover= renders as text, in content and in a quoted
 * attribute alike; control characters and broken UTF-8 never reach the page; query values are
 * percent-encoded; a format with a conversion the writer does not take fails the page instead
 * of guessing. Markup from anything but a literal does not compile (not testable at run time:
 * HX_HTML_MARKUP(b, s) with a variable s is a syntax error). */
#include <criterion/criterion.h>
#include <string.h>

#include "hx_html.h"

static hx_html_t b;

static void setup(void)
{
    hx_html_init(&b);
}

static void teardown(void)
{
    hx_html_free(&b);
}

TestSuite(html, .init = setup, .fini = teardown);

Test(html, a_hostile_reason_is_text_in_content_and_in_attributes)
{
    const char *reason = "<script>alert(1)</script> \"onmouseover=alert(2) 'x' `y` & more";
    HX_HTML_F(&b, "<p title=\"%s\">%s</p>", reason, reason);
    cr_assert_not(b.failed);
    cr_expect_str_eq(b.data, "<p title=\"&lt;script&gt;alert(1)&lt;/script&gt; &quot;onmouseover=alert(2) &#39;x&#39; "
                             "&#96;y&#96; &amp; more\">&lt;script&gt;alert(1)&lt;/script&gt; &quot;onmouseover=alert(2) "
                             "&#39;x&#39; &#96;y&#96; &amp; more</p>");
    cr_expect_null(strstr(b.data, "<script"), "no element from a value");
    cr_expect_null(strstr(b.data, "\" onmouseover") , "no attribute from a value");
}

Test(html, accents_pass_and_control_characters_or_broken_utf8_do_not)
{
    hx_html_text(&b, "Hélène Côté-Tremblay, 北京");
    cr_expect_str_eq(b.data, "Hélène Côté-Tremblay, 北京");
    hx_html_free(&b);
    hx_html_text(&b, "a\x01" "b\x7f" "c\xff" "d\xc0\xaf" "e\xed\xa0\x80" "f\tg\nh");
    cr_expect_str_eq(b.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD" "d\xEF\xBF\xBD\xEF\xBF\xBD"
                             "e\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "f\tg\nh");
}

Test(html, query_values_are_percent_encoded)
{
    HX_HTML_MARKUP(&b, "<a href=\"/referrals?q=");
    hx_html_query(&b, "O'Brien & Sons <x>\"");
    HX_HTML_MARKUP(&b, "\">search</a>");
    cr_expect_str_eq(b.data, "<a href=\"/referrals?q=O%27Brien%20%26%20Sons%20%3Cx%3E%22\">search</a>");
}

Test(html, numbers_and_percent_signs)
{
    HX_HTML_F(&b, "<td>%d</td><td>%u</td><td>%lld</td><td>%zu</td><td>%lu</td><td>50%%</td>", -3, 7u, -9000000000LL,
              (size_t)42, 8ul);
    cr_assert_not(b.failed);
    cr_expect_str_eq(b.data, "<td>-3</td><td>7</td><td>-9000000000</td><td>42</td><td>8</td><td>50%</td>");
}

Test(html, an_unknown_conversion_fails_the_page)
{
    HX_HTML_F(&b, "<td>%x</td>", 255);
    cr_expect(b.failed, "%%x is not taken: the page is not sent rather than guessed");
    hx_html_free(&b);
    HX_HTML_F(&b, "<td>%p</td>", (void *)&b);
    cr_expect(b.failed);
    hx_html_free(&b);
    HX_HTML_F(&b, "<td>%s</td>", (const char *)NULL);
    cr_expect_not(b.failed);
    cr_expect_str_eq(b.data, "<td></td>", "a missing value is empty");
}

Test(html, large_pages_grow)
{
    for (int i = 0; i < 10000; i++)
        HX_HTML_F(&b, "<li>%d &amp; %s</li>", i, "<b>");
    cr_assert_not(b.failed);
    cr_expect_eq(strlen(b.data), b.len);
    cr_expect_not_null(strstr(b.data, "<li>9999 &amp; &lt;b&gt;</li>"));
}

Test(html, metrics_text_goes_as_it_is_and_nothing_that_could_be_markup)
{
    static const char text[] = "# HELP x_seconds How long the service's one connection was busy.\n"
                               "x_seconds_bucket{store=\"accounts\",le=\"+Inf\"} 3\n";
    hx_html_exposition(&b, text, strlen(text));
    cr_assert_not(b.failed);
    cr_expect_str_eq(b.data, text, "quotes and apostrophes kept: the exposition format needs them");
    static const char *const bad[] = {"x{a=\"<script>\"} 1\n", "x{a=\"&amp;\"} 1\n", "x 1\r\n", "x{a=\"\xc3\xa9\"} 1\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        hx_html_free(&b);
        hx_html_exposition(&b, bad[i], strlen(bad[i]));
        cr_expect(b.failed, "refused: %s", bad[i]);
    }
}
