"""Two portals on one accounts store in PostgreSQL (handoff-web --accounts postgresql://...),
over plain HTTP against a real network (tests/web/portal_net.py) and a throw-away PostgreSQL
server on 127.0.0.1 (tests/support/hx-pgtest-server): the first portal hosts all clinics but
one, the second that one, each with a home of its own. A session opened on one portal is good on
the other and a sign-out on either ends it on both; a user added with `handoff-web user add`
against the database signs in on both and, disabled, on neither; the store's figures are on
/metrics. The database stopped: /readyz says 503 naming the accounts store and a sign-in is
refused with a message, not a crash; started again, both portals find it by themselves, and
the session opened before goes on."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402


def signed_in(client):
    """Whether client's session (the network admin's) opens /admin (a 303 to /login when not)."""
    status, headers, _ = client.request("/admin")
    return status == 200


def share(client, url):
    """A client of the portal at url carrying client's cookies (the same session)."""
    other = pn.Browserless(url)
    for c in client.jar:
        other.jar.set_cookie(c)
    return other


def readyz(url):
    c = pn.Browserless(url)
    status, _, body = c.request("/readyz")
    return status, body


class SharedAccounts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        server = os.path.join(pn.BUILD, "tests", "support", "hx-pgtest-server")
        cls.pg = subprocess.Popen([server, "portal"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        line = cls.pg.stdout.readline().strip()
        if not line.startswith("url "):
            cls.pg.wait(timeout=30)
            raise AssertionError("hx-pgtest-server: %s" % line)
        cls.db = line[4:]
        cls.net = None
        try:
            clinics = cls._clinics()
            cls.net = pn.Network(accounts=cls.db, hosted=clinics[:-1])
            cls.url1 = cls.net.url
            cls.url2 = cls.net.start_web(name="web2", hosted=clinics[-1:], reviewers=False,
                                         home=os.path.join(cls.net.dir, "home2"))
        except BaseException:
            cls.tearDownClass()
            raise

    @staticmethod
    def _clinics():
        import json
        with open(os.path.join(pn.SOURCE, "deploy", "sample", "directory.json")) as f:
            return [c["id"] for c in json.load(f)["clinics"]]

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.net:
                cls.net.close()
        finally:
            cls.pg.stdin.close()            # the server stops and its directory goes
            cls.pg.wait(timeout=60)

    def pg_command(self, cmd):
        self.pg.stdin.write(cmd + "\n")
        self.pg.stdin.flush()
        self.assertEqual(self.pg.stdout.readline().strip(), "ok", cmd)

    def test_a_session_is_good_on_both_portals_and_a_sign_out_ends_it_on_both(self):
        a = pn.Browserless(self.url1)
        status, headers, _ = a.login("network.admin")
        self.assertEqual((status, headers.get("Location")), (303, "/"))
        b = share(a, self.url2)
        self.assertTrue(signed_in(a))
        self.assertTrue(signed_in(b), "the session opened on the first portal is good on the second")
        csrf = b.csrf("/admin")
        self.assertTrue(csrf)
        status, headers, _ = b.request("/logout", {"csrf": csrf})
        self.assertEqual((status, headers.get("Location")), (303, "/login"))
        self.assertFalse(signed_in(a), "signed out on the second portal: the first one's session ended too")

    def test_a_user_added_against_the_database_is_known_to_both(self):
        self.net.web_user("add", "shared.desk", "--role", "front-desk", "--clinic", self._clinics()[-1])
        for url in (self.url1, self.url2):
            c = pn.Browserless(url)
            self.assertEqual(c.login("shared.desk")[1].get("Location"), "/", url)
        self.net.web_user("disable", "shared.desk")
        for url in (self.url1, self.url2):
            status, headers, _ = pn.Browserless(url).login("shared.desk")
            self.assertNotEqual(headers.get("Location"), "/", "disabled: refused on %s" % url)

    def test_metrics_show_the_store(self):
        _, _, body = pn.Browserless(self.url1).request("/metrics")
        self.assertIn('handoff_store_connected{store="accounts"} 1', body)
        self.assertIn('handoff_store_statement_seconds_count{store="accounts"}', body)

    def test_z_the_database_stopped_then_started_again(self):
        a = pn.Browserless(self.url1)
        self.assertEqual(a.login("network.admin")[1].get("Location"), "/")
        self.pg_command("stop")
        try:
            for url in (self.url1, self.url2):
                status, body = pn.wait_for("/readyz to say 503", lambda: (lambda r: r if r[0] == 503 else None)(
                    readyz(url)), timeout=60)
                self.assertIn("the accounts store", body)
            status, _, body = pn.Browserless(self.url2).login("network.admin")
            self.assertNotEqual(status, 303, "no session without the store")
            self.assertIn("accounts store could not be read", body)
        finally:
            self.pg_command("start")
        for url in (self.url1, self.url2):
            pn.wait_for("/readyz to say 200 again", lambda: readyz(url)[0] == 200, timeout=60)
        self.assertTrue(signed_in(a), "the session opened before the restart goes on")
        self.assertEqual(pn.Browserless(self.url2).login("network.admin")[1].get("Location"), "/")
        _, _, body = a.request("/metrics")
        self.assertIn('handoff_store_connected{store="accounts"} 1', body)
        for name in ("web", "web2"):
            self.assertNotIn("Sanitizer", self.net.log(name))


if __name__ == "__main__":
    unittest.main(verbosity=2)
