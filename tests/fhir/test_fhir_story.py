"""A referral's whole story through the FHIR API (tests/fhir/fhir_story.js, node and
fhir-kit-client) against a real network (fhir_net.py): two clinics' EMRs as API clients, the
referrer harbour and the receiver lakeside; every answer checked against the FHIR R4 JSON
schema. The network's processes are stopped also when the story fails."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fhir_net as fn  # noqa: E402


class FhirStory(unittest.TestCase):
    def test_story(self):
        f = fn.FhirNet()
        try:
            f.add_client("harbour-emr", fn.REFERRER)
            f.add_client("lakeside-emr", fn.RECEIVER)
            env = dict(os.environ, FHIR_BASE=f.base, STORY_REF="FHIR-STORY-1",
                       REFERRER_ID="harbour-emr", REFERRER_SECRET=f.clients["harbour-emr"][1],
                       REFERRER_CLINIC=fn.REFERRER, RECEIVER_ID="lakeside-emr",
                       RECEIVER_SECRET=f.clients["lakeside-emr"][1], RECEIVER_CLINIC=fn.RECEIVER)
            r = subprocess.run([fn.NODE, os.path.join(fn.HERE, "fhir_story.js")], cwd=fn.HERE, env=env,
                               capture_output=True, text=True, timeout=600)
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)
            if r.returncode != 0:
                sys.stderr.write("---- handoff-web's log (the end) ----\n%s\n" % f.net.log("web")[-6000:])
            self.assertEqual(r.returncode, 0, "fhir_story.js failed (above)")
            self.assertIn("the story ran", r.stdout)
        finally:
            f.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
