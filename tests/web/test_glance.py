"""The network at a glance (/glance), over plain HTTP against a real network
(tests/web/portal_net.py): sample referrals from four clinics, one that triage cannot place (under
review), one first session begun and one handoff declined and booked again; then the page, for a
network admin (asked through the reviewer's session) and a clinic admin (its own clinic's),
draws its charts as inline SVG whose data tables hold exactly the figures the referring clinics
saw, names no patient and no referral, carries no inline style or script, and is refused to
every other role."""
import html
import json
import os
import re
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402

SAMPLES = ["01-ankle-sprain.json", "04-tension-headache.json", "08-chronic-low-back-pain.json",
           "05-stress-anxiety.json", "02-pelvic-floor.json", "16-needs-review-jaw.json"]
REVIEW = "16-needs-review-jaw.json"
DISCIPLINE = {"physiotherapy": "Physiotherapy", "massage_therapy": "Massage therapy"}


def table_rows(body, table_id):
    """The rows of the table with this id (thead, tbody and tfoot), each a list of cell texts."""
    m = re.search(r'<table id="%s">(.*?)</table>' % re.escape(table_id), body, re.S)
    assert m, "no table " + table_id
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


class Glance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.net = pn.Network()
        with open(cls.net.directory) as f:
            d = json.load(f)
        cls.names = {c["id"]: c["name"] for c in d["clinics"]}
        cls.pairs = {(t["clinic_id"], t["discipline"]) for t in d["therapists"]}
        cls.referrals = {}
        for name in SAMPLES:
            r = pn.sample_referral(name)
            clinic = r["referrer"]["clinic_id"]
            rid = cls.net.submit(clinic, r)
            cls.referrals[rid] = (clinic, r, name)
        for rid, (clinic, _, name) in cls.referrals.items():
            if name == REVIEW:
                pn.wait_for("%s under review" % rid,
                            lambda: (cls.last(rid) or {}).get("event") == "review", timeout=120)
            else:
                pn.wait_for("%s booked" % rid, lambda: cls.booked(rid), timeout=120)
        # one first session begins; another handoff is declined and booked again
        by_name = {name: rid for rid, (_, _, name) in cls.referrals.items()}
        cls.started, cls.declined = by_name["01-ankle-sprain.json"], by_name["08-chronic-low-back-pain.json"]
        start_at = cls.booked(cls.started)[0]["clinic_id"]
        cls.net.handoff("accept", cls.started, clinic=start_at, check=False)
        pn.wait_for("accepted", lambda: (cls.last(cls.started) or {}).get("status") == "accepted", timeout=120)
        cls.net.handoff("start", cls.started, clinic=start_at, check=False)
        pn.wait_for("started", lambda: (cls.last(cls.started) or {}).get("status") == "in-progress", timeout=120)
        gone = cls.booked(cls.declined)[0]
        cls.decliner = gone["clinic_id"]
        cls.net.handoff("decline", cls.declined, "--reason", "no room this month", "--discipline", gone["discipline"],
                        clinic=cls.decliner, check=False)

        def settled():
            """After the decline, booked again elsewhere or on hold (no other therapist near enough)."""
            h = cls.history(cls.declined)
            events = [u.get("event") for u in h]
            return "decline" in events and events[-1] in ("book", "hold")

        pn.wait_for("booked again or on hold after the decline", settled, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.net.close()

    # ---- what the referring clinics saw ------------------------------------------------------------
    @classmethod
    def history(cls, rid):
        clinic = cls.referrals[rid][0]
        r = cls.net.handoff("--json", "status", rid, clinic=clinic, check=False)
        if r.returncode != 0:
            return []
        try:
            return json.loads(r.stdout).get("history") or []
        except ValueError:
            return []

    @classmethod
    def last(cls, rid):
        h = cls.history(rid)
        return h[-1] if h else None

    @classmethod
    def booked(cls, rid):
        """The referral's handoffs when every one of them has a clinic, else None."""
        u = cls.last(rid)
        hs = (u or {}).get("handoffs") or []
        return hs if hs and all(h.get("clinic_id") for h in hs) else None

    def expected(self):
        """As the referring clinics saw them: per discipline (and "" for not placed) the referrals;
        per (clinic, discipline) the bookings held now; the handoffs on hold now; and the
        (referral, discipline) pairs that were ever on hold."""
        per_discipline, per_clinic, on_hold, ever_held = {}, {}, 0, set()
        for rid, (_, _, name) in self.referrals.items():
            if name == REVIEW:
                per_discipline[""] = per_discipline.get("", 0) + 1
                continue
            history = self.history(rid)
            for u in history:
                ever_held |= {(rid, h["discipline"]) for h in u.get("handoffs") or [] if h["status"] == "on-hold"}
            for h in history[-1]["handoffs"]:
                per_discipline[h["discipline"]] = per_discipline.get(h["discipline"], 0) + 1
                if h.get("clinic_id"):
                    key = (h["clinic_id"], h["discipline"])
                    per_clinic[key] = per_clinic.get(key, 0) + 1
                on_hold += h["status"] == "on-hold"
        return per_discipline, per_clinic, on_hold, ever_held

    # ---- the page ------------------------------------------------------------------------------------
    def client(self, user):
        c = pn.Browserless(self.net.url)
        status, _, _ = c.login(user)
        self.assertEqual(status, 303, "sign-in as " + user)
        return c

    def glance(self, user, path="/glance"):
        status, headers, body = self.client(user).request(path)
        self.assertEqual(status, 200, "%s %s: %s" % (user, path, body[:300]))
        if os.environ.get("HX_GLANCE_SAVE"):
            with open(os.environ["HX_GLANCE_SAVE"], "w") as f:
                f.write(body)
        return headers, body

    def check_figures(self, body):
        per_discipline, per_clinic, on_hold, ever_held = self.expected()
        self.assertIn("<svg", body)
        self.assertGreaterEqual(body.count('role="img"'), 4, "four charts, each an image with a title")
        # referrals per week: this week holds every referral (the window ends now)
        rows = table_rows(body, "referrals-table")
        self.assertEqual(rows[0], ["Week", "Physiotherapy", "Massage therapy", "Not placed", "Total"])
        weeks = rows[1:-1]
        self.assertEqual(len(weeks), 12)
        this_week = weeks[-1]
        want = [str(per_discipline.get("physiotherapy", 0)), str(per_discipline.get("massage_therapy", 0)),
                str(per_discipline.get("", 0))]
        self.assertEqual(this_week[1:4], want, this_week)
        self.assertEqual(this_week[4], str(sum(int(x) for x in want)))
        self.assertEqual(rows[-1][0], "All weeks")
        self.assertEqual(rows[-1][1:4], want)
        self.assertTrue(all(r[1:] == ["0", "0", "0", "0"] for r in weeks[:-1]), weeks)
        self.assertIn('<dd id="kpi-received">%d</dd>' % len(self.referrals), body)
        self.assertRegex(body, r'<dd id="kpi-review">1\b')
        self.assertIn('<dd id="kpi-declined">1</dd>', body)
        self.assertIn('<dd id="kpi-booked">%d</dd>' % sum(per_clinic.values()), body)
        self.assertIn('<dd id="kpi-on-hold">%d</dd>' % on_hold, body)
        # bookings per clinic and discipline, with one first session
        times = {(r[0], r[1]): r for r in table_rows(body, "times-table")[1:]}
        want_times = {(self.names[c], DISCIPLINE[d]): n for (c, d), n in per_clinic.items()}
        self.assertEqual({k: int(v[2]) for k, v in times.items()}, want_times)
        started = self.booked(self.started)[0]
        srow = times[(self.names[started["clinic_id"]], DISCIPLINE[started["discipline"]])]
        self.assertEqual(srow[5], "1", srow)
        self.assertEqual(sum(int(r[5]) for r in times.values()), 1)
        # the decline, counted against the clinic that declined
        rates = {(r[0], r[1]): r for r in table_rows(body, "rates-table")[1:]}
        declined = [k for k, r in rates.items() if r[3] != "0"]
        self.assertEqual(len(declined), 1, rates)
        self.assertEqual(declined[0][0], self.names[self.decliner])
        self.assertEqual(sum(int(r[5]) for r in rates.values()), sum(per_discipline.get(d, 0) for d in DISCIPLINE))
        self.assertEqual(sum(int(r[6]) for r in rates.values()), len(ever_held))
        # the next free slot of every clinic and discipline the directory has a therapist of
        slots = table_rows(body, "slots-table")[1:]
        self.assertEqual(len(slots), len(self.pairs))
        self.assertTrue(all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d ", r[2]) for r in slots), slots)

    def check_private(self, body, headers):
        text = html.unescape(body)
        for rid, (_, r, _) in self.referrals.items():
            p = r["patient"]
            for value in (rid, r["ref"], p["given_name"], p["family_name"], p.get("phone"), p.get("health_card"),
                          p.get("email"), r["reason"][:30]):
                if value:
                    self.assertNotIn(value, text)
        self.assertNotRegex(text, r"R-[0-9A-HJKMNP-TV-Z]{16}", "no referral id of any kind")
        # the CSP admits neither inline style nor inline script
        self.assertNotRegex(body, r"\sstyle=")
        self.assertNotRegex(body, r"<script>|<script [^>]*>[^<]")
        self.assertEqual(headers.get("Cache-Control"), "no-store")
        self.assertIn("style-src 'self'", headers.get("Content-Security-Policy"))
        # charts readable at any width
        self.assertNotRegex(body, r'<svg class="chart"[^>]*\swidth=')
        self.assertIn('<meta name="viewport" content="width=device-width, initial-scale=1">', body)

    def test_network_admin_sees_the_figures(self):
        headers, body = self.glance("network.admin")
        self.check_figures(body)
        self.check_private(body, headers)
        self.assertIn('href="/glance"', body, "the header's Network link")

    def test_clinic_admin_sees_the_same_figures(self):
        headers, body = self.glance("harbour.admin")
        self.check_figures(body)
        self.check_private(body, headers)

    def test_other_roles_are_refused(self):
        for user in ("harbour.clinician", "harbour.desk", "review.reviewer"):
            c = self.client(user)
            status, _, body = c.request("/glance")
            self.assertEqual(status, 403, user)
            self.assertNotIn("<svg", body)
            _, _, home = c.request("/")
            self.assertNotIn('href="/glance"', home, user + " has no Network link")

    def test_the_window(self):
        _, body = self.glance("network.admin", "/glance?weeks=4")
        rows = table_rows(body, "referrals-table")
        self.assertEqual(len(rows), 1 + 4 + 1)
        self.assertIn('<a href="/glance?weeks=4" aria-current="page">', body)
        _, body = self.glance("network.admin", "/glance?weeks=x")
        self.assertEqual(len(table_rows(body, "referrals-table")), 1 + 12 + 1, "not a number: 12 weeks")

    def test_answers_are_not_kept_in_the_stores(self):
        # a clinic admin asks through its clinic's session, a network admin through the reviewer's
        self.glance("harbour.admin")
        self.glance("network.admin")
        home = os.path.join(self.net.dir, "home")
        for store in ("harbour.db", "review.db"):
            db = sqlite3.connect(os.path.join(home, store))
            try:
                kept = db.execute("SELECT COUNT(*) FROM received WHERE type = 'handoff.NetworkStats'").fetchone()[0]
                dropped = db.execute("SELECT COUNT(*) FROM dropped").fetchone()[0]
            finally:
                db.close()
            self.assertEqual(kept, 0, store)
            self.assertEqual(dropped, 0, store + ": the answers are trusted from scheduling, not dropped")

    def test_signed_out_goes_to_sign_in(self):
        status, headers, _ = pn.Browserless(self.net.url).request("/glance")
        self.assertEqual(status, 303)
        self.assertEqual(headers.get("Location"), "/login")


if __name__ == "__main__":
    unittest.main(verbosity=2)
