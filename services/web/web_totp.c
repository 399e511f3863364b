/* web_totp — the second step of a sign-in (web.h): a user who has not enrolled yet sees the new
 * key once, as base32 text, an otpauth:// link and a QR code (libqrencode, drawn as inline SVG
 * through hx_html: numbers only), and confirms it with a code; an enrolled user gives the code.
 * The key is on no other page, in no log, and never again once confirmed. */
#include "web_pages.h"

#include <qrencode.h>
#include <sodium.h>
#include <string.h>

/* The otpauth:// URI as a QR code in SVG: one path of the dark modules, a quiet zone of 4. */
static void qr_svg(hx_html_t *b, const char *uri)
{
    QRcode *qr = QRcode_encodeString(uri, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return;                     /* the key and the link are there still */
    int w = qr->width, side = w + 8;
    HX_HTML_F(b,
              "<svg class=\"totp-qr\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" "
              "height=\"%d\" role=\"img\" aria-label=\"QR code of the key for an authenticator app\" "
              "shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"",
              side, side, side * 5, side * 5, side, side);
    for (int y = 0; y < w; y++)
        for (int x = 0; x < w;) {
            if (!(qr->data[y * w + x] & 1)) {
                x++;
                continue;
            }
            int run = 1;
            while (x + run < w && (qr->data[y * w + x + run] & 1))
                run++;
            HX_HTML_F(b, "M%d %dh%dv1h-%dz", x + 4, y + 4, run, run);
            x += run;
        }
    HX_HTML_MARKUP(b, "\"/></svg>");
    /* the modules spell the key: wiped before they go back to the allocator */
    memset(qr->data, 0, (size_t)w * (size_t)w);
    QRcode_free(qr);
}

/* The key in groups of four, as apps that take it typed show it. */
static void key_groups(const char *key, char out[HX_TOTP_BASE32_LEN * 5 / 4 + 1])
{
    size_t n = 0;
    for (size_t i = 0; key[i] && i < HX_TOTP_BASE32_LEN; i++) {
        if (i && i % 4 == 0)
            out[n++] = ' ';
        out[n++] = key[i];
    }
    out[n] = '\0';
}

void page_totp(web_req_t *r, const hx_pending_t *p, const char *csrf, const char *error)
{
    if (r->status == 200 && error)
        r->status = 401;
    hx_html_t *b = &r->body;
    web_page_begin(r, p->enrolling ? "Set up two-step sign-in" : "Two-step sign-in", 0);
    HX_HTML_MARKUP(b, "<section class=\"login\">");
    if (p->enrolling) {
        char grouped[HX_TOTP_BASE32_LEN * 5 / 4 + 1];
        key_groups(p->secret_base32, grouped);
        HX_HTML_MARKUP(b, "<h1>Set up two-step sign-in</h1>"
                          "<p>Your clinic asks for a code from an authenticator app as well as your password. "
                          "Add Handoff to an authenticator app (FreeOTP, Aegis, Google or Microsoft "
                          "Authenticator, 1Password, ...): scan the QR code, or type the key, time-based, "
                          "6 digits. Then enter the code it shows.</p>");
        if (error)
            web_flash(r, false, error);
        qr_svg(b, p->uri);
        HX_HTML_F(b,
                  "<p>Key for <strong>%s</strong>: <code id=\"totp-key\">%s</code></p>"
                  "<p><a id=\"totp-uri\" href=\"%s\">Open in an authenticator app on this device</a></p>"
                  "<p>This key is shown only now, while you set up: once the code is confirmed nobody can see "
                  "it again. Do not write it down or keep a screenshot.</p>",
                  p->user.name, grouped, p->uri);
        sodium_memzero(grouped, sizeof grouped);
    } else {
        HX_HTML_F(b,
                  "<h1>Two-step sign-in</h1><p>Enter the 6-digit code your authenticator app shows for "
                  "Handoff (%s).</p>",
                  p->user.name);
        if (error)
            web_flash(r, false, error);
    }
    HX_HTML_F(b,
              "<form method=\"post\" action=\"/login/totp\" class=\"stack\">"
              "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
              "<label for=\"code\">6-digit code</label>"
              "<input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
              "pattern=\"[0-9 ]{6,7}\" maxlength=\"7\" required autofocus spellcheck=\"false\">"
              "<button type=\"submit\">%s</button></form>"
              "<p><a href=\"/login\">Start the sign-in again</a></p></section>",
              csrf, p->enrolling ? "Confirm and sign in" : "Sign in");
    web_page_end(r);
}
