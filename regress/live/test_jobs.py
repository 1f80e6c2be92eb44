"""
Background jobs through the real daemon: SUBMIT, DIALOGUE, JOBS,
RESULT, KILL; a job that goes on when its client leaves, when its
worker, the provider or the whole daemon is killed; the per-identity
and server-wide limits; two clients following one job; bridgectl show
jobs, kill job and monitor. Each test speaks from its own loopback
address, so each is an identity of its own and their jobs do not
queue behind each other's.
"""

import hashlib
import os
import random
import re
import signal
import subprocess
import time

from harness import (Daemon, FakeUpstream, BRIDGECTL, wait_for, pid_alive)

d = up = None
RUN = "%08x" % random.getrandbits(32)      # prompts unique to this run
SLOW = "[[fake:interval:150]][[fake:repeat:8]]"  # about 2.5 s of stream
_next = [10]


def setup():
    global d, up
    up = FakeUpstream()
    d = Daemon(up, prefork=3)


def teardown():
    d.stop()
    up.stop()


def addr():
    """A loopback address no other test uses: an identity of its own."""
    _next[0] += 1
    return "127.0.0.%d" % _next[0]


def ident(a):
    return hashlib.sha256(a.encode()).hexdigest()


def client(a):
    return d.client(source=a)


def prompt(tag, extra=""):
    return "%s %s %s" % (tag, RUN, extra)


def repeats(text):
    m = re.search(r"\[\[fake:repeat:(\d+)\]\]", text)
    return int(m.group(1)) if m else 1


def echo_of(text):
    """The fake's answer to a prompt (one of its lines), without its
    directives and trailer."""
    while "[[fake:" in text:
        a = text.index("[[fake:")
        b = text.index("]]", a) + 2
        text = text[:a] + text[b:]
    return "Echo: " + text.strip()


def submit(c, text):
    body, status = c.ask("SUBMIT " + text)
    m = re.match(r"^\. OK job (\d+)$", status)
    assert m and body == [], (body, status)
    return int(m.group(1))


def jobs(c):
    body, status = c.ask("JOBS")
    assert status.startswith(". OK"), status
    out = {}
    for line in body:
        f = line.split(" ", 5)
        out[int(f[0])] = f[1]
    return out


def state(c, job):
    return jobs(c).get(job)


def db_rows(sql, *args):
    return d.sql(sql, *args)


def chunks(job):
    return db_rows("SELECT count(*) FROM job_chunks WHERE job_id = ?",
                   job)[0][0]


def answer_ok(body, status, text):
    """RESULT of a finished SUBMIT: the whole answer, then OK."""
    assert re.match(r"^\. OK model=\S+ in=\d+ out=\d+ ms=\d+$", status), \
        (body[-3:], status)
    line = re.compile(re.escape(echo_of(text)) +
                      r" \[turns=\d+ system=(yes|no)\]$")
    assert len(body) == repeats(text) and all(
        line.match(l) for l in body), (body[:3], len(body), echo_of(text))


def stored_pair(a, text):
    """The prompt and its whole answer are stored as a pair."""
    rows = db_rows("SELECT role, content FROM messages WHERE client_id = ?"
                   " ORDER BY id", ident(a))
    for i, (role, content) in enumerate(rows):
        if role == "user" and content == text:
            assert i + 1 < len(rows) and rows[i + 1][0] == "model", rows
            assert rows[i + 1][1].startswith(echo_of(text)), rows[i + 1]
            return
    raise AssertionError("no stored pair for %r in %r" % (text, rows))


def result_final(c, job):
    """RESULT, followed again if the job restarted meanwhile."""
    for _ in range(3):
        body, status = c.ask("RESULT %d" % job)
        if not status.startswith(". ERR upstream job %d restarts" % job):
            return body, status
    raise AssertionError("job %d keeps restarting" % job)


def busy_worker():
    """The pid of the one worker serving a client."""
    out = d.status()
    pids = [int(l.split()[2]) for l in out.splitlines()
            if l.startswith("process: worker") and l.endswith(" busy")]
    assert len(pids) == 1, out
    return pids[0]


def test_submit_and_result():
    a = addr()
    c = client(a)
    text = prompt("plain")
    job = submit(c, text)
    body, status = c.ask("RESULT %d" % job)
    answer_ok(body, status, text)
    # Finished: RESULT again shows the same, and the pair is stored.
    assert c.ask("RESULT %d" % job) == (body, status)
    assert jobs(c)[job] == "done"
    stored_pair(a, text)
    hist, st = c.ask("HISTORY 2")
    assert hist[1] == text and hist[3].startswith(echo_of(text)), hist
    c.close()


def test_submit_uses_context():
    a = addr()
    c = client(a)
    body, status = c.ask("ASK first " + RUN)
    assert status.startswith(". OK"), status
    job = submit(c, prompt("second"))
    body, status = c.ask("RESULT %d" % job)
    assert status.startswith(". OK"), status
    # The stored exchange came first: three turns went upstream.
    assert body[-1].endswith("[turns=3 system=no]"), body
    c.close()


def test_survives_disconnect():
    a = addr()
    c = client(a)
    text = prompt("disconnect", SLOW)
    job = submit(c, text)
    c.close()
    c = client(a)
    wait_for(lambda: state(c, job) == "done", timeout=20,
             what="the job to finish without its client")
    body, status = c.ask("RESULT %d" % job)
    answer_ok(body, status, text)
    stored_pair(a, text)
    c.close()


def test_survives_worker_sigkill():
    a = addr()
    c = client(a)
    text = prompt("workerkill", SLOW)
    job = submit(c, text)
    w = busy_worker()
    os.kill(w, signal.SIGKILL)
    wait_for(lambda: not pid_alive(w), what="the worker to die")
    c.close()
    c = client(a)
    body, status = c.ask("RESULT %d" % job)
    answer_ok(body, status, text)
    c.close()


def test_survives_provider_sigkill():
    a = addr()
    c = client(a)
    text = prompt("providerkill", SLOW)
    job = submit(c, text)
    wait_for(lambda: chunks(job) > 0, what="output to be stored")
    c.send("RESULT %d" % job)
    assert c.readline().startswith("Echo: ")
    old = d.role_pids("provider")[0]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: [p for p in d.role_pids("provider") if p != old],
             what="a new provider")
    # Who followed it hears that it starts again.
    body, status = c.reply()
    assert status == (". ERR upstream job %d restarts from the start; "
                      "RESULT %d follows it again" % (job, job)), status
    # Followed while it restarted, it says so: follow it again.
    body, status = result_final(c, job)
    answer_ok(body, status, text)
    assert db_rows("SELECT attempts FROM jobs WHERE id = ?",
                   job)[0][0] == 2
    stored_pair(a, text)
    c.close()


def test_survives_storage_sigkill():
    a = addr()
    c = client(a)
    text = prompt("storagekill", SLOW)
    job = submit(c, text)
    wait_for(lambda: chunks(job) > 0, what="output to be stored")
    old = d.role_pids("storage")[0]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: [p for p in d.role_pids("storage") if p != old],
             what="a new storage")
    body, status = result_final(c, job)
    answer_ok(body, status, text)
    assert db_rows("SELECT attempts FROM jobs WHERE id = ?",
                   job)[0][0] == 2
    stored_pair(a, text)
    c.close()


def test_survives_reload():
    """A reload restarts the provider once no job runs; the queued one
    runs in the new one."""
    a = addr()
    c = client(a)
    texts = [prompt("reload%d" % i, "[[fake:slow:1000]]") for i in range(3)]
    ids = [submit(c, t) for t in texts]
    wait_for(lambda: state(c, ids[0]) == "running", what="running")
    old = d.role_pids("provider")[0]
    d.ctl("reload")
    for t, i in zip(texts, ids):
        answer_ok(*result_final(c, i), t)
    wait_for(lambda: old not in d.role_pids("provider"),
             what="the provider to restart")
    att = [r[0] for r in db_rows("SELECT attempts FROM jobs WHERE id IN "
                                 "(?, ?, ?) ORDER BY id", *ids)]
    assert att == [1, 1, 1], att
    c.close()


def test_identity_limit_queues():
    a = addr()
    c = client(a)
    texts = [prompt("limit%d" % i, "[[fake:slow:1500]]") for i in range(3)]
    ids = [submit(c, t) for t in texts]
    wait_for(lambda: [state(c, i) for i in ids] ==
             ["running", "running", "queued"], timeout=5,
             what="two running, one queued")
    time.sleep(0.5)
    assert state(c, ids[2]) == "queued"
    wait_for(lambda: all(state(c, i) == "done" for i in ids), timeout=20,
             what="all three done")
    rows = dict((r[0], r[1:]) for r in db_rows(
        "SELECT id, started, finished FROM jobs WHERE id IN (?, ?, ?)",
        *ids))
    # The third started only when one of the first two had finished.
    assert rows[ids[2]][0] >= min(rows[ids[0]][1], rows[ids[1]][1]), rows
    for t, i in zip(texts, ids):
        answer_ok(*c.ask("RESULT %d" % i), t)
    c.close()


def test_kill_queued_and_running():
    a = addr()
    c = client(a)
    texts = [prompt("kill%d" % i, "[[fake:slow:2500]]") for i in range(3)]
    ids = [submit(c, t) for t in texts]
    wait_for(lambda: state(c, ids[2]) == "queued" and
             state(c, ids[0]) == "running", timeout=5,
             what="one running, one queued")
    assert c.ask("KILL %d" % ids[2]) == ([], ". OK job %d cancelled" %
                                         ids[2])
    assert c.ask("KILL %d" % ids[0]) == ([], ". OK job %d cancelled" %
                                         ids[0])
    body, status = c.ask("KILL %d" % ids[0])
    assert status.startswith(". ERR bad-argument"), status
    # The provider stopped the running one.
    wait_for(lambda: "provider: job %d: gone" % ids[0] in d.logtext(),
             what="the provider to drop the killed job")
    for i in (ids[0], ids[2]):
        assert c.ask("RESULT %d" % i) == (
            [], ". ERR cancelled job %d was cancelled" % i)
        assert state(c, i) == "cancelled"
    answer_ok(*c.ask("RESULT %d" % ids[1]), texts[1])
    # The queued one never went upstream; nothing of the killed is stored.
    sent = [r for r in up.requests() if "generate" in r.get("path", "").lower()
            and texts[2].split()[0] in str(r.get("body"))]
    assert sent == [], sent
    kinds = db_rows("SELECT content FROM messages WHERE client_id = ?",
                    ident(a))
    assert not [k for (k,) in kinds if k.startswith("kill0") or
                k.startswith("kill2")], kinds
    c.close()


def test_waiting_cap():
    """At most 100 unfinished jobs per identity; then busy, until one
    ends."""
    a = addr()
    c = client(a)
    for i in range(101):
        c.send("SUBMIT " + prompt("cap%d" % i, "[[fake:slow:4000]]"))
    replies = [c.reply() for _ in range(101)]
    ids = [int(r[1].split()[-1]) for r in replies[:100]]
    assert all(r[1].startswith(". OK job ") for r in replies[:100])
    assert replies[100][1].startswith(". ERR busy 100 jobs of yours"), \
        replies[100]
    for i in ids:
        c.send("KILL %d" % i)
    kills = [c.reply()[1] for _ in ids]
    assert all(k.endswith(" cancelled") for k in kills), kills[:3]
    job = submit(c, prompt("cap-after"))
    answer_ok(*c.ask("RESULT %d" % job), prompt("cap-after"))
    c.close()


def test_result_failed():
    a = addr()
    c = client(a)
    job = submit(c, prompt("failing", "[[fake:404]]"))
    body, status = c.ask("RESULT %d" % job)
    assert status.startswith(". ERR ") and "cancelled" not in status, status
    assert state(c, job) == "failed"
    assert c.ask("RESULT %d" % job) == (body, status)
    c.close()


def test_two_followers():
    a = addr()
    c1, c2 = client(a), client(a)
    text = prompt("follow", SLOW)
    job = submit(c1, text)
    wait_for(lambda: chunks(job) > 0, what="output to be stored")
    c1.send("RESULT %d" % job)
    c2.send("RESULT %d" % job)
    first = c2.readline()
    assert first.startswith("Echo: "), first
    c2.send("CANCEL")
    body, status = c2.reply()
    assert status == ". ERR cancelled job %d still running" % job, status
    # c2 is usable at once; c1 gets it all.
    assert c2.ask("JOBS 1")[1] == ". OK 1 jobs"
    body, status = c1.reply()
    answer_ok(body, status, text)
    c1.close()
    c2.close()


def test_other_identity():
    a, b = addr(), addr()
    c = client(a)
    job = submit(c, prompt("mine"))
    o = client(b)
    for cmd in ("RESULT %d", "KILL %d"):
        body, status = o.ask(cmd % job)
        assert body == [] and status == ". ERR not-found no job %d" % job, \
            status
    assert job not in jobs(o)
    body, status = o.ask("RESULT 999999")
    assert status == ". ERR not-found no job 999999", status
    answer_ok(*c.ask("RESULT %d" % job), prompt("mine"))
    c.close()
    o.close()


def test_dialogue():
    a = addr()
    c = client(a)
    body, status = c.ask("DIALOGUE 3 gemini-2.0-flash gemini-2.5-flash "
                         "hello " + RUN)
    m = re.match(r"^\. OK job (\d+)$", status)
    assert m, status
    job = int(m.group(1))
    body, status = c.ask("RESULT %d" % job)
    assert status.startswith(". OK model=gemini-2.0-flash,gemini-2.5-flash"
                             " in="), status
    heads = [l for l in body if l.startswith("--- ")]
    assert heads == ["--- gemini-2.0-flash", "--- gemini-2.5-flash",
                     "--- gemini-2.0-flash"], body
    # Each answers the other: B's turn quotes A's answer.
    i = body.index("--- gemini-2.5-flash")
    assert body[i + 1].startswith("Echo: Echo: hello " + RUN), body
    # A conversation of its own: the opening, then each turn under the
    # model that wrote it; the session stays where it was.
    rows = db_rows("SELECT m.role, m.model, m.content FROM messages m,"
                   " conversations c WHERE m.conversation_id = c.id AND"
                   " c.client_id = ? AND c.name = ? ORDER BY m.id",
                   ident(a), "dialogue-%d" % job)
    assert [(r[0], r[1]) for r in rows] == [
        ("user", "gemini-2.0-flash"), ("model", "gemini-2.0-flash"),
        ("model", "gemini-2.5-flash"), ("model", "gemini-2.0-flash")], rows
    assert rows[0][2] == "hello " + RUN and rows[2][2].startswith(
        "Echo: Echo: hello " + RUN), rows
    conv, st = c.ask("CONVERSATIONS")
    assert conv[0].startswith("* ") and "dialogue-%d" % job in \
        conv[-1], conv
    body, status = c.ask("RESUME dialogue-%d" % job)
    assert status.startswith(". OK conversation "), status
    hist, st = c.ask("HISTORY")
    assert st == ". OK 4 messages", (hist, st)
    body, status = c.ask("DIALOGUE 1 gemini-2.0-flash gemini-2.5-flash x")
    assert status == ". ERR bad-argument turns must be 2 to 50", status
    body, status = c.ask("DIALOGUE 2 gemini-2.0-flash nosuchmodel x")
    assert status.startswith(". ERR bad-argument no model named"), status
    c.close()


def test_dialogue_restarts_clean():
    """A dialogue that runs again after the provider died keeps its
    conversation to one copy of each turn."""
    a = addr()
    c = client(a)
    body, status = c.ask("DIALOGUE 3 gemini-2.0-flash gemini-2.5-flash "
                         "restart [[fake:interval:120]] " + RUN)
    job = int(status.split()[-1])
    wait_for(lambda: db_rows("SELECT count(*) FROM job_chunks WHERE"
                             " job_id = ? AND turn = 1", job)[0][0] > 0,
             timeout=20, what="the second turn")
    old = d.role_pids("provider")[0]
    os.kill(old, signal.SIGKILL)
    body, status = result_final(c, job)
    assert status.startswith(". OK model="), status
    rows = db_rows("SELECT m.role FROM messages m, jobs j WHERE"
                   " m.conversation_id = j.conversation_id AND j.id = ?"
                   " ORDER BY m.id", job)
    assert [r[0] for r in rows] == ["user", "model", "model", "model"], \
        rows
    c.close()


def test_bridgectl_jobs_and_monitor():
    a = addr()
    c = client(a)
    mon = subprocess.Popen([BRIDGECTL, "-s", d.sock, "monitor"],
                           stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        job = submit(c, prompt("operator", "[[fake:slow:3000]]"))
        wait_for(lambda: state(c, job) == "running", what="running")
        out = d.ctl("show", "jobs").stdout
        line = [l for l in out.splitlines() if l.startswith("%d " % job)]
        assert line and line[0].split()[1:3] == ["running",
                                                 ident(a)[:12]], out
        r = d.ctl("kill", "job", str(job))
        assert r.stdout.strip() == "job %d cancelled" % job, r.stdout
        r = d.ctl("kill", "job", str(job), check=False)
        assert r.returncode != 0 and "cancelled already" in r.stderr, \
            r.stderr
        r = d.ctl("kill", "job", "99999999", check=False)
        assert r.returncode != 0 and "no job" in r.stderr, r.stderr
        assert state(c, job) == "cancelled"
    finally:
        time.sleep(0.3)
        mon.terminate()
        events = mon.communicate(timeout=5)[0]
    for want in ("job %d: queued by %s" % (job, ident(a)[:12]),
                 "job %d: running" % job,
                 "job %d: cancelled by the operator" % job):
        assert want in events, events
    c.close()


def test_purge_takes_jobs():
    a = addr()
    c = client(a)
    job = submit(c, prompt("purged"))
    answer_ok(*c.ask("RESULT %d" % job), prompt("purged"))
    d.ctl("purge", "-f", ident(a))
    # The purge ends the identity's session; a new one finds nothing.
    assert c.reply()[1] == ". BYE identity purged"
    c.close()
    c = client(a)
    assert jobs(c) == {}
    assert c.ask("RESULT %d" % job)[1] == ". ERR not-found no job %d" % job
    assert db_rows("SELECT count(*) FROM jobs WHERE client_id = ?",
                   ident(a))[0][0] == 0
    assert db_rows("SELECT count(*) FROM job_chunks WHERE job_id = ?",
                   job)[0][0] == 0
    # Its id is not given again.
    c.close()
    c = client(a)
    assert submit(c, prompt("after-purge")) > job
    c.close()


def test_server_limit():
    """jobs max 1: one job at a time, whoever submitted it."""
    u = FakeUpstream()
    e = Daemon(u, prefork=2, extra="jobs max 1")
    try:
        cs = [e.client(source=addr()) for _ in range(2)]
        ids = [submit(x, prompt("max%d" % i, "[[fake:slow:1200]]"))
               for i, x in enumerate(cs)]
        wait_for(lambda: state(cs[0], ids[0]) == "running", timeout=5,
                 what="the first running")
        assert state(cs[1], ids[1]) == "queued"
        wait_for(lambda: state(cs[1], ids[1]) == "done", timeout=15,
                 what="the second done")
        for x in cs:
            x.close()
    finally:
        e.stop()
        u.stop()


def test_survives_restart():
    """SIGTERM, then a new bridged: running and queued jobs run again."""
    a = addr()
    c = client(a)
    texts = [prompt("restart%d" % i, SLOW) for i in range(3)]
    ids = [submit(c, t) for t in texts]
    wait_for(lambda: chunks(ids[0]) > 0, what="output to be stored")
    assert state(c, ids[2]) == "queued"
    c.close()
    d.stop()
    states = dict(db_rows("SELECT id, state FROM jobs WHERE id IN "
                          "(?, ?, ?)", *ids))
    assert states[ids[2]] == 0 and states[ids[0]] == 1, states
    d.start()
    c = client(a)
    for t, i in zip(texts, ids):
        # On PostgreSQL the new instance cannot tell the old one's
        # lease from a live instance's: it runs the job again when
        # the lease ends, and a RESULT that follows it then is told so.
        body, status = result_final(c, i) if d.pgdb else \
            c.ask("RESULT %d" % i)
        answer_ok(body, status, t)
        stored_pair(a, t)
    att = dict(db_rows("SELECT id, attempts FROM jobs WHERE id IN "
                       "(?, ?, ?)", *ids))
    assert att[ids[0]] == 2 and att[ids[2]] == 1, att
    c.close()
