"""
Conversations through the real daemon: NEW, CONVERSATIONS, RESUME,
DELETE, SYSTEM, the session starting in the most recently used one,
and one identity never reaching another's. Two identities come from
`identity token`; the database is read back with Daemon.sql (both
backends: run.py runs it on PostgreSQL too).
"""

import hashlib
import os
import re
import uuid

from harness import Daemon, FakeUpstream

up = d = None
ROLES = """
role "reviewer" {
	description "terse code review"
	system "You review code. Be terse."
	model "gemini-2.5-flash"
	temperature 0.2
	max tokens 2048
}
role "plain" {
}
"""
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
        f.write(ROLES)
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
    n = d.sql("SELECT count(*) FROM messages WHERE"
              " conversation_id = ? AND client_id = ?",
              mine, sha(b"alpha-token"))[0][0]
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
    left = d.sql("SELECT count(*) FROM messages WHERE"
                 " conversation_id IN (?, ?)", keep, doomed)[0][0]
    convs = d.sql("SELECT count(*) FROM conversations WHERE"
                  " id IN (?, ?)", keep, doomed)[0][0]
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


def search(c, words):
    body, status = ok(c, "SEARCH " + words)
    m = re.match(r"^\. OK (\d+) matches$", status)
    assert m, status
    hits = []
    for i in range(0, len(body), 2):
        h = re.match(r"^--- (\d+) (\d+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) "
                     r"(user|model)$", body[i])
        assert h, body
        hits.append((int(h.group(1)), int(h.group(2)), h.group(4),
                     body[i + 1]))
    assert len(hits) == int(m.group(1)), (hits, status)
    return hits


def test_search():
    a = client("alpha-token")
    word = "zq" + uuid.uuid4().hex[:8]
    _, status = ok(a, "NEW")
    first, _ = conv_of(status)
    ok(a, "ASK the %s (draft) says \"quoted\" NEAR the end*" % word)
    _, status = ok(a, "NEW")
    second, _ = conv_of(status)
    ok(a, "ASK again " + word)
    hits = search(a, word)
    # Newest first, across conversations, prompts and echoed answers.
    convs = [h[0] for h in hits]
    assert convs[:2] == [second, second] and set(convs) == {first, second}, \
        hits
    assert hits[0][1] > hits[-1][1], hits
    assert any(h[2] == "user" and word in h[3] for h in hits), hits
    # FTS5 syntax is searched for literally, never an error.
    for words in ('"', '*', 'NEAR', '(', ')', '((', 'NEAR(%s x)' % word,
                  '"%s' % word, '%s*' % word, 'a OR b', '-x', '^x',
                  'col:val', '{a b}', "'", "\\", "AND NOT"):
        body, status = a.ask("SEARCH " + words)
        assert status.startswith(". OK "), (words, status)
    assert len(search(a, '"%s"' % word)) == len(hits)
    assert len(search(a, "(draft %s" % word)) == 2      # the prompt and echo
    assert search(a, "NEAR " + word) != []
    _, status = a.ask("SEARCH")
    assert status.startswith(". ERR bad-argument"), status
    _, status = a.ask("SEARCH " + "x" * 1100)
    assert status.startswith(". ERR bad-argument"), status
    a.close()
    b = client("beta-token")
    assert search(b, word) == []
    b.close()


def test_export():
    import json
    a = client("alpha-token")
    name = "exp-" + uuid.uuid4().hex[:6]
    _, status = ok(a, "NEW " + name)
    conv, _ = conv_of(status)
    ok(a, "SYSTEM Be brief.")
    ok(a, "ASK .dot first line")
    body, status = ok(a, "EXPORT")
    assert status == ". OK 2 items", status
    doc = json.loads("\n".join(body))
    assert doc["identity"] == sha(b"alpha-token"), doc
    assert doc["conversation"] == {"id": conv, "name": name,
                                   "model": "gemini-2.0-flash",
                                   "system": "Be brief.", "role": ""}, doc
    assert [m["role"] for m in doc["messages"]] == ["user", "model"], doc
    assert doc["messages"][0]["content"] == ".dot first line", doc
    assert doc["summaries"] == [], doc
    ok(a, "NEW")
    body, status = ok(a, "EXPORT json " + name)
    assert json.loads("\n".join(body))["conversation"]["id"] == conv
    body, status = ok(a, "export markdown %d" % conv)
    text = "\n".join(body)
    assert text.startswith("# bridged conversation %d %s" % (conv, name)), \
        text
    assert "Be brief." in text and "## " in text, text
    for bad in ("EXPORT 99999999", "EXPORT json nope", "EXPORT a/b"):
        body, status = a.ask(bad)
        assert status == ". ERR not-found no such conversation", (bad,
                                                                 status)
    a.close()
    b = client("beta-token")
    for line in ("EXPORT %d" % conv, "EXPORT markdown " + name):
        body, status = b.ask(line)
        assert status == ". ERR not-found no such conversation", status
        assert body == [], body
    b.close()


def send_import(c, data):
    """IMPORT with data (bytes) dot-stuffed; the final reply."""
    _, status = c.ask("IMPORT")
    assert status == '. MORE send the export, end with a line "."', status
    out = b""
    for line in data.split(b"\n"):
        out += (b"." + line if line.startswith(b".") else line) + b"\n"
    c.sendraw(out + b".\n")
    return c.reply()


def conv_count(ident):
    return d.sql("SELECT count(*) FROM conversations WHERE"
                 " client_id = ?", ident)[0][0]


def test_import_round_trip():
    import json
    a = client("alpha-token")
    name = "src-" + uuid.uuid4().hex[:6]
    ok(a, "NEW " + name)
    ok(a, "SYSTEM Speak softly.")
    m = marker()
    ok(a, "ASK .carry " + m)
    body, _ = ok(a, "EXPORT")
    data = "\n".join(body).encode()
    a.close()
    # Another identity (another device) takes it as its own.
    b = client("beta-token")
    _, status = send_import(b, data)
    new, shown = conv_of(status)
    assert shown == name, status
    _, status = ok(b, "RESUME %d" % new)
    body, _ = ok(b, "HISTORY")
    assert (".carry " + m) in body, body
    body, _ = ok(b, "SYSTEM")
    assert body == ["Speak softly."], body
    body, _ = ok(b, "ASK more")
    assert "turns=3" in body[-1] and "system=yes" in body[-1], body
    # Imported again, the name is taken: it comes unnamed.
    _, status = send_import(b, data)
    again, shown = conv_of(status)
    assert shown == "-" and again != new, status
    doc = json.loads(data)
    assert doc["messages"][0]["content"] == ".carry " + m
    b.close()


def test_new_and_import_requests_end_with_their_answer():
    """The worker forgets a NEW or IMPORT once storage answered it: it
    keeps no request behind (which would make it search an ever longer
    list, and 10 s later warn that storage did not answer)."""
    import time
    a = client("gamma-token")
    for i in range(3):
        ok(a, "NEW")
    ok(a, "ASK .keep")
    body, _ = ok(a, "EXPORT")
    _, status = send_import(a, "\n".join(body).encode())
    assert status.startswith(". OK conversation"), status
    time.sleep(11.5)        # STORAGE_WAIT and its one-second check
    ok(a, "ASK still here")
    a.close()
    late = [l for l in d.logtext().splitlines() if "did not answer" in l]
    assert not late, late


def test_import_refused_whole():
    c = client("gamma-token")
    ident = sha(b"gamma-token")
    before = conv_count(ident)
    good_msg = ('{"id":1,"time":"2024-01-02T03:04:05Z","role":"user",'
                '"content":"fine"}')
    cases = [
        (b'{"messages": [', "not JSON"),
        (b"just words", "not JSON"),
        (b'[1, 2]', "not an export"),
        (b'{"identity": "x"}', "not an export"),
        (('{"messages":[%s,{"time":"2024-01-02T03:04:05Z",'
          '"role":"wizard","content":"x"}]}' % good_msg).encode(),
         "role must be"),
        (('{"messages":[%s,{"time":"yesterday","role":"user",'
          '"content":"x"}]}' % good_msg).encode(), "time is not"),
        (('{"conversation":{"name":"bad name"},"messages":[%s]}'
          % good_msg).encode(), "a bad name"),
        (('{"messages":[%s],"summaries":[{"time":"2024-01-02T03:04:05Z",'
          '"role":"summary","content":7}]}' % good_msg).encode(),
         "string role, time and content"),
        (b'{"messages":[{"time":"2024-01-02T03:04:05Z","role":"user",'
         b'"content":"caf\xe9"}]}', "not valid UTF-8"),
        (b'{"messages":[{"time":"2024-01-02T03:04:05Z","role":"user",'
         b'"content":"a\\u0000b"}]}', "not JSON"),
    ]
    for data, why in cases:
        _, status = send_import(c, data)
        assert status.startswith(". ERR bad-argument ") and why in status, \
            (data[:60], status)
    # Oversized: more than 8 MiB, in lines the server takes.
    line = '"' + "x" * 60000 + '",\n'
    big = ('{"messages":[],"pad":[\n' + line * 150 + '"end"]}').encode()
    assert len(big) > 8 * 1024 * 1024
    _, status = send_import(c, big)
    assert status == ". ERR bad-argument the export is larger than 8 MiB", \
        status
    assert conv_count(ident) == before
    # The session goes on as before.
    _, status = send_import(c, ('{"messages":[%s]}' % good_msg).encode())
    assert conv_of(status)[1] == "-", status
    assert conv_count(ident) == before + 1
    c.close()


def generation(mark):
    """The generationConfig and system of the request whose prompt had
    mark, from the fake upstream's log."""
    import json
    for r in reversed(up.requests()):
        body = r.get("body")
        if isinstance(body, dict) and mark in json.dumps(body):
            return (body.get("generationConfig", {}),
                    json.dumps(body.get("systemInstruction", "")))
    raise AssertionError("no request with " + mark)


def test_roles():
    c = client("gamma-token")
    body, status = ok(c, "ROLES")
    assert status == ". OK 2 roles", status
    assert body == ["reviewer gemini-2.5-flash terse code review",
                    "plain -"], body
    _, status = c.ask("ROLE nobody")
    assert status.startswith(". ERR bad-argument no role named nobody"), \
        status
    ok(c, "NEW")
    m = marker()
    ok(c, "ASK before " + m)
    gc, _ = generation("before " + m)
    assert "temperature" not in gc, gc
    _, status = ok(c, "ROLE reviewer")
    assert status == ". OK role reviewer", status
    kv = info(c)
    assert kv["role"] == "reviewer" and kv["model"] == "gemini-2.5-flash", kv
    body, _ = ok(c, "SYSTEM")
    assert body == ["You review code. Be terse."], body
    body, status = ok(c, "ASK review " + m)
    assert STATUS_OK.match(status).group(1) == "gemini-2.5-flash", status
    assert "turns=3" in body[-1], body          # the context is kept
    gc, sysi = generation("review " + m)
    assert abs(gc.get("temperature", -1) - 0.2) < 1e-9, gc
    assert gc.get("maxOutputTokens") == 2048, gc
    assert "Be terse" in sysi, sysi
    c.close()
    # The role is the conversation's: a new session has it and its settings.
    c = client("gamma-token")
    assert info(c)["role"] == "reviewer"
    ok(c, "ASK later " + m)
    gc, _ = generation("later " + m)
    assert gc.get("maxOutputTokens") == 2048, gc
    ok(c, "ROLE plain")
    kv = info(c)
    assert kv["role"] == "plain" and kv["model"] == "gemini-2.5-flash", kv
    body, status = ok(c, "SYSTEM")
    assert status == ". OK no system prompt", status
    ok(c, "ASK plain " + m)
    gc, _ = generation("plain " + m)
    assert "temperature" not in gc and "maxOutputTokens" not in gc, gc
    ok(c, "CHANGE-MODEL gemini-2.0-flash")
    c.close()
