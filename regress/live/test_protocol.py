"""
BRIDGE/1 end to end (PROTOCOL.md): a real bridged on loopback with the
fake Gemini upstream, spoken to over real TLS (and plain TCP) the way a
terminal or a script would: every command, every error code the
server can be made to give, CANCEL mid-stream, pipelining, the idle
timeout, the limits, restarts of storage and provider under a session,
and 50 sessions at once.

All sessions come from 127.0.0.1 and so share one identity: checks of
stored history look for markers unique to their test.
"""

import hashlib
import os
import re
import signal
import socket
import ssl
import threading
import time
import uuid

from harness import Client, Daemon, FakeUpstream, Skip, wait_for

d = up = None

STATUS_OK = re.compile(r"^\. OK model=(\S+) in=(\d+) out=(\d+) ms=(\d+)"
                       r"( finish=[A-Z_]+)?$")
HEADER = re.compile(r"^--- (\d+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) "
                    r"(user|model|summary)$")
CODES = {"unknown-command", "bad-argument", "too-long", "bad-utf8",
         "no-model", "upstream", "upstream-timeout", "rate-limited", "busy",
         "auth", "cancelled", "storage", "internal"}


def setup():
    global d, up
    up = FakeUpstream()
    d = Daemon(up, prefork=4, max_clients=80)


def teardown():
    d.stop()
    up.stop()


def marker():
    return "m" + uuid.uuid4().hex[:12]


def err_code(status):
    """The code of a `. ERR <code> <text>` line, checked against the list."""
    assert status.startswith(". ERR "), status
    code = status.split()[2]
    assert code in CODES, status
    return code


def ask_ok(c, line):
    body, status = c.ask(line)
    assert STATUS_OK.match(status), (line, body, status)
    return body, status


def raw_until(c, pred, timeout=15):
    """Read raw bytes into c.buf until pred(c.buf)."""
    c.sock.settimeout(timeout)
    end = time.monotonic() + timeout
    while not pred(c.buf):
        assert time.monotonic() < end, "timed out, have %r" % c.buf[-200:]
        data = c.sock.recv(65536)
        if not data:
            raise EOFError("closed, have %r" % c.buf[-200:])
        c.buf += data


def retry_ok(c, line, tries=50):
    """Ask until the answer is OK (a channel may still be rewiring)."""
    for _ in range(tries):
        body, status = c.ask(line)
        if STATUS_OK.match(status):
            return body, status
        time.sleep(0.1)
    raise AssertionError("never OK: %s %s" % (body, status))


# ---- session start -------------------------------------------------

def test_greeting():
    c = d.client()
    body, status = c.greeting
    want = hashlib.sha256(b"127.0.0.1").hexdigest()[:12]
    assert body[0] == "ID:" + want, body
    assert body[1] == "Connected to 127.0.0.1:%d" % d.port, body
    assert len(body) == 2, body
    assert status == ". OK bridged/0.1 ready", status
    c.close()


def test_greeting_fast():
    """The greeting needs no round trip beyond the handshake."""
    t0 = time.monotonic()
    c = d.client()
    assert time.monotonic() - t0 < 1.0
    c.close()


def test_help():
    c = d.client()
    body, status = c.ask("HELP")
    assert status == ". OK", status
    text = "\n".join(body)
    for cmd in ("HELP", "INFO", "LIST-MODELS", "CHANGE-MODEL", "IA", "CHAT",
                "ASK", "HISTORY", "SUMMARIES", "NEW", "RESET", "AUTH",
                "EXIT", "QUIT", "BACK", '"""', "CANCEL"):
        assert cmd in text, cmd
    c.close()


def test_case_insensitive():
    c = d.client()
    for w in ("help", "Help", "hElP"):
        _, status = c.ask(w)
        assert status == ". OK", (w, status)
    body, status = c.ask("info")
    assert status == ". OK" and body[0].startswith("id: "), body
    c.close()


def test_unknown_command():
    c = d.client()
    _, status = c.ask("FROBNICATE now")
    assert err_code(status) == "unknown-command", status
    _, status = c.ask("")
    assert err_code(status) == "unknown-command", status
    _, status = c.ask("HELP")
    assert status == ". OK"
    c.close()


def test_bad_argument():
    c = d.client()
    for line in ("HELP extra", "ASK", "HISTORY 0", "HISTORY x",
                 "SUMMARIES -3", "CHANGE-MODEL no-such-model",
                 "CHANGE-MODEL 9999", "INFO x", "NEW bad/name", "NEW " + "n" * 65,
                 "NEW two words", "AUTH"):
        _, status = c.ask(line)
        assert err_code(status) == "bad-argument", (line, status)
    c.close()


def test_info():
    c = d.client()
    body, status = c.ask("INFO")
    assert status == ". OK", status
    kv = dict(l.split(": ", 1) for l in body)
    assert list(kv) == ["id", "ip", "port", "connected", "model", "tls",
                        "messages", "conversation", "role"], kv
    assert re.match(r"^\d+ \S+$", kv["conversation"]), kv
    assert kv["id"] == hashlib.sha256(b"127.0.0.1").hexdigest()[:12]
    assert kv["ip"] == "127.0.0.1"
    assert int(kv["port"]) == c.sock.getsockname()[1]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", kv["connected"])
    assert kv["model"] == "gemini-2.0-flash"
    assert re.match(r"^TLSv1\.[23] \S+$", kv["tls"]), kv["tls"]
    assert int(kv["messages"]) >= 0
    n = int(kv["messages"])
    ask_ok(c, "ASK count me " + marker())
    body, _ = c.ask("INFO")
    kv = dict(l.split(": ", 1) for l in body)
    assert int(kv["messages"]) >= n + 2, (n, kv)
    c.close()


# ---- models --------------------------------------------------------

def models(c, line="LIST-MODELS"):
    body, status = c.ask(line)
    names = []
    for i, l in enumerate(body):
        if l == "0. cancel" and i == len(body) - 1:
            break
        m = re.match(r"^(\d+)\. (\S+)( \(current\))?$", l)
        assert m, l
        assert int(m.group(1)) == i + 1, body
        names.append((m.group(2), bool(m.group(3))))
    return names, status


def test_list_models():
    c = d.client()
    names, status = models(c)
    m = re.match(r"^\. OK (\d+) models, current (\S+)$", status)
    assert m, status
    assert int(m.group(1)) == len(names) > 0, (status, names)
    plain = [n for n, _ in names]
    assert plain == sorted(plain), plain
    cur = [n for n, c_ in names if c_]
    assert len(cur) == 1 and cur[0].endswith("gemini-2.0-flash"), names
    for bad in ("embedding", "tts", "imagen", "veo", "image", "live",
                "audio", "aqa"):
        assert not [n for n in plain if bad in n], (bad, plain)
    c.close()


def test_change_model_menu():
    c = d.client()
    names, status = models(c, "CHANGE-MODEL")
    assert status == ". MORE choose a number", status
    _, status = c.ask("0")
    assert status == ". OK model gemini-2.0-flash", status
    names, status = models(c, "change-model")
    assert status == ". MORE choose a number"
    target = [i for i, (n, cur) in enumerate(names)
              if not cur and "pro" in n][0]
    _, status = c.ask(str(target + 1))
    assert status == ". OK model %s" % names[target][0], status
    body, _ = c.ask("INFO")
    assert "model: %s" % names[target][0] in body, body
    body, status = ask_ok(c, "ASK which model")
    assert STATUS_OK.match(status).group(1) == names[target][0], status
    names, status = models(c, "CHANGE-MODEL")
    assert status == ". MORE choose a number"
    _, status = c.ask("nonsense-model")
    assert err_code(status) == "bad-argument", status
    c.close()


def test_change_model_direct():
    c = d.client()
    names, _ = models(c)
    other = [n for n, cur in names if not cur][0]
    _, status = c.ask("CHANGE-MODEL " + other)
    assert status == ". OK model " + other, status
    _, status = c.ask("CHANGE-MODEL 1")
    assert status == ". OK model " + names[0][0], status
    _, status = c.ask("CHANGE-MODEL gemini-2.0-flash")
    assert status == ". OK model gemini-2.0-flash", status
    c.close()


def test_change_model_keeps_context():
    """The conversation goes on with the new model, which it remembers."""
    c = d.client()
    c.ask("NEW")
    ask_ok(c, "ASK first " + marker())
    body, _ = ask_ok(c, "ASK second")
    assert "turns=3" in body[-1], body
    names, _ = models(c)
    other = [n for n, cur in names if not cur][0]
    c.ask("CHANGE-MODEL " + other)
    body, status = ask_ok(c, "ASK third")
    assert "turns=5" in body[-1], body
    assert STATUS_OK.match(status).group(1) == other, status
    c.close()
    # A new session resumes that conversation with that model.
    c = d.client()
    body, _ = c.ask("INFO")
    kv = dict(l.split(": ", 1) for l in body)
    assert kv["model"] == other, kv
    c.ask("CHANGE-MODEL gemini-2.0-flash")
    c.close()


# ---- prompts -------------------------------------------------------

def test_chat_mode():
    c = d.client()
    _, status = c.ask("IA")
    assert status == ". OK chat mode, BACK to return", status
    m = marker()
    body, status = ask_ok(c, "hello " + m)
    assert body[-1].startswith("Echo: hello " + m), body
    assert STATUS_OK.match(status).group(1) == "gemini-2.0-flash"
    # Commands are prompts here.
    body, _ = ask_ok(c, "HELP")
    assert body[-1].startswith("Echo: HELP"), body
    _, status = c.ask("BACK")
    assert status.startswith(". OK back in command mode"), status
    _, status = c.ask("HELP")
    assert status == ". OK"
    _, status = c.ask("chat")
    assert status == ". OK chat mode, BACK to return"
    _, status = c.ask("  back ")
    assert status.startswith(". OK back in command mode"), status
    c.close()


def test_ask_and_tokens():
    c = d.client()
    _, status = ask_ok(c, "ASK how many tokens " + marker())
    m = STATUS_OK.match(status)
    assert int(m.group(2)) > 0 and int(m.group(3)) > 0, status
    c.close()


def test_context_and_new():
    c = d.client()
    c.ask("NEW")
    body, _ = ask_ok(c, "ASK one " + marker())
    assert "turns=1" in body[-1], body
    body, _ = ask_ok(c, "ASK two")
    assert "turns=3" in body[-1], body
    _, status = c.ask("NEW")
    assert status.startswith(". OK"), status
    body, _ = ask_ok(c, "ASK three")
    assert "turns=1" in body[-1], body
    _, status = c.ask("RESET")
    assert status.startswith(". OK"), status
    c.close()


def test_context_survives_reconnect():
    c = d.client()
    m = marker()
    ask_ok(c, "ASK remember " + m)
    c.close()
    c = d.client()
    body, _ = ask_ok(c, "ASK [[fake:context]] what did I say")
    assert m in "\n".join(body), body
    c.close()


def test_multiline():
    c = d.client()
    c.ask("IA")
    m = marker()
    c.send('"""')
    c.send("first line " + m)
    c.send("")
    c.send("BACK")
    c.send(".dotted")
    c.send('"""')
    body, status = c.reply()
    assert STATUS_OK.match(status), (body, status)
    text = "\n".join(body)
    assert ("Echo: first line %s\n\nBACK\n.dotted" % m) in text, body
    c.ask("BACK")
    body, _ = c.ask("HISTORY 2")
    assert body[1:5] == ["first line " + m, "", "BACK", ".dotted"], body
    c.close()


def test_dot_stuffing_on_wire():
    c = d.client()
    c.ask("IA")
    c.send('"""')
    c.send("x")
    c.send(".y")
    c.send('"""')
    raw_until(c, lambda b: b"\n. OK model=" in b)
    assert b"\n..y" in c.buf, c.buf
    body, status = c.reply()
    assert [l for l in body if l.startswith(".y")], body
    assert STATUS_OK.match(status), status
    c.close()


def test_utf8_split_in_stream():
    c = d.client()
    body, status = ask_ok(c, "ASK [[fake:utf8split]] [[fake:cjk]] "
                          "[[fake:emoji]] caf\u00e9 " + marker())
    text = "\n".join(body)
    assert "\ufffd" not in text
    assert re.search("[\u4e00-\u9fff]", text), text
    assert re.search("[\U0001F300-\U0001FAFF]", text), text
    c.close()


def test_crlf():
    c = d.client()
    c.sendraw(b"HELP\r\n")
    _, status = c.reply()
    assert status == ". OK", status
    m = marker()
    c.sendraw(("ASK crlf %s\r\n" % m).encode())
    body, status = c.reply()
    assert STATUS_OK.match(status)
    body, _ = c.ask("HISTORY 2")
    assert body[1] == "crlf " + m, body
    c.close()


# ---- stored history ------------------------------------------------

def test_history():
    c = d.client()
    m = marker()
    ask_ok(c, "ASK history " + m)
    body, status = c.ask("HISTORY 2")
    assert status == ". OK 2 messages", status
    assert HEADER.match(body[0]).group(3) == "user", body
    assert body[1] == "history " + m, body
    assert HEADER.match(body[2]).group(3) == "model", body
    assert body[3].startswith("Echo: history " + m), body
    ids = [int(HEADER.match(l).group(1)) for l in body if HEADER.match(l)]
    assert ids == sorted(ids), ids
    body, status = c.ask("history")
    assert re.match(r"^\. OK \d+ messages$", status), status
    assert len([l for l in body if HEADER.match(l)]) == \
        int(status.split()[2]) <= 20
    c.close()


def test_back_stores_summary():
    c = d.client()
    m = marker()
    before = len(up.requests())
    c.ask("IA")
    ask_ok(c, "my secret word is " + m)
    body, status = c.ask("BACK")
    assert body == [], body
    assert status == ". OK back in command mode", status
    new = [r for r in up.requests()[before:]
           if "memory manager" in str(r.get("body"))]
    assert len(new) == 1, "no summary request upstream"
    # The model was asked to summarize what was said, streamed to nobody.
    assert m in str(new[0]["body"]["contents"]), new[0]
    body, status = c.ask("SUMMARIES 1")
    assert status == ". OK 1 summaries", status
    assert HEADER.match(body[0]).group(3) == "summary", body
    assert body[1].startswith("Echo: Write the summary"), body
    c.close()


# ---- errors --------------------------------------------------------

def test_too_long():
    c = d.client()
    c.sendraw(b"ASK " + b"x" * (300 * 1024) + b"\n")
    _, status = c.reply()
    assert err_code(status) == "too-long", status
    _, status = c.ask("HELP")
    assert status == ". OK", status
    c.close()


def test_bad_utf8():
    c = d.client()
    m = marker()
    c.sendraw(b"ASK bad \xff\xfe " + m.encode() + b"\n")
    _, status = c.reply()
    assert err_code(status) == "bad-utf8", status
    c.ask("IA")
    c.sendraw(b"\xc0\xaf" + m.encode() + b"\n")
    _, status = c.reply()
    assert err_code(status) == "bad-utf8", status
    c.ask("BACK")
    body, _ = c.ask("HISTORY 50")
    assert m not in "\n".join(body), "a bad line was stored"
    c.close()


def test_auth_in_ip_mode():
    c = d.client()
    _, status = c.ask("AUTH secret-token")
    assert err_code(status) == "auth", status
    assert "address" in status
    c.close()


def test_upstream_errors():
    c = d.client()
    m = marker()
    _, status = c.ask("ASK [[fake:overflow]] " + m)
    err_code(status)
    _, status = c.ask("ASK [[fake:html502]] [[fake:500]] " + m)
    assert err_code(status) in ("upstream", "busy"), status
    body, status = c.ask("ASK [[fake:error-midstream]] " + m)
    assert err_code(status) in ("upstream", "busy"), status
    # The prompt is stored, the partial answer is not.
    body, _ = c.ask("HISTORY 1")
    assert HEADER.match(body[0]).group(3) == "user", body
    assert "error-midstream" in body[1], body
    c.close()


def test_cancel_midstream():
    c = d.client()
    m = marker()
    c.send("ASK [[fake:drip:20]] [[fake:repeat:20]] tell me " + m)
    raw_until(c, lambda b: len(b) >= 8)
    t0 = time.monotonic()
    c.send("CANCEL")
    body, status = c.reply()
    assert time.monotonic() - t0 < 3, "CANCEL took too long"
    assert err_code(status) == "cancelled", status
    assert body and body[0].startswith("Echo"), body
    _, status = c.ask("HELP")
    assert status == ". OK", status
    body, _ = c.ask("HISTORY 1")
    assert HEADER.match(body[0]).group(3) == "user", body
    assert body[1].endswith("tell me " + m), body
    c.close()


def test_cancel_when_idle_is_a_prompt():
    c = d.client()
    c.ask("IA")
    body, status = ask_ok(c, "CANCEL")
    assert body[-1].startswith("Echo: CANCEL"), body
    c.ask("BACK")
    _, status = c.ask("CANCEL")
    assert err_code(status) == "unknown-command", status
    c.close()


def test_storage_timeout():
    """Storage that does not answer: ERR storage after STORAGE_WAIT, and
    nothing goes upstream, since storage checks the limits first."""
    pid = d.role_pids("storage")[0]
    c = d.client()
    c.ask("HISTORY 1")      # the session's context has loaded by now
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        body, status = c.ask("ASK stalled " + marker())
        took = time.monotonic() - t0
    finally:
        os.kill(pid, signal.SIGCONT)
    assert err_code(status) == "storage", status
    assert not body, body
    assert 8 < took < 20, took
    ask_ok(c, "ASK after")
    c.close()


def test_storage_restart():
    c = d.client()
    ask_ok(c, "ASK before")
    old = d.role_pids("storage")[0]
    m = marker()
    os.kill(old, signal.SIGKILL)
    body, status = c.ask("ASK during " + m)
    assert STATUS_OK.match(status) or err_code(status) == "storage", status
    wait_for(lambda: [p for p in d.role_pids("storage") if p != old],
             what="storage restarted")
    retry_ok(c, "ASK after " + m)
    body, _ = c.ask("HISTORY 20")
    prompts = [l for l in body if l == "during " + m]
    assert len(prompts) <= 1, body
    if STATUS_OK.match(status):
        assert len(prompts) == 1, body
    c.close()


def test_provider_restart():
    c = d.client()
    ask_ok(c, "ASK before")
    c.send("ASK [[fake:drip:20]] [[fake:repeat:20]] long " + marker())
    raw_until(c, lambda b: len(b) >= 8)
    old = d.role_pids("provider")[0]
    os.kill(old, signal.SIGKILL)
    body, status = c.reply()
    assert status.startswith(". ERR upstream provider restarting"), status
    wait_for(lambda: [p for p in d.role_pids("provider") if p != old],
             what="provider restarted")
    retry_ok(c, "ASK after")
    c.close()


# ---- ordering ------------------------------------------------------

def test_pipelining():
    c = d.client()
    m = marker()
    c.sendraw(("ASK [[fake:drip:5]] first %s\nASK second %s\nINFO\n"
               "FROB\nHELP\nIA\nthird %s\nBACK\n" % (m, m, m)).encode())
    b1, s1 = c.reply()
    b2, s2 = c.reply()
    b3, s3 = c.reply()
    b4, s4 = c.reply()
    b5, s5 = c.reply()
    b6, s6 = c.reply()
    b7, s7 = c.reply()
    b8, s8 = c.reply()
    assert STATUS_OK.match(s1) and b1[-1].startswith("Echo: first"), b1
    assert STATUS_OK.match(s2) and b2[-1].startswith("Echo: second"), b2
    assert s3 == ". OK" and b3[0].startswith("id: "), b3
    assert err_code(s4) == "unknown-command", s4
    assert s5 == ". OK" and "LIST-MODELS" in "\n".join(b5)
    assert s6.startswith(". OK chat mode"), s6
    assert STATUS_OK.match(s7) and b7[-1].startswith("Echo: third"), b7
    assert s8.startswith(". OK back in command mode"), s8
    c.close()


def test_records_in_one_segment():
    """Three TLS records in one TCP write: the worker reads them
    together (read-ahead) and must answer all three, not wait on the
    socket for what libssl already holds."""
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=20)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="localhost")

    def pump():
        """Send what TLS wrote; feed it what the server sent."""
        if out.pending:
            raw.sendall(out.read())
        data = raw.recv(65536)
        if not data:
            raise EOFError("server closed")
        inc.write(data)

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pump()
    if out.pending:
        raw.sendall(out.read())
    text = b""

    def read_until(n):
        """Decrypt until n status lines have come."""
        nonlocal text
        while text.count(b"\n. OK") < n:
            try:
                text += tls.read(65536)
            except ssl.SSLWantReadError:
                pump()

    read_until(1)                       # the greeting
    for line in (b"INFO\n", b"HELP\n", b"INFO\n"):
        tls.write(line)                 # one record each
    raw.sendall(out.read())             # all three in one write
    read_until(4)
    assert text.count(b"\n. OK") == 4 and b"LIST-MODELS" in text, text
    raw.close()


def test_one_write_per_reply():
    """A short reply arrives whole: status line with its body."""
    c = d.client()
    c.send("INFO")
    c.sock.settimeout(5)
    first = c.sock.recv(65536)
    assert first.endswith(b"\n. OK\n"), first
    c.close()


# ---- closing -------------------------------------------------------

def test_exit_and_quit():
    for word in ("EXIT", "quit"):
        c = d.client()
        _, status = c.ask(word)
        assert status == ". BYE", status
        assert c.closed()
        c.close()
    c = d.client()
    c.ask("IA")
    _, status = c.ask("Exit")
    assert status == ". BYE", status
    assert c.closed()
    c.close()


def test_kill_session():
    c = d.client()
    ask_ok(c, "ASK kill me " + marker())
    port = c.sock.getsockname()[1]
    sid = None
    for line in d.ctl("show", "sessions").stdout.splitlines():
        f = line.split()
        if f and f[0].isdigit() and "127.0.0.1" in f:
            sid = f[0]
    assert sid is not None, port
    wait_for(lambda: d.ctl("kill", "session", sid, check=False)
             .returncode == 0, what="kill session")
    _, status = c.reply()
    assert status.startswith(". BYE "), status
    assert c.closed()
    c.close()


def test_handshake_garbage():
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"\x00" * 100)
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    c = d.client()
    _, status = c.ask("HELP")
    assert status == ". OK"
    c.close()


def test_tls_resumption():
    """Sessions resume across workers: they share the ticket key."""
    ctx = ssl.create_default_context(cafile=d.ca)
    ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    buf = b""
    while b". OK" not in buf:
        buf += s.recv(4096)
    sess = s.session
    s.close()
    assert sess is not None
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=sess)
    buf = b""
    while b". OK" not in buf:
        buf += s.recv(4096)
    reused = s.session_reused
    s.close()
    assert sess.has_ticket, "the server issued no session ticket"
    assert reused, "TLS session not resumed"


def test_concurrent_sessions():
    n = 50
    errors = []
    barrier = threading.Barrier(n)

    def one(i):
        try:
            c = d.client(timeout=60)
            barrier.wait(timeout=60)
            body, status = c.ask("ASK [[fake:interval:10]] session %d" % i)
            assert STATUS_OK.match(status), status
            assert body[-1].startswith("Echo: session %d " % i), body
            _, status = c.ask("QUIT")
            assert status == ". BYE"
            c.close()
        except Exception as e:
            errors.append("%d: %r" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:5]
    assert time.monotonic() - t0 < 60


# ---- daemons of their own ------------------------------------------

def test_idle_timeout():
    dd = Daemon(up, prefork=1, timeout=2)
    try:
        c = dd.client()
        c.ask("HELP")
        t0 = time.monotonic()
        _, status = c.reply()
        took = time.monotonic() - t0
        assert status == ". BYE idle timeout", status
        assert 1.5 < took < 5, took
        assert c.closed()
        c.close()
        # A long answer is not idleness.
        c = dd.client()
        body, status = c.ask("ASK [[fake:interval:1200]] slow answer")
        assert STATUS_OK.match(status), status
        c.close()
    finally:
        dd.stop()


def test_max_clients():
    dd = Daemon(up, prefork=1, max_clients=1)
    try:
        c1 = dd.client()
        c2 = dd.client(greet=False)
        body, status = c2.reply()
        assert status.startswith(". BYE "), (body, status)
        assert c2.closed()
        c2.close()
        _, status = c1.ask("HELP")
        assert status == ". OK"
        c1.close()
    finally:
        dd.stop()


def test_plain_listener():
    dd = Daemon(up, prefork=1, listen=None, start=False)
    with open(dd.conf) as f:
        conf = f.read()
    conf = conf.replace("port %d tls" % dd.port, "port %d" % dd.port)
    with open(dd.conf, "w") as f:
        f.write(conf)
    dd.start()
    try:
        c = Client(dd.port, tls=False)
        body, status = c.greeting
        assert status == ". OK bridged/0.1 ready", status
        body, _ = c.ask("INFO")
        assert "tls: none" in body, body
        # Half-close: what was sent is still answered.
        c.send("ASK half closed")
        c.send("HELP")
        c.sock.shutdown(socket.SHUT_WR)
        body, status = c.reply()
        assert STATUS_OK.match(status), status
        _, status = c.reply()
        assert status == ". OK", status
        assert c.closed()
        c.close()
    finally:
        dd.stop()


def test_memory_limit():
    dd = Daemon(up, prefork=1, extra="memory limit 64K\nmax line 64K")
    try:
        c = dd.client()
        c.ask("NEW")
        before = len(up.requests())
        chunk = "y" * (14 * 1024)
        for i in range(4):
            body, status = ask_ok(c, "ASK part %d %s" % (i, chunk))
        new = up.requests()[before:]
        assert any("memory manager" in str(r) for r in new), \
            "no summary when the context passed the limit"
        # The turn after the summary restarted from it.
        body, _ = ask_ok(c, "ASK after")
        assert "system=yes" in body[-1], body
        body, status = c.ask("SUMMARIES 1")
        assert status == ". OK 1 summaries", status
        c.close()
    finally:
        dd.stop()


def test_rate_limited():
    """A per-day quota makes the provider hold back: a daemon of its own."""
    dd = Daemon(up, prefork=1)
    try:
        c = dd.client()
        _, status = c.ask("ASK [[fake:429-perday]] " + marker())
        assert err_code(status) == "rate-limited", status
        body, _ = c.ask("HISTORY 1")
        assert "429-perday" in body[1], body
        c.close()
    finally:
        dd.stop()


def test_large_prompt_and_answer():
    """A prompt over 1 MiB goes upstream in parts and comes back whole."""
    c = d.client(timeout=60)
    c.ask("NEW")
    c.ask("IA")
    lines = ["%06d %s" % (i, "z" * 200000) for i in range(7)]
    c.send('"""')
    for l in lines:
        c.send(l)
    c.send('"""')
    body, status = c.reply()
    assert STATUS_OK.match(status), status
    text = "\n".join(body)
    assert text.startswith("Echo: " + "\n".join(lines)), len(text)
    c.ask("BACK")
    c.close()


def test_certificate_identity():
    dd = Daemon(up, prefork=1, extra="identity certificate")
    try:
        from harness import make_certs
        _, ccrt, ckey = make_certs(dd.dir, name="client")
        with open(ccrt) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        c = dd.client(cert=(ccrt, ckey))
        body, status = c.greeting
        assert status == ". OK bridged/0.1 ready", (body, status)
        assert body[0] == "ID:" + hashlib.sha256(der).hexdigest()[:12], body
        _, status = c.ask("AUTH x")
        assert err_code(status) == "auth" and "certificate" in status
        c.close()
        # Without a certificate there is no identity: refused.
        c = dd.client(greet=False)
        body, status = c.reply()
        assert status.startswith(". BYE auth"), (body, status)
        assert c.closed()
        c.close()
    finally:
        dd.stop()
