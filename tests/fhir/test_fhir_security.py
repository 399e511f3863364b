"""Who may do what through the FHIR API, and bad input, against a real network (fhir_net.py):
tokens (none, unknown, malformed, a wrong secret), another clinic's ids (read, search, PATCH,
a post to its referral, its Subscription), scopes, and bad bodies and searches. Each refusal is
an OperationOutcome valid FHIR R4 (or OAuth's error JSON at the token endpoint) with its status,
and nothing is stored: the referrer's ServiceRequests, the receiver's Task and the care thread
stay as they were."""
import copy
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fhir_net as fn  # noqa: E402

JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def bundle(ref):
    with open(os.path.join(fn.HERE, "ankle-sprain.bundle.json")) as f:
        b = json.load(f)
    b["entry"][0]["resource"]["identifier"][0]["value"] = ref
    b["entry"][0]["request"]["ifNoneExist"] = "identifier=urn:handoff:ref|" + ref
    return b


class FhirSecurity(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.f = fn.FhirNet()
        try:
            cls._setup()
        except BaseException:
            cls.f.close()
            raise

    @classmethod
    def _setup(cls):
        f = cls.f
        f.add_client("harbour-emr", fn.REFERRER)
        f.add_client("lakeside-emr", fn.RECEIVER)
        f.add_client("riverdale-emr", fn.OUTSIDER)
        f.add_client("harbour-tasks", fn.REFERRER, "system/Task.rs")
        f.add_client("harbour-locked", fn.REFERRER)
        cls.rt = f.token("harbour-emr")
        cls.vt = f.token("lakeside-emr")
        cls.ot = f.token("riverdale-emr")
        a = f.http("POST", "", cls.rt, bundle("FHIR-SEC-1"))
        assert a.status == 201, a
        cls.rid = a.json["entry"][0]["response"]["location"].split("/")[1]
        cls.task = cls.rid + "-physiotherapy"
        fn.wait_for("the Task at the receiver", lambda: f.get("/Task/" + cls.task, cls.vt).status == 200,
                    timeout=180)
        sub = {"resourceType": "Subscription", "status": "requested", "reason": "security test",
               "criteria": "urn:handoff:topic:owned-task-changed",
               "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook",
                           "payload": "application/fhir+json"}}
        a = f.http("POST", "/Subscription", cls.vt, sub)
        assert a.status == 201, a
        cls.sub = a.json["id"]

    @classmethod
    def tearDownClass(cls):
        cls.f.close()

    # ---- what must not have changed ------------------------------------------------------------
    def sent_total(self):
        a = self.f.get("/ServiceRequest", self.rt)
        self.assertEqual(a.status, 200, a)
        return a.json["total"]

    def receiver_task(self):
        a = self.f.get("/Task/" + self.task, self.vt)
        self.assertEqual(a.status, 200, a)
        return a.json

    def thread(self):
        a = self.f.get("/Communication?based-on=ServiceRequest/" + self.rid, self.rt)
        self.assertEqual(a.status, 200, a)
        return a.json["total"]

    def nothing_stored(self, fn_, *args, **kw):
        """Runs fn_ and asserts the referrer's referrals, the receiver's Task and the care
        thread are as they were; fn_'s result."""
        before = (self.sent_total(), self.receiver_task()["meta"], self.thread())
        got = fn_(*args, **kw)
        after = (self.sent_total(), self.receiver_task()["meta"], self.thread())
        self.assertEqual(before, after, "something was stored")
        return got

    # ---- tokens ---------------------------------------------------------------------------------
    def test_no_or_bad_token_is_401(self):
        for what, headers in (("no token", {}), ("unknown token", {"Authorization": "Bearer " + "A" * 43}),
                              ("expired-looking token", {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}),
                              ("empty bearer", {"Authorization": "Bearer "}),
                              ("basic, not bearer", {"Authorization": "Basic aGFyYm91ci1lbXI6eA=="})):
            for path in ("/Task?owner=Organization/" + fn.RECEIVER, "/ServiceRequest/" + self.rid,
                         "/Patient/%s-patient" % self.rid):
                a = self.f.get(path, None, headers=headers)
                fn.outcome(self, a, 401, "login")
                self.assertTrue(a.headers.get("WWW-Authenticate", "").startswith("Bearer"), (what, a.headers))
                self.assertNotIn("Mendes", a.text)
            if what != "no token" and what != "basic, not bearer":
                self.assertIn('error="invalid_token"', a.headers.get("WWW-Authenticate"), what)
        a = self.nothing_stored(self.f.http, "POST", "", None, bundle("FHIR-SEC-NOAUTH"))
        fn.outcome(self, a, 401, "login")

    def test_token_endpoint_refusals(self):
        secret = self.f.clients["harbour-locked"][1]
        # a wrong secret, an unknown client: one answer, invalid_client
        for basic in (("harbour-locked", secret[:-1] + ("A" if secret[-1] != "A" else "B")), ("nobody", secret)):
            a = self.f.token_request({"grant_type": "client_credentials"}, basic=basic)
            self.assertEqual(a.status, 401, a)
            self.assertEqual(a.json["error"], "invalid_client", a)
            self.assertNotIn("access_token", a.json)
        a = self.f.token_request({"grant_type": "client_credentials", "client_id": "harbour-locked",
                                  "client_secret": "not-the-secret"})
        self.assertEqual((a.status, a.json["error"]), (401, "invalid_client"), a)
        a = self.f.token_request({"grant_type": "password", "username": "x", "password": "y"})
        self.assertEqual((a.status, a.json["error"]), (400, "unsupported_grant_type"), a)
        a = self.f.token_request({"grant_type": "client_credentials"})
        self.assertEqual((a.status, a.json["error"]), (401, "invalid_client"), a)
        a = self.f.token_request({"grant_type": "client_credentials"}, basic=self.basic("harbour-tasks"),
                                 )
        self.assertEqual(a.status, 200, a)
        self.assertEqual(a.json["scope"], "system/Task.rs")
        a = self.f.token_request({"grant_type": "client_credentials", "scope": "system/ServiceRequest.c"},
                                 basic=self.basic("harbour-tasks"))
        self.assertEqual((a.status, a.json["error"]), (400, "invalid_scope"), a)
        a = self.f.token_request({"grant_type": "client_credentials"}, basic=self.basic("harbour-emr"),
                                 content_type="application/json")
        self.assertEqual((a.status, a.json["error"]), (400, "invalid_request"), a)
        # the right secret still works after two wrong ones
        self.f.token("harbour-locked")

    def basic(self, name):
        return (name, self.f.clients[name][1])

    # ---- another clinic's ------------------------------------------------------------------------
    def test_other_clinic_reads_nothing(self):
        for path in ("/ServiceRequest/" + self.rid, "/Task/" + self.task, "/Task/" + self.rid,
                     "/Patient/%s-patient" % self.rid, "/PractitionerRole/%s-referrer" % self.rid,
                     "/Appointment/" + self.task, "/Subscription/" + self.sub):
            a = self.f.get(path, self.ot)
            fn.outcome(self, a, 404, "not-found")
            self.assertNotIn("Mendes", a.text)
        # the referrer does not see the receiver's Subscription either
        fn.outcome(self, self.f.get("/Subscription/" + self.sub, self.rt), 404, "not-found")
        for path in ("/Task?owner=Organization/" + fn.RECEIVER, "/Task?based-on=ServiceRequest/" + self.rid,
                     "/ServiceRequest?identifier=urn:handoff:ref|FHIR-SEC-1", "/Patient?name=Mendes",
                     "/Communication?based-on=ServiceRequest/" + self.rid, "/Subscription"):
            a = self.f.get(path, self.ot)
            self.assertEqual(a.status, 200, a)
            self.assertEqual(a.json["total"], 0, (path, a))
            self.assertNotIn("entry", a.json)
        # and the owner does see them (the searches above can find something)
        self.assertEqual(self.f.get("/Task?owner=Organization/" + fn.RECEIVER, self.vt).json["total"], 1)

    def test_other_clinic_changes_nothing(self):
        patch = json.dumps([{"op": "replace", "path": "/status", "value": "accepted"}])
        a = self.nothing_stored(self.f.http, "PATCH", "/Task/" + self.task, self.ot, patch, headers=JSON_PATCH)
        fn.outcome(self, a, 404, "not-found")
        task = self.receiver_task()
        self.assertEqual(task["status"], "ready")
        a = self.nothing_stored(self.f.http, "PUT", "/Task/" + self.task, self.ot, dict(task, status="accepted"))
        fn.outcome(self, a, 404, "not-found")
        post = {"resourceType": "Communication", "status": "completed",
                "basedOn": [{"reference": "ServiceRequest/" + self.rid}], "payload": [{"contentString": "forged"}]}
        a = self.nothing_stored(self.f.http, "POST", "/Communication", self.ot, post)
        fn.outcome(self, a, 404, "not-found", "Communication.basedOn")
        a = self.f.http("DELETE", "/Subscription/" + self.sub, self.ot)
        fn.outcome(self, a, 404, "not-found")
        self.assertEqual(self.f.get("/Subscription/" + self.sub, self.vt).status, 200, "the Subscription is there")
        self.assertNotIn("forged", self.f.get("/Communication?based-on=ServiceRequest/" + self.rid, self.vt).text)

    # ---- scopes --------------------------------------------------------------------------------
    def test_scope_limits(self):
        t = self.f.token("harbour-tasks")
        a = self.nothing_stored(self.f.http, "POST", "", t, bundle("FHIR-SEC-SCOPE"))
        fn.outcome(self, a, 403, "forbidden")
        fn.outcome(self, self.f.get("/ServiceRequest/" + self.rid, t), 403, "forbidden")
        fn.outcome(self, self.f.get("/Patient/%s-patient" % self.rid, t), 403, "forbidden")
        self.assertEqual(self.f.get("/Task/" + self.rid, t).status, 200, "system/Task.rs reads its Tasks")
        patch = json.dumps([{"op": "replace", "path": "/status", "value": "cancelled"}])
        a = self.nothing_stored(self.f.http, "PATCH", "/Task/" + self.rid, t, patch, headers=JSON_PATCH)
        fn.outcome(self, a, 403, "forbidden")

    # ---- bad input ------------------------------------------------------------------------------
    def submit_refused(self, body, status, code=None, expression=None, raw=None, headers=None):
        a = self.nothing_stored(self.f.http, "POST", "", self.rt, raw if raw is not None else body, headers=headers)
        return fn.outcome(self, a, status, code, expression)

    def test_malformed_json(self):
        self.submit_refused(None, 400, "structure", raw='{"resourceType": "Bundle", "type": ',
                            headers={"Content-Type": "application/fhir+json"})
        self.submit_refused(None, 400, raw='[1, 2, 3]', headers={"Content-Type": "application/fhir+json"})

    def test_not_a_bundle(self):
        patient = bundle("FHIR-SEC-PAT")["entry"][1]["resource"]
        self.submit_refused(patient, 400)
        b = bundle("FHIR-SEC-BATCH")
        b["type"] = "batch"
        self.submit_refused(b, 400, expression="Bundle.type")

    def test_unknown_element(self):
        b = bundle("FHIR-SEC-UNKNOWN")
        b["entry"][0]["resource"]["colour"] = "blue"
        issues = self.submit_refused(b, 400, expression="colour")
        self.assertTrue(any("Bundle.entry[0].resource.colour" in e for i in issues for e in i.get("expression", [])),
                        issues)

    def test_too_many_entries(self):
        b = bundle("FHIR-SEC-MANY")
        for i in range(29):
            b["entry"].append({"fullUrl": "urn:uuid:00000000-0000-4000-8000-%012d" % i,
                               "resource": {"resourceType": "DocumentReference", "status": "current",
                                            "content": [{"attachment": {"contentType": "text/plain", "title": "n.txt",
                                                                        "data": "aGVsbG8="}}]},
                               "request": {"method": "POST", "url": "DocumentReference"}})
        self.assertEqual(len(b["entry"]), 33)
        self.submit_refused(b, 413)

    def test_huge_body(self):
        body = '{"resourceType": "Bundle", "type": "transaction", "entry": [], "pad": "%s"}' % ("x" * (5 << 20))
        a = self.nothing_stored(self.f.http, "POST", "", self.rt, body, headers={"Content-Type": "application/fhir+json"},
                                fhir=False)
        self.assertEqual(a.status, 413, a.text[:500])
        if a.json is not None:
            self.f.validator.check(a.json, "the 413 answer")
            self.assertEqual(a.json["resourceType"], "OperationOutcome")

    def test_bad_priority(self):
        b = bundle("FHIR-SEC-PRIO")
        b["entry"][0]["resource"]["priority"] = "whenever"
        self.submit_refused(b, (400, 422), expression="Bundle.entry[0].resource.priority")

    def test_intake_refuses(self):
        b = bundle("FHIR-SEC-BORN")
        b["entry"][1]["resource"]["birthDate"] = "2099-01-01"
        self.submit_refused(b, 422, expression="Bundle.entry[1].resource.birthDate")
        b = bundle("FHIR-SEC-NOREASON")
        b["entry"][0]["resource"]["reasonCode"] = [r for r in b["entry"][0]["resource"]["reasonCode"] if "text" not in r]
        self.submit_refused(b, (400, 422), expression="Bundle.entry[0].resource")

    def test_bad_search(self):
        for path in ("/Task?colour=blue", "/ServiceRequest?_count=many", "/Task?_count=100000",
                     "/Task?_include=Patient:nothing", "/Communication?_sort=date"):
            a = self.f.get(path, self.rt)
            fn.outcome(self, a, 400)

    def test_task_bad_changes(self):
        # an element a client may not change; a PATCH that is not JSON Patch; a PUT with another id
        patch = json.dumps([{"op": "replace", "path": "/intent", "value": "plan"}])
        a = self.nothing_stored(self.f.http, "PATCH", "/Task/" + self.task, self.vt, patch, headers=JSON_PATCH)
        fn.outcome(self, a, (400, 422), expression="Task.intent")
        a = self.nothing_stored(self.f.http, "PATCH", "/Task/" + self.task, self.vt, '{"status": "accepted"}',
                                headers=JSON_PATCH)
        fn.outcome(self, a, 400)
        task = copy.deepcopy(self.receiver_task())
        task["id"] = self.rid
        a = self.nothing_stored(self.f.http, "PUT", "/Task/" + self.task, self.vt, dict(task, status="accepted"))
        fn.outcome(self, a, 400, expression="Task.id")
        self.assertEqual(self.receiver_task()["status"], "ready")


if __name__ == "__main__":
    unittest.main(verbosity=2)
