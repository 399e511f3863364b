"""Importing a file of referrals in the portal: the rows are checked as `handoff import` checks
them, the valid ones sent while the page shows progress, the others listed with their line and
field; importing the same file again sends nothing twice; a job is its user's alone."""
import json
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402


def ndjson(n, bad_line_at=None):
    lines = []
    for i in range(n):
        r = pn.sample_referral(ref="IMP-%04d" % i)
        del r["referrer"]["clinic_id"]          # the portal puts in its own clinic
        if i == bad_line_at:
            r["patient"]["birth_date"] = "1994-13-40"
        lines.append(json.dumps(r))
    return ("\n".join(lines) + "\n").encode()


class PortalImport(unittest.TestCase):
    def test_import_progress_problems_and_again(self):
        with pn.Network() as net:
            c = pn.Browserless(net.url)
            self.assertEqual(c.login("harbour.desk")[0], 303)
            csrf = c.csrf("/import")
            data = ndjson(12, bad_line_at=4)
            status, headers, body = c.upload("/import", {"csrf": csrf}, {"file": ("batch.ndjson", data,
                                                                                   "application/x-ndjson")})
            self.assertEqual(status, 303, body[:500])
            job = headers["Location"]
            self.assertRegex(job, r"^/import\?job=[0-9a-f]{32}$")

            def done():
                s, _, b = c.request(job)
                return s == 200 and "<label for=\"progress\">Done" in b and b

            page = pn.wait_for("the import to finish", done, timeout=120)
            self.assertIn('<dd id="import-sent">11</dd>', page)
            self.assertIn('<dd id="import-invalid">1</dd>', page)
            self.assertRegex(page, r"<td>5</td><td>IMP-0004</td><td>patient.birth_date</td>")
            # every sent one is the clinic's: the CLI, on the same store, lists each once intake's
            # answer is in (the page's "Done" is the broker's acceptance; the answers follow)
            wanted = {"IMP-%04d" % i for i in range(12) if i != 4}

            def listed():
                sent = json.loads(net.handoff("--json", "status", clinic="harbour").stdout)
                refs = {s["ref"] for s in sent} & {"IMP-%04d" % i for i in range(12)}
                return refs if refs == wanted or not refs <= wanted else None

            self.assertEqual(wanted, pn.wait_for("the CLI to list the imported referrals", listed, timeout=180,
                                                 every=0.5))
            # the same file again: nothing new is sent
            status, headers, _ = c.upload("/import", {"csrf": c.csrf("/import")},
                                          {"file": ("batch.ndjson", data, "application/x-ndjson")})
            again = pn.wait_for("the second import to finish", lambda: (lambda r: r[0] == 200 and
                                "<label for=\"progress\">Done" in r[2] and r[2])(c.request(headers["Location"])),
                                timeout=120)
            self.assertIn('<dd id="import-sent">0</dd>', again)
            self.assertRegex(again, r"<dt>Already sent before</dt><dd>11</dd>")
            # someone else cannot look at the job; an upload without the token does nothing
            other = pn.Browserless(net.url)
            other.login("harbour.clinician")
            self.assertEqual(other.request(job)[0], 404)
            status, _, _ = other.upload("/import", {}, {"file": ("x.ndjson", data, "application/x-ndjson")})
            self.assertEqual(status, 403)
            # a file that is not a referral file at all
            status, _, body = c.upload("/import", {"csrf": c.csrf("/import")},
                                       {"file": ("notes.txt", b"hello", "text/plain")})
            self.assertEqual(status, 400)
            self.assertIn("notes.txt", body)
            # no patient data reached the log
            self.assertNotIn(pn.sample_referral()["patient"]["family_name"], net.log("web"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
