"""
Conversations through the real daemon: NEW, CONVERSATIONS, RESUME,
DELETE, SYSTEM, the session starting in the most recently used one,
and one identity never reaching another's. Two identities come from
`identity token`; the database is checked with Python's sqlite3.
"""

import hashlib
import os
import re
import sqlite3
import uuid

from harness import Daemon, FakeUpstream

up = d = None
STATUS_OK = re.compile(r"^\. OK model=(\S+) in=\d+ out=\d+ ms=\d+")


def setup():
    global up, d
    up = FakeUpstream()
    d = Daemon(up, prefork=2, start=False)
    tokens = os.path.join(d.dir, "tokens")
    with open(tokens, "w") as f:
        f.write("alpha-token\nbeta-token\ngamma-token\n")
    os.chmod(tokens, 0o600)
    with open(d.conf, "a") as f:
        f.write('identity token file "%s"\n' % tokens)
    d.start()


def teardown():
    d.stop()
    up.stop()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def marker():
    return "m" + uuid.uuid4().hex[:10]


def client(token):
    c = d.client()
    _, status = c.ask("AUTH " + token)
    assert status.startswith(". OK authenticated"), status
    return c


def ok(c, line):
    body, status = c.ask(line)
    assert status.startswith(". OK"), (line, body, status)
    return body, status


def conv_of(status):
    m = re.match(r"^\. OK conversation (\d+) (\S+)$", status)
    assert m, status
    return int(m.group(1)), m.group(2)


def info(c):
    body, _ = ok(c, "INFO")
    return dict(l.split(": ", 1) for l in body)


def listing(c, n=""):
    body, status = ok(c, ("CONVERSATIONS " + n).strip())
    rows = []
    for line in body:
        m = re.match(r"^([*-]) (\d+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) "
                     r"(\d+) (\S+) (\S+)$", line)
        assert m, line
        rows.append((m.group(1), int(m.group(2)), int(m.group(4)),
                     m.group(5), m.group(6)))
    assert status == ". OK %d conversations" % len(rows), status
    return rows


def test_new_list_resume():
    c = client("alpha-token")
    name = "work-" + uuid.uuid4().hex[:6]
    _, status = ok(c, "NEW " + name)
    work, shown = conv_of(status)
    assert shown == name
    m = marker()
    ok(c, "ASK first " + m)
    body, _ = ok(c, "ASK second")
    assert "turns=3" in body[-1], body
    _, status = ok(c, "NEW")
    other, shown = conv_of(status)
    assert shown == "-" and other != work
    body, _ = ok(c, "ASK alone")
    assert "turns=1" in body[-1], body
    rows = listing(c)
    assert rows[0][:2] == ("*", other), rows
    assert ("-", work, 4, "gemini-2.0-flash", name) in rows, rows
    # RESUME by name brings its context back; by id too.
    _, status = ok(c, "RESUME " + name)
    assert conv_of(status) == (work, name)
    body, _ = ok(c, "ASK third")
    assert "turns=5" in body[-1], body
    body, _ = ok(c, "HISTORY 2")
    assert body[1].startswith("third"), body
    _, status = ok(c, "RESUME %d" % other)
    assert conv_of(status) == (other, "-")
    body, _ = ok(c, "HISTORY")
    assert [l for l in body if not l.startswith("---")] == [
        "alone", body[-1]], body
    kv = info(c)
    assert kv["conversation"] == "%d -" % other, kv
    c.close()
    # A new session starts in the most recently used conversation.
    c = client("alpha-token")
    assert info(c)["conversation"] == "%d -" % other
    ok(c, "RESUME " + name)
    c.close()
    c = client("alpha-token")
    assert info(c)["conversation"] == "%d %s" % (work, name)
    c.close()


def test_names():
    c = client("alpha-token")
    name = "dup-" + uuid.uuid4().hex[:6]
    ok(c, "NEW " + name)
    cur = info(c)["conversation"]
    _, status = c.ask("NEW " + name)
    assert status == ". ERR bad-argument a conversation named %s exists" \
        % name, status
    assert info(c)["conversation"] == cur
    for bad in ("a/b", "x" * 65, "caf\u00e9", "semi;colon", "dot..ok?"):
        _, status = c.ask("NEW " + bad)
        assert status.startswith(". ERR bad-argument a name is"), (bad,
                                                                  status)
    _, status = c.ask("NEW two words")
    assert status.startswith(". ERR bad-argument"), status
    for bad in ("RESUME no-such-name", "RESUME 999999999",
                "DELETE no-such-name", "RESUME a/b"):
        _, status = c.ask(bad)
        assert status == ". ERR not-found no such conversation", (bad,
                                                                 status)
    c.close()


def test_other_identity():
    a = client("alpha-token")
    name = "secret-" + uuid.uuid4().hex[:6]
    _, status = ok(a, "NEW " + name)
    mine, _ = conv_of(status)
    m = marker()
    ok(a, "ASK private " + m)
    a.close()
    b = client("beta-token")
    for line in ("RESUME %d" % mine, "DELETE %d" % mine, "RESUME " + name,
                 "DELETE " + name):
        body, status = b.ask(line)
        assert status == ". ERR not-found no such conversation", (line,
                                                                 status)
        assert body == [], body
    rows = listing(b, "1000")
    assert all(r[1] != mine for r in rows), rows
    # The same name is free for beta.
    _, status = ok(b, "NEW " + name)
    assert conv_of(status)[0] != mine
    b.close()
    db = sqlite3.connect(d.db)
    try:
        n = db.execute("SELECT count(*) FROM messages WHERE"
                       " conversation_id = ? AND client_id = ?",
                       (mine, sha(b"alpha-token"))).fetchone()[0]
    finally:
        db.close()
    assert n == 2, n


def test_delete_current_and_other():
    c = client("gamma-token")
    _, status = ok(c, "NEW keep")
    keep, _ = conv_of(status)
    ok(c, "ASK kept one")
    _, status = ok(c, "NEW doomed")
    doomed, _ = conv_of(status)
    ok(c, "ASK gone one")
    ok(c, "ASK gone two")
    _, status = ok(c, "DELETE doomed")
    assert status == ". OK deleted 4 messages", status
    kv = info(c)
    new = int(kv["conversation"].split()[0])
    assert new not in (keep, doomed), kv
    body, _ = ok(c, "ASK fresh")
    assert "turns=1" in body[-1], body
    _, status = ok(c, "DELETE %d" % keep)
    assert status == ". OK deleted 2 messages", status
    assert int(info(c)["conversation"].split()[0]) == new
    ids = [r[1] for r in listing(c)]
    assert keep not in ids and doomed not in ids and new in ids, ids
    c.close()
    db = sqlite3.connect(d.db)
    try:
        left = db.execute("SELECT count(*) FROM messages WHERE"
                          " conversation_id IN (?, ?)",
                          (keep, doomed)).fetchone()[0]
        convs = db.execute("SELECT count(*) FROM conversations WHERE"
                           " id IN (?, ?)", (keep, doomed)).fetchone()[0]
    finally:
        db.close()
    assert left == 0 and convs == 0, (left, convs)


def test_system_prompt():
    c = client("alpha-token")
    ok(c, "NEW")
    body, status = ok(c, "SYSTEM")
    assert (body, status) == ([], ". OK no system prompt")
    body, _ = ok(c, "ASK plain")
    assert "system=no" in body[-1], body
    _, status = ok(c, "SYSTEM Answer like a pirate.")
    assert status == ". OK system prompt set", status
    body, status = ok(c, "SYSTEM")
    assert body == ["Answer like a pirate."], body
    body, _ = ok(c, "ASK ahoy")
    assert "system=yes" in body[-1], body
    c.close()
    # It is the conversation's: a new session has it.
    c = client("alpha-token")
    body, _ = ok(c, "SYSTEM")
    assert body == ["Answer like a pirate."], body
    _, status = ok(c, "SYSTEM -")
    assert status == ". OK system prompt cleared", status
    body, _ = ok(c, "ASK calm")
    assert "system=no" in body[-1], body
    c.close()


def test_chat_mode_words_are_prompts():
    c = client("alpha-token")
    cur = info(c)["conversation"]
    ok(c, "IA")
    for line in ("NEW x", "CONVERSATIONS", "DELETE 1", "SYSTEM hi"):
        body, status = ok(c, line)
        assert STATUS_OK.match(status), status
        assert body[-1].startswith("Echo: " + line), body
    ok(c, "BACK")
    assert info(c)["conversation"] == cur
    c.close()
