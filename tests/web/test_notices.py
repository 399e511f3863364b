"""E-mail notices of the portal (services/web/web_notify.c), against a real network
(tests/web/portal_net.py) and a small SMTP server of the test's own on 127.0.0.1 that keeps every
message it is given: a user who asked for them gets a notice of a new handoff, of a question
awaiting the clinic's reply and of a status change, each with the link to the referral and
nothing of the patient (headers and body); a user who did not ask gets none; a notice the
mail server does not take is tried again until it does; a queued notice outlives a restart of
handoff-web; the preferences page keeps the address and the choices, behind the CSRF token."""
import os
import re
import socket
import socketserver
import sqlite3
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402

PUBLIC = "https://portal.example.org"
FROM = "notices@portal.example.org"


def address(user):
    return user + "@staff.example.org"


# ---- the SMTP sink ---------------------------------------------------------------------------
class _Session(socketserver.StreamRequestHandler):
    """Enough of RFC 5321 for one client: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        self.reply("220 sink.test ESMTP")
        mail_from, rcpts = None, []
        while True:
            raw = self.rfile.readline(4096)
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode("ascii", "replace")
            verb = line[:4].upper()
            with sink.lock:
                sink.commands.append(line)
            if verb in ("EHLO", "HELO"):
                self.reply("250 sink.test")
            elif verb == "MAIL":
                mail_from, rcpts = line[10:].strip(), []
                self.reply("250 OK")
            elif verb == "RCPT":
                rcpts.append(line[8:].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = b""
                while True:
                    chunk = self.rfile.readline(65536)
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                with sink.lock:
                    sink.messages.append({"from": mail_from, "rcpts": list(rcpts), "data": data})
                self.reply("250 kept")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self.reply("250 OK")
            elif verb == "NOOP":
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not here")


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps what it is sent; stop() and start() again on the
    same port to play a mail server that is down for a while."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages, self.commands = [], []
        self.port = 0
        self.server = None
        self.start()

    def start(self):
        self.server = _Server(("127.0.0.1", self.port), _Session)
        self.server.sink = self
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def mails(self, to=None, subject=None):
        """The messages kept (parsed), to one recipient and/or with subject containing a text."""
        with self.lock:
            kept = list(self.messages)
        out = []
        for m in kept:
            head, _, body = m["data"].partition(b"\r\n\r\n")
            headers = {}
            for h in head.split(b"\r\n"):
                k, _, v = h.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            if to and m["rcpts"] != ["<%s>" % to]:
                continue
            if subject and subject not in headers.get("subject", ""):
                continue
            out.append(dict(m, headers=headers, body=body.decode()))
        return out


def refused_port_check(port):
    """True when nothing listens on 127.0.0.1:port."""
    s = socket.socket()
    try:
        return s.connect_ex(("127.0.0.1", port)) != 0
    finally:
        s.close()


class PortalNotices(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = SmtpSink()
        cls.web_args = ["--smtp-url", "smtp://127.0.0.1:%d" % cls.sink.port, "--smtp-from", FROM,
                        "--smtp-retry-ms", "200", "--public-url", PUBLIC + "/"]
        cls.net = pn.Network(web_args=cls.web_args)
        # every clinic's clinician asks for all three on the preferences page; its front desk
        # for status changes only (with the CLI); its admin for all three but has no address
        for c in cls.net.clinics:
            cls.set_prefs(c + ".clinician", address(c + ".clinician"), ["n_new", "n_question", "n_status"])
            cls.net.web_user("notify", c + ".desk", "--email", address(c + ".desk"), "--notify", "status")
            cls.net.web_user("notify", c + ".admin", "--notify", "all")
        cls.referral = pn.sample_referral(ref="NOTICE-0001")
        cls.rid = cls.net.submit("harbour", cls.referral)

        # which clinic it was booked at: the one whose clinician is told of a new handoff (not
        # `handoff status` as harbour: the CLI would fetch harbour's mailbox itself, and what the
        # CLI fetches the portal never sees arrive, so it sends no notice of it)
        def booked():
            for m in cls.sink.mails(subject="New handoff"):
                if cls.rid in m["headers"]["subject"]:
                    return re.fullmatch(r"<([a-z0-9_-]+)\.clinician@staff\.example\.org>", m["rcpts"][0]).group(1)
            return None

        cls.receiver = pn.wait_for("the referral to be booked", booked, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.net.close()
        cls.sink.stop()

    @classmethod
    def set_prefs(cls, user, email, boxes):
        c = pn.Browserless(cls.net.url)
        status, _, _ = c.login(user)
        assert status == 303, "sign-in as %s: %d" % (user, status)
        csrf = c.csrf("/prefs")
        assert csrf, "the preferences page has a form with its token"
        form = {"csrf": csrf, "email": email}
        form.update({b: "1" for b in boxes})
        status, headers, body = c.request("/prefs", form)
        assert status == 303 and headers["Location"] == "/prefs?saved=1", (status, body[:300])
        return c

    def wait_mail(self, to, subject, rid):
        return pn.wait_for("a '%s' notice of %s to %s" % (subject, rid, to),
                           lambda: [m for m in self.sink.mails(to, subject) if rid in m["headers"]["subject"]],
                           timeout=120)

    def all_sent(self, user, rid):
        """Waits until every notice of rid to user is sent; returns their outbox rows."""
        def done():
            rows = [r for r in self.outbox() if r[1] == user and rid in r[3]]
            return rows if rows and all(r[4] == 1 for r in rows) else None
        return pn.wait_for("every notice of %s to %s sent" % (rid, user), done, timeout=120)

    def outbox(self):
        db = sqlite3.connect(self.net.accounts(), timeout=10)
        try:
            return db.execute("SELECT id, user, to_addr, subject, sent, attempts FROM mail_outbox ORDER BY id").fetchall()
        finally:
            db.close()

    def assert_no_patient_detail(self, m):
        p = self.referral["patient"]
        raw = m["data"].decode("utf-8", "replace").lower()
        details = [p["given_name"], p["family_name"], p["birth_date"], p["phone"], "905-555-0141", "555-0141",
                   p["email"], p["health_card"], self.referral["ref"], self.referral["referrer"]["name"]]
        words = {w for w in re.findall(r"[A-Za-z]{5,}", self.referral["reason"] + " " + self.referral["history"] +
                                       " " + self.referral["diagnosis"])}
        words.discard("Patient")        # the notice says it carries no patient details
        for d in details + sorted(words):
            self.assertNotIn(d.lower(), raw, "a patient's detail in the notice: %r" % d)

    def assert_well_formed(self, m, to):
        data = m["data"]
        self.assertNotRegex(data, rb"[^\r]\n", "every line ends in CRLF")
        for line in data.split(b"\r\n"):
            self.assertLessEqual(len(line), 78, line)
            self.assertRegex(line, rb"^[\x20-\x7e]*$", "7-bit text")
        h = m["headers"]
        for name in ("date", "from", "to", "subject", "message-id"):
            self.assertIn(name, h)
        self.assertRegex(h["date"], r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
                                    r"|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000$")
        self.assertEqual(h["from"], "Handoff <%s>" % FROM)
        self.assertEqual(h["to"], "<%s>" % to)
        self.assertRegex(h["message-id"], r"^<[^<>@\s]+@portal\.example\.org>$")
        self.assertEqual(m["from"], "<%s>" % FROM)
        self.assertEqual(m["rcpts"], ["<%s>" % to], "one recipient per message")

    # ---- the tests -------------------------------------------------------------------------
    def test_1_a_new_handoff_reaches_who_asked_and_says_nothing_of_the_patient(self):
        to = address(self.receiver + ".clinician")
        m = self.wait_mail(to, "New handoff", self.rid)[0]
        self.assert_well_formed(m, to)
        self.assertIn("%s/referral?id=%s\r\n" % (PUBLIC, self.rid), m["body"], "the link, on its own line")
        self.assertIn("for %s." % self.receiver, m["body"])
        self.assertIn(PUBLIC + "/prefs", m["body"])
        self.assert_no_patient_detail(m)
        # the referrer's front desk asked for status changes: the booking reaches it; that mail
        # holds nothing of the patient either
        st = self.wait_mail(address("harbour.desk"), "Status change", self.rid)[0]
        self.assert_well_formed(st, address("harbour.desk"))
        self.assert_no_patient_detail(st)
        # who did not ask for new handoffs gets none: the desk (status only), the admin (no
        # address), the referrer's clinician (not its clinic's handoff)
        rows = self.outbox()
        for user in (self.receiver + ".desk", self.receiver + ".admin", "harbour.clinician", "harbour.desk"):
            self.assertFalse([r for r in rows if r[1] == user and "New handoff" in r[3]], user)
        self.assertFalse(self.sink.mails(address(self.receiver + ".desk"), "New handoff"))
        self.assertFalse([r for r in rows if r[1].endswith(".admin")], "an admin without an address gets nothing")
        self.assertEqual(len(self.sink.mails(to, "New handoff")), 1, "one notice, once")

    def test_2_a_question_awaiting_the_reply_is_noticed_by_the_other_side_only(self):
        question = "Could the first visit be on a Tuesday morning, Zebediah?"
        self.net.handoff("note", self.rid, question, "--ask", clinic="harbour")
        to = address(self.receiver + ".clinician")
        m = self.wait_mail(to, "question awaits your reply", self.rid)[0]
        self.assert_well_formed(m, to)
        self.assert_no_patient_detail(m)
        self.assertNotIn("zebediah", m["data"].decode().lower(), "the post's text stays in the portal")
        self.assertFalse([r for r in self.outbox() if r[1].startswith("harbour.") and "question" in r[3]],
                         "the clinic that asked is not told its own question awaits a reply")

    def test_3_a_mail_server_that_is_down_gets_the_notice_later(self):
        to = address("harbour.clinician")
        before = len(self.all_sent("harbour.clinician", self.rid))
        self.sink.stop()
        self.assertTrue(refused_port_check(self.sink.port))
        self.net.handoff("accept", self.rid, clinic=self.receiver)
        pn.wait_for("a failed attempt in the log",
                    lambda: re.search(r"notices: notice \d+ not sent \(attempt [2-9]", self.net.log("web")),
                    timeout=120)
        self.sink.start()
        rows = self.all_sent("harbour.clinician", self.rid)
        self.assertGreater(len(rows), before, "the accept's status change was queued")
        self.assertTrue(any(r[5] >= 2 for r in rows), "sent after failed attempts: %r" % (rows,))
        msgs = [m for m in self.sink.mails(to, "Status change") if self.rid in m["headers"]["subject"]]
        self.assertEqual(len(msgs), len(rows), "each notice once")
        for m in msgs:
            self.assert_well_formed(m, to)
            self.assert_no_patient_detail(m)

    def test_4_a_queued_notice_outlives_a_restart(self):
        self.sink.stop()
        other = pn.sample_referral("04-tension-headache.json", ref="NOTICE-0002")
        rid = self.net.submit("harbour", other)
        # queued (the referrer's booking), not sent: then handoff-web stops
        pn.wait_for("the notice queued", lambda: [r for r in self.outbox()
                                                  if r[1] == "harbour.desk" and rid in r[3] and r[4] == 0],
                    timeout=120)
        self.net.stop("web")
        self.sink.start()
        self.net.start_web(*self.web_args)
        rows = self.all_sent("harbour.desk", rid)
        msgs = [m for m in self.sink.mails(address("harbour.desk")) if rid in m["headers"]["subject"]]
        self.assertEqual(len(msgs), len(rows), "each notice once")
        for m in msgs:
            self.assert_well_formed(m, address("harbour.desk"))
            self.assert_no_patient_detail(m)

    def test_5_the_preferences_page(self):
        user = "laurier.clinician"
        c = pn.Browserless(self.net.url)
        self.assertEqual(c.login(user)[0], 303)
        status, _, body = c.request("/prefs")
        self.assertEqual(status, 200)
        self.assertIn('href="/prefs">Notices</a>', body, "the header links to it")
        self.assertIn('value="%s"' % address(user), body)
        self.assertEqual(body.count(" checked"), 3)
        csrf = c.csrf("/prefs")
        # without the token: refused, nothing changed
        status, _, _ = c.request("/prefs", {"email": "evil@attacker.example", "n_new": "1"})
        self.assertEqual(status, 403)
        # an address that would add a header: refused, nothing changed
        status, _, body = c.request("/prefs", {"csrf": csrf, "email": "x@y.example\r\nBcc: all@attacker.example",
                                               "n_new": "1"})
        self.assertEqual(status, 400)
        self.assertIn("Nothing was changed", body)
        shown = self.net.web_user("notify", user).stdout
        self.assertIn("email %s, notices new,question,status" % address(user), shown)
        # new handoffs only; then none at all with no address
        status, _, _ = c.request("/prefs", {"csrf": csrf, "email": " " + address(user) + " ", "n_new": "1"})
        self.assertEqual(status, 303)
        self.assertIn("notices new\n", self.net.web_user("notify", user).stdout)
        status, _, _ = c.request("/prefs", {"csrf": csrf, "email": ""})
        self.assertEqual(status, 303)
        self.assertIn("email (none), notices none", self.net.web_user("notify", user).stdout)
        # the CLI refuses what the page refuses
        r = self.net.web_user("notify", user, "--email", "a@b.example\nBcc: c@d.example", check=False)
        self.assertEqual(r.returncode, 2)
        # the audit names the change, never the address
        self.assertNotIn(address(user), self.net.log("web"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
