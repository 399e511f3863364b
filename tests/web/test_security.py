"""The portal's security, over plain HTTP against a real network (tests/web/portal_net.py):
a clinic's user cannot see or act on another clinic's referral by changing ids in URLs or
forms; a form without its session's CSRF token does nothing; the session id changes at every
sign-in; a referral's hostile text renders as text; sign-out and the idle timeout end a
session; failed sign-ins are throttled per user and per address; roles are enforced; and no
patient's name reaches the server's log."""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402

HOSTILE = 'Knee pain <script>alert("x")</script> and "onmouseover="alert(1)" after a fall'


class PortalSecurity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.net = pn.Network()
        cls.referral = pn.sample_referral(ref="SEC-0001", reason=HOSTILE)
        cls.patient = cls.referral["patient"]
        cls.rid = cls.net.submit("harbour", cls.referral)

        def booked():
            r = cls.net.handoff("--json", "status", cls.rid, clinic="harbour", check=False)
            m = re.search(r'"clinic_id":\s*"([a-z0-9_-]+)"', r.stdout) if r.returncode == 0 else None
            return m and m.group(1)

        cls.receiver = pn.wait_for("the referral to be booked", booked, timeout=120)
        cls.outsider = next(c for c in cls.net.clinics if c not in (cls.receiver, "harbour"))

        def received():
            c = cls.client(cls.receiver + ".clinician")
            status, _, body = c.request("/referral?id=" + cls.rid)
            return status == 200 and cls.rid in body

        pn.wait_for("the handoff in the receiving clinic's store", received, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.net.close()

    @classmethod
    def client(cls, user=None):
        c = pn.Browserless(cls.net.url)
        if user:
            status, headers, _ = c.login(user)
            assert status == 303, "sign-in as %s: %d" % (user, status)
        return c

    def referral_status(self):
        out = self.net.handoff("--json", "status", self.rid, clinic="harbour").stdout
        return out

    # ---- another clinic's referral ---------------------------------------------------------
    def test_other_clinic_cannot_see_by_changing_the_id(self):
        c = self.client(self.outsider + ".clinician")
        status, _, body = c.request("/referral?id=" + self.rid)
        self.assertEqual(status, 404)
        self.assertNotIn(self.patient["family_name"], body)
        status, _, body = c.request("/attachment?id=%s&post=P-0000000000000000" % self.rid)
        self.assertEqual(status, 404)
        # nor does it show in its inbox or its search
        csrf = c.csrf()
        status, _, body = c.request("/", {"csrf": csrf, "q": self.patient["family_name"]})
        self.assertEqual(status, 200)
        self.assertNotIn(self.rid, body)

    def test_other_clinic_cannot_act_by_changing_the_form(self):
        c = self.client(self.outsider + ".clinician")
        csrf = c.csrf()
        for event in ("accept", "decline", "revoke"):
            status, _, body = c.request("/referral/action", {"csrf": csrf, "id": self.rid, "event": event,
                                                             "discipline": "physiotherapy", "reason": "forged"})
            self.assertEqual(status, 404, event)
        status, _, _ = c.request("/referral/post", {"csrf": csrf, "id": self.rid, "kind": "note", "text": "forged"})
        self.assertEqual(status, 404)
        # the receiving clinic still sees it ready and no forged post on the thread
        r = self.client(self.receiver + ".clinician")
        status, _, body = r.request("/referral?id=" + self.rid)
        self.assertNotIn("forged", body)
        self.assertNotIn('"event": "accept"', self.referral_status())

    def test_csrf_missing_or_foreign_token_does_nothing(self):
        c = self.client(self.receiver + ".clinician")
        other = self.client(self.receiver + ".desk")
        foreign = other.csrf()
        for form in ({}, {"csrf": ""}, {"csrf": foreign}, {"csrf": "x" * 43}):
            f = dict(form, id=self.rid, event="decline", discipline="physiotherapy", reason="csrf probe")
            status, _, body = c.request("/referral/action", f)
            self.assertEqual(status, 403, form)
            self.assertIn("expired", body)
        self.assertNotIn("csrf probe", self.referral_status())
        # sign-out too needs the token: a forged one leaves the session alive
        status, _, _ = c.request("/logout", {})
        self.assertEqual(status, 403)
        self.assertEqual(c.request("/")[0], 200)

    def test_session_id_changes_at_sign_in(self):
        c = pn.Browserless(self.net.url)
        # an attacker-chosen id before sign-in is never kept
        planted = "A" * 43
        status, headers, _ = c.request("/login", {"user": "harbour.desk", "password": pn.PASSWORD},
                                       headers={"Cookie": "hx_session=" + planted})
        self.assertEqual(status, 303)
        first = c.session()
        self.assertIsNotNone(first)
        self.assertNotEqual(first, planted)
        cookie = headers.get("Set-Cookie")
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
            self.assertIn(flag, cookie)
        # signing in again gives a new id and ends the old one
        c.login("harbour.desk")
        second = c.session()
        self.assertNotEqual(first, second)
        old = pn.Browserless(self.net.url)
        status, headers, _ = old.request("/", headers={"Cookie": "hx_session=" + first})
        self.assertEqual(status, 303)
        self.assertEqual(headers.get("Location"), "/login")

    def test_hostile_text_renders_as_text(self):
        c = self.client(self.receiver + ".clinician")
        status, headers, body = c.request("/referral?id=" + self.rid)
        self.assertEqual(status, 200)
        self.assertNotIn("<script>alert", body)
        self.assertNotIn('"onmouseover="', body)
        self.assertIn("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;", body)
        self.assertIn("&quot;onmouseover=&quot;alert(1)&quot;", body)
        # and in a post on the care thread
        csrf = c.csrf("/referral?id=" + self.rid)
        status, _, _ = c.request("/referral/post", {"csrf": csrf, "id": self.rid, "kind": "note",
                                                    "text": "<img src=x onerror=alert(2)> seen"})
        self.assertIn(status, (303, 200))
        _, _, body = c.request("/referral?id=" + self.rid)
        self.assertNotIn("<img src=x", body)
        self.assertIn("&lt;img src=x onerror=alert(2)&gt; seen", body)

    def test_referrer_sees_what_it_sent(self):
        # the referring clinic's page shows the referral whole (its store keeps what it sent)
        c = self.client("harbour.desk")
        status, _, body = c.request("/referral?id=" + self.rid)
        self.assertEqual(status, 200)
        self.assertIn(self.patient["health_card"], body)
        self.assertIn("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;", body)
        self.assertIn("Sent by this clinic", body)

    def test_pages_with_patient_data_are_not_stored(self):
        c = self.client(self.receiver + ".clinician")
        for path in ("/", "/referral?id=" + self.rid):
            status, headers, body = c.request(path)
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("Cache-Control"), "no-store", path)
            self.assertIn("script-src 'self'", headers.get("Content-Security-Policy"))
            self.assertEqual(headers.get("X-Frame-Options"), "DENY")
            title = re.search(r"<title>(.*?)</title>", body).group(1)
            self.assertNotIn(self.patient["family_name"], title)
            self.assertNotIn(self.patient["given_name"], title)

    def test_sign_out_ends_the_session(self):
        c = self.client("harbour.clinician")
        token = c.session()
        status, _, _ = c.request("/logout", {"csrf": c.csrf()})
        self.assertEqual(status, 303)
        replay = pn.Browserless(self.net.url)
        status, headers, _ = replay.request("/", headers={"Cookie": "hx_session=" + token})
        self.assertEqual((status, headers.get("Location")), (303, "/login"))
        status, _, body = replay.request("/referral/action", {"csrf": "x"}, headers={"Cookie": "hx_session=" + token})
        self.assertEqual(status, 401)

    def test_roles(self):
        desk = self.client(self.receiver + ".desk")
        csrf = desk.csrf()
        for event in ("start", "complete"):
            status, _, _ = desk.request("/referral/action", {"csrf": csrf, "id": self.rid, "event": event,
                                                             "discipline": "physiotherapy", "summary": "x"})
            self.assertEqual(status, 403, event)
        self.assertEqual(self.client(self.receiver + ".clinician").request("/admin")[0], 403)
        self.assertEqual(self.client(self.receiver + ".clinician").request("/review")[0], 403)
        status, _, body = self.client(self.receiver + ".admin").request("/admin")
        self.assertEqual(status, 200)
        self.assertIn(self.receiver + ".clinician", body)
        self.assertNotIn(self.outsider + ".clinician", body)       # its own clinic's users only
        self.assertIn("<td>view</td><td>" + self.rid, body)       # the audit shows who viewed it
        status, _, body = self.client("network.admin").request("/admin")
        self.assertEqual(status, 200)
        self.assertIn(self.outsider + ".clinician", body)
        # a reviewer has no clinic inbox
        status, _, _ = self.client("review.reviewer").request("/referral?id=" + self.rid)
        self.assertEqual(status, 403)

    def test_throttling(self):
        c = pn.Browserless(self.net.url)
        for _ in range(5):
            self.assertEqual(c.login("eastgate.admin", "wrong-password-123")[0], 401)
        status, _, body = c.login("eastgate.admin")         # the right password, too late
        self.assertEqual(status, 429)
        self.assertIn("held", body)

    def test_zz_no_patient_data_in_the_log(self):
        log = self.net.log("web")
        self.assertIn("GET /referral", log)
        for value in (self.patient["given_name"], self.patient["family_name"], self.patient["birth_date"],
                      self.patient["health_card"], "onmouseover"):
            self.assertNotIn(value, log)


class PortalTimeouts(unittest.TestCase):
    """A session unused for --idle-seconds ends; one address failing too often is held."""

    def test_idle_timeout_and_address_throttling(self):
        with pn.Network(web_args=["--idle-seconds", "5", "--address-failures", "8"]) as net:
            c = pn.Browserless(net.url)
            self.assertEqual(c.login("harbour.desk")[0], 303)
            self.assertEqual(c.request("/")[0], 200)
            signed_in = time.monotonic()
            # the condition is time itself: 5 s unused (asking meanwhile would renew the session)
            token = c.session()
            pn.wait_for("the idle timeout to pass", lambda: time.monotonic() - signed_in > 5.5, timeout=60,
                        every=0.25)
            replay = pn.Browserless(net.url)
            status, headers, _ = replay.request("/", headers={"Cookie": "hx_session=" + token})
            self.assertEqual((status, headers.get("Location")), (303, "/login"))
            # per address: failures spread over many names still hold the address
            held = None
            for i in range(10):
                status, _, _ = pn.Browserless(net.url).login("nobody%d" % i, "wrong-password-123")
                if status == 429:
                    held = i
                    break
            self.assertIsNotNone(held, "the address was never held")
            self.assertEqual(held, 8)
            status, _, _ = pn.Browserless(net.url).login("lakeside.desk")
            self.assertEqual(status, 429)
            # behind a proxy, the client is the address the proxy appended to X-Forwarded-For:
            # one client held does not hold the others, and the audit names the client
            net.start_web("--behind-proxy", "--address-failures", "3")

            def login(addr, user, password=pn.PASSWORD):
                return pn.Browserless(net.url).request("/login", {"user": user, "password": password},
                                                       headers={"X-Forwarded-For": "203.0.113.9, " + addr})[0]

            for _ in range(3):
                self.assertEqual(login("198.51.100.7", "nobody", "wrong-password-123"), 401)
            self.assertEqual(login("198.51.100.7", "laurier.desk"), 429)
            self.assertEqual(login("198.51.100.8", "laurier.desk"), 303)
            admin = pn.Browserless(net.url)
            admin.request("/login", {"user": "laurier.admin", "password": pn.PASSWORD},
                          headers={"X-Forwarded-For": "198.51.100.8"})
            _, _, body = admin.request("/admin", headers={"X-Forwarded-For": "198.51.100.8"})
            self.assertIn("<td>login</td><td></td><td></td><td>198.51.100.8</td>", body)


if __name__ == "__main__":
    unittest.main(verbosity=2)
