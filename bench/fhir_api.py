#!/usr/bin/python3
"""The FHIR API's cost as a clinic's store grows (bench/README.md, "FHIR API").

Starts a real network on 127.0.0.1 (tests/fhir's harness: broker, intake, triage, scheduling
and handoff-web with API clients), made for the purpose by handoff-gen: two clinics, the
referrer and the receiver, with enough therapists that scheduling books nearly every referral. The
referrer submits generated referrals (`handoff import`, NDJSON), every one asking for the
receiver; once the receiver's store holds their handoffs and the referrer's their status
updates, each kind of request below is timed over one keep-alive connection, and the store is
grown to the next size. Sizes are cumulative: 100,1000,5000 submits 100, then 900, then 4000.

Kinds timed (the receiver's token unless noted):
  task-read      GET /Task/ID (a child Task: the receiver's handoff), IDs taken in turn
  task-search    GET /Task?owner=Organization/RECEIVER&status=ready&_count=50
  sr-read        GET /ServiceRequest/ID (the referral), IDs taken in turn
  ref-task-read  GET /Task/ID (a parent Task) with the referrer's token: its store holds the
                 whole referrals it sent and their status updates

Environment: HX_BUILD_DIR (the build to run; default build/), HX_SOURCE_DIR (the checkout).
Not part of the test suite: `make bench-fhir` runs it with the defaults."""
import argparse
import base64
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, ".."))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100,1000,5000",
                   help="referrals in the store at each measurement, increasing [100,1000,5000]")
    p.add_argument("--requests", type=int, default=200, help="timed requests of each kind per size [200]")
    p.add_argument("--kind-budget-s", type=float, default=25.0,
                   help="stop timing a kind after this many seconds (at least 30 requests) [25]")
    p.add_argument("--warmup", type=int, default=5, help="untimed requests of each kind first [5]")
    p.add_argument("--build-dir", default=os.environ.get("HX_BUILD_DIR", os.path.join(SOURCE, "build")),
                   help="the build whose programs run [$HX_BUILD_DIR or build/]")
    p.add_argument("--therapists", type=int, default=240,
                   help="therapists of the two generated clinics (slots for every referral) [240]")
    p.add_argument("--seed", type=int, default=7, help="handoff-gen's seed [7]")
    p.add_argument("--settle-s", type=float, default=600.0,
                   help="at most this long for the network to deliver one size's referrals [600]")
    p.add_argument("--perf", metavar="FILE",
                   help="record handoff-web with perf (DWARF call graphs, 200 Hz) into FILE while the "
                        "last size is timed")
    p.add_argument("--json", action="store_true", help="also print one JSON line per size")
    a = p.parse_args()
    try:
        a.size_list = [int(s) for s in a.sizes.split(",")]
    except ValueError:
        p.error("--sizes: a comma-separated list of integers, got %r" % a.sizes)
    if not a.size_list or any(s < 1 or s > 50000 for s in a.size_list) or a.size_list != sorted(set(a.size_list)):
        p.error("--sizes: increasing integers from 1 to 50000, got %r" % a.sizes)
    if not 1 <= a.requests <= 100000:
        p.error("--requests: must be from 1 to 100000, got %d" % a.requests)
    if not 0 <= a.warmup <= 1000:
        p.error("--warmup: must be from 0 to 1000, got %d" % a.warmup)
    if not 2 <= a.therapists <= 10000:
        p.error("--therapists: must be from 2 to 10000, got %d" % a.therapists)
    return a


ARGS = parse_args()
os.environ["HX_BUILD_DIR"] = os.path.abspath(ARGS.build_dir)
os.environ.setdefault("HX_SOURCE_DIR", SOURCE)
sys.path.insert(0, os.path.join(SOURCE, "tests", "fhir"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "web"))
import portal_net as pn  # noqa: E402
import fhir_net  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---- the generated network and its referrals ---------------------------------------------------

def generate(work, count, therapists, seed):
    """handoff-gen's two clinics and `count` referrals of the first one, each asking for the
    second; (directory path, referrer, receiver, [referral dicts])."""
    gen = os.path.join(pn.BUILD, "services", "gen", "handoff-gen")
    out = os.path.join(work, "gen")
    ndjson = os.path.join(work, "generated.ndjson")
    # the referrals come from either clinic (not quite half each): enough of the referrer's
    r = subprocess.run([gen, "--clinics", "2", "--therapists", str(therapists), "--referrals", str(count * 3 + 200),
                        "--seed", str(seed), "--out", out, "--ndjson", ndjson,
                        "--rules", os.path.join(SOURCE, "services", "triage", "rules.json")],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit("handoff-gen: exit %d: %s" % (r.returncode, r.stderr))
    directory = os.path.join(out, "directory.json")
    with open(directory) as f:
        clinics = [c["id"] for c in json.load(f)["clinics"]]
    referrer, receiver = clinics[0], clinics[1]
    mine, theirs = [], []
    with open(ndjson) as f:
        for line in f:
            ref = json.loads(line)
            (mine if ref["referrer"]["clinic_id"] == referrer else theirs).append(ref)
    # scheduling books the clinic nearest the patient: each patient gets the postal code of one
    # of the receiver's own patients (moved there), and asks for the receiver in person
    codes = [r["patient"]["postal_code"] for r in theirs if r["patient"].get("postal_code")]
    if not codes:
        raise SystemExit("handoff-gen gave no patient of %s a postal code" % receiver)
    refs = []
    for i, ref in enumerate(mine[:count]):
        ref["patient"]["postal_code"] = codes[i % len(codes)]
        ref.setdefault("preferences", {})["clinic_ids"] = [receiver]
        ref["preferences"]["virtual_ok"] = False
        refs.append(ref)
    if len(refs) < count:
        raise SystemExit("handoff-gen gave only %d referrals of %s" % (len(refs), referrer))
    return directory, referrer, receiver, refs


# ---- the API over one keep-alive connection ----------------------------------------------------

class Api:
    def __init__(self, url, client, secret):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.client, self.secret = client, secret
        self.conn = None
        self.token = None
        self.reconnects = 0
        self.renew()

    def _connect(self):
        if self.conn:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def renew(self):
        """A fresh token (they expire) and a fresh connection."""
        self._connect()
        basic = base64.b64encode(("%s:%s" % (self.client, self.secret)).encode()).decode()
        status, body = self.request("POST", "/fhir/r4/token", body=b"grant_type=client_credentials",
                                    headers={"Authorization": "Basic " + basic,
                                             "Content-Type": "application/x-www-form-urlencoded"}, auth=False)
        if status != 200:
            raise SystemExit("token for %s: HTTP %d %s" % (self.client, status, body[:500]))
        self.token = json.loads(body)["access_token"]

    def request(self, method, path, body=None, headers=None, auth=True):
        """(status, body); a GET whose keep-alive connection the server had closed is sent once
        more on a new one (counted in self.reconnects)."""
        h = dict(headers or {})
        if auth:
            h["Authorization"] = "Bearer " + self.token
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                if method != "GET" or attempt == 2:
                    raise
                log("  %s %s: %s; again on a new connection" % (method, path, e.__class__.__name__))
                self.reconnects += 1
                self._connect()
        if r.getheader("Connection", "").lower() == "close":
            self._connect()
        return r.status, data

    def get(self, path):
        status, data = self.request("GET", "/fhir/r4" + path)
        if status != 200:
            raise SystemExit("GET %s: HTTP %d %s" % (path, status, data[:500]))
        return json.loads(data)

    def total(self, query):
        return self.get(query).get("total", 0)

    def close(self):
        if self.conn:
            self.conn.close()


def time_kind(api, paths, warmup, count, budget_s):
    """Latencies (ms) of count GETs (fewer, but at least 30, once budget_s has passed), taking
    paths in turn, after warmup untimed ones; also the answers' mean size in bytes."""
    for i in range(warmup):
        api.request("GET", "/fhir/r4" + paths[i % len(paths)])
    lat, size = [], 0
    until = time.monotonic() + budget_s
    for i in range(count):
        if i >= 30 and time.monotonic() > until:
            break
        path = "/fhir/r4" + paths[i % len(paths)]
        t0 = time.perf_counter()
        status, data = api.request("GET", path)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if status != 200:
            raise SystemExit("GET %s: HTTP %d %s" % (path, status, data[:500]))
        size += len(data)
    return lat, size // len(lat)


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def rss_kb(pid):
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                got[k] = int(v.split()[0])
    return got.get("VmRSS", 0), got.get("VmHWM", 0)


def du_kb(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_blocks // 2
            except OSError:
                pass
    return total


def start_perf(pid):
    p = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "--call-graph", "dwarf", "-F", "200",
                          "-p", str(pid), "-o", ARGS.perf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # perf attaches to every thread before the first timed request
    if p.poll() is not None:
        raise SystemExit("perf record: exit %d: %s" % (p.returncode, p.stderr.read()))
    return p


def stop_perf(p):
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log("  perf record: %s (perf report -i %s --no-children)" % (ARGS.perf, ARGS.perf))


# ---- the run -----------------------------------------------------------------------------------

def submit(net, work, clinic, refs, first):
    path = os.path.join(work, "batch-%d.ndjson" % first)
    with open(path, "w") as f:
        for r in refs:
            f.write(json.dumps(r) + "\n")
    t0 = time.monotonic()
    r = net.handoff("--json", "import", path, clinic=clinic, check=False)
    if r.returncode != 0:
        raise SystemExit("handoff import: exit %d: %s %s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    summary = json.loads(r.stdout)
    if summary.get("submitted", 0) != len(refs):
        raise SystemExit("handoff import submitted %s of %d: %s" % (summary.get("submitted"), len(refs),
                                                                   json.dumps(summary.get("errors"))[:2000]))
    return time.monotonic() - t0


def settle(rx, tx, receiver, size, deadline_s):
    """Waits until the referrer's API shows `size` referrals none of which is still waiting
    for scheduling (parent Task requested or received), and the receiver's shows every handoff
    that the referrer was told went to it (a few may be booked at the referrer itself, nearer
    in time); returns (seconds, {parent status: count}, the receiver's handoffs)."""
    t0 = time.monotonic()
    last = None
    while True:
        sent = tx.total("/ServiceRequest?_count=1")
        waiting = tx.total("/Task?code=referral&status=requested,received&_count=1")
        told = tx.total("/Task?code=handoff&owner=Organization/%s&_count=1" % receiver)
        children = rx.total("/Task?code=handoff&_count=1")
        state = (sent, waiting, told, children)
        if state != last:
            log("  %.1f s: referrer %d referrals sent, %d waiting for scheduling, %d handoffs to %s; receiver "
                "%d handoffs" % (time.monotonic() - t0, sent, waiting, told, receiver, children))
            last = state
        if sent >= size and waiting == 0 and children >= told:
            statuses = {s: tx.total("/Task?code=referral&status=%s&_count=1" % s)
                        for s in ("ready", "on-hold", "rejected", "cancelled", "failed")}
            return time.monotonic() - t0, statuses, children
        if time.monotonic() - t0 > deadline_s:
            raise SystemExit("the network did not settle %d referrals in %.0f s" % (size, deadline_s))
        time.sleep(0.5)


def ids_of(api, query, want):
    """Resource ids of the first `want` matches of a search (following next links)."""
    got = []
    b = api.get(query)
    while True:
        got += [e["resource"]["id"] for e in b.get("entry", []) if e.get("search", {}).get("mode") == "match"]
        nxt = [l["url"] for l in b.get("link", []) if l.get("relation") == "next"]
        if len(got) >= want or not nxt:
            return got[:want]
        b = api.get(nxt[0].split("/fhir/r4", 1)[1])


def measure(rx, tx, receiver):
    rx.renew()
    tx.renew()
    tasks = ids_of(rx, "/Task?code=handoff&_count=200", 50)
    srs = ids_of(rx, "/ServiceRequest?_count=200", 50)
    parents = ids_of(tx, "/Task?code=referral&_count=200", 50)
    if not tasks or not srs or not parents:
        raise SystemExit("nothing to read: %d child Tasks, %d ServiceRequests, %d parent Tasks"
                         % (len(tasks), len(srs), len(parents)))
    kinds = [("task-read", rx, ["/Task/" + t for t in tasks]),
             ("task-search", rx, ["/Task?owner=Organization/%s&status=ready&_count=50" % receiver]),
             ("sr-read", rx, ["/ServiceRequest/" + s for s in srs]),
             ("ref-task-read", tx, ["/Task/" + t for t in parents])]
    rows = []
    for name, api, paths in kinds:
        lat, size_b = time_kind(api, paths, ARGS.warmup, ARGS.requests, ARGS.kind_budget_s)
        rows.append({"kind": name, "n": len(lat), "p50_ms": round(pct(lat, 0.50), 2),
                     "p99_ms": round(pct(lat, 0.99), 2),
                     "max_ms": round(max(lat), 2), "mean_ms": round(statistics.fmean(lat), 2), "bytes": size_b})
    return rows


def main():
    for prog in (("services", "gen", "handoff-gen"), ("services", "web", "handoff-web"),
                 ("services", "cli", "handoff")):
        if not os.access(os.path.join(pn.BUILD, *prog), os.X_OK):
            raise SystemExit("%s is not built in %s (make build, or --build-dir)" % (prog[-1], pn.BUILD))
    # SIGTERM ends the run as Ctrl-C does: the network is stopped and the files removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = tempfile.mkdtemp(prefix="hx-fhir-bench-")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    sizes = ARGS.size_list
    log("generating %d referrals (handoff-gen, 2 clinics, %d therapists)" % (sizes[-1], ARGS.therapists))
    directory, referrer, receiver, refs = generate(work, sizes[-1], ARGS.therapists, ARGS.seed)
    web_args = ("--directory", directory, "--fhir-http-hooks")
    log("starting the network (referrer %s, receiver %s)" % (referrer, receiver))
    net = pn.Network(web_args=web_args, directory=directory)
    results = []
    try:
        scopes = fhir_net.ALL_SCOPES
        apis = {}
        for name, clinic in (("bench-rx", receiver), ("bench-tx", referrer)):
            r = subprocess.run([os.path.join(pn.BUILD, "services", "web", "handoff-web"), "client", "add", name,
                                "--clinic", clinic, "--accounts", net.accounts(), "--scopes", scopes],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise SystemExit("handoff-web client add %s: %s" % (name, r.stderr))
            secret = r.stdout.split()[-1] if r.stdout.split() else ""
            for word in r.stdout.split():
                if len(word) == 43:
                    secret = word
            apis[name] = Api(net.url, name, secret)
        rx, tx = apis["bench-rx"], apis["bench-tx"]
        web_pid = net.procs["web"].pid
        done = 0
        for size in sizes:
            log("size %d: submitting %d referrals as %s" % (size, size - done, referrer))
            sub_s = submit(net, work, referrer, refs[done:size], done)
            done = size
            settle_s, statuses, children = settle(rx, tx, receiver, size, ARGS.settle_s)
            rss, _ = rss_kb(web_pid)
            perf = start_perf(web_pid) if ARGS.perf and size == sizes[-1] else None
            try:
                rows = measure(rx, tx, receiver)
            finally:
                stop_perf(perf)
            rss_after, hwm_after = rss_kb(web_pid)
            res = {"referrals": size, "ready": statuses.get("ready", 0), "on_hold": statuses.get("on-hold", 0),
                   "rejected": statuses.get("rejected", 0), "handoffs": children, "submit_s": round(sub_s, 1),
                   "settle_s": round(settle_s, 1), "web_rss_kb": rss_after, "web_hwm_kb": hwm_after,
                   "web_rss_before_kb": rss, "reconnects": rx.reconnects + tx.reconnects,
                   "store_kb": du_kb(os.path.join(net.dir, "home")), "kinds": rows}
            results.append(res)
            print_size(res)
            if ARGS.json:
                print(json.dumps(res), flush=True)
        for a in apis.values():
            a.close()
    finally:
        net.close()
    print_summary(results)


def print_size(res):
    print("\n%d referrals in the store (%d ready, %d on hold, %d rejected; %d handoffs at the receiver); "
          "handoff-web RSS %.1f MiB (peak %.1f); clinic stores %.1f MiB on disk"
          % (res["referrals"], res["ready"], res["on_hold"], res["rejected"], res["handoffs"],
             res["web_rss_kb"] / 1024, res["web_hwm_kb"] / 1024, res["store_kb"] / 1024), flush=True)
    print("  %-14s %5s %9s %9s %9s %9s %8s" % ("kind", "n", "p50 ms", "p99 ms", "max ms", "mean ms", "bytes"))
    for k in res["kinds"]:
        print("  %-14s %5d %9.2f %9.2f %9.2f %9.2f %8d" % (k["kind"], k["n"], k["p50_ms"], k["p99_ms"], k["max_ms"],
                                                           k["mean_ms"], k["bytes"]), flush=True)


def print_summary(results):
    if not results:
        return
    print("\nsummary (p50 / p99 ms; up to %d requests of each kind, %g s at most)" % (ARGS.requests,
                                                                                   ARGS.kind_budget_s))
    kinds = [k["kind"] for k in results[0]["kinds"]]
    print("  %-9s " % "referrals" + " ".join("%-19s" % k for k in kinds) + " web RSS MiB")
    for r in results:
        cells = ["%7.2f / %-9.2f" % (k["p50_ms"], k["p99_ms"]) for k in r["kinds"]]
        print("  %-9d " % r["referrals"] + " ".join("%-19s" % c for c in cells) + " %.1f" % (r["web_rss_kb"] / 1024))


if __name__ == "__main__":
    main()
