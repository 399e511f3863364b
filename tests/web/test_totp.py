"""Two-step sign-in (TOTP, RFC 6238) over plain HTTP against a real network
(tests/web/portal_net.py): `handoff-web clinic totp lakeside on` while the portal runs; a
lakeside user's right password opens no session but a pending sign-in (its own HttpOnly,
SameSite=Strict cookie) and the enrolment page: the key as base32 text, an otpauth:// link and
a QR code; the code computed here from the shown key (hmac, hashlib, struct: RFC 6238 as any
authenticator app does it) confirms it and opens the session. Later sign-ins ask for the code
and never show the key again; a code is never accepted twice; wrong codes are refused and count
toward the same hold as wrong passwords; `user reset` makes the user enrol again; users of other
clinics and the network's roles (until the network's own setting is on) sign in as before; the
key never reaches the server's log."""
import base64
import hashlib
import hmac
import html
import os
import re
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402

CLINIC = "lakeside"


def totp(key_b32, at=None, steps=0):
    """The 6-digit RFC 6238 code (HMAC-SHA1, 30 s) of a base32 key at time `at` plus steps."""
    key = base64.b32decode(key_b32 + "=" * (-len(key_b32) % 8))
    counter = int((time.time() if at is None else at) // 30) + steps
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1000000)


def wrong_codes(key_b32, n):
    """n codes that are none of the window's (now's step and two either side, to be safe)."""
    valid = {totp(key_b32, steps=d) for d in range(-2, 3)}
    out, x = [], 123456
    while len(out) < n:
        code = "%06d" % x
        if code not in valid:
            out.append(code)
        x = (x + 111111) % 1000000
    return out


def cookie(client, name):
    for c in client.jar:
        if c.name == name:
            return c
    return None


class PortalTotp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # the helper itself, against RFC 6238's first SHA-1 vector (94287082: its last 6 digits)
        rfc = base64.b32encode(b"12345678901234567890").decode()
        assert totp(rfc, at=59) == "287082"
        cls.net = pn.Network()
        cls.keys = []
        out = cls.clinic_totp(CLINIC, "on").stdout
        assert "two-step sign-in on" in out, out

    @classmethod
    def tearDownClass(cls):
        cls.net.close()

    @classmethod
    def clinic_totp(cls, *args, check=True):
        r = subprocess.run([os.path.join(cls.net.bin, "services", "web", "handoff-web"), "clinic", "totp"] +
                           list(args) + ["--accounts", cls.net.accounts()], capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("handoff-web clinic totp %s: %s" % (" ".join(args), r.stderr))
        return r

    def password_step(self, user):
        """Signs in with the password; the client (pending: the second step is next)."""
        c = pn.Browserless(self.net.url)
        status, headers, _ = c.login(user)
        self.assertEqual(status, 303, user)
        self.assertEqual(headers.get("Location"), "/login/totp")
        self.assertIsNone(c.session(), "no session before the code")
        self.assertIsNotNone(cookie(c, "hx_pending"))
        return c

    def send_code(self, c, code):
        csrf = c.csrf("/login/totp")
        self.assertIsNotNone(csrf)
        return c.request("/login/totp", {"csrf": csrf, "code": code})

    def enrolment_key(self, c):
        """The key shown on the enrolment page (checked against its otpauth:// URI)."""
        status, _, body = c.request("/login/totp")
        self.assertEqual(status, 200)
        self.assertIn("Set up two-step sign-in", body)
        key = re.search(r'<code id="totp-key">([A-Z2-7 ]+)</code>', body).group(1).replace(" ", "")
        self.assertEqual(len(key), 32)
        uri = html.unescape(re.search(r'<a id="totp-uri" href="([^"]+)"', body).group(1))
        self.assertTrue(uri.startswith("otpauth://totp/Handoff:"), uri)
        self.assertIn("secret=" + key + "&", uri)
        for part in ("issuer=Handoff", "algorithm=SHA1", "digits=6", "period=30"):
            self.assertIn(part, uri)
        self.assertTrue(re.search(r'<svg class="totp-qr"[^>]*><rect [^>]*/><path fill="#000" d="M[0-9 Mhvz-]+"/></svg>',
                                  body), "a QR code as inline SVG")
        self.keys.append(key)
        return key

    def enrol(self, user):
        c = self.password_step(user)
        key = self.enrolment_key(c)
        status, headers, _ = self.send_code(c, totp(key))
        self.assertEqual(status, 303)
        self.assertEqual(headers.get("Location"), "/")
        return c, key

    def signed_in_as(self, c, user):
        status, _, body = c.request("/")
        return status == 200 and user in body

    def sign_out(self, c):
        self.assertEqual(c.request("/logout", {"csrf": c.csrf()})[0], 303)

    # ---- enrolment, later sign-ins, replays ---------------------------------------------------
    def test_enrol_then_the_code_at_every_sign_in(self):
        user = CLINIC + ".clinician"
        c = self.password_step(user)
        pending = cookie(c, "hx_pending")
        self.assertEqual(pending.path, "/login")
        # no session from the password alone
        status, headers, _ = c.request("/")
        self.assertEqual((status, headers.get("Location")), (303, "/login"))
        key = self.enrolment_key(c)
        self.assertEqual(self.enrolment_key(c), key, "the same key until it is confirmed")
        # the form is bound to the pending sign-in: another token does nothing
        status, _, body = c.request("/login/totp", {"csrf": "x" * 43, "code": totp(key)})
        self.assertEqual(status, 403)
        self.assertIsNone(c.session())
        # a wrong code enrols nothing; the page shows the same key again
        status, _, body = self.send_code(c, wrong_codes(key, 1)[0])
        self.assertEqual(status, 401)
        self.assertIn("not right", body)
        self.assertIn(" ".join(key[i:i + 4] for i in range(0, 32, 4)), body)
        # the right code: a session, the pending cookie ended
        enrol_code = totp(key)
        status, headers, _ = self.send_code(c, enrol_code)
        self.assertEqual((status, headers.get("Location")), (303, "/"))
        cookies = headers.get_all("Set-Cookie")
        self.assertTrue(any(v.startswith("hx_session=") and "HttpOnly" in v and "SameSite=Strict" in v
                            for v in cookies), cookies)
        self.assertTrue(any(v.startswith("hx_pending=;") and "Max-Age=0" in v for v in cookies), cookies)
        self.assertIsNone(cookie(c, "hx_pending"))
        self.assertTrue(self.signed_in_as(c, user))
        # the pending sign-in is over: its token opens nothing more
        replay = pn.Browserless(self.net.url)
        status, _, body = replay.request("/login/totp", headers={"Cookie": "hx_pending=" + pending.value})
        self.assertEqual(status, 401)
        self.assertNotIn(key, body)
        self.sign_out(c)

        # a later sign-in asks for the code and never shows the key again
        c = self.password_step(user)
        status, _, body = c.request("/login/totp")
        self.assertEqual(status, 200)
        self.assertIn("Two-step sign-in", body)
        self.assertNotIn("totp-key", body)
        self.assertNotIn(key, body)
        self.assertNotIn("otpauth://", body)
        status, _, _ = self.send_code(c, enrol_code)
        self.assertEqual(status, 401, "the enrolment's code, replayed")
        next_code = totp(key, steps=1)        # a phone's clock a little ahead: one step of drift
        status, headers, _ = self.send_code(c, next_code)
        self.assertEqual((status, headers.get("Location")), (303, "/"))
        self.assertTrue(self.signed_in_as(c, user))
        self.sign_out(c)

        # that code, once more, at a new sign-in within its window: refused
        c = self.password_step(user)
        status, _, _ = self.send_code(c, next_code)
        self.assertEqual(status, 401, "a code once accepted is never again")
        self.assertIsNone(c.session())

    # ---- throttling ---------------------------------------------------------------------------
    def test_wrong_codes_are_refused_and_throttled(self):
        user = CLINIC + ".desk"
        c, key = self.enrol(user)
        self.sign_out(c)
        c = self.password_step(user)
        for code in wrong_codes(key, 5):      # the portal holds a user after 5 failures in a row
            status, _, body = self.send_code(c, code)
            self.assertEqual(status, 401, code)
        # held: the right code does not get in, and the pending sign-in is over
        status, headers, body = c.request("/login/totp", {"csrf": c.csrf("/login/totp") or "", "code": totp(key, steps=1)})
        self.assertEqual(status, 429)
        self.assertIn("held", body)
        self.assertIsNone(c.session())
        self.assertIsNone(cookie(c, "hx_pending"))
        # and the password too, until the hold passes
        status, _, body = pn.Browserless(self.net.url).login(user)
        self.assertEqual(status, 429)
        self.assertIn("held", body)

    # ---- reset -----------------------------------------------------------------------------
    def test_user_reset_clears_the_enrolment(self):
        user = CLINIC + ".admin"
        c, key = self.enrol(user)
        self.sign_out(c)
        self.net.web_user("reset", user)
        c = self.password_step(user)
        again = self.enrolment_key(c)
        self.assertNotEqual(again, key, "a new key after a reset")
        status, _, _ = self.send_code(c, totp(key, steps=1))
        self.assertEqual(status, 401, "the old key's codes are no good")
        status, _, _ = self.send_code(c, totp(again))
        self.assertEqual(status, 303)
        self.assertTrue(self.signed_in_as(c, user))

    # ---- everyone else ---------------------------------------------------------------------
    def test_other_clinics_and_the_network_follow_their_own_setting(self):
        other = next(x for x in self.net.clinics if x not in (CLINIC, "eastgate"))
        for user in (other + ".clinician", "review.reviewer", "network.admin"):
            c = pn.Browserless(self.net.url)
            status, headers, _ = c.login(user)
            self.assertEqual((status, headers.get("Location")), (303, "/"), user)
            self.assertIsNotNone(c.session(), user)
            self.assertIsNone(cookie(c, "hx_pending"), user)
        # turning a clinic on ends its users' sessions at once
        desk = pn.Browserless(self.net.url)
        self.assertEqual(desk.login("eastgate.desk")[0], 303)
        self.assertTrue(self.signed_in_as(desk, "eastgate.desk"))
        self.clinic_totp("eastgate", "on")
        status, headers, _ = desk.request("/")
        self.assertEqual((status, headers.get("Location")), (303, "/login"))
        self.password_step("eastgate.desk")
        self.assertIn("two-step sign-in off", self.clinic_totp("eastgate", "off").stdout)
        self.assertEqual(pn.Browserless(self.net.url).login("eastgate.desk")[1].get("Location"), "/")
        # the network's reviewers and admins follow the network's setting
        self.assertIn("network", self.clinic_totp("network", "on").stdout)
        try:
            for user in ("review.reviewer", "network.admin"):
                self.enrolment_key(self.password_step(user))
            c = pn.Browserless(self.net.url)
            self.assertEqual(c.login(other + ".clinician")[1].get("Location"), "/", "clinics are not the network")
        finally:
            self.clinic_totp("network", "off")
        self.assertIn("two-step sign-in on", self.clinic_totp(CLINIC).stdout)
        r = self.clinic_totp(CLINIC, "maybe", check=False)
        self.assertEqual(r.returncode, 2)

    def test_zz_no_key_in_the_log(self):
        log = self.net.log("web")
        self.assertIn("POST /login/totp", log)
        self.assertTrue(self.keys)
        for key in self.keys:
            self.assertNotIn(key, log)
            self.assertNotIn(key[:8], log)


if __name__ == "__main__":
    unittest.main(verbosity=2)
