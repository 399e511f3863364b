#!/usr/bin/python3
"""Handoff's broker side by side with RabbitMQ and NATS JetStream (bench/README.md, "The peers").

Starts its own RabbitMQ node and nats-server on 127.0.0.1 (free ports, everything in one
temporary directory: data, logs, config, Erlang cookie, and an epmd of its own), never the
system services. Then ROUNDS interleaved rounds, each of:

  handoff-bench --mode submit --producers 1 --window W --size S --count N
  handoff-bench-peer --peer rabbitmq --op submit   (the same N, S, W)
  handoff-bench-peer --peer nats     --op submit
  handoff-bench --mode deliver --count N --size S --batch B --workers C
  handoff-bench-peer --peer rabbitmq --op deliver  (prefill untimed, then C consumers)
  handoff-bench-peer --peer nats     --op deliver

and prints per system the median (min-max) of submit and deliver msgs/s and of submit p99,
Handoff's ratio to each peer, and one JSON line with every figure. Every run must report
nothing lost and nothing duplicated. Stops everything it started and removes the temporary
directory on success, failure and Ctrl-C (--keep keeps it).

Exit status: 0 all runs checked out; 1 a run failed or lost/doubled something; 2 a server
did not start; 130 interrupted."""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
SYSTEMS = ("handoff", "rabbitmq", "nats")
START_TIMEOUT_S = 120          # Erlang boots slowly on a loaded 2-core machine
RUN_TIMEOUT_S = 1800           # one measurement; a hang is a failure, not a wait forever
STOP_GRACE_S = 20


class Failure(Exception):
    """A run or a server failed; the message says which and why."""

    def __init__(self, msg, code=1):
        super().__init__(msg)
        self.code = code


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds [3]")
    p.add_argument("--count", type=int, default=200000, help="messages per run [200000]")
    p.add_argument("--size", type=int, default=1024, help="payload bytes [1024]")
    p.add_argument("--window", type=int, default=1000, help="submit: publishes outstanding [1000]")
    p.add_argument("--batch", type=int, default=100,
                   help="deliver: Handoff FETCH/ACK batch, RabbitMQ prefetch, NATS Fetch size [100]")
    p.add_argument("--consumers", type=int, default=4,
                   help="deliver: Handoff sessions (handoff-bench --workers), RabbitMQ channels, NATS "
                        "pull threads, 1 to 16 [4, handoff-bench's default]")
    p.add_argument("--build-dir", default=os.environ.get("HX_BUILD_DIR", os.path.join(SOURCE, "build")),
                   help="the build holding bench/handoff-bench and bench/handoff-bench-peer "
                        "[$HX_BUILD_DIR or build/]")
    p.add_argument("--rabbitmq-server", default="/usr/lib/rabbitmq/bin/rabbitmq-server",
                   help="the RabbitMQ start script [%(default)s]")
    p.add_argument("--nats-server", default="/usr/sbin/nats-server", help="the nats-server program [%(default)s]")
    p.add_argument("--epmd", default="/usr/bin/epmd", help="Erlang's port mapper [%(default)s]")
    p.add_argument("--tmp", default=os.environ.get("TMPDIR", "/tmp"),
                   help="where the temporary directory goes; all three systems keep their data "
                        "there [$TMPDIR or /tmp]")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and say where")
    a = p.parse_args()
    for name in ("rounds", "count", "size", "window", "batch", "consumers"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if a.consumers > 16:
        p.error("--consumers must be at most 16")
    if a.size < 8:
        p.error("--size must be at least 8 (the peers' payload starts with a sequence number)")
    a.build_dir = os.path.abspath(a.build_dir)
    a.bench = os.path.join(a.build_dir, "bench", "handoff-bench")
    a.peer = os.path.join(a.build_dir, "bench", "handoff-bench-peer")
    for path, what in ((a.bench, "handoff-bench"), (a.peer, "handoff-bench-peer (needs librabbitmq-dev "
                       "and libnats-dev at cmake time; `make bench-peers` installs them)")):
        if not os.access(path, os.X_OK):
            p.error(f"{path}: not found or not executable: build {what} first")
    return a


def free_port():
    # The kernel's choice for a port on 127.0.0.1; closed again at once, so another process
    # could take it before the server binds. The server then fails to start and says so.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=25):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"  ({path}: {e.strerror})"
    return "\n".join("  | " + ln for ln in text.splitlines()[-lines:]) or "  (empty)"


class Proc:
    """A server started in its own process group, so that stopping it stops its children
    (RabbitMQ: the start script, beam.smp, erl_child_setup, inet_gethost)."""

    def __init__(self, name, argv, env, logpath, cwd, procs):
        self.name, self.log = name, logpath
        self.out = open(logpath, "ab")
        try:
            self.p = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self.out,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:
            self.out.close()
            raise Failure(f"{name}: cannot start {argv[0]}: {e.strerror}", 2)
        procs.append(self)      # at once: a signal from here on finds it to stop

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        """SIGTERM to the group, SIGKILL after STOP_GRACE_S; then whatever of the group is
        left (a child that outlived the leader) gets SIGKILL too."""
        if self.alive():
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log(f"{self.name}: still running {STOP_GRACE_S} s after SIGTERM: SIGKILL")
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: pid {self.p.pid} survived SIGKILL")
        self.out.close()


def wait_ready(proc, port, probe, extra_log=None):
    """Polls probe(port) until it answers, the process exits, or START_TIMEOUT_S pass."""
    deadline = time.monotonic() + START_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not proc.alive():
            raise Failure(f"{proc.name} exited with status {proc.p.returncode} before answering on "
                          f"127.0.0.1:{port}; its output ({proc.log}):\n{tail(proc.log)}"
                          + (f"\nits log ({extra_log}):\n{tail(extra_log)}" if extra_log else ""), 2)
        try:
            probe(port)
            return
        except OSError as e:
            last = str(e)
        time.sleep(0.5)
    raise Failure(f"{proc.name} did not answer on 127.0.0.1:{port} within {START_TIMEOUT_S} s ({last}); "
                  f"its output ({proc.log}):\n{tail(proc.log)}"
                  + (f"\nits log ({extra_log}):\n{tail(extra_log)}" if extra_log else ""), 2)


def probe_amqp(port):
    # The AMQP 0-9-1 protocol header; a broker that is up answers with a method frame
    # (type 1: connection.start). A node still booting accepts nothing on the port.
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        first = s.recv(1)
        if first != b"\x01":
            raise OSError(f"unexpected answer to the AMQP header: {first!r}")


def probe_nats(port):
    # nats-server greets every client with an INFO line; JetStream is ready with it.
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        if not s.recv(5).startswith(b"INFO"):
            raise OSError("no INFO greeting")


def start_rabbitmq(a, work, procs):
    d = os.path.join(work, "rabbitmq")
    for sub in ("home", "mnesia", "log", "plugins-expand"):
        os.makedirs(os.path.join(d, sub))
    port, dist, epmd_port = free_port(), free_port(), free_port()
    conf = os.path.join(d, "rabbitmq.conf")
    with open(conf, "w") as f:
        f.write(f"listeners.tcp.1 = 127.0.0.1:{port}\n"
                # the disk alarm would block publishers on a nearly full disk; we want the
                # figures, and the run is bounded by --count
                "disk_free_limit.absolute = 100MB\n"
                "log.file.level = info\n")
    for name in ("rabbitmq-env.conf", "enabled_plugins", "advanced.config"):
        with open(os.path.join(d, name), "w") as f:
            f.write({"enabled_plugins": "[].\n", "advanced.config": "[].\n"}.get(name, ""))
    cookie = os.path.join(d, "home", ".erlang.cookie")
    with open(cookie, "w") as f:
        f.write(os.urandom(16).hex())
    os.chmod(cookie, 0o400)
    env = dict(os.environ)
    env.update({
        "HOME": os.path.join(d, "home"),
        "RABBITMQ_NODENAME": f"handoff-peers-{os.getpid()}@localhost",
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_CONF_ENV_FILE": os.path.join(d, "rabbitmq-env.conf"),   # not /etc/rabbitmq's
        "RABBITMQ_CONFIG_FILE": conf,
        "RABBITMQ_ADVANCED_CONFIG_FILE": os.path.join(d, "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(d, "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": os.path.join(d, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(d, "log"),
        "RABBITMQ_PID_FILE": os.path.join(d, "rabbit.pid"),
        "RABBITMQ_PLUGINS_EXPAND_DIR": os.path.join(d, "plugins-expand"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_EPMD_PORT": str(epmd_port),
    })
    # Our own epmd in the foreground, our child: erl finds it on ERL_EPMD_PORT and starts
    # none itself (one it started would daemonize out of our process group and outlive us).
    if os.access(a.epmd, os.X_OK):
        e = Proc("epmd", [a.epmd, "-port", str(epmd_port), "-address", "127.0.0.1"], env,
                 os.path.join(d, "epmd.out"), d, procs)
        wait_ready(e, epmd_port, lambda p: socket.create_connection(("127.0.0.1", p), timeout=2).close())
    else:
        raise Failure(f"{a.epmd}: not found (erlang-base provides it; `make bench-peers` installs rabbitmq-server)", 2)
    r = Proc("rabbitmq-server", [a.rabbitmq_server], env, os.path.join(d, "server.out"), d, procs)
    node_log = os.path.join(d, "log", env["RABBITMQ_NODENAME"] + ".log")
    wait_ready(r, port, probe_amqp, node_log)
    return port


def start_nats(a, work, procs):
    d = os.path.join(work, "nats")
    os.makedirs(os.path.join(d, "store"))
    port = free_port()
    n = Proc("nats-server", [a.nats_server, "-js", "-sd", os.path.join(d, "store"), "-a", "127.0.0.1",
                             "-p", str(port)], dict(os.environ), os.path.join(d, "server.out"), d, procs)
    wait_ready(n, port, probe_nats)
    return port


def run_json(argv, env, what):
    """Runs one measurement; returns its JSON line, which must say ok. Interrupted or too
    slow, the program gets SIGTERM first: handoff-bench then stops the broker it started
    (SIGKILL, subprocess.run's way, would leave that broker behind)."""
    p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = p.communicate(timeout=RUN_TIMEOUT_S)
    except BaseException as e:
        p.terminate()
        try:
            p.communicate(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
        if isinstance(e, subprocess.TimeoutExpired):
            raise Failure(f"{what}: no result within {RUN_TIMEOUT_S} s: {' '.join(argv)}")
        raise
    p = subprocess.CompletedProcess(argv, p.returncode, stdout, stderr)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    res = None
    if lines:
        try:
            res = json.loads(lines[-1])
        except ValueError:
            pass
    err = "\n".join("  | " + ln for ln in p.stderr.strip().splitlines()[-15:])
    if p.returncode != 0 or res is None or res.get("ok") not in (True, "yes"):
        raise Failure(f"{what} failed (exit status {p.returncode}): {' '.join(argv)}\n"
                      + (f"  result: {lines[-1]}\n" if lines else "  no JSON result\n") + err)
    return res


def measure(a, work, ports):
    env = dict(os.environ, TMPDIR=work)     # handoff-bench's broker log on the same disk as the peers'
    common = ["--count", str(a.count), "--size", str(a.size)]
    res = {s: {"submit": [], "deliver": []} for s in SYSTEMS}
    for rnd in range(1, a.rounds + 1):
        for op in ("submit", "deliver"):
            for system in SYSTEMS:
                if system == "handoff":
                    extra = (["--producers", "1", "--window", str(a.window)] if op == "submit"
                             else ["--batch", str(a.batch), "--workers", str(a.consumers)])
                    argv = [a.bench, "--mode", op, *common, *extra, "--json-only"]
                else:
                    argv = [a.peer, "--peer", system, "--port", str(ports[system]), "--op", op, *common,
                            "--window", str(a.window), "--batch", str(a.batch), "--consumers", str(a.consumers)]
                what = f"round {rnd}/{a.rounds}: {system} {op}"
                log(f"{what} ...")
                r = run_json(argv, env, what)
                if r.get("lost", 0) or r.get("duplicated", 0):
                    raise Failure(f"{what}: lost {r.get('lost')} duplicated {r.get('duplicated')}")
                log(f"{what}: {r['msgs_per_s']:.0f} msg/s" +
                    (f", p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us" if op == "submit" else ""))
                res[system][op].append(r)
    return res


def summarize(a, res):
    def stats(values):
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    out = {"count": a.count, "size": a.size, "window": a.window, "batch": a.batch, "consumers": a.consumers,
           "rounds": a.rounds,
           "systems": {}, "handoff_ratio": {}}
    for s in SYSTEMS:
        out["systems"][s] = {
            "submit_msgs_per_s": stats([r["msgs_per_s"] for r in res[s]["submit"]]),
            "submit_p50_us": stats([r["p50_us"] for r in res[s]["submit"]]),
            "submit_p99_us": stats([r["p99_us"] for r in res[s]["submit"]]),
            "deliver_msgs_per_s": stats([r["msgs_per_s"] for r in res[s]["deliver"]]),
        }
    h = out["systems"]["handoff"]
    for s in SYSTEMS[1:]:
        p = out["systems"][s]
        # throughput: >1 means Handoff faster; p99: >1 means Handoff's tail is longer
        out["handoff_ratio"][s] = {
            "submit_msgs_per_s": round(h["submit_msgs_per_s"]["median"] / p["submit_msgs_per_s"]["median"], 3),
            "deliver_msgs_per_s": round(h["deliver_msgs_per_s"]["median"] / p["deliver_msgs_per_s"]["median"], 3),
            "submit_p99_us": round(h["submit_p99_us"]["median"] / max(p["submit_p99_us"]["median"], 1), 3),
        }
    return out


def print_table(a, out):
    def rng(st, fmt="{:,.0f}"):
        return f"{fmt.format(st['median'])} ({fmt.format(st['min'])}-{fmt.format(st['max'])})"

    print(f"\n{a.count} messages of {a.size} B per run, submit window {a.window}, deliver batch {a.batch} "
          f"with {a.consumers} consumer(s); median (min-max) of {a.rounds} round(s)\n")
    hdr = f"{'system':<10} {'submit msg/s':>28} {'submit p99 us':>28} {'deliver msg/s':>28}"
    print(hdr)
    print("-" * len(hdr))
    for s in SYSTEMS:
        st = out["systems"][s]
        print(f"{s:<10} {rng(st['submit_msgs_per_s']):>28} {rng(st['submit_p99_us']):>28} "
              f"{rng(st['deliver_msgs_per_s']):>28}")
    print()
    for s in SYSTEMS[1:]:
        r = out["handoff_ratio"][s]
        print(f"Handoff / {s:<9} submit x{r['submit_msgs_per_s']:.2f}   deliver x{r['deliver_msgs_per_s']:.2f}   "
              f"submit p99 x{r['submit_p99_us']:.2f} (below 1: Handoff's tail is shorter)")
    print()
    print(json.dumps({"bench": "peers", **out}, separators=(",", ":")))
    sys.stdout.flush()


def main():
    a = parse_args()
    procs = []
    work = None
    code = 0

    def on_signal(signum, frame):
        raise KeyboardInterrupt         # unwinds through the finally below
    # SIGINT too: a shell without job control starts background jobs with it ignored
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    try:
        os.makedirs(a.tmp, exist_ok=True)
        work = tempfile.mkdtemp(prefix="handoff-peers-", dir=a.tmp)
        log(f"temporary directory {work}")
        ports = {}
        log("starting RabbitMQ ...")
        ports["rabbitmq"] = start_rabbitmq(a, work, procs)
        log(f"RabbitMQ answers on 127.0.0.1:{ports['rabbitmq']}")
        log("starting nats-server (JetStream) ...")
        ports["nats"] = start_nats(a, work, procs)
        log(f"nats-server answers on 127.0.0.1:{ports['nats']}")
        print_table(a, summarize(a, measure(a, work, ports)))
    except Failure as e:
        log(f"peers.py: {e}")
        code = e.code
    except KeyboardInterrupt:
        log("peers.py: interrupted; stopping the servers")
        code = 130
    finally:
        # ignore further signals while cleaning up, so a second Ctrl-C cannot leave servers behind
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        for p in reversed(procs):       # RabbitMQ before its epmd
            p.stop()
        if work:
            if a.keep:
                log(f"kept {work}")
            else:
                shutil.rmtree(work, ignore_errors=True)
                if code and code != 130:
                    log(f"removed {work} (with the logs named above); --keep keeps it")
    return code


if __name__ == "__main__":
    sys.exit(main())
