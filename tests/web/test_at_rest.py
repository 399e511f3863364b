"""Patient data at rest (docs/OPERATIONS.md, "Encryption at rest"): a whole network with the
data key on, as the deployment files start it (tests/web/portal_net.py, data_key=True): the
broker and scheduling seal with it and keep audit logs, the portal hosts two clinics whose
stores are sealed with keys derived from it, and the other clinics are CLI clinic hosts with
a store key file each in a home of their own. Every sample referral (deploy/sample/referrals)
is sent by its referring clinic, the demo's story (deploy/sample/stories) is played with
`handoff play`, and every clinic fetches its mailbox. Then EVERY file under the network's
directory (the broker's data, scheduling's and intake's databases with their -wal/-shm, the
clinic homes, the portal's home and accounts, the audit logs, every program's log) is searched
byte for byte for each sample patient's name, family name, date of birth as written and health
card number, taken from the sample files themselves, as the broker's log is searched in
tests/integration/test_pipeline.c: first with everything running (the WALs in place), again
after every program stopped. A hit fails the test naming the file and the term."""
import glob
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import portal_net as pn  # noqa: E402

# Hosted by the portal; the others are CLI clinic hosts. Both are in Ottawa, too far for the
# demo's story (Toronto) to be booked there: each store of a clinic is fetched by one program.
PORTAL = ["eastgate", "laurier"]
STORY = os.path.join(pn.SOURCE, "deploy", "sample", "stories", "07-post-surgical-knee.json")
# A term shorter than this is searched for only as part of the full name: 3 or 4 bytes turn up
# by chance in a few megabytes of ciphertext (a given name such as "Guo" or "Liam").
MIN_ALONE = 5


def samples():
    """(file name, referral) of every sample referral."""
    out = []
    for path in sorted(glob.glob(os.path.join(pn.SOURCE, "deploy", "sample", "referrals", "*.json"))):
        with open(path, encoding="utf-8") as f:
            out.append((path, json.load(f)))
    assert len(out) >= 10, "the sample referrals are read"
    return out


def patient_terms(referrals):
    """(bytes, what) for each patient: the name as staff read it, the given name (when long
    enough alone), the family name, the date of birth as written, the health card number."""
    terms = []
    for path, r in referrals:
        p, name = r["patient"], os.path.basename(path)
        full = " ".join(x for x in (p.get("given_name"), p.get("family_name")) if x)
        values = [("name", full), ("given_name", p.get("given_name", "")), ("family_name", p.get("family_name", "")),
                  ("birth_date", p.get("birth_date", "")), ("health_card", p.get("health_card", ""))]
        for field, v in values:
            b = v.encode("utf-8")
            if b and (field != "given_name" or len(b) >= MIN_ALONE):
                terms.append((b, "%s '%s' of %s" % (field, v, name)))
    return terms


def search(root, terms):
    """Every file under root: (files read, bytes read, ["FILE holds TERM"])."""
    files, size, hits = 0, 0, []
    for d, _, names in os.walk(root):
        for n in names:
            path = os.path.join(d, n)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except FileNotFoundError:           # a -wal or -shm gone between listing and reading
                continue
            files += 1
            size += len(data)
            hits += ["%s holds the %s" % (os.path.relpath(path, root), what) for b, what in terms if b in data]
    return files, size, hits


class AtRest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.net = pn.Network(data_key=True, hosted=PORTAL)
        cls.clinic_hosts = os.path.join(cls.net.dir, "clinic-hosts")
        cls.referrals = samples()
        cls.sent = {}                           # rid: referrer
        try:
            for path, r in cls.referrals:
                clinic = r["referrer"]["clinic_id"]
                out = cls.cli(clinic, "--json", "submit", path).stdout
                cls.sent[json.loads(out)[0]["referral_id"]] = clinic
            pn.wait_for("every sample referral settled", cls.all_settled, timeout=180, every=0.5)
            # the demo's story, played by the CLI clinic hosts (northpoint refers it)
            r = cls.net.handoff("--dir", cls.net.keys, "play", STORY, home=cls.clinic_hosts, check=False)
            assert r.returncode == 0, "handoff play: %s%s" % (r.stdout[-2000:], r.stderr[-2000:])
            # every clinic's mailbox into its store
            for c in cls.net.clinics:
                cls.cli(c, "--json", "handoffs")
        except BaseException:
            cls.net.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.net.close()

    @classmethod
    def cli(cls, clinic, *args, check=True):
        """The CLI as clinic: on the portal's home (the data key's subkey) for a hosted clinic,
        in the clinic hosts' home (its store key file) for the others."""
        home = None if clinic in PORTAL else cls.clinic_hosts
        return cls.net.handoff(*args, clinic=clinic, home=home, check=check)

    @classmethod
    def all_settled(cls):
        for rid, clinic in cls.sent.items():
            r = cls.cli(clinic, "--json", "status", rid, check=False)
            if r.returncode != 0:
                return False
            h = json.loads(r.stdout).get("history") or []
            last = h[-1] if h else {}
            if not (last.get("status") in ("ready", "rejected", "on-hold") or last.get("event") == "review"):
                return False
        return True

    def expect_clean(self, when):
        files, size, hits = search(self.net.dir, patient_terms(self.referrals))
        self.assertGreater(files, 20, "the network's files were read")
        self.assertGreater(size, 100000)
        self.assertEqual(hits, [], "%s: patient data in clear:\n  %s" % (when, "\n  ".join(hits)))

    def test_1_nothing_of_a_patient_is_readable_while_the_network_runs(self):
        # the files the search must have covered
        d = self.net.dir
        for f in ("scheduling.db", "intake.db", "broker", "broker-audit.jsonl", "scheduling-audit.jsonl",
                  "web-accounts.db", "home/eastgate.db", "home/laurier.db", "clinic-hosts/northpoint.db",
                  "clinic-hosts/northpoint.store.key", "broker.log", "scheduling.log", "web.log"):
            self.assertTrue(os.path.exists(os.path.join(d, f)), f)
        self.assertFalse(os.path.exists(os.path.join(d, "home", "eastgate.store.key")),
                         "a hosted clinic's key comes from the data key, not a file")
        # the stores hold the referrals: each shows them whole through its key
        for clinic in ("eastgate", "northpoint"):
            got = json.loads(self.cli(clinic, "--json", "handoffs").stdout)
            self.assertTrue(got, "%s's store holds handoffs" % clinic)
        eastgate = b""
        for f in glob.glob(os.path.join(d, "home", "eastgate.db*")):     # the rows may be in the WAL yet
            with open(f, "rb") as f:
                eastgate += f.read()
        self.assertTrue(any(rid.encode() in eastgate for rid in self.sent),
                        "ids stay clear in the store (the search would see clear text)")
        self.expect_clean("running")

    def test_2_nor_once_every_program_stopped(self):
        for name in list(self.net.procs)[::-1]:
            self.assertEqual(self.net.stop(name), 0, "%s exits cleanly" % name)
        self.expect_clean("stopped")

    def test_3_a_hosted_store_does_not_open_with_another_data_key(self):
        other = os.path.join(self.net.dir, "other.key")
        self.net.handoff("datakey", other, check=True)
        r = self.net.handoff("--data-key", other, "store", "key", clinic="eastgate", check=False)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("eastgate.db is sealed with the store key of id", r.stderr)
        r = self.net.handoff("--json", "store", "key", clinic="eastgate")
        self.assertIn(self.net.data_key, json.loads(r.stdout)["from"], "the key is derived from the data key")

    def test_4_a_rekey_seals_every_value_again_and_the_old_key_opens_nothing(self):
        # a CLI clinic host: a new key in its store key file
        before = json.loads(self.cli("northpoint", "--json", "store", "key").stdout)
        r = json.loads(self.cli("northpoint", "--json", "store", "rekey").stdout)
        self.assertEqual(r["old_key_id"], before["key_id"])
        self.assertNotEqual(r["key_id"], before["key_id"])
        self.assertGreater(r["values"], 16, "every referral northpoint sent and received")
        self.assertEqual(json.loads(self.cli("northpoint", "--json", "store", "key").stdout)["key_id"], r["key_id"])
        self.assertFalse(os.path.exists(os.path.join(self.clinic_hosts, "northpoint.store.key.new")))
        # a hosted clinic: to the key derived from the portal's new data key
        new = os.path.join(self.net.dir, "new-data.key")
        self.net.handoff("datakey", new)
        r = json.loads(self.net.handoff("--json", "store", "rekey", "--new-data-key", new, clinic="eastgate").stdout)
        self.assertGreater(r["values"], 0)
        old = self.net.handoff("store", "key", clinic="eastgate", check=False)
        self.assertEqual(old.returncode, 2, "the old data key opens the store no more")
        self.assertIn("give the key with id " + r["key_id"], old.stderr)
        got = json.loads(self.net.handoff("--data-key", new, "--json", "store", "key", clinic="eastgate").stdout)
        self.assertEqual(got["key_id"], r["key_id"])
        self.expect_clean("after the rekeys")

    def test_5_scheduling_rekeyed_and_a_worker_with_the_old_key_refused(self):
        sched = os.path.join(pn.BUILD, "services", "scheduling", "handoff-scheduling")
        db = os.path.join(self.net.dir, "scheduling.db")
        new = os.path.join(self.net.dir, "new-scheduling.key")
        self.net.handoff("datakey", new)

        def run(*args):
            return subprocess.run([sched, "--directory", self.net.directory, "--db", db] + list(args),
                                  capture_output=True, text=True, timeout=120)

        r = run("--data-key", self.net.data_key, "--rekey", new)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"(\d+) value\(s\) sealed again with the key of id (\w{8}) \(was (\w{8})\)", r.stdout)
        self.assertTrue(m, r.stdout)
        self.assertGreater(int(m.group(1)), 16, "every referral, post and stored output")
        r = run("--data-key", self.net.data_key)
        self.assertEqual(r.returncode, 2, "the old key is refused at start: " + r.stderr)
        self.assertIn("give the key with id " + m.group(2), r.stderr)
        self.expect_clean("after scheduling's rekey")


if __name__ == "__main__":
    unittest.main(verbosity=2)
