"""Rest-hook subscriptions of the FHIR API (R4 backport) against a real network (fhir_net.py),
delivered to an HTTP server of the test's own on 127.0.0.1: the referrer harbour subscribes to
its sent ServiceRequests (full-resource, with a channel header), the receiver lakeside to its
owned Tasks (id-only), an outsider riverdale to both. Every notification is valid FHIR R4; the
handshake comes first; event numbers go 1, 2, 3... without a gap or a repeat, also across a
restart of handoff-web (with a change made while it was down); each change (book, accept,
start, complete) is notified once; nothing names a resource the subscriber may not read; an
endpoint answering 500 twice gets the same notification again until it answers 200."""
import http.server
import json
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fhir_net as fn  # noqa: E402

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TOPIC_TASK = "urn:handoff:topic:owned-task-changed"
TOPIC_SR = "urn:handoff:topic:sent-service-request-changed"
HOOK_HEADER = "Authorization: Bearer hook-test-credential"


class Hooks:
    """The subscribers' endpoint: every POST recorded by path (its JSON body, its headers and the
    status answered). /flaky answers 500 to the next `flaky_fail` event-notifications."""

    def __init__(self):
        self.cond = threading.Condition()
        self.posts = {}
        self.flaky_fail = 0
        hooks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                code = 200
                with hooks.cond:
                    if (self.path == "/flaky" and hooks.flaky_fail > 0 and body and
                            note_type(body) == "event-notification"):
                        hooks.flaky_fail -= 1
                        code = 500
                    hooks.posts.setdefault(self.path, []).append(
                        {"body": body, "raw": raw, "headers": dict(self.headers), "code": code})
                    hooks.cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got(self, path, delivered=True):
        with self.cond:
            return [p for p in self.posts.get(path, []) if p["code"] == 200 or not delivered]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def params(bundle):
    return {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}


def note_type(bundle):
    try:
        return params(bundle)["type"]["valueCode"]
    except (KeyError, IndexError, TypeError):
        return None


def note_event(bundle):
    """(event number, timestamp, focus reference) of an event-notification."""
    parts = {p["name"]: p for p in params(bundle)["notification-event"]["part"]}
    return (int(parts["event-number"]["valueString"]), parts["timestamp"]["valueInstant"],
            parts.get("focus", {}).get("valueReference", {}).get("reference"))


def subscription(topic, endpoint, payload, header=None):
    ch = {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
          "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": payload}]}}
    if header:
        ch["header"] = [header]
    return {"resourceType": "Subscription", "status": "requested", "reason": "the test's " + topic,
            "criteria": topic, "channel": ch}


class FhirSubscriptions(unittest.TestCase):
    def setUp(self):
        self.hooks = Hooks()
        self.addCleanup(self.hooks.close)
        self.f = fn.FhirNet()
        self.addCleanup(self.f.close)
        for name, clinic in (("harbour-emr", fn.REFERRER), ("lakeside-emr", fn.RECEIVER),
                             ("riverdale-emr", fn.OUTSIDER)):
            self.f.add_client(name, clinic)

    def tokens(self):
        self.rt = self.f.token("harbour-emr")
        self.vt = self.f.token("lakeside-emr")
        self.ot = self.f.token("riverdale-emr")

    def subscribe(self, token, topic, path, payload, header=None):
        a = self.f.http("POST", "/Subscription", token, subscription(topic, self.hooks.url + path, payload, header))
        self.assertEqual(a.status, 201, a)
        self.assertEqual(a.json["criteria"], topic)
        self.assertNotIn("header", a.json["channel"], "the channel header is never shown")
        return a.json["id"]

    def wait_posts(self, path, what, pred, timeout=120):
        return fn.wait_for(what, lambda: pred(self.hooks.got(path)), timeout=timeout)

    def wait_event(self, path, what, focus, timestamp=None, timeout=120):
        """The delivered notification to path about focus (at timestamp, when given)."""
        def find(posts):
            for p in posts:
                if note_type(p["body"]) == "event-notification":
                    n, at, f = note_event(p["body"])
                    if f == focus and (timestamp is None or at == timestamp):
                        return p
            return None
        return self.wait_posts(path, what, find, timeout)

    def check_stream(self, path, sub_id, topic):
        """Every delivered notification to path: valid FHIR R4, of sub_id and topic, the
        handshake first and once, then event numbers 1..n without a gap or a repeat, and no
        (focus, timestamp) notified twice. The events."""
        posts = self.hooks.got(path)
        self.assertTrue(posts, path)
        for i, p in enumerate(posts):
            self.assertIsNotNone(p["body"], "%s: post %d is not JSON" % (path, i))
            self.f.validator.check(p["body"], "%s notification %d" % (path, i))
            b = p["body"]
            self.assertEqual(b["resourceType"], "Bundle")
            self.assertEqual(b["type"], "history")
            pr = params(b)
            self.assertEqual(pr["subscription"]["valueReference"]["reference"], "Subscription/" + sub_id)
            self.assertEqual(pr["topic"]["valueCanonical"], topic)
            self.assertIn("application/fhir+json", p["headers"].get("Content-Type", ""))
        types = [note_type(p["body"]) for p in posts]
        self.assertEqual(types[0], "handshake", "%s: the handshake comes first: %s" % (path, types))
        self.assertEqual(types.count("handshake"), 1, "%s: one handshake: %s" % (path, types))
        events = [note_event(p["body"]) for p in posts if note_type(p["body"]) == "event-notification"]
        numbers = [e[0] for e in events]
        self.assertEqual(numbers, list(range(1, len(events) + 1)), "%s: event numbers: %s" % (path, numbers))
        keys = [(e[1], e[2]) for e in events]
        self.assertEqual(len(keys), len(set(keys)), "%s: a change notified twice: %s" % (path, events))
        for p, e in zip([p for p in posts if note_type(p["body"]) == "event-notification"], events):
            since = params(p["body"])["events-since-subscription-start"]["valueString"]
            self.assertEqual(int(since), e[0], "%s: events-since-subscription-start" % path)
        return events

    def referrer_change(self, rid, status):
        """Waits until the referrer sees its handoff (the child Task) in status, then for its
        notification of the ServiceRequest as it is then (its meta.lastUpdated): that instant."""
        def seen():
            a = self.f.get("/Task/%s-physiotherapy" % rid, self.rt)
            return a.status == 200 and a.json["status"] == status
        fn.wait_for("the handoff %s at the referrer" % status, seen, timeout=120)
        a = self.f.get("/ServiceRequest/" + rid, self.rt)
        self.assertEqual(a.status, 200, a)
        lu = a.json["meta"]["lastUpdated"]
        self.wait_event("/referrer", "the referrer's notification of %s (%s)" % (status, lu),
                        "ServiceRequest/" + rid, lu)
        return lu

    def test_subscriptions(self):
        self.tokens()
        rsub = self.subscribe(self.rt, TOPIC_SR, "/referrer", "full-resource", HOOK_HEADER)
        vsub = self.subscribe(self.vt, TOPIC_TASK, "/receiver", "id-only")
        osubs = [self.subscribe(self.ot, TOPIC_TASK, "/outsider", "id-only"),
                 self.subscribe(self.ot, TOPIC_SR, "/outsider", "full-resource")]
        for path in ("/referrer", "/receiver"):
            self.wait_posts(path, "the handshake at " + path, lambda ps: ps)
        self.wait_posts("/outsider", "the outsider's handshakes", lambda ps: len(ps) >= 2)
        for sub, token in ((rsub, self.rt), (vsub, self.vt)):
            fn.wait_for("subscription %s active" % sub,
                        lambda: self.f.get("/Subscription/" + sub, token).json.get("status") == "active")

        # book: the referrer submits; the receiver's Task appears
        with open(os.path.join(fn.HERE, "ankle-sprain.bundle.json")) as f:
            bundle = json.load(f)
        bundle["entry"][0]["resource"]["identifier"][0]["value"] = "FHIR-SUBS-1"
        bundle["entry"][0]["request"]["ifNoneExist"] = "identifier=urn:handoff:ref|FHIR-SUBS-1"
        a = self.f.http("POST", "", self.rt, bundle)
        self.assertEqual(a.status, 201, a)
        rid = a.json["entry"][0]["response"]["location"].split("/")[1]
        task = rid + "-physiotherapy"

        def booked():
            t = self.f.get("/Task/" + task, self.vt)
            return t.json if t.status == 200 else None
        t = fn.wait_for("the Task at the receiver", booked, timeout=180)
        self.wait_event("/receiver", "book", "Task/" + task, t["meta"]["lastUpdated"])
        self.referrer_change(rid, "ready")

        # accept through the API
        a = self.f.http("PATCH", "/Task/" + task, self.vt, json.dumps([{"op": "replace", "path": "/status",
                                                                        "value": "accepted"}]),
                        headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual(a.status, 200, a)
        self.wait_event("/receiver", "accept", "Task/" + task, a.json["meta"]["lastUpdated"])
        self.referrer_change(rid, "accepted")
        before_restart = {p: len(self.hooks.got(p)) for p in ("/referrer", "/receiver")}

        # handoff-web stops; the receiver starts the handoff meanwhile (the CLI, the same store);
        # once it runs again, that change is notified with the next numbers
        rc = self.f.net.stop("web")
        self.assertEqual(rc, 0, "handoff-web's exit at SIGTERM")
        self.f.net.handoff("start", rid, clinic=fn.RECEIVER)
        self.f.net.start_web(*fn.web_args())
        self.tokens()        # the tokens outlive a restart; new ones are taken anyway below
        t = self.f.get("/Task/" + task, self.vt)
        self.assertEqual(t.json["status"], "in-progress", t)
        self.wait_event("/receiver", "start (made while handoff-web was down)", "Task/" + task,
                        t.json["meta"]["lastUpdated"])
        self.referrer_change(rid, "in-progress")
        for p, n in before_restart.items():
            self.assertEqual(note_event(self.hooks.got(p)[n]["body"])[0],
                             note_event(self.hooks.got(p)[n - 1]["body"])[0] + 1,
                             "%s: the numbering goes on after the restart" % p)

        # a flaky endpoint: the complete event is answered 500 twice, then taken
        with self.hooks.cond:
            self.hooks.flaky_fail = 2
        fsub = self.subscribe(self.vt, TOPIC_TASK, "/flaky", "id-only")
        self.wait_posts("/flaky", "the flaky endpoint's handshake", lambda ps: ps)

        # complete through the API
        a = self.f.http("PATCH", "/Task/" + task, self.vt, json.dumps([
            {"op": "replace", "path": "/status", "value": "completed"},
            {"op": "add", "path": "/output", "value": [{"type": {"text": "summary"}, "valueString": "Done."}]}]),
            headers={"Content-Type": "application/json-patch+json"})
        self.assertEqual(a.status, 200, a)
        done_at = a.json["meta"]["lastUpdated"]
        self.wait_event("/receiver", "complete", "Task/" + task, done_at)
        self.referrer_change(rid, "completed")
        self.wait_event("/flaky", "complete at the flaky endpoint", "Task/" + task, done_at)

        # the receiver: exactly book, accept, start, complete, of its own Task
        ev = self.check_stream("/receiver", vsub, TOPIC_TASK)
        self.assertEqual(len(ev), 4, "the receiver: book, accept, start, complete once each: %s" % ev)
        for n, at, focus in ev:
            self.assertEqual(focus, "Task/" + task)
            self.assertEqual(self.f.get("/" + focus, self.vt).status, 200)
        for p in self.hooks.got("/receiver"):
            self.assertEqual(len(p["body"]["entry"]), 1, "id-only: the status entry only")

        # the referrer: its own ServiceRequest, whole, with the channel header
        ev = self.check_stream("/referrer", rsub, TOPIC_SR)
        self.assertGreaterEqual(len(ev), 4, ev)
        for p in self.hooks.got("/referrer"):
            self.assertEqual(p["headers"].get("Authorization"), HOOK_HEADER.split(": ", 1)[1])
            if note_type(p["body"]) != "event-notification":
                continue
            entries = p["body"]["entry"]
            self.assertEqual(len(entries), 2, "full-resource: the status and the ServiceRequest")
            res = entries[1]["resource"]
            self.assertEqual((res["resourceType"], res["id"]), ("ServiceRequest", rid))
            self.assertGreaterEqual(res["meta"]["lastUpdated"], note_event(p["body"])[1])
            self.assertEqual(res["requester"]["reference"], "PractitionerRole/%s-referrer" % rid)

        # the flaky endpoint: the same notification three times (500, 500, 200), then nothing new
        tries = [p for p in self.hooks.got("/flaky", delivered=False) if note_type(p["body"]) == "event-notification"]
        self.assertEqual([p["code"] for p in tries], [500, 500, 200], "retries until it answered 200")
        # the same notification each time: its id, number, instant and focus (its status
        # parameter says "error" while the endpoint fails, as the backport has it)
        same = {(p["body"]["id"], note_event(p["body"])) for p in tries}
        self.assertEqual(len(same), 1, "the same notification each time: %s" % [p["raw"] for p in tries])
        self.assertEqual([params(p["body"])["status"]["valueCode"] for p in tries], ["active", "error", "error"])
        self.check_stream("/flaky", fsub, TOPIC_TASK)
        s = self.f.get("/Subscription/" + fsub, self.vt).json
        self.assertEqual(s["status"], "active", s)

        # the outsider: its handshakes and nothing else
        posts = self.hooks.got("/outsider")
        self.assertEqual(sorted(note_type(p["body"]) for p in posts), ["handshake", "handshake"],
                         "the outsider learns nothing of the referral")
        for p in posts:
            self.assertNotIn(rid.encode(), p["raw"])
            self.f.validator.check(p["body"], "an outsider's handshake")
        self.assertEqual(sorted(params(p["body"])["subscription"]["valueReference"]["reference"] for p in posts),
                         sorted("Subscription/" + s for s in osubs))


if __name__ == "__main__":
    unittest.main(verbosity=2)
