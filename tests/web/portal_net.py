"""A real clinic network for the portal's tests, on 127.0.0.1 with ports the programs choose:
CURVE keys made with `handoff keygen`, the broker, intake, triage, scheduling (the sample
directory), and handoff-web hosting every clinic of it and the network's reviewer. Every
process is stopped when the network is closed, also when a test fails (a `with` block, and
atexit for anything left).

Users (password PASSWORD): CLINIC.clinician, CLINIC.desk, CLINIC.admin for each clinic,
review.reviewer and network.admin.

Environment: HX_SOURCE_DIR (the checkout), HX_BUILD_DIR (the build to test)."""
import atexit
import datetime
import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

PASSWORD = "portal-test-password"
SOURCE = os.environ.get("HX_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("HX_BUILD_DIR", os.path.join(SOURCE, "build"))
_live = []


def _stop_all():
    for net in list(_live):
        net.close()


atexit.register(_stop_all)


def wait_for(what, check, timeout=60.0, every=0.05):
    """Polls check() until it returns something true (returned) or timeout passes (raises)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(every)


class Network:
    """data_key: the broker, scheduling and the portal seal what they keep with one data key
    (keys/data.key), and both write audit logs; the CLI given home=self.home (the portal's)
    derives the hosted clinics' store keys from it as the portal does. hosted: the clinics the
    portal hosts (default: all of the directory's)."""

    def __init__(self, web_args=(), directory=None, data_key=False, hosted=None, accounts=None):
        self.dir = tempfile.mkdtemp(prefix="hx-portal-")
        self.accounts_url = accounts
        self.procs = {}
        self.bin = BUILD
        self.directory = directory or os.path.join(SOURCE, "deploy", "sample", "directory.json")
        self.home = os.path.join(self.dir, "home")
        self.data_key = None
        with open(self.directory) as f:
            self.clinics = [c["id"] for c in json.load(f)["clinics"]]
        self.hosted = list(hosted) if hosted else list(self.clinics)
        self._want_data_key = data_key
        _live.append(self)
        try:
            self._keys()
            self._start_network()
            self._users()
            self.start_web(*web_args)
        except BaseException:
            self.close()
            raise

    # ---- processes -----------------------------------------------------------------------
    def _spawn(self, name, args, env=None):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(args, stdout=log, stderr=log, env=e, start_new_session=True)
        log.close()
        self.procs[name] = p
        return p

    def log(self, name):
        try:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode if p else None

    def close(self):
        """Stops every process (the portal first). Raises when one did not exit cleanly (a
        non-zero status, or a sanitizer's report in its log: the ASan suite runs these too)."""
        problems = []
        for name in list(self.procs)[::-1]:
            rc = self.stop(name)
            if rc not in (0, None):
                problems.append("%s exited %s" % (name, rc))
            if "Sanitizer" in self.log(name):
                problems.append("%s: a sanitizer reported:\n%s" % (name, self.log(name)[-4000:]))
        if self in _live:
            _live.remove(self)
        if os.environ.get("HX_KEEP_PORTAL_DIR") or problems:
            print("portal test data kept in", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the network ---------------------------------------------------------------------
    def handoff(self, *args, clinic=None, check=True, home=None):
        """The CLI as clinic, on the portal's home (with the data key, if any), or on home."""
        cmd = [os.path.join(self.bin, "services", "cli", "handoff")]
        env = dict(os.environ, HANDOFF_HOME=home or self.home, HANDOFF_BROKER=self.broker,
                   HANDOFF_SERVER_KEY=os.path.join(self.keys, "broker.pub"))
        if self.data_key and not home:
            env["HANDOFF_DATA_KEY"] = self.data_key
        if clinic:
            cmd += ["--clinic", clinic, "--key", os.path.join(self.keys, clinic + ".key")]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, env=env, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError("handoff %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def _keys(self):
        self.keys = os.path.join(self.dir, "keys")
        os.makedirs(self.keys)
        self.broker = ""
        names = ["broker", "intake", "triage", "scheduling", "review"] + self.clinics
        for n in names:
            subprocess.run([os.path.join(self.bin, "services", "cli", "handoff"), "--dir", self.keys, "keygen", n],
                           check=True, capture_output=True)
        def pub(n):
            with open(os.path.join(self.keys, n + ".pub")) as f:
                return f.read().strip()

        with open(os.path.join(self.keys, "allow.txt"), "w") as f:
            for c in self.clinics:
                f.write("%s clinic %s\n" % (pub(c), c))
            for s in ("intake", "triage", "scheduling"):
                f.write("%s service %s\n" % (pub(s), s))
            f.write("%s reviewer review\n" % pub("review"))
        if self._want_data_key:
            self.data_key = os.path.join(self.keys, "data.key")
            subprocess.run([os.path.join(self.bin, "services", "cli", "handoff"), "datakey", self.data_key],
                           check=True, capture_output=True)

    def _sealed(self, audit):
        """The options of a program that seals with the data key and keeps an audit log."""
        if not self.data_key:
            return []
        return ["--data-key", self.data_key, "--audit", os.path.join(self.dir, audit)]

    def _start_network(self):
        ready = os.path.join(self.dir, "broker.endpoint")
        self._spawn("broker", [os.path.join(self.bin, "broker", "handoff-broker"), "--bind", "tcp://127.0.0.1:*",
                               "--data", os.path.join(self.dir, "broker"), "--curve-secret",
                               os.path.join(self.keys, "broker.key"), "--allow",
                               os.path.join(self.keys, "allow.txt"), "--ready-file", ready] +
                    self._sealed("broker-audit.jsonl"))
        def endpoint():
            if not os.path.exists(ready):
                return None
            with open(ready) as f:
                return f.read().strip()

        self.broker = wait_for("the broker's endpoint", endpoint, timeout=30)
        env = {"HANDOFF_BROKER": self.broker, "HANDOFF_SERVER_KEY": os.path.join(self.keys, "broker.pub")}
        # the calendar starts on the first Monday after today, 08:00: which therapist is free
        # first depends on the weekday, and the sample stories (a declined handoff booked again
        # at another clinic) are written for a Monday (test_collab_story starts on one too)
        day = datetime.date.today() + datetime.timedelta(days=1)
        day += datetime.timedelta(days=(7 - day.weekday()) % 7)
        start = day.strftime("%Y-%m-%dT08:00")
        svc = os.path.join(self.bin, "services")
        self._spawn("intake", [os.path.join(svc, "intake", "handoff-intake"), "--db",
                               os.path.join(self.dir, "intake.db"), "--key", os.path.join(self.keys, "intake.key")],
                    env)
        self._spawn("triage", [os.path.join(svc, "triage", "handoff-triage"), "--rules",
                               os.path.join(SOURCE, "services", "triage", "rules.json"), "--key",
                               os.path.join(self.keys, "triage.key")], env)
        self._spawn("scheduling", [os.path.join(svc, "scheduling", "handoff-scheduling"), "--directory",
                                   self.directory, "--start", start, "--db", os.path.join(self.dir, "scheduling.db"),
                                   "--key", os.path.join(self.keys, "scheduling.key"), "--reviewers", "review"] +
                    self._sealed("scheduling-audit.jsonl"), env)

    def accounts(self):
        """The portal's accounts store: the one given (a PostgreSQL URL), else a file here."""
        return self.accounts_url or os.path.join(self.dir, "web-accounts.db")

    def web_user(self, *args, password=PASSWORD, check=True):
        r = subprocess.run([os.path.join(self.bin, "services", "web", "handoff-web"), "user"] + list(args) +
                           ["--accounts", self.accounts()], input=password + "\n", capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("handoff-web user %s: %s" % (" ".join(args), r.stderr))
        return r

    def _users(self):
        for c in self.clinics:
            self.web_user("add", c + ".clinician", "--role", "clinician", "--clinic", c)
            self.web_user("add", c + ".desk", "--role", "front-desk", "--clinic", c)
            self.web_user("add", c + ".admin", "--role", "clinic-admin", "--clinic", c)
        self.web_user("add", "review.reviewer", "--role", "reviewer")
        self.web_user("add", "network.admin", "--role", "network-admin")

    def start_web(self, *extra, name="web", hosted=None, home=None, reviewers=True):
        """Starts a portal (name: its process and log; a second one beside the first takes
        hosted: its clinics, home: a home of its own, reviewers=False: not the reviewers'
        mailbox). Its address in self.url (the first's) or the return value."""
        self.stop(name)
        log = os.path.join(self.dir, name + ".log")
        if os.path.exists(log):
            os.rename(log, log + ".%d" % time.monotonic_ns())
        clinics = " ".join("%s=%s" % (c, os.path.join(self.keys, c + ".key")) for c in (hosted or self.hosted))
        if self.data_key:
            extra = ("--data-key", self.data_key) + tuple(extra)
        review = ["--reviewers", "review=" + os.path.join(self.keys, "review.key")] if reviewers else []
        self._spawn(name, [os.path.join(self.bin, "services", "web", "handoff-web"), "serve", "--listen",
                           "127.0.0.1:0", "--accounts", self.accounts(), "--home", home or self.home,
                           "--broker", self.broker, "--server-key", os.path.join(self.keys, "broker.pub"),
                           "--clinics", clinics] + review + ["--sync-ms", "200"] + list(extra))
        port = wait_for("handoff-web to listen",
                        lambda: (re.search(r"^listening (\d+)$", self.log(name), re.M) or [None, None])[1],
                        timeout=30)
        url = "http://127.0.0.1:%s" % port
        if name == "web":
            self.url = url
        wait_for("handoff-web ready", lambda: self._ready(url), timeout=60)
        return url

    def _ready(self, url=None):
        try:
            with urllib.request.urlopen((url or self.url) + "/readyz", timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def submit(self, clinic, referral):
        """Submits a referral (a dict) with the CLI as clinic; returns its referral id."""
        path = os.path.join(self.dir, "ref-%d.json" % time.monotonic_ns())
        with open(path, "w") as f:
            json.dump(referral, f)
        out = self.handoff("--json", "submit", path, clinic=clinic).stdout
        return json.loads(out)[0]["referral_id"]


def sample_referral(name="01-ankle-sprain.json", **changes):
    with open(os.path.join(SOURCE, "deploy", "sample", "referrals", name)) as f:
        r = json.load(f)
    for k, v in changes.items():
        r[k] = v
    return r


class Browserless:
    """A signed-in HTTP client without a browser (cookies kept), for the security tests."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    def __init__(self, url):
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), self._NoRedirect)

    def request(self, path, form=None, headers=None):
        """(status, headers, body text); never raises for an HTTP status."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, r.headers, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8", "replace")

    def upload(self, path, fields, files):
        """POSTs multipart/form-data: fields {name: value}, files {name: (filename, bytes, type)}."""
        boundary = "----hx%d" % time.monotonic_ns()
        parts = []
        for k, v in fields.items():
            parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' %
                          (boundary, k, v)).encode())
        for k, (name, data, ctype) in files.items():
            parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                          'Content-Type: %s\r\n\r\n' % (boundary, k, name, ctype)).encode() + data + b"\r\n")
        body = b"".join(parts) + ("--%s--\r\n" % boundary).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "multipart/form-data; boundary=" + boundary})
        try:
            with self.opener.open(req, timeout=60) as r:
                return r.status, r.headers, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8", "replace")

    def session(self):
        for c in self.jar:
            if c.name == "hx_session":
                return c.value
        return None

    def login(self, user, password=PASSWORD):
        return self.request("/login", {"user": user, "password": password})

    def csrf(self, path="/"):
        status, _, body = self.request(path)
        m = re.search(r'name="csrf" value="([^"]+)"', body)
        return m.group(1) if m else None
