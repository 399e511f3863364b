"""The FHIR API's tests' network: tests/web/portal_net.py's real clinic network with handoff-web
serving /fhir/r4 (the sample directory, http:// rest-hooks allowed, quick retries), API clients
made with `handoff-web client add`, plain HTTP requests, and the FHIR R4 JSON schema check
(tests/fhir/fhir_validate.js, a node process) that every answer of the API goes through.

Environment: HX_SOURCE_DIR, HX_BUILD_DIR (as portal_net.py)."""
import base64
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "web"))
import portal_net as pn  # noqa: E402

wait_for = pn.wait_for
sample_referral = pn.sample_referral
NODE = os.environ.get("HX_NODE", "node")

# The ankle sprain of deploy/sample/referrals/01-ankle-sprain.json: harbour refers, scheduling
# books physiotherapy at lakeside (its preferred clinic).
REFERRER = "harbour"
RECEIVER = "lakeside"
OUTSIDER = "riverdale"

ALL_SCOPES = ("system/ServiceRequest.crs system/Task.rus system/Communication.crs system/Patient.rs "
              "system/Practitioner.rs system/PractitionerRole.rs system/Organization.rs system/Location.rs "
              "system/Appointment.rs system/DocumentReference.rs system/Binary.r system/Subscription.cruds")


def web_args():
    return ("--directory", os.path.join(pn.SOURCE, "deploy", "sample", "directory.json"), "--fhir-http-hooks",
            "--fhir-retry-ms", "100", "--fhir-retry-max-ms", "400")


class Validator:
    """The FHIR R4 JSON schema, asked through one node process (fhir_validate.js)."""

    def __init__(self):
        self.p = subprocess.Popen([NODE, os.path.join(HERE, "fhir_validate.js")], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, cwd=HERE)
        self.checked = 0

    def errors(self, doc):
        self.p.stdin.write(json.dumps(doc) + "\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("the FHIR schema check (node fhir_validate.js) stopped")
        self.checked += 1
        return json.loads(line)["errors"]

    def check(self, doc, what):
        errs = self.errors(doc)
        if errs:
            raise AssertionError("%s is not valid FHIR R4 (JSON schema):\n  %s\n%s" %
                                 (what, "\n  ".join(errs), json.dumps(doc, indent=1)[:4000]))

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()


class Answer:
    def __init__(self, status, headers, text):
        self.status = status
        self.headers = headers
        self.text = text
        try:
            self.json = json.loads(text) if text else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return "HTTP %d %s" % (self.status, self.text[:2000])


class FhirNet:
    """A network, its API clients (name -> (clinic, secret)) and the schema check. Every JSON
    answer of the API that is a FHIR resource is checked against the schema as it comes."""

    def __init__(self):
        self.validator = Validator()
        try:
            self.net = pn.Network(web_args=web_args())
        except BaseException:
            self.validator.close()
            raise
        self.clients = {}

    @property
    def base(self):
        return self.net.url + "/fhir/r4"

    def close(self):
        try:
            self.net.close()
        finally:
            self.validator.close()

    def restart_web(self):
        """Stops handoff-web with SIGTERM (asserting a clean exit) and starts it again with the
        same accounts, home and options."""
        rc = self.net.stop("web")
        if rc != 0:
            raise AssertionError("handoff-web exited %s at SIGTERM:\n%s" % (rc, self.net.log("web")[-3000:]))
        self.net.start_web(*web_args())

    # ---- clients and tokens ---------------------------------------------------------------
    def add_client(self, name, clinic, scopes=None):
        cmd = [os.path.join(pn.BUILD, "services", "web", "handoff-web"), "client", "add", name, "--clinic", clinic,
               "--accounts", self.net.accounts()]
        if scopes is not None:
            cmd += ["--scopes", scopes]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("handoff-web client add %s: exit %d: %s" % (name, r.returncode, r.stderr))
        found = re.findall(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])", r.stdout)
        if not found:
            raise AssertionError("handoff-web client add %s printed no secret: %r" % (name, r.stdout))
        self.clients[name] = (clinic, found[-1])
        return found[-1]

    def token_request(self, form, basic=None, content_type="application/x-www-form-urlencoded"):
        headers = {"Content-Type": content_type}
        if basic:
            headers["Authorization"] = "Basic " + base64.b64encode(("%s:%s" % basic).encode()).decode()
        return self.http("POST", "/token", body=urllib.parse.urlencode(form).encode(), headers=headers, fhir=False)

    def token(self, name, scope=None):
        clinic, secret = self.clients[name]
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        a = self.token_request(form, basic=(name, secret))
        if a.status != 200 or not a.json or "access_token" not in a.json:
            raise AssertionError("token for %s: %r" % (name, a))
        return a.json["access_token"]

    # ---- requests -------------------------------------------------------------------------
    def http(self, method, path, token=None, body=None, headers=None, fhir=True):
        """One request to the API (path below /fhir/r4, or a whole URL); its answer, a FHIR JSON
        one checked against the schema (fhir=False: not, e.g. the token endpoint's)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/fhir+json")
        elif isinstance(body, str):
            body = body.encode()
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                a = Answer(r.status, r.headers, r.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            a = Answer(e.code, e.headers, e.read().decode("utf-8", "replace"))
        if fhir and a.text:
            if a.json is None:
                raise AssertionError("%s %s: the answer is not JSON: %r" % (method, path, a))
            self.validator.check(a.json, "%s %s -> %d" % (method, path, a.status))
        return a

    def get(self, path, token, **kw):
        return self.http("GET", path, token, **kw)

    def search_all(self, path, token):
        """Every match of a search, following Bundle.link next (each page checked)."""
        got, pages = [], 0
        a = self.get(path, token)
        while True:
            if a.status != 200:
                raise AssertionError("search %s: %r" % (path, a))
            pages += 1
            got += [e["resource"] for e in a.json.get("entry", []) if e.get("search", {}).get("mode") == "match"]
            nxt = [l["url"] for l in a.json.get("link", []) if l.get("relation") == "next"]
            if not nxt:
                return got, pages, a.json.get("total")
            if pages > 1000:
                raise AssertionError("search %s: more than 1000 pages" % path)
            a = self.get(nxt[0], token)


def outcome(test, a, status, code=None, expression=None, diagnostics=None):
    """Asserts a is an OperationOutcome refusal with status (one of a tuple), the issue code and
    an issue whose expression contains expression."""
    statuses = status if isinstance(status, tuple) else (status,)
    test.assertIn(a.status, statuses, a)
    test.assertIsNotNone(a.json, a)
    test.assertEqual(a.json.get("resourceType"), "OperationOutcome", a)
    issues = a.json.get("issue", [])
    test.assertTrue(issues, a)
    if code:
        test.assertIn(code, [i.get("code") for i in issues], a)
    if expression:
        exprs = [e for i in issues for e in i.get("expression", [])]
        test.assertTrue(any(expression in e for e in exprs), "no issue's expression names %s: %r" % (expression, a))
    if diagnostics:
        test.assertTrue(any(diagnostics in i.get("diagnostics", "") for i in issues), a)
    return issues
