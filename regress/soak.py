#!/usr/bin/env python3
"""
soak.py: bridged under load and faults for SOAK_SECONDS (default 600),
then one table of what must hold (make soak).

Many clients on loopback (each from its own 127.0.0.x address, so each
is an identity of its own) connect, ask, chat, paste \"\"\" blocks,
cancel, disconnect mid-answer, submit jobs and reconnect; their
prompts carry the fake upstream's fault directives (errors, resets,
cut streams, bad JSON, hangs, split writes). Meanwhile random workers, storage and the
provider are killed with SIGKILL, and the parent gets SIGHUP every
30 s. At the end, every prompt answered `. OK` must be in the database
exactly once with its answer, every job accepted queued once and, once
done, stored once, PRAGMA integrity_check must say ok, the
long-lived processes must not have grown past the bounds below, and no
zombie or orphan may be left. Everything started here is stopped here,
by pid. Exit status 0 when every check holds.
"""

import os
import random
import re
import signal
import socket
import sqlite3
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "12"))
HUP_EVERY = 30          # s
KILL_EVERY = 4.0        # s, mean time between SIGKILLs
FD_BOUND = 8            # descriptors a long-lived process may gain
RSS_BOUND = 32 * 1024   # KiB a long-lived process may gain
REQUEST_TIMEOUT = 6     # s, the provider's per request (hang faults)

# Prompts that should be answered (the fake recovers or just frames oddly).
BENIGN = ["", "[[fake:split]]", "[[fake:utf8split]] é", "[[fake:cjk]]",
          "[[fake:emoji]]", "[[fake:lf]]", "[[fake:cr]]", "[[fake:mixed]]",
          "[[fake:length]]", "[[fake:close]]", "[[fake:interval:20]]",
          "[[fake:500:1]]", "[[fake:503:1]]", "[[fake:429-retryinfo:1]]",
          "[[fake:thought]]", "[[fake:emptyfinal]]", "[[fake:repeat:30]]"]
# Prompts that fail, or may.
FAULTS = ["[[fake:reset]]", "[[fake:cut]]", "[[fake:badjson]]",
          "[[fake:error-midstream]]", "[[fake:blocked]]", "[[fake:nofinish]]",
          "[[fake:500]]", "[[fake:404]]", "[[fake:html502]]",
          "[[fake:overflow]]", "[[fake:hang]]", "[[fake:hang:noheaders]]"]
OK_RE = re.compile(r"^\. OK model=")


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = []            # tags answered . OK
        self.sent = []          # every tag sent as a prompt
        self.jobs = []          # tags of jobs SUBMIT accepted
        self.status = {}        # tag: the status line it got
        self.count = {}

    def add(self, what, n=1):
        with self.lock:
            self.count[what] = self.count.get(what, 0) + n

    def sent_tag(self, tag):
        with self.lock:
            self.sent.append(tag)

    def ok_tag(self, tag, status=""):
        with self.lock:
            self.ok.append(tag)
            self.status[tag] = status

    def job_tag(self, tag):
        with self.lock:
            self.jobs.append(tag)


class Conn:
    """A BRIDGE/1 session over TLS from a given loopback address."""

    def __init__(self, d, src):
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=30,
                                       source_address=(src, 0))
        ctx = ssl.create_default_context(cafile=d.ca)
        ctx.check_hostname = False
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.reply()

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def reply(self):
        body = []
        while True:
            line = self.readline()
            if line == "." or line.startswith(". "):
                return body, line
            body.append(line)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def client(d, n, deadline, st, stop):
    """One client's life: sessions of random actions until the end."""
    rnd = random.Random(n * 7919 + int(time.time()))
    src = "127.0.0.%d" % (10 + n)
    seq = 0
    c = None

    def tag():
        nonlocal seq
        seq += 1
        return "sk%d-%d-%d" % (n, seq, rnd.randrange(10 ** 6))

    def ask(line, t):
        """Send a prompt line; count its answer."""
        st.sent_tag(t)
        c.send(line)
        body, status = c.reply()
        if OK_RE.match(status):
            st.ok_tag(t, "%s -> %s" % (line[:60], status))
            st.add("ok")
        else:
            st.add("err")
        return status

    while time.monotonic() < deadline and not stop.is_set():
        try:
            if c is None:
                c = Conn(d, src)
                st.add("connects")
                c.send("NEW")
                c.reply()
            r = rnd.random()
            if r < 0.40:
                t = tag()
                ask("ASK %s %s" % (t, rnd.choice(BENIGN)), t)
            elif r < 0.50:
                t = tag()
                ask("ASK %s %s" % (t, rnd.choice(FAULTS)), t)
            elif r < 0.62:
                c.send("IA")
                c.reply()
                for _ in range(rnd.randrange(1, 4)):
                    t = tag()
                    ask("%s chat %s" % (t, rnd.choice(BENIGN)), t)
                if rnd.random() < 0.5:
                    t = tag()
                    st.sent_tag(t)
                    for line in ['"""', "%s pasted" % t, ".dot line",
                                 "", "last line", '"""']:
                        c.send(line)
                    body, status = c.reply()
                    if OK_RE.match(status):
                        st.ok_tag(t)
                        st.add("ok")
                    st.add("pastes")
                c.send("BACK")
                c.reply()
            elif r < 0.72:
                # Cancel while it streams slowly.
                t = tag()
                st.sent_tag(t)
                c.send("ASK %s [[fake:drip:20]] [[fake:repeat:5]]" % t)
                time.sleep(rnd.uniform(0.05, 0.6))
                c.send("CANCEL")
                body, status = c.reply()
                if status.startswith(". ERR cancelled"):
                    st.add("cancelled")
                else:
                    if OK_RE.match(status):
                        st.ok_tag(t, status)
                    # The CANCEL came too late: a line of its own.
                    c.reply()
                st.add("cancels")
            elif r < 0.82:
                # Leave while the answer streams.
                t = tag()
                st.sent_tag(t)
                c.send("ASK %s [[fake:drip:20]] [[fake:repeat:5]]" % t)
                time.sleep(rnd.uniform(0.05, 0.4))
                c.close()
                c = None
                st.add("left mid-answer")
            elif r < 0.86:
                # A background job: it outlives this session.
                t = tag()
                st.sent_tag(t)
                c.send("SUBMIT %s job %s" % (t, rnd.choice(BENIGN[:4])))
                body, status = c.reply()
                if status.startswith(". OK job "):
                    st.job_tag(t)
                    st.add("jobs submitted")
                if rnd.random() < 0.5:
                    c.close()
                    c = None
            elif r < 0.90:
                c.send(rnd.choice(["HELP", "INFO", "LIST-MODELS", "JOBS 5",
                                   "HISTORY 3", "SUMMARIES 1"]))
                c.reply()
            elif r < 0.95:
                c.send("QUIT")
                c.reply()
                c.close()
                c = None
            else:
                c.close()
                c = None
        except (OSError, EOFError, ssl.SSLError, ValueError):
            # A killed worker, a closed session: connect again.
            st.add("connections lost")
            if c is not None:
                c.close()
            c = None
            time.sleep(0.05)
    if c is not None:
        c.close()


def proc_info(pid):
    """(descriptors, RSS KiB) of a process, or (None, None)."""
    try:
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/status" % pid) as f:
            rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return fds, rss
    except (OSError, AttributeError):
        return None, None


def roles(d):
    """Pid of each long-lived role, from the process titles."""
    out = {"parent": d.pid}
    for role in ("control", "storage", "provider"):
        p = d.role_pids(role)
        out[role] = p[0] if p else None
    return out


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0]
    except OSError:
        return None


def chaos(d, deadline, st, stop, seen):
    """SIGKILL of random workers, storage, provider; SIGHUP every 30 s."""
    rnd = random.Random()
    next_hup = time.monotonic() + HUP_EVERY
    zombie_since = {}
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(rnd.expovariate(1.0 / KILL_EVERY))
        kids = harness.children_of(d.pid)
        seen.update(kids)
        # A zombie child that stays is a child the parent forgot.
        now = time.monotonic()
        for p in list(zombie_since):
            if proc_state(p) != "Z":
                del zombie_since[p]
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    with open("/proc/%s/stat" % e) as f:
                        s = f.read().split(")")[-1].split()
                except OSError:
                    continue
                if s[0] == "Z" and int(s[1]) == d.pid:
                    zombie_since.setdefault(int(e), now)
        for p, t0 in zombie_since.items():
            if now - t0 > 3:
                st.add("zombies")
                zombie_since[p] = float("inf")
        if time.monotonic() >= next_hup:
            os.kill(d.pid, signal.SIGHUP)
            st.add("SIGHUP")
            next_hup += HUP_EVERY
        r = rnd.random()
        if r < 0.6:
            victims = d.role_pids("worker")
            what = "SIGKILL worker"
        elif r < 0.8:
            victims = d.role_pids("storage")
            what = "SIGKILL storage"
        else:
            victims = d.role_pids("provider")
            what = "SIGKILL provider"
        if victims:
            try:
                os.kill(rnd.choice(victims), signal.SIGKILL)
                st.add(what)
            except ProcessLookupError:
                pass


def settle(d, timeout=30):
    """Wait until every role runs again after the last kill."""
    def up():
        r = d.ctl("show", "status", check=False)
        return r.returncode == 0 and "starting" not in r.stdout and \
            all(d.role_pids(x) for x in ("control", "storage", "provider"))
    harness.wait_for(up, timeout=timeout, step=0.2,
                     what="every role to run again")


def jobs_pending(path):
    """Jobs still queued or running (0 before the table exists)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return db.execute("SELECT count(*) FROM jobs WHERE state IN "
                          "(0, 1)").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def check_jobs(path, st):
    """(jobs accepted, lost, duplicated, done, done but not stored)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    rows = {}
    try:
        for state, prompt in db.execute("SELECT state, prompt FROM jobs"):
            m = re.search(r"\bsk\d+-\d+-\d+\b", prompt)
            if m is not None:
                rows.setdefault(m.group(0), []).append(state)
    except sqlite3.OperationalError:
        pass
    finally:
        db.close()
    return rows


def check_db(path, st):
    """(answered OK, lost, duplicated, integrity_check)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        users = {}
        models = {}
        for role, content in db.execute(
                "SELECT role, content FROM messages"):
            m = re.search(r"\bsk\d+-\d+-\d+\b", content)
            if m is None:
                continue
            d = users if role == "user" else models
            d[m.group(0)] = d.get(m.group(0), 0) + 1
    finally:
        db.close()
    ok = set(st.ok)
    lost_tags = [t for t in ok if users.get(t, 0) == 0 or
                 models.get(t, 0) == 0]
    lost = len(lost_tags)
    for t in lost_tags[:10]:
        print("soak: lost %s (user %d, model %d): %s" % (
            t, users.get(t, 0), models.get(t, 0), st.status.get(t, "")))
    dup = sum(1 for t in set(st.sent) if users.get(t, 0) > 1 or
              models.get(t, 0) > 1)
    jobs = check_jobs(path, st)
    jlost = sum(1 for t in set(st.jobs) if t not in jobs)
    jdup = sum(1 for t in jobs if len(jobs[t]) > 1)
    done = [t for t in set(st.jobs) if jobs.get(t) == [2]]
    # A job done is a prompt and an answer stored, once each.
    jbad = sum(1 for t in done if users.get(t, 0) != 1 or
               models.get(t, 0) != 1)
    return (len(ok), lost, dup, integrity, len(set(st.jobs)), jlost, jdup,
            len(done), jbad)


def main():
    f = harness.FakeUpstream()
    d = None
    st = Stats()
    stop = threading.Event()
    seen = set()
    bad = []
    rows = []
    try:
        d = harness.Daemon(upstream=f, prefork=4, max_clients=64,
                           timeout=120, provider_extra="\ttimeout %d\n"
                           "\tretries 2\n" % REQUEST_TIMEOUT)
        t0 = time.monotonic()
        deadline = t0 + SECONDS
        print("soak: %d s, %d clients, bridged pid %d, database %s" % (
            SECONDS, CLIENTS, d.pid, d.db), flush=True)
        threads = [threading.Thread(target=client, args=(d, i, deadline,
                                                         st, stop))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        # The baseline, once the load runs and the caches are warm.
        time.sleep(min(20, SECONDS / 10))
        start = {r: (p,) + proc_info(p) for r, p in roles(d).items()
                 if p is not None}
        ch = threading.Thread(target=chaos, args=(d, deadline, st, stop,
                                                  seen))
        ch.start()
        while time.monotonic() < deadline:
            time.sleep(min(30, max(0.1, deadline - time.monotonic())))
            print("soak: %4d s, %d answered OK, %s" % (
                time.monotonic() - t0, len(st.ok), ", ".join(
                    "%s %d" % kv for kv in sorted(st.count.items()))),
                flush=True)
        stop.set()
        ch.join()
        for t in threads:
            t.join(60)
        settle(d)
        # Jobs run to their end (each identity runs a few at a time).
        end_jobs = time.monotonic() + 120
        while jobs_pending(d.db) > 0 and time.monotonic() < end_jobs:
            time.sleep(1)
        pending = jobs_pending(d.db)
        time.sleep(2)       # the last commits, the last idle checks
        end = {r: (p,) + proc_info(p) for r, p in roles(d).items()
               if p is not None}
        seen.update(harness.children_of(d.pid))
        zombies_now = [p for p in seen if proc_state(p) == "Z"]

        # Stop it all, then look for what survived its parent.
        harness.stop_pid(d.pid, grace=10)
        d.proc.wait()
        time.sleep(1)
        orphans = [p for p in seen if harness.pid_alive(p)]
        (ok, lost, dup, integrity, njobs, jlost, jdup, jdone,
         jbad) = check_db(d.db, st)

        rows.append(("prompts answered OK", str(ok), ""))
        rows.append(("  of those lost in the database", str(lost),
                     "must be 0"))
        rows.append(("prompts stored twice", str(dup), "must be 0"))
        rows.append(("jobs accepted (. OK job)", str(njobs), ""))
        rows.append(("  of those lost", str(jlost), "must be 0"))
        rows.append(("  queued twice", str(jdup), "must be 0"))
        rows.append(("  done", str(jdone), ""))
        rows.append(("  done, prompt or answer not stored once",
                     str(jbad), "must be 0"))
        rows.append(("  still queued or running after 120 s",
                     str(pending), ""))
        rows.append(("PRAGMA integrity_check", integrity, "must be ok"))
        for what in sorted(st.count):
            if what != "ok":
                rows.append((what, str(st.count[what]), ""))
        for r in ("parent", "control", "storage", "provider"):
            s = start.get(r, (None, None, None))
            e = end.get(r, (None, None, None))
            same = s[0] == e[0]
            note = "same process" if same else "restarted (pid %s -> %s)" \
                % (s[0], e[0])
            rows.append(("%s fds start/end" % r, "%s / %s" % (s[1], e[1]),
                         note))
            rows.append(("%s RSS KiB start/end" % r, "%s / %s" % (
                s[2], e[2]), note))
            if same and None not in (s[1], e[1]):
                if e[1] - s[1] > FD_BOUND:
                    bad.append("%s gained %d descriptors" % (r, e[1] - s[1]))
                if e[2] - s[2] > RSS_BOUND:
                    bad.append("%s grew %d KiB" % (r, e[2] - s[2]))
        rows.append(("zombies (lasting > 3 s)", str(st.count.get(
            "zombies", 0) + len(zombies_now)), "must be 0"))
        rows.append(("orphans after stop", str(len(orphans)), "must be 0"))
        if lost:
            bad.append("%d answered prompts lost" % lost)
        if dup:
            bad.append("%d prompts stored twice" % dup)
        if jlost or jdup or jbad:
            bad.append("jobs: %d lost, %d twice, %d done but not stored "
                       "once" % (jlost, jdup, jbad))
        if integrity != "ok":
            bad.append("integrity_check: %s" % integrity)
        if st.count.get("zombies", 0) or zombies_now:
            bad.append("zombies")
        if orphans:
            bad.append("orphans: %s" % orphans)
        if ok == 0:
            bad.append("nothing was answered")
    finally:
        stop.set()
        if d is not None:
            d.stop()
        f.stop()
    w = max(len(r[0]) for r in rows) if rows else 20
    print()
    print("%-*s  %-22s %s" % (w, "soak: %d s, %d clients" % (SECONDS,
                                                              CLIENTS),
                              "value", "bound"))
    for r in rows:
        print("%-*s  %-22s %s" % (w, r[0], r[1], r[2]))
    print("bounds: a process that ran throughout gains at most %d "
          "descriptors and %d MiB RSS" % (FD_BOUND, RSS_BOUND // 1024))
    if bad:
        print("soak: FAILED: %s" % "; ".join(bad))
        return 1
    print("soak: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
