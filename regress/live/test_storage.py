"""
Storage through the real daemon: what `. OK` promises is in the
database, across kill -9 of storage, kill -9 of the whole process
group, and a storage that stays down for a while. The database is read
back (Daemon.sql: Python's sqlite3, or psql on PostgreSQL), after the
daemon has stopped where the brief says so. run.py runs it on both
backends.
"""

import hashlib
import os
import pwd
import random
import re
import signal
import stat
import threading
import time

from harness import Daemon, FakeUpstream, IS_ROOT, Skip, wait_for, \
    pid_alive

d = up = None
IDENT = hashlib.sha256(b"127.0.0.1").hexdigest()
RUN = "%08x" % random.getrandbits(32)      # prompts unique to this run
CLIENTS = 50
TURNS = 4


def setup():
    global d, up
    up = FakeUpstream()
    d = Daemon(up, prefork=4, max_clients=128, start=False,
               extra="summaries keep 2")
    try:
        d.start()
    except Exception:
        # teardown is not called when setup fails: leave nothing behind
        d.stop()
        up.stop()
        raise


def teardown():
    d.stop()
    up.stop()


def rows(sql, *args):
    return d.sql(sql, *args)


def integrity():
    return d.integrity()


def ask(c, prompt):
    body, status = c.ask("ASK " + prompt)
    return body, status


def echo_of(prompt):
    """The fake's answer to a prompt, without its directives."""
    text = prompt
    while "[[fake:" in text:
        a = text.index("[[fake:")
        b = text.index("]]", a) + 2
        text = text[:a] + text[b:]
    return "Echo: " + text.strip()


def whole_answer(prompt):
    """The end of the fake's whole answer to a prompt: its own text
    (the last of its turn) and the trailer only a finished answer has."""
    return re.compile(re.escape(echo_of(prompt)[len("Echo: "):]) +
                      r" \[turns=\d+ system=(yes|no)\]$")


def check_stored(prompts):
    """Each prompt once as a user row, its whole answer as a model row
    after it. Every client of these tests is 127.0.0.1, one identity,
    so a prompt's context holds the others' prompts too."""
    models = rows("SELECT id, content FROM messages WHERE client_id = ?"
                  " AND role = 'model'", IDENT)
    bad = []
    for p in prompts:
        users = rows("SELECT id FROM messages WHERE client_id = ? AND"
                     " role = 'user' AND content = ?", IDENT, p)
        if len(users) != 1:
            bad.append("%r stored %d times" % (p, len(users)))
            continue
        end = whole_answer(p)
        if not [i for i, c in models if i > users[0][0] and
                c.startswith("Echo: ") and end.search(c)]:
            bad.append("%r has no whole answer" % p)
    assert not bad, "%d of %d: %s" % (len(bad), len(prompts), bad[:5])


def check_complete():
    """No model row is a partial answer stored as if it were whole."""
    bad = [c[-80:] for (c,) in rows(
        "SELECT content FROM messages WHERE client_id = ? AND"
        " role = 'model' AND content LIKE 'Echo: %'", IDENT)
        if not re.search(r" \[turns=\d+ system=(yes|no)\]$", c)]
    assert not bad, "%d partial answers: %s" % (len(bad), bad[:3])


def storage_pid():
    return wait_for(lambda: d.role_pids("storage"), what="storage")[0]


def test_rows_after_ok():
    c = d.client()
    p = "probe %s one" % RUN
    body, status = ask(c, p)
    assert status.startswith(". OK"), (body, status)
    # OK means committed: visible at once to another connection.
    r = rows("SELECT role, model, tokens, msgkey, timestamp FROM messages"
             " WHERE client_id = ? AND content = ?", IDENT, p)
    assert len(r) == 1, r
    role, model, tokens, key, ts = r[0]
    assert role == "user" and key is not None, r
    assert abs(ts - time.time()) < 60, ts
    a = rows("SELECT role, model, content FROM messages WHERE client_id = ?"
             " AND content LIKE ?", IDENT, echo_of(p) + " [turns=%")
    assert len(a) == 1 and a[0][0] == "model", a
    assert a[0][1] == "gemini-2.0-flash", a
    assert "\n".join(body).startswith(echo_of(p)), body
    c.ask("QUIT")


def test_history_and_count_agree():
    c = d.client()
    for i in range(3):
        body, status = ask(c, "history %s %d" % (RUN, i))
        assert status.startswith(". OK"), status
    body, status = c.ask("HISTORY 4")
    assert status.startswith(". OK"), status
    heads = [l for l in body if l.startswith("--- ")]
    assert len(heads) == 4, body
    ids = [int(h.split()[1]) for h in heads]
    assert ids == sorted(ids), ids
    last = rows("SELECT id FROM messages WHERE client_id = ?"
                " ORDER BY id DESC LIMIT 4", IDENT)
    assert sorted(i for (i,) in last) == ids, (last, ids)
    assert "history %s 2" % RUN in "\n".join(body), body
    body, status = c.ask("INFO")
    n = [l for l in body if l.startswith("messages:")]
    count = rows("SELECT count(*) FROM messages WHERE client_id = ?",
                 IDENT)[0][0]
    assert n and int(n[0].split()[1]) == count, (n, count)
    c.ask("QUIT")


def test_summaries_kept_to_limit():
    c = d.client()
    for i in range(3):
        body, status = c.ask("IA")
        assert status.startswith(". OK"), status
        c.send("summary %s %d" % (RUN, i))
        body, status = c.reply()
        assert status.startswith(". OK"), status
        body, status = c.ask("BACK")
        assert status.startswith(". OK"), (body, status)
    n = rows("SELECT count(*) FROM summaries WHERE client_id = ?", IDENT)
    assert n[0][0] == 2, n          # summaries keep 2
    c.ask("QUIT")


def test_database_private():
    if d.pgdb:
        raise Skip("a SQLite file's mode and journal; PostgreSQL keeps "
                   "its own files")
    st = os.stat(d.db)
    assert st.st_mode & 0o077 == 0, oct(st.st_mode)
    if IS_ROOT:
        pw = pwd.getpwnam(d.user)
        assert st.st_uid == pw.pw_uid, (st.st_uid, pw.pw_uid)
    assert rows("PRAGMA journal_mode")[0][0] == "wal"


class Chatter(threading.Thread):
    """One client saying TURNS prompts; remembers which got OK."""

    def __init__(self, tag, n, directive="[[fake:interval:25]]"):
        super().__init__(daemon=True)
        self.prompts = ["%s %s c%d t%d %s" % (tag, RUN, n, i, directive)
                        for i in range(TURNS)]
        self.ok, self.err, self.other = [], [], []

    def run(self):
        try:
            c = d.client(timeout=30)
        except Exception as e:
            self.other.append(("connect", repr(e)))
            return
        try:
            for p in self.prompts:
                body, status = ask(c, p)
                if status.startswith(". OK"):
                    self.ok.append(p)
                elif status.startswith(". ERR storage"):
                    self.err.append(p)
                else:
                    self.other.append((p, status))
        except Exception as e:
            self.other.append(("io", repr(e)))
        finally:
            c.close()


def chat_while(tag, action, directive="[[fake:interval:25]]"):
    ts = [Chatter(tag, i, directive) for i in range(CLIENTS)]
    for t in ts:
        t.start()
    action(ts)
    for t in ts:
        t.join(120)
        assert not t.is_alive(), "a client hung"
    return ts


def test_kill9_storage_while_50_chat():
    killed = []

    def killer(ts):
        time.sleep(0.3)
        for _ in range(2):
            pid = storage_pid()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            time.sleep(0.6)

    ts = chat_while("k9s", killer)
    ok = [p for t in ts for p in t.ok]
    other = [o for t in ts for o in t.other]
    d.stop()
    try:
        assert not other, other[:5]
        assert len(killed) == 2 and len(ok) > CLIENTS, (killed, len(ok))
        check_stored(ok)
        check_complete()
        assert integrity() == "ok"
    finally:
        d.start()


def test_kill9_process_group_while_50_chat():
    def killer(ts):
        # Once the first answers are in (a loaded machine, a slower
        # backend), while the rest are on their way.
        wait_for(lambda: any(t.ok for t in ts), timeout=20,
                 what="a first OK")
        time.sleep(0.2)
        os.killpg(d.pid, signal.SIGKILL)

    ts = chat_while("k9g", killer)
    ok = [p for t in ts for p in t.ok]
    d.stop()
    try:
        assert ok, "nothing got OK before the kill"
        check_stored(ok)
        check_complete()
        assert integrity() == "ok"
    finally:
        # It starts again on what the crash left, and keeps it.
        d.start()
    c = d.client()
    body, status = ask(c, "after crash %s" % RUN)
    assert status.startswith(". OK"), status
    c.ask("QUIT")
    check_stored(ok + ["after crash %s" % RUN])


def storage_down(seconds):
    """Storage dies and cannot start again for a while."""
    d.database_away()
    try:
        old = storage_pid()
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: not pid_alive(old), what="storage to die")
        time.sleep(seconds)
    finally:
        d.database_back()


def test_prompt_waits_for_storage_restart():
    c = d.client()
    body, status = ask(c, "warm %s" % RUN)
    assert status.startswith(". OK"), status
    p = "waits %s" % RUN
    t = threading.Thread(target=storage_down, args=(3,))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    body, status = ask(c, p)
    waited = time.monotonic() - t0
    t.join()
    assert status.startswith(". OK") or status.startswith(". ERR storage"),\
        status
    if status.startswith(". OK"):
        assert waited > 1.5, waited
        check_stored([p])
    c.ask("QUIT")


def test_storage_down_too_long_is_err_storage():
    c = d.client()
    body, status = ask(c, "warm2 %s" % RUN)
    assert status.startswith(". OK"), status
    p = "gives up %s" % RUN
    t = threading.Thread(target=storage_down, args=(13,))
    t.start()
    time.sleep(0.5)
    body, status = ask(c, p)
    t.join()
    assert status.startswith(". ERR storage"), status
    # Storage is back: the session goes on, and OK means stored again.
    wait_for(lambda: d.role_pids("storage"), what="storage back")
    q = "back %s" % RUN
    body, status = ask(c, q)
    assert status.startswith(". OK"), status
    check_stored([q])
    c.ask("QUIT")
    d.stop()
    try:
        check_complete()
        assert integrity() == "ok"
    finally:
        d.start()
