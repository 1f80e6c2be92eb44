#!/usr/bin/env python3
"""
bench_driver.py: the figures of `make bench`, each beside a floor
measured in the same run on the same machine. It prints; it never
judges. Run by bench.sh after loadgen is built.

    BENCH_SECS=5 python3 bench_driver.py [section ...]
    sections: connect chat stream memory scale (default: all)

Floors:
  connect  the same loadgen against nginx's `stream` TLS termination
           (Debian's nginx, one worker per core, the same certificate,
           key and greeting bytes, then it closes), and against
           `loadgen serve`: one process per core, the same libtls, no
           process per client. Together they are what TLS itself costs
           here. bench_setup.sh installs nginx; the driver starts it on
           loopback and stops it by pid.
           And bench_relay: a process per client, forked at accept from
           a parent that configured the same libtls, nothing else (no
           sandbox, no pool of workers ready).
           The one-at-a-time figure (-i) leaves each server idle between
           two clients, so that what bridged does after a client (fork
           the next worker, rehearse its handshake) is off the path.
  chat     one direct HTTP request (keep-alive) from loadgen to the
           same fake upstream with the same kind of body, at the same
           concurrency: what the upstream itself costs. Server CPU per
           prompt is bridged's process tree (the upstream not counted)
           beside the fake upstream's own CPU per request. Each session
           of bridged starts a new conversation every 25 prompts (NEW,
           not timed), so that the context sent upstream grows as in a
           real conversation. Beside it, the floor of the shape:
           bench_relay, a process per client, a storage and a provider
           process, for each ASK the same hops and two commits (one
           INSERT each in a WAL SQLite file, synchronous NORMAL), the
           provider's POST to the same upstream (one user turn, a
           keep-alive connection per client, one poll loop) and each
           piece of the streamed answer relayed through the provider
           and the client's process to TLS as it comes, with nothing
           else in them. Its round trip includes the upstream, as
           bridged's does; its CPU is its process tree, its HTTP client
           included, the upstream not counted (nor in bridged's).
           The direct request, bridged and bench_relay take turns
           BENCH_CHAT_ROUNDS times (3); each figure is the median of
           its runs, so that the guest's drift weighs on all alike.
           And the floor of the provider: bench_curl, the same
           requests through libcurl's multi interface on epoll (a new
           easy handle each, the options bridged sets) with each
           streamed event parsed by jansson, as the provider makes
           them, at the same concurrency, nothing else: the libraries
           the design takes for the upstreams, alone. From it, the
           shape's floor with them: bench_relay's CPU with its own
           HTTP client's cost (loadgen's, the direct request's client)
           taken out and libcurl's put in. It takes turns as well.
           And 16 sessions chatting while BENCH_IDLE more are open and
           idle, beside the same 16 alone: what idle sessions cost the
           ones that work (storage and the provider watch a channel of
           every session).
  stream   the same first-event-to-first-byte time for a direct HTTP
           client of the fake upstream.
  memory   `loadgen serve` holding the same number of idle TLS
           sessions in one process; and bench_relay holding them, a
           process per client: the floor of bridged's shape.
  process per client (connect): `loadgen fork`, a process holding as
           much written memory as the template forking a child that
           writes as many pages as a worker holding a session has
           written and reads as many library pages as it has
           referenced (both from the worker's /proc/PID/smaps_rollup),
           then exits and is reaped: what a new process per client
           costs on this machine before any TLS or protocol work.
  scale    two bridged on one PostgreSQL (Debian's, started here by
           pgserver.py, fsync on) behind a real HAProxy in TCP mode,
           against one of them direct: the chat round trip through the
           balancer to two instances beside one instance alone.
"""

import os
import signal
import subprocess
import sys
import time

REGRESS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, REGRESS)
import harness  # noqa: E402
import pgserver  # noqa: E402

LOADGEN = os.path.join(REGRESS, "loadgen")
RELAY = os.path.join(REGRESS, "bench_relay")
CURL = os.path.join(REGRESS, "bench_curl")
UPSTREAM = os.path.join(REGRESS, "bench_upstream.py")
SECS = float(os.environ.get("BENCH_SECS", "5"))
WARM = 1.0
IDLE_SESSIONS = int(os.environ.get("BENCH_IDLE", "500"))
CHAT_ROUNDS = max(1, int(os.environ.get("BENCH_CHAT_ROUNDS", "3")))
PREFORK = 16
PACE_MS = 50            # connect: the pause of the one-at-a-time figure
MODEL = "gemini-2.0-flash"
STREAM_PATH = "/v1beta/models/%s:streamGenerateContent?alt=sse" % MODEL
HZ = os.sysconf("SC_CLK_TCK")


class BenchUpstream:
    """bench_upstream.py (fake_gemini.py plus first-event times)."""

    def __init__(self):
        self.dir = harness.tmpdir("bench-up-")
        self.first_log = os.path.join(self.dir, "first.log")
        portfile = os.path.join(self.dir, "port")
        self.err = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, UPSTREAM, "--first-log", self.first_log,
             "--port", "0", "--port-file", portfile, "--key",
             harness.API_KEY, "--host", "127.0.0.1"],
            stdout=self.err, stderr=self.err)
        harness.wait_for(lambda: os.path.exists(portfile) and
                         open(portfile).read().strip(),
                         what="bench upstream")
        self.port = int(open(portfile).read().strip())
        self.url = "http://127.0.0.1:%d/v1beta" % self.port

    def firsts(self):
        out = {}
        if os.path.exists(self.first_log):
            with open(self.first_log) as f:
                for line in f:
                    p = line.split()
                    if len(p) == 2:
                        out[int(p[0])] = int(p[1])
        return out

    def clear(self):
        if os.path.exists(self.first_log):
            os.unlink(self.first_log)

    def stop(self):
        harness.stop_pid(self.proc.pid)
        self.proc.wait()
        self.err.close()


class BenchDaemon(harness.Daemon):
    """harness.Daemon, started without -v: logging is not measured."""

    def start(self, env=None):
        self.log = open(self.logfile, "a")
        e = dict(os.environ)
        e["BRIDGED_TEST_KEY"] = harness.API_KEY
        self.proc = subprocess.Popen(
            [harness.BRIDGED, "-d", "-f", self.conf], stdout=self.log,
            stderr=self.log, env=e, start_new_session=True)
        self.pid = self.proc.pid
        harness.wait_for(self.ready, timeout=30,
                         what="bridged to start (see %s)" % self.logfile)


class FloorServer:
    """A floor server of this directory's: started with argv, it prints
    "port N" once it listens; stopped by pid."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("%s did not start" % " ".join(argv[:2]))
        self.port = int(line[1])
        self.pid = self.proc.pid

    def stop(self):
        harness.stop_pid(self.pid)
        self.proc.wait()


class Serve(FloorServer):
    """`loadgen serve`: the same libtls, no process per client."""

    def __init__(self, d, procs):
        FloorServer.__init__(self, [LOADGEN, "-c", d.crt, "-k", d.key,
                                    "-p", "0", "-f", str(procs), "serve"])


class Relay(FloorServer):
    """bench_relay, the floor of bridged's shape: a process per client,
    storage and provider, the same hops and commits, nothing else. With
    up, its provider asks that upstream; without, it answers from
    memory."""

    def __init__(self, d, up=None):
        argv = [RELAY, "-c", d.crt, "-k", d.key, "-d",
                os.path.join(harness.tmpdir("relay-"), "relay.db")]
        if up is not None:
            argv += ["-u", str(up.port), "-g", harness.API_KEY, "-P",
                     STREAM_PATH]
        FloorServer.__init__(self, argv)


class Nginx:
    """nginx terminating TLS in its stream module and answering the
    greeting itself: the floor of a real server's connection setup."""

    MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"

    def __init__(self, d):
        nginx = None
        for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx"):
            if os.access(p, os.X_OK):
                nginx = p
        if nginx is None or not os.path.exists(self.MODULE):
            raise RuntimeError("nginx with the stream module is not "
                               "installed (see bench_setup.sh)")
        self.dir = harness.tmpdir("nginx-")
        self.port = harness.free_port()
        greeting = ("ID:000000000000\\nConnected to 127.0.0.1:%d\\n"
                    ". OK bridged/0.1 ready\\n" % self.port)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""load_module %s;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
stream {
	server {
		listen 127.0.0.1:%d ssl;
		ssl_certificate %s;
		ssl_certificate_key %s;
		ssl_protocols TLSv1.2 TLSv1.3;
		return "%s";
	}
}
""" % (self.MODULE, os.cpu_count(), self.dir, self.dir, self.port,
                d.crt, d.key, greeting))
        self.err = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen([nginx, "-p", self.dir, "-c", conf,
                                      "-g", "daemon off;"],
                                     stdout=self.err, stderr=self.err)
        self.pid = self.proc.pid
        harness.wait_for(self.listening, timeout=10, what="nginx")

    def listening(self):
        import socket
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: %s" % open(
                os.path.join(self.dir, "stderr")).read()[-300:])
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            return True
        except OSError:
            return False

    def stop(self):
        harness.stop_pid(self.pid)
        self.proc.wait()
        self.err.close()


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(harness.children_of(p))
    return out


def cpu_ticks(pid):
    """CPU of a process tree, reaped children included, in ticks."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().split(")")[-1].split()
        except OSError:
            continue
        # utime stime cutime cstime: fields 14-17, here 11-14
        total += sum(int(x) for x in st[11:15])
    return total


def faults(pid):
    """Minor page faults of a process tree, reaped children included."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().split(")")[-1].split()
        except OSError:
            continue
        # minflt cminflt: fields 10 and 11, here 7 and 8
        total += int(st[7]) + int(st[8])
    return total


def pss_kib(pid):
    """Proportional set size of a process tree, in KiB."""
    total = 0
    for p in tree(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def run_loadgen(args, timeout=None, prog=LOADGEN):
    """Run loadgen (or bench_curl, which prints as it does); return
    (fields of its result line, other lines)."""
    timeout = timeout or SECS + WARM + 60
    p = subprocess.run([prog] + args, capture_output=True, text=True,
                       timeout=timeout)
    res, rest = None, []
    for line in p.stdout.splitlines():
        w = line.split()
        if w and "=" in line and w[0] in ("connect", "chat", "stream",
                                         "http", "fork", "curl"):
            res = dict(x.split("=", 1) for x in w[1:])
            res["mode"] = w[0]
        else:
            rest.append(line)
    if res is None:
        raise RuntimeError("%s %s: no result (%s)" % (
            os.path.basename(prog), " ".join(args),
            (p.stderr or p.stdout).strip()[-300:]))
    if p.stderr.strip():
        res["stderr"] = p.stderr.strip()
    return res, rest


ROLES = ("parent", "template", "workers", "retired", "storage", "provider",
         "control")


def role_ticks(pid):
    """CPU ticks of a bridged tree by role. A template's reaped workers
    count as workers; the parent's reaped children are the retired
    templates with their workers (each `worker renew` clients)."""
    out = dict((r, 0) for r in ROLES)
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                st = f.read().split(")")[-1].split()
        except OSError:
            continue
        own = int(st[11]) + int(st[12])
        reaped = int(st[13]) + int(st[14])
        title = harness.cmdline(p)
        if p == pid:
            out["parent"] += own
            out["retired"] += reaped
            continue
        role = title.split()[1] if title.startswith("bridged: ") and \
            len(title.split()) > 1 else "?"
        if role == "template":
            out["template"] += own
            out["workers"] += reaped
        elif role == "worker":
            out["workers"] += own
        elif role in out:
            out[role] += own + reaped
        else:
            out.setdefault("?", 0)
            out["?"] += own + reaped
    return out


def zombies(pids):
    """How many children of these processes have exited unreaped."""
    return sum(1 for _, st in harness.proc_stats()
               if st[0] == "Z" and int(st[1]) in pids)


def clients_reaped(pid, before):
    """After a run, wait (3 s at most) until the server has reaped the
    processes of its clients: a child that has exited but is not yet
    reaped is in no process's CPU (its own is gone from the tree, its
    parent's reaped time does not have it yet), and a server that reaps
    on a timer (bench_relay, every 100 ms) would lose the CPU of every
    client that left with the load generator."""
    end = time.time() + 3
    while time.time() < end:
        t = tree(pid)
        if len(t) <= before and zombies(set(t)) == 0:
            return
        time.sleep(0.02)


def measured(pid, args, roles=False):
    """loadgen's result with the server's CPU per operation (ms); with
    roles, each role's too (res["roles"], ms per operation)."""
    r0 = role_ticks(pid) if roles else None
    t0, f0 = cpu_ticks(pid), faults(pid)
    before = len(tree(pid))
    res, rest = run_loadgen(args)
    clients_reaped(pid, before)
    t1, f1 = cpu_ticks(pid), faults(pid)
    r1 = role_ticks(pid) if roles else None
    ops = int(res.get("ops_all", "0"))
    res["server_cpu_ms"] = (t1 - t0) * 1e3 / HZ / ops if ops else None
    res["server_faults"] = float(f1 - f0) / ops if ops else None
    if roles and ops:
        res["roles"] = dict((k, (r1.get(k, 0) - r0.get(k, 0)) * 1e3 / HZ /
                             ops) for k in r1)
    return res, rest


def roles_line(res, what):
    """Where bridged's CPU per operation went, by process role."""
    r = res.get("roles")
    if not r:
        return
    r = dict(r)
    if r.get("retired"):
        # A template retired during the run: its own CPU and its
        # workers' reached the parent together; say them together.
        r["template+workers"] = sum(r.pop(k, 0) for k in
                                    ("template", "workers", "retired"))
    print("    %s, by process (ms): %s" % (what, "  ".join(
        "%s %.2f" % (k, r[k]) for k in ("parent", "template", "workers",
                                         "template+workers", "storage",
                                         "provider", "control", "?")
        if r.get(k))))


def f(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        return "%.0f%s" % (v, unit)
    if abs(v) >= 10:
        return "%.1f%s" % (v, unit)
    return "%.2f%s" % (v, unit)


def ratio(a, b):
    if not a or not b:
        return "-"
    return "%.2f" % (a / b)


def row(name, got, floor, unit="", how="ratio"):
    """One figure: bridged, the floor, and their ratio or difference."""
    if how == "ratio":
        extra = ratio(got, floor)
    elif how == "diff":
        extra = "-" if got is None or floor is None else \
            ("%+.3f%s" % (got - floor, unit))
    else:
        extra = ""
    print("  %-46s %11s %11s %10s" % (name, f(got, unit), f(floor, unit),
                                      extra), flush=True)


def head(title, floor, how="ratio", names=("bridged", "floor")):
    print()
    print(title)
    print("  floor: " + floor)
    print("  %-46s %11s %11s %10s" % ("", names[0], names[1],
                                      "ratio" if how == "ratio"
                                      else "diff"))


def ms(res, k):
    return float(res[k]) / 1000.0


def new_daemon(up, **kw):
    kw.setdefault("prefork", PREFORK)
    kw.setdefault("max_clients", max(600, IDLE_SESSIONS + 50))
    return BenchDaemon(up, **kw)


def rollup(pid):
    """/proc/PID/smaps_rollup in KiB, by field."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                p = line.split()
                if len(p) >= 2 and p[0].endswith(":") and p[1].isdigit():
                    out[p[0][:-1]] = int(p[1])
    except OSError:
        pass
    return out


def fork_floor(d):
    """loadgen fork shaped like a worker of d, and the same fork touching
    no page: (result, bare result, shape)."""
    p, ready = idle_hold(d.port, 1)
    try:
        time.sleep(0.3)
        ws = [rollup(w) for w in d.role_pids("worker")]
        w = max(ws, key=lambda r: r.get("Private_Dirty", 0))
        t = rollup(d.role_pids("template")[0])
    finally:
        idle_release(p)
    shape = {"anon": t.get("Anonymous", 0),
             "write": w.get("Private_Dirty", 0) // 4,
             "read": max(0, w.get("Referenced", 0) -
                         w.get("Private_Dirty", 0)) // 4}
    res, _ = run_loadgen(["-t", str(SECS), "-w", str(WARM), "-A",
                          str(shape["anon"]), "-R", str(shape["read"]),
                          "-W", str(shape["write"]), "fork"])
    bare, _ = run_loadgen(["-t", str(SECS), "-w", str(WARM), "-A",
                           str(shape["anon"]), "-R", "0", "-W", "0", "fork"])
    return res, bare, shape


def sec_connect(up):
    d = new_daemon(up)
    s = Serve(d, 2)
    relay = Relay(d) if os.access(RELAY, os.X_OK) else None
    try:
        ng = Nginx(d)
    except RuntimeError as e:
        print("\n(nginx floor left out: %s)" % e)
        ng = None
    out = {}
    servers = [("bridged", d.pid, d.port), ("serve", s.pid, s.port)]
    if ng is not None:
        servers.insert(0, ("nginx", ng.pid, ng.port))
    if relay is not None:
        servers.append(("relay", relay.pid, relay.port))
    try:
        for n in (1, 16):
            fork = ["-f", "2"] if n > 1 else []
            common = ["-n", str(n), "-t", str(SECS), "-w", str(WARM)] + fork
            for name, pid, port in servers:
                out[(name, n)] = measured(pid, ["-p", str(port)] +
                                          common + ["connect"],
                                          roles=name == "bridged")[0]
        # One client at a time with a pause between: what the server
        # does between two clients is then off the next one's path.
        for name, pid, port in servers:
            out[(name, "paced")] = measured(pid, [
                "-p", str(port), "-n", "1", "-i", str(PACE_MS), "-t",
                str(SECS), "-w", str(WARM), "connect"])[0]
        fk, bare, shape = fork_floor(d)
    finally:
        if ng is not None:
            ng.stop()
        if relay is not None:
            relay.stop()
        s.stop()
        d.stop()
    floors = [(name, label) for name, label in (
        ("nginx", "nginx stream TLS termination (same key and greeting, "
         "%d workers)" % os.cpu_count()),
        ("serve", "loadgen serve (same libtls, key and greeting; no "
         "process per client)"),
        ("relay", "bench_relay: a process per client, forked at accept "
         "from a parent that configured the same libtls; no sandbox, "
         "no pool")) if (name, 1) in out]
    for name, label in floors:
        head("connection setup: TCP connect, TLS handshake, greeting", label)
        for n in (1, 16):
            b, fl = out[("bridged", n)], out[(name, n)]
            row("%2d client%s: sessions/s" % (n, "s" if n > 1 else " "),
                float(b["rate"]), float(fl["rate"]))
            row("%2d client%s: connect-to-greeting p50 (ms)" %
                (n, "s" if n > 1 else " "), ms(b, "p50_us"),
                ms(fl, "p50_us"))
            row("%2d client%s: connect-to-greeting p99 (ms)" %
                (n, "s" if n > 1 else " "), ms(b, "p99_us"),
                ms(fl, "p99_us"))
            row("%2d client%s: server CPU per session (ms)" %
                (n, "s" if n > 1 else " "), b["server_cpu_ms"],
                fl["server_cpu_ms"])
            row("%2d client%s: server page faults per session" %
                (n, "s" if n > 1 else " "), b["server_faults"],
                fl["server_faults"])
            row("%2d client%s: loadgen CPU per session (ms)" %
                (n, "s" if n > 1 else " "),
                float(b["cpu_us_per_op"]) / 1000,
                float(fl["cpu_us_per_op"]) / 1000)
            for r in (b, fl):
                if int(r["errors"]):
                    print("    errors: %s (%s)" % (r["errors"],
                                                   r.get("stderr", "")))
        b, fl = out[("bridged", "paced")], out[(name, "paced")]
        for p in ("p50", "p99"):
            row(" 1 client each %d ms: to greeting %s (ms)" %
                (PACE_MS, p), ms(b, p + "_us"), ms(fl, p + "_us"))
    for n in (1, 16):
        roles_line(out[("bridged", n)], "%2d client%s: CPU per session" %
                   (n, "s" if n > 1 else " "))
    head("connection setup: CPU per session",
         "a process per client: fork+exit+wait, %.1f MiB written in the "
         "parent, the child writing %d pages and reading %d (a worker's "
         "counts)" % (shape["anon"] / 1024.0, shape["write"],
                      shape["read"]))
    for n in (1, 16):
        row("%2d client%s: server CPU per session (ms)" %
            (n, "s" if n > 1 else " "), out[("bridged", n)]["server_cpu_ms"],
            float(fk["cpu_us_per_op"]) / 1000)
    print("    the same fork touching no page: %.2f ms; each page a new"
          " process first touches: %.1f us" % (
              float(bare["cpu_us_per_op"]) / 1000,
              max(0.0, float(fk["cpu_us_per_op"]) -
                  float(bare["cpu_us_per_op"])) /
              max(1, shape["read"] + shape["write"])))


def median_of(runs):
    """Several runs of one measure as one: each figure the median of
    the runs' (errors added up), by process role too."""
    out = dict(runs[len(runs) // 2])
    for k in ("p50_us", "p90_us", "p99_us", "max_us", "rate",
              "cpu_us_per_op", "server_cpu_ms", "server_faults"):
        v = sorted(float(r[k]) for r in runs if r.get(k) is not None)
        if v:
            out[k] = v[len(v) // 2]
    out["errors"] = str(sum(int(r.get("errors", "0")) for r in runs))
    err = "; ".join(sorted(set(r["stderr"] for r in runs
                               if r.get("stderr"))))
    if err:
        out["stderr"] = err
    if all(r.get("roles") for r in runs):
        out["roles"] = dict((k, sorted(r["roles"].get(k, 0) for r in runs)[
            len(runs) // 2]) for k in runs[0]["roles"])
    return out


def sec_chat(up, d):
    # bridged and its floors take turns, CHAT_ROUNDS times, and each
    # figure is the median of its runs: the guest's speed drifts by
    # 10-20% within a minute, and a drift must weigh on all alike.
    runs = {}
    relay = Relay(d, up) if os.access(RELAY, os.X_OK) else None
    try:
        for n in (1, 16):
            common = ["-n", str(n), "-t", str(SECS), "-w", str(WARM)]
            for _ in range(CHAT_ROUNDS):
                runs.setdefault(("floor", n), []).append(measured(
                    up.proc.pid, common + ["-p", str(up.port), "-g",
                                           harness.API_KEY, "-u",
                                           STREAM_PATH, "-m", "bench",
                                           "http"])[0])
                runs.setdefault(("bridged", n), []).append(measured(
                    d.pid, common + ["-p", str(d.port), "-m", "bench",
                                     "chat"], roles=True)[0])
                if relay is not None:
                    runs.setdefault(("relay", n), []).append(measured(
                        relay.pid, common + ["-p", str(relay.port), "-m",
                                             "bench", "chat"])[0])
                if os.access(CURL, os.X_OK):
                    runs.setdefault(("curl", n), []).append(run_loadgen(
                        common + ["-p", str(up.port), "-g",
                                  harness.API_KEY, "-u", STREAM_PATH,
                                  "-m", "bench"], prog=CURL)[0])
    finally:
        if relay is not None:
            relay.stop()
    out = dict((k, median_of(v)) for k, v in runs.items())
    print("\n(chat: each figure the median of %d runs, bridged and its "
          "floors taking turns)" % CHAT_ROUNDS)
    head("chat round trip: ASK to `. OK` (fake upstream answering at once,"
         " 25-prompt conversations)",
         "one direct HTTP request to the same upstream, same concurrency",
         how="diff")
    for n in (1, 16):
        b, fl = out[("bridged", n)], out[("floor", n)]
        for p in ("p50", "p99"):
            row("%2d session%s: round trip %s (ms)" % (
                n, "s" if n > 1 else " ", p), ms(b, p + "_us"),
                ms(fl, p + "_us"), " ms", how="diff")
        row("%2d session%s: round trips/s (ratio)" % (
            n, "s" if n > 1 else " "), float(b["rate"]), float(fl["rate"]))
        row("%2d session%s: server CPU per prompt (ms)" % (
            n, "s" if n > 1 else " "), b["server_cpu_ms"],
            fl["server_cpu_ms"], " ms", how="diff")
        roles_line(b, "%2d session%s: CPU per prompt" % (
            n, "s" if n > 1 else " "))
        for r in (b, fl):
            if int(r["errors"]):
                print("    errors: %s (%s)" % (r["errors"],
                                               r.get("stderr", "")))
    chat_idle(d, out[("bridged", 16)])
    chat_curl(out)
    if ("relay", 1) not in out:
        print("\n(the chat path's floor left out: %s is not built)" % RELAY)
        return
    head("chat: bridged beside the floor of its shape",
         "bench_relay (a process per client, storage, provider; the same "
         "hops, 2 SQLite commits, its own HTTP client of the same upstream,"
         " each piece relayed to TLS; nothing else)", how="diff")
    for n in (1, 16):
        b, rl = out[("bridged", n)], out[("relay", n)]
        # At 16 sessions both wait mostly on the upstream's queue.
        for p in ("p50", "p99") if n == 1 else ():
            row("%2d session%s: round trip %s (ms)" % (
                n, "s" if n > 1 else " ", p), ms(b, p + "_us"),
                ms(rl, p + "_us"), " ms", how="diff")
        row("%2d session%s: server CPU per prompt (ms)" % (
            n, "s" if n > 1 else " "), b["server_cpu_ms"],
            rl["server_cpu_ms"], " ms", how="diff")
        if int(rl["errors"]):
            print("    errors: %s (%s)" % (rl["errors"],
                                           rl.get("stderr", "")))
        if ("curl", n) not in out:
            continue
        # bench_relay's provider has an HTTP client of loadgen's kind
        # (hand-written, one poll loop): with libcurl's cost instead,
        # the floor of the shape built on the libraries bridged takes.
        c, fl = out[("curl", n)], out[("floor", n)]
        if n == 1:
            row(" 1 session : p50, libcurl's cost in (ms)",
                ms(b, "p50_us"), ms(rl, "p50_us") + ms(c, "p50_us") -
                ms(fl, "p50_us"), " ms", how="diff")
        row("%2d session%s: CPU, libcurl's cost in (ms)" % (
            n, "s" if n > 1 else " "), b["server_cpu_ms"],
            rl["server_cpu_ms"] + (float(c["cpu_us_per_op"]) -
                                   float(fl["cpu_us_per_op"])) / 1000.0,
            " ms", how="diff")


def chat_curl(out):
    """bridged's provider beside libcurl and jansson doing its requests
    alone (bench_curl); bench_curl beside loadgen's own HTTP client."""
    if ("curl", 1) not in out:
        print("\n(the provider's floor left out: %s is not built)" % CURL)
        return
    head("chat: the provider beside libcurl alone",
         "bench_curl (the same requests through libcurl's multi interface"
         " on epoll, a new easy handle each, every event parsed by"
         " jansson; nothing else)", how="diff",
         names=("provider", "bench_curl"))
    for n in (1, 16):
        b, c = out[("bridged", n)], out[("curl", n)]
        row("%2d session%s: CPU per request (ms)" % (
            n, "s" if n > 1 else " "), (b.get("roles") or {}).get(
                "provider"), float(c["cpu_us_per_op"]) / 1000.0, " ms",
            how="diff")
        if int(c["errors"]):
            print("    errors: %s (%s)" % (c["errors"], c.get("stderr", "")))
    head("chat: libcurl beside a hand-written HTTP client",
         "loadgen's http mode, the direct request above (one poll loop,"
         " its own HTTP/1.1, as bench_relay's provider)", how="diff",
         names=("bench_curl", "loadgen"))
    for n in (1, 16):
        c, fl = out[("curl", n)], out[("floor", n)]
        if n == 1:
            row(" 1 session : round trip p50 (ms)", ms(c, "p50_us"),
                ms(fl, "p50_us"), " ms", how="diff")
        row("%2d session%s: client CPU per request (ms)" % (
            n, "s" if n > 1 else " "), float(c["cpu_us_per_op"]) / 1000.0,
            float(fl["cpu_us_per_op"]) / 1000.0, " ms", how="diff")


def chat_idle(d, alone):
    """16 sessions chatting while IDLE_SESSIONS more are open and idle,
    beside the same 16 alone: what idle sessions cost the others."""
    p, ready = idle_hold(d.port, IDLE_SESSIONS)
    try:
        res = measured(d.pid, ["-n", "16", "-t", str(SECS), "-w",
                               str(WARM), "-p", str(d.port), "-m", "bench",
                               "chat"], roles=True)[0]
    finally:
        idle_release(p)
    head("chat beside idle sessions: 16 sessions chatting, %d more open "
         "and idle" % ready, "the same 16 sessions with none idle (above)")
    row("16 sessions: server CPU per prompt (ms)", res["server_cpu_ms"],
        alone["server_cpu_ms"], " ms")
    row("16 sessions: round trips/s", float(res["rate"]),
        float(alone["rate"]))
    roles_line(res, "16 sessions, idle ones open: CPU per prompt")


def deltas(lines, firsts):
    out = []
    for line in lines:
        w = line.split()
        if len(w) == 3 and w[0] == "first":
            seq, t = int(w[1]), int(w[2])
            if seq in firsts and t >= firsts[seq]:
                out.append((t - firsts[seq]) / 1e6)
    out.sort()
    return out


def pctl(v, p):
    if not v:
        return None
    return v[min(len(v) - 1, int(p / 100.0 * (len(v) - 1) + 0.5))]


def sec_stream(up, d):
    text = "firstbyte [[fake:slow:5]]"
    up.clear()
    _, rest = run_loadgen(["-n", "1", "-t", str(SECS), "-w", "0",
                           "-p", str(d.port), "-m", text, "stream"])
    b = deltas(rest, up.firsts())
    up.clear()
    _, rest = run_loadgen(["-n", "1", "-t", str(SECS), "-w", "0", "-F",
                           "-p", str(up.port), "-g", harness.API_KEY, "-u",
                           STREAM_PATH, "-m", text, "http"])
    fl = deltas(rest, up.firsts())
    head("streaming: upstream writes its first SSE event -> client reads "
         "its first body byte", "a direct HTTP client of the same upstream",
         how="diff")
    row("p50 (ms)", pctl(b, 50), pctl(fl, 50), " ms", how="diff")
    row("p99 (ms)", pctl(b, 99), pctl(fl, 99), " ms", how="diff")
    row("answers timed", "%d" % len(b), "%d" % len(fl), how="none")


def sec_scale(up):
    if not harness.pg_built():
        print("\n(scale left out: bridged is built without PostgreSQL)")
        return
    try:
        pg = pgserver.PgServer(fsync=True)
    except pgserver.Unavailable as e:
        print("\n(scale left out: PostgreSQL is not available: %s)" % e)
        return
    os.environ.update(pg.env())
    ds, lb = [], None
    try:
        db = pg.create_database()
        ds.append(new_daemon(up, backend="postgresql", pg_database=db))
        ds.append(new_daemon(up, backend="postgresql", pg_database=db,
                             certs=ds[0]))
        try:
            lb = harness.Balancer(ds)
        except harness.Skip as e:
            print("\n(scale left out: %s)" % e)
            return
        out = {}
        for n in (1, 16):
            common = ["-n", str(n), "-t", str(SECS), "-w", str(WARM)]
            out[("direct", n)] = measured(ds[0].pid, common + [
                "-p", str(ds[0].port), "-m", "bench", "chat"])[0]
            out[("haproxy", n)] = run_loadgen(common + [
                "-p", str(lb.port), "-m", "bench", "chat"])[0]
    finally:
        if lb is not None:
            lb.stop()
        for d in ds:
            d.stop()
        pg.stop()
    head("several servers: chat round trip through HAProxy (TCP mode) to"
         " two bridged on one PostgreSQL",
         "one of the same bridged, direct (same PostgreSQL)", how="diff",
         names=("haproxy", "direct"))
    for n in (1, 16):
        b, fl = out[("haproxy", n)], out[("direct", n)]
        for p in ("p50", "p99"):
            row("%2d session%s: round trip %s (ms)" % (
                n, "s" if n > 1 else " ", p), ms(b, p + "_us"),
                ms(fl, p + "_us"), " ms", how="diff")
        row("%2d session%s: round trips/s (ratio)" % (
            n, "s" if n > 1 else " "), float(b["rate"]), float(fl["rate"]))
        for r in (b, fl):
            if int(r["errors"]):
                print("    errors: %s (%s)" % (r["errors"],
                                               r.get("stderr", "")))


def idle_hold(port, n):
    """Open n idle sessions; return the loadgen process once ready."""
    p = subprocess.Popen([LOADGEN, "-p", str(port), "-n", str(n), "-j",
                          "16", "-t", "300", "idle"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().split()
    if len(line) < 2 or line[0] != "ready":
        p.kill()
        raise RuntimeError("loadgen idle: %s" % p.stderr.read()[-300:])
    return p, int(line[1])


def idle_release(p):
    p.stdin.close()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def settle(pred, timeout=30):
    try:
        harness.wait_for(pred, timeout=timeout, step=0.1, what="settle")
    except AssertionError:
        pass
    time.sleep(0.5)


def sec_memory(up):
    n = IDLE_SESSIONS
    d = new_daemon(up)
    try:
        settle(lambda: ("workers: %d idle" % PREFORK) in d.status())
        before = pss_kib(d.pid)
        nproc0 = len(tree(d.pid))
        p, ready = idle_hold(d.port, n)
        settle(lambda: ("workers: %d idle" % PREFORK) in d.status())
        after = pss_kib(d.pid)
        nproc1 = len(tree(d.pid))
        busy = [w for w in d.role_pids("worker")]
        idle_release(p)
    finally:
        d.stop()
    s = Serve(d, 1)
    try:
        time.sleep(0.2)
        fbefore = pss_kib(s.pid)
        p, fready = idle_hold(s.port, n)
        time.sleep(0.5)
        fafter = pss_kib(s.pid)
        idle_release(p)
    finally:
        s.stop()
    relay = None
    if os.access(RELAY, os.X_OK):
        r = Relay(d)
        try:
            time.sleep(0.2)
            rbefore = pss_kib(r.pid)
            p, rready = idle_hold(r.port, n)
            time.sleep(0.5)
            relay = ((pss_kib(r.pid) - rbefore) / rready / 1024.0
                     if rready else None, rready)
            idle_release(p)
        finally:
            r.stop()
    head("memory: proportional set size per idle session, %d open" % n,
         "loadgen serve holding as many TLS sessions in one process")
    per = (after - before) / ready / 1024.0 if ready else None
    fper = (fafter - fbefore) / fready / 1024.0 if fready else None
    row("PSS per idle session (MiB)", per, fper)
    row("sessions open", "%d" % ready, "%d" % fready, how="none")
    row("whole daemon PSS with sessions open (MiB)", after / 1024.0,
        fafter / 1024.0)
    print("  (bridged: %d processes idle, %d with the sessions open; "
          "%d workers)" % (nproc0, nproc1, len(busy)))
    if relay is not None:
        head("memory: proportional set size per idle session, %d open" % n,
             "bench_relay, a process per client forked from a parent "
             "that configured the same libtls (the handshake in the "
             "child)")
        row("PSS per idle session (MiB)", per, relay[0])
        row("sessions open", "%d" % ready, "%d" % relay[1], how="none")


def main():
    if not os.access(LOADGEN, os.X_OK):
        print("bench: %s is not built" % LOADGEN)
        return 1
    if not os.access(harness.BRIDGED, os.X_OK):
        print("bench: %s is not built" % harness.BRIDGED)
        return 1
    want = sys.argv[1:] or ["connect", "chat", "stream", "memory", "scale"]
    print("bridged benchmarks: %d cores, %.0f s per figure (BENCH_SECS), "
          "loadgen beside the daemon; figures only, never pass or fail" %
          (os.cpu_count(), SECS))
    print("load average at start: %s" % " ".join(
        open("/proc/loadavg").read().split()[:3]))
    up = BenchUpstream()
    status = 0
    try:
        for name in want:
            try:
                if name == "connect":
                    sec_connect(up)
                elif name in ("chat", "stream"):
                    d = new_daemon(up)
                    try:
                        (sec_chat if name == "chat" else sec_stream)(up, d)
                    finally:
                        d.stop()
                elif name == "memory":
                    sec_memory(up)
                elif name == "scale":
                    sec_scale(up)
                else:
                    print("bench: unknown section %s" % name)
                    status = 1
            except Exception as e:
                print("\n%s: could not measure: %s: %s" % (
                    name, type(e).__name__, e), flush=True)
                status = 1
    finally:
        up.stop()
    print("\nload average at end: %s" % " ".join(
        open("/proc/loadavg").read().split()[:3]))
    return status


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
