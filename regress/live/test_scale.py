"""
Several servers, one truth: two real bridged on one PostgreSQL (the one
run.py started), behind a real HAProxy in TCP mode. A conversation
started through one instance continues on the other; a job submitted
through A, A then SIGKILLed with its whole process tree, is finished by
B; a token issued on one works on both and its revocation through A's
control socket ends its session on B within seconds; a per-identity
limit holds, give or take the prompts in flight, while both instances
serve that identity at once; a job killed through B (KILL or bridgectl
kill job) is stopped by A, which runs it, within a lease renewal;
`. OK` means the rows are committed (read back with psql at once); a
SQLite database a real bridged wrote, moved into PostgreSQL with
`bridged -m`, serves the same conversations, jobs, tokens and usage.
Identities are issued tokens (behind a balancer every client has the
balancer's address), one per test.
"""

import hashlib
import json
import os
import random
import re
import signal
import subprocess
import threading
import time
import urllib.request

import pgserver
from harness import BRIDGED, Balancer, Daemon, FakeUpstream, \
    need_postgresql, pid_alive, wait_for

up = a = b = lb = None
dbname = None
RUN = "%08x" % random.getrandbits(32)      # prompts unique to this run
SLOW = "[[fake:interval:200]][[fake:repeat:10]]"   # about 4 s of stream
REVOKE_SECS = 10        # "within a few seconds", with a loaded machine


def setup():
    global up, a, b, lb, dbname
    need_postgresql()
    up = FakeUpstream()
    dbname = pgserver.new_database()
    extra = "identity token\n"
    a = Daemon(up, prefork=3, backend="postgresql", pg_database=dbname,
               extra=extra)
    # B names the database with a conninfo string, A with a URI.
    b = Daemon(up, prefork=3, backend="postgresql", pg_database=dbname,
               extra=extra, certs=a, conninfo=True)
    lb = Balancer([a, b])


def teardown():
    for x in (lb, a, b, up):
        if x is not None:
            x.stop()


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def add_token(daemon, *opts):
    r = daemon.ctl("token", "add", *opts)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("token "), r.stdout
    return lines[0], int(lines[1].split()[1])


def port_of(c):
    """The listening port the greeting names: which instance it is."""
    return int(c.greeting[0][1].rsplit(":", 1)[1])


def via(daemon, token, timeout=30):
    """An authenticated session through the balancer that landed on
    daemon (round robin: a few tries at most)."""
    for _ in range(20):
        c = lb.client(daemon, timeout=timeout)
        if port_of(c) == daemon.port:
            _, status = c.ask("AUTH " + token)
            assert status.startswith(". OK authenticated"), status
            return c
        c.close()
    raise AssertionError("the balancer never chose port %d" % daemon.port)


def echo_of(text):
    while "[[fake:" in text:
        i = text.index("[[fake:")
        text = text[:i] + text[text.index("]]", i) + 2:]
    return "Echo: " + text.strip()


def tree(pid):
    """pid and all its descendants, from /proc."""
    kids = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                ppid = int(f.read().split(")")[-1].split()[1])
        except (OSError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(e))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def kill_tree(daemon):
    """SIGKILL the daemon and every process under it, by pid."""
    pids = tree(daemon.pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    daemon.proc.wait()
    wait_for(lambda: not [p for p in pids if pid_alive(p)], timeout=10,
             what="the killed processes to go")
    daemon.stop()
    return pids


def test_conversation_continues_on_the_other_instance():
    tok, _ = add_token(a, "-l", "conv")
    name = "moved-" + RUN
    c = via(a, tok)
    _, status = c.ask("NEW " + name)
    m = re.match(r"^\. OK conversation (\d+) ", status)
    assert m, status
    conv = m.group(1)
    first = "first turn on A %s" % RUN
    _, status = c.ask("ASK " + first)
    assert status.startswith(". OK model="), status
    c.close()

    c = via(b, tok)
    body, status = c.ask("INFO")
    assert "conversation: %s %s" % (conv, name) in body, body
    body, status = c.ask("CONVERSATIONS")
    assert [l for l in body if l.startswith("* %s " % conv) and
            l.endswith(" " + name)], body
    _, status = c.ask("RESUME " + name)
    assert status == ". OK conversation %s %s" % (conv, name), status
    body, status = c.ask("HISTORY")
    assert status.startswith(". OK"), status
    text = "\n".join(body)
    assert first in text and echo_of(first) in text, body
    second = "second turn on B %s" % RUN
    body, status = c.ask("ASK " + second)
    assert status.startswith(". OK model="), status
    # B sent A's turn upstream as context: user, model, user.
    assert "[turns=3 " in "".join(body), body
    c.close()

    c = via(a, tok)
    body, _ = c.ask("HISTORY")
    heads = [l.split()[-1] for l in body if l.startswith("--- ")]
    assert heads == ["user", "model", "user", "model"], body
    assert second in "\n".join(body), body
    c.close()


def job_state(c, jid):
    body, status = c.ask("JOBS")
    assert status.startswith(". OK"), status
    for line in body:
        f = line.split()
        if f and f[0] == str(jid):
            return f[1]
    return None


def generations(text):
    """How many generations the fake upstream was asked for with text
    as the prompt (the last turn; earlier turns are context)."""
    n = 0
    for r in up.requests():
        body = r.get("body")
        if "streamGenerateContent" not in r.get("path", "") or \
                not isinstance(body, dict) or not body.get("contents"):
            continue
        last = body["contents"][-1]
        if last.get("role") == "user" and any(
                text in p.get("text", "") for p in last.get("parts", [])):
            n += 1
    return n


def running_on_a(label, p):
    """A job of prompt p submitted through A with a token of its own,
    streaming from the upstream now: the token, the session, the job."""
    tok, _ = add_token(a, "-l", label)
    c = via(a, tok)
    _, status = c.ask("SUBMIT " + p)
    m = re.match(r"^\. OK job (\d+)$", status)
    assert m, status
    jid = int(m.group(1))
    wait_for(lambda: generations(p) >= 1, timeout=15,
             what="the job at the upstream")
    assert job_state(c, jid) == "running"
    return tok, c, jid


def test_job_of_a_killed_instance_is_finished_by_the_other():
    global a
    p = "job outlives A %s %s" % (RUN, SLOW)
    tok, c, jid = running_on_a("job", p)
    c.close()
    kill_tree(a)
    wait_for(lambda: lb.states().get("s0") == "DOWN", timeout=10,
             what="haproxy to see A down")

    c = via(b, tok, timeout=120)
    wait_for(lambda: job_state(c, jid) == "done", timeout=120, step=0.5,
             what="B to finish A's job")
    body, status = c.ask("RESULT %d" % jid)
    assert status.startswith(". OK model="), status
    assert echo_of(p) in "".join(body), body[:3]
    c.close()
    # B ran it again from the start (A's run died with A), and the
    # answer is stored once, as a whole.
    assert generations(p) >= 2, generations(p)
    rows = pgserver.query(
        "SELECT role, content FROM messages WHERE client_id = ?"
        " ORDER BY id", [sha(tok)], db=dbname)
    assert [r[0] for r in rows] == ["user", "model"], rows
    assert rows[1][1].startswith(echo_of(p)), rows[1][1][:200]
    assert re.search(r"\[turns=1 system=no\]$", rows[1][1]), rows[1][1]

    a.start()
    wait_for(lambda: lb.states().get("s0") == "UP", timeout=10,
             what="haproxy to see A back")


def test_jobs_are_run_once_with_both_instances_up():
    tok, _ = add_token(a, "-l", "jobs", "-j", "0")
    ids = {}
    for i, dd in enumerate((a, b, a, b, a, b)):
        c = via(dd, tok)
        p = "shared job %d %s [[fake:interval:20]]" % (i, RUN)
        _, status = c.ask("SUBMIT " + p)
        assert status.startswith(". OK job "), status
        ids[int(status.split()[-1])] = p
        c.close()
    c = via(b, tok)
    wait_for(lambda: all(job_state(c, j) == "done" for j in ids),
             timeout=60, step=0.5, what="the jobs done")
    c.close()
    for p in ids.values():
        assert generations(p) == 1, (p, generations(p))
    n = pgserver.query("SELECT count(*) FROM messages WHERE client_id = ?"
                       " AND role = 'model'", [sha(tok)], db=dbname)
    assert n == [(len(ids),)], n


def test_token_revoked_on_a_ends_its_session_on_b():
    tok, tid = add_token(b, "-l", "revoked")
    ca, cb = via(a, tok), via(b, tok)
    for c in (ca, cb):
        _, status = c.ask("ASK works here %s" % RUN)
        assert status.startswith(". OK model="), status
    other, _ = add_token(a, "-l", "bystander")
    cother = via(b, other)
    t0 = time.monotonic()
    r = a.ctl("token", "revoke", str(tid))
    assert "revoked" in r.stdout, r.stdout
    _, status = ca.reply()
    assert status == ". BYE token revoked", status
    cb.sock.settimeout(REVOKE_SECS)
    _, status = cb.reply()
    took = time.monotonic() - t0
    assert status == ". BYE token revoked", status
    assert took < REVOKE_SECS, took
    assert cb.closed()
    # Another identity's session on B goes on; the token is refused on
    # both.
    _, status = cother.ask("INFO")
    assert status.startswith(". OK"), status
    cother.close()
    for dd in (a, b):
        c = lb.client(dd)
        while port_of(c) != dd.port:
            c.close()
            c = lb.client(dd)
        _, status = c.ask("AUTH " + tok)
        assert status == ". ERR auth unknown token", status
        c.close()


def test_limit_holds_across_both_instances():
    limit, sessions, tries = 6, 4, 5
    tok, _ = add_token(a, "-l", "limited", "-r", str(limit))
    conns = [via((a, b)[i % 2], tok) for i in range(sessions)]
    go = threading.Barrier(sessions)
    oks, refused, other = [], [], []

    def talk(c, n):
        go.wait()
        for i in range(tries):
            _, status = c.ask("ASK limited %d %d %s [[fake:interval:30]]"
                              % (n, i, RUN))
            if status.startswith(". OK model="):
                oks.append(n)
            elif status.startswith(". ERR rate-limited requests-per-minute"):
                refused.append(n)
            else:
                other.append(status)

    ts = [threading.Thread(target=talk, args=(c, i), daemon=True)
          for i, c in enumerate(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
        assert not t.is_alive(), "a session hung"
    for c in conns:
        c.close()
    assert not other, other
    # At most one prompt in flight per session beyond the limit.
    assert limit <= len(oks) <= limit + sessions, (len(oks), limit)
    assert len(oks) + len(refused) == sessions * tries
    # An answer is stored for each OK and for nothing else.
    answers = pgserver.query(
        "SELECT count(*) FROM messages WHERE client_id = ? AND"
        " role = 'model'", [sha(tok)], db=dbname)[0][0]
    assert answers == len(oks), (answers, len(oks))
    c = via(b, tok)
    body, _ = c.ask("USAGE 1")
    assert "limit requests-per-minute %d used %d" % (limit, len(oks)) in \
        body, body
    c.close()


def test_ok_means_committed():
    tok, _ = add_token(b, "-l", "durable")
    conns = {a.port: via(a, tok), b.port: via(b, tok)}
    for i in range(8):
        c = conns[(a.port, b.port)[i % 2]]
        p = "durable %d %s" % (i, RUN)
        _, status = c.ask("ASK " + p)
        assert status.startswith(". OK model="), status
        # At once, from another connection to the database.
        rows = pgserver.query(
            "SELECT role, content FROM messages WHERE client_id = ? AND"
            " id >= (SELECT max(id) FROM messages WHERE client_id = ?"
            " AND content = ?) ORDER BY id", [sha(tok), sha(tok), p],
            db=dbname)
        assert [r[0] for r in rows] == ["user", "model"], (i, rows)
        assert rows[0][1] == p and rows[1][1].startswith(echo_of(p)), rows
    for c in conns.values():
        c.close()


def test_operator_tables_shared_sessions_per_instance():
    tok, tid = add_token(a, "-l", "operator-" + RUN[:4])
    c = via(a, tok)
    _, status = c.ask("SUBMIT seen from B %s" % RUN)
    jid = int(status.split()[-1])
    wait_for(lambda: job_state(c, jid) == "done", timeout=20,
             what="the job done")
    ident = sha(tok)[:12]
    jobs = b.ctl("show", "jobs").stdout.splitlines()
    assert [l for l in jobs if l.startswith("%d done %s " % (jid, ident))], \
        jobs
    assert [l for l in b.ctl("token", "list").stdout.splitlines()
            if l.startswith("%d operator-" % tid)]
    assert ident in b.ctl("show", "usage").stdout
    assert "job %d: done" % jid in b.ctl("show", "events", "-n",
                                          "1000").stdout
    # The session is A's: B's table of live sessions does not have it.
    assert ident in a.ctl("show", "sessions").stdout
    assert ident not in b.ctl("show", "sessions").stdout
    c.close()


TABLES = ("conversations", "messages", "summaries", "jobs", "job_chunks",
          "tokens", "usage", "identities", "events")


def migrate(daemon, sqlite_path):
    """bridged -f (daemon's configuration) -m sqlite_path, as bridged(8)
    says: (exit status, output)."""
    r = subprocess.run([BRIDGED, "-f", daemon.conf, "-m", sqlite_path],
                       capture_output=True, text=True, timeout=120,
                       env={k: v for k, v in os.environ.items()
                            if not k.startswith("PG")})
    return r.returncode, r.stdout + r.stderr


def test_sqlite_database_moved_into_postgresql():
    # A SQLite database as a real bridged wrote it: two conversations,
    # a summary, a finished job, usage, events, a live and a revoked
    # token.
    s = Daemon(up, prefork=2, backend="sqlite", extra="identity token\n")
    try:
        tok, tid = add_token(s, "-l", "moved", "-r", "50")
        gone, gid = add_token(s, "-l", "gone")
        s.ctl("token", "revoke", str(gid))
        c = s.client()
        _, status = c.ask("AUTH " + tok)
        assert status.startswith(". OK authenticated"), status
        _, status = c.ask("NEW kept-" + RUN)
        conv = status.split()[3]
        for w in ("aardvark", "bandicoot"):
            _, status = c.ask("ASK about the %s %s" % (w, RUN))
            assert status.startswith(". OK model="), status
        _, status = c.ask("SYSTEM be brief")
        assert status.startswith(". OK"), status
        c.ask("IA")
        c.send("in chat %s" % RUN)
        _, status = c.reply()
        assert status.startswith(". OK model="), status
        _, status = c.ask("BACK")
        assert status.startswith(". OK"), status
        _, status = c.ask("SUBMIT a job to move %s" % RUN)
        jid = int(status.split()[-1])
        wait_for(lambda: job_state(c, jid) == "done", timeout=20,
                 what="the job done")
        before = {k: c.ask(k) for k in ("HISTORY 50", "SUMMARIES",
                                         "CONVERSATIONS", "RESULT %d" % jid,
                                         "SEARCH bandicoot")}
        _, status = c.ask("NEW other-" + RUN)
        assert status.startswith(". OK conversation"), status
        c.close()
    finally:
        s.stop()
    counts = {t: s.sql("SELECT count(*) FROM " + t)[0][0] for t in TABLES}
    assert all(counts[t] for t in TABLES if t != "job_chunks"), counts
    newdb = pgserver.new_database()
    p = Daemon(up, prefork=2, backend="postgresql", pg_database=newdb,
               extra="identity token\n", certs=s, start=False)
    rc, out = migrate(p, s.db)
    assert rc == 0, out
    moved = {t: pgserver.query("SELECT count(*) FROM " + t, db=newdb)[0][0]
             for t in TABLES}
    assert moved == counts, (moved, counts)
    # Into a database that is not empty, nothing more is copied.
    rc, out = migrate(p, s.db)
    assert rc != 0, out
    again = {t: pgserver.query("SELECT count(*) FROM " + t, db=newdb)[0][0]
             for t in TABLES}
    assert again == counts, (again, counts)

    p.start()
    try:
        c = p.client()
        _, status = c.ask("AUTH " + gone)
        assert status == ". ERR auth unknown token", status
        _, status = c.ask("AUTH " + tok)
        assert status.startswith(". OK authenticated"), status
        _, status = c.ask("RESUME kept-" + RUN)
        assert status == ". OK conversation %s kept-%s" % (conv, RUN), \
            status
        after = {k: c.ask(k) for k in before}
        # Ids, times and texts as they were. The listing has the
        # conversation made after, and RESUME moved the last use; a
        # match's line of context is each backend's own.
        for k, (body, status) in before.items():
            abody, astatus = after[k]
            if k == "CONVERSATIONS":
                body = [l.split(None, 3)[3] for l in body]
                abody = [l.split(None, 3)[3] for l in abody
                         if "other-" not in l]
                status = astatus
            elif k.startswith("SEARCH"):
                body = [l for l in body if l.startswith("--- ")]
                abody = [l for l in abody if l.startswith("--- ")]
            assert (abody, astatus) == (body, status), \
                (k, abody, astatus, body, status)
        body, _ = c.ask("USAGE 1")
        assert [l for l in body if l.startswith("limit requests-per-minute"
                                                " 50 used ")], body
        # New rows get new ids after the moved ones.
        last = pgserver.query("SELECT max(id) FROM messages", db=newdb)
        _, status = c.ask("ASK after the move %s" % RUN)
        assert status.startswith(". OK model="), status
        ids = pgserver.query("SELECT id FROM messages WHERE content = ?",
                             ["after the move %s" % RUN], db=newdb)
        assert len(ids) == 1 and ids[0][0] > last[0][0], (ids, last)
        _, status = c.ask("SUBMIT a new job %s" % RUN)
        assert int(status.split()[-1]) > jid, status
        c.close()
    finally:
        p.stop()


LONG = "[[fake:interval:500]][[fake:repeat:30]]"     # about 15 s of stream
KILL_SECS = 6   # a lease renewal every 2 s, on a loaded machine


def upstream_closed():
    """How many streams the fake upstream saw its client abandon."""
    with urllib.request.urlopen("http://127.0.0.1:%d/_fake/stats" %
                                up.port, timeout=10) as r:
        return json.loads(r.read())["client_closed"]


def stopped_on_a(tok, ca, jid, closed):
    """A, which runs the job, stops it: the upstream stream is dropped,
    the job ends cancelled, and no answer is stored."""
    t0 = time.monotonic()
    wait_for(lambda: job_state(ca, jid) == "cancelled", timeout=KILL_SECS,
             step=0.2, what="A to stop the job killed through B")
    wait_for(lambda: upstream_closed() > closed, timeout=KILL_SECS,
             step=0.2, what="A to drop the job's upstream stream")
    assert time.monotonic() - t0 < KILL_SECS
    rows = pgserver.query("SELECT role FROM messages WHERE client_id = ?",
                          [sha(tok)], db=dbname)
    assert ("model",) not in rows, rows
    ca.close()


def test_kill_through_the_other_instance_stops_the_job():
    tok, ca, jid = running_on_a("killed-elsewhere", "killed-elsewhere"
                                " %s %s" % (RUN, LONG))
    closed = upstream_closed()
    cb = via(b, tok)
    assert cb.ask("KILL %d" % jid) == ([], ". OK job %d cancelled" % jid)
    stopped_on_a(tok, ca, jid, closed)
    # Once it has ended, either instance says so.
    _, status = cb.ask("KILL %d" % jid)
    assert status == ". ERR bad-argument job %d is cancelled already" % \
        jid, status
    cb.close()


def test_bridgectl_kill_through_the_other_instance_stops_the_job():
    tok, ca, jid = running_on_a("operator-elsewhere", "operator-elsewhere"
                                " %s %s" % (RUN, LONG))
    closed = upstream_closed()
    r = b.ctl("kill", "job", str(jid))
    assert r.stdout.strip() == "job %d cancelled" % jid, r.stdout
    stopped_on_a(tok, ca, jid, closed)


def test_result_through_the_other_instance_follows_the_job():
    """RESULT through B of a job that A runs: what A has stored, then
    the rest as A commits it, while the job still runs, and its end."""
    p = ("followed-elsewhere %s [[fake:interval:300]][[fake:repeat:25]]"
         % RUN)    # about 15 s of stream; B reads on every 2 s
    tok, ca, jid = running_on_a("followed-elsewhere", p)
    cb = via(b, tok)
    cb.send("RESULT %d" % jid)
    first = cb.readline()
    assert first.startswith("Echo: "), first
    # What B passed on came while A still ran the job, not at its end.
    assert job_state(ca, jid) == "running"
    body, status = cb.reply()
    assert status.startswith(". OK model="), status
    # The same answer, line for line, as A says of the finished job.
    assert ca.ask("RESULT %d" % jid) == ([first] + body, status)
    cb.close()
    ca.close()


def test_result_through_the_other_instance_hears_a_new_run():
    """RESULT through B of a job that A runs again from the start (its
    provider killed after B had the first lines, B's storage stopped
    until the new run has more output than B had): B says it restarts,
    and does not go on with the new run's output after the old's."""
    p = ("rerun-elsewhere %s [[fake:interval:300]][[fake:repeat:25]]"
         % RUN)
    tok, ca, jid = running_on_a("rerun-elsewhere", p)
    cb = via(b, tok)
    cb.send("RESULT %d" % jid)
    assert cb.readline().startswith("Echo: ")
    # B reads nothing more while the new run outgrows what B had.
    had = a.sql("SELECT count(*) FROM job_chunks WHERE job_id = ?",
                jid)[0][0]
    stor = b.role_pids("storage")[0]
    os.kill(stor, signal.SIGSTOP)
    try:
        old = a.role_pids("provider")[0]
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: a.sql("SELECT attempts FROM jobs WHERE id = ?",
                               jid)[0][0] == 2, what="the new run on A")
        wait_for(lambda: a.sql("SELECT count(*) FROM job_chunks WHERE"
                               " job_id = ?", jid)[0][0] > had + 2,
                 what="the new run past what B had")
    finally:
        os.kill(stor, signal.SIGCONT)
    body, status = cb.reply()
    assert status == (". ERR upstream job %d restarts from the start; "
                      "RESULT %d follows it again" % (jid, jid)), \
        (body, status)
    _, status = ca.ask("KILL %d" % jid)
    assert status.startswith(". OK"), status
    cb.close()
    ca.close()
