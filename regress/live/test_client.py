"""
bridgectl connect, the terminal client, against a real bridged with the
fake upstream: as a script uses it (stdin a pipe), as a person uses it
(in a tmux pane: chat first with /commands, the footer, the prompt,
streaming, the activity indicator, Ctrl-C, pasting, typing ahead,
Ctrl-D, history; -c for BRIDGE/1 lines), its one-line connection
errors, host:port and [v6]:port, the certificate pinning in
~/.bridge/known_hosts with small TLS servers of our own for a
certificate that changes, and named servers in ~/.bridge/config with a
CA, a pin and a token.
"""

import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import uuid

from harness import (BRIDGECTL, Daemon, FakeUpstream, Skip, free_port,
                     make_certs, tmpdir, wait_for)

d = up = None
port6 = None
made = []               # directories this module made, removed at the end
MODEL = "gemini-2.0-flash"
PROMPT_CMD = "bridge [command %s]> " % MODEL
PROMPT_CHAT = "bridge [chat %s]> " % MODEL
STATUS_OK = re.compile(r"^\. OK model=\S+ in=\d+ out=\d+ ms=\d+")
FOOTER = re.compile(r"^\(gemini-[\w.-]+, \d+\+\d+ tokens, \d+\.\d s\)$")


def setup():
    global d, up, port6
    up = FakeUpstream()
    port6 = free_port(socket.AF_INET6, "::1")
    d = Daemon(up, prefork=3, extra="listen on ::1 port %d tls" % port6)


def teardown():
    d.stop()
    up.stop()
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def mkdir(prefix):
    p = tmpdir(prefix)
    made.append(p)
    return p


def marker():
    return "m" + uuid.uuid4().hex[:10]


def home():
    return mkdir("home-")


def connect(lines, *opts, port=None, host="127.0.0.1", ca=True, env_home=None,
            timeout=30, cmd=True, env=None):
    """Run the client with stdin a pipe; return the CompletedProcess.
    cmd: -c, the lines are BRIDGE/1 lines; port False: none given."""
    args = [BRIDGECTL, "connect"]
    if ca:
        args += ["-C", d.ca]
    if cmd:
        args += ["-c"]
    args += list(opts)
    if port is not False:
        args += ["-p", str(port or d.port)]
    args += [host]
    env = dict(os.environ, HOME=env_home or home(), **(env or {}))
    data = "".join(l + "\n" for l in lines)
    return subprocess.run(args, input=data, capture_output=True, text=True,
                          env=env, timeout=timeout)


def cert_hash(crt):
    with open(crt) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "SHA256:" + hashlib.sha256(der).hexdigest()


# ---- not on a terminal ---------------------------------------------

def test_pipe_ask():
    m = marker()
    r = connect(["ASK hello " + m])
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stderr == "", r.stderr
    # Only the answer: no greeting, no status lines.
    assert re.fullmatch(r"Echo: hello %s \[turns=\d+ system=(yes|no)\]\n" % m,
                        r.stdout), r.stdout


def test_pipe_err_exit_status():
    m = marker()
    r = connect(["NO-SUCH-COMMAND", "ASK after " + m])
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^\. ERR unknown-command", r.stderr, re.M), r.stderr
    assert "Echo: after " + m in r.stdout, r.stdout
    assert ". ERR" not in r.stdout, r.stdout


def test_pipe_chat_block_and_dots():
    m = marker()
    r = connect(["IA", '"""', "first " + m, ".dotted line", "..two dots",
                 '"""', "BACK"])
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert ("Echo: first %s\n.dotted line\n..two dots" % m) in r.stdout, \
        r.stdout


def test_pipe_more_menu():
    r = connect(["CHANGE-MODEL", "gemini-2.5-pro", "INFO"])
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert re.search(r"^\d+\. gemini-2\.5-pro$", r.stdout, re.M), r.stdout
    assert re.search(r"^0\. cancel$", r.stdout, re.M), r.stdout
    assert re.search(r"^model: gemini-2\.5-pro$", r.stdout, re.M), r.stdout
    r = connect(["CHANGE-MODEL", "no-such-model"])
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert ". ERR bad-argument" in r.stderr, r.stderr
    # The conversation keeps its model: give it back the usual one.
    r = connect(["CHANGE-MODEL " + MODEL])
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


def test_pipe_quit_and_eof():
    """At EOF the client sends QUIT; an explicit QUIT ends it early."""
    m = marker()
    t0 = time.monotonic()
    r = connect(["INFO"])
    assert r.returncode == 0 and time.monotonic() - t0 < 10, r
    r = connect(["QUIT", "ASK never " + m])
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert m not in r.stdout, r.stdout


def test_pipe_eof_inside_block():
    r = connect(["IA", '"""', "unfinished"])
    assert r.returncode == 1, r
    assert '"""' in r.stderr and "not sent" in r.stderr, r.stderr


def test_pipe_upstream_error():
    m = marker()
    r = connect(["ASK [[fake:429-perday]] " + m])
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert re.search(r"^\. ERR \S+ ", r.stderr, re.M), r.stderr


# ---- connection errors ----------------------------------------------

def test_refused():
    port = free_port()
    r = connect(["INFO"], port=port)
    assert r.returncode == 1
    assert r.stderr == "bridgectl: connection refused by 127.0.0.1 port " \
        "%d\n" % port, r.stderr


def test_connect_timeout():
    """A listener whose queue is full drops our SYN: connect times out."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fill = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(c)
    time.sleep(0.2)
    try:
        t0 = time.monotonic()
        r = connect(["INFO"], port=port)
        took = time.monotonic() - t0
    finally:
        for c in fill:
            c.close()
        ls.close()
    assert r.returncode == 1
    if "TLS handshake" in r.stderr:
        raise Skip("this system accepted past the backlog")
    assert r.stderr == "bridgectl: connection to 127.0.0.1 port %d timed " \
        "out\n" % port, r.stderr
    assert 8 < took < 20, took


def silent_server(reply=b""):
    """A TCP server that accepts, optionally says something, then waits."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    conns = []

    def run():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            conns.append(c)
            if reply:
                c.sendall(reply)
    threading.Thread(target=run, daemon=True).start()
    return ls, conns


def test_handshake_timeout():
    ls, conns = silent_server()
    port = ls.getsockname()[1]
    try:
        r = connect(["INFO"], port=port)
    finally:
        ls.close()
        for c in conns:
            c.close()
    assert r.returncode == 1
    assert r.stderr == "bridgectl: TLS handshake with 127.0.0.1 port %d " \
        "timed out\n" % port, r.stderr


def test_tls_failure():
    ls, conns = silent_server(b"220 this is not TLS\r\n")
    port = ls.getsockname()[1]
    try:
        r = connect(["INFO"], port=port)
    finally:
        ls.close()
        for c in conns:
            c.close()
    assert r.returncode == 1
    assert re.fullmatch(r"bridgectl: 127\.0\.0\.1 port %d: TLS handshake "
                        r"failed: .+\n" % port, r.stderr), r.stderr


def test_wrong_ca():
    other = mkdir("otherca-")
    ca, _, _ = make_certs(other)
    r = subprocess.run([BRIDGECTL, "connect", "-C", ca, "-p", str(d.port),
                        "127.0.0.1"], input="INFO\n", capture_output=True,
                       text=True, env=dict(os.environ, HOME=home()),
                       timeout=30)
    assert r.returncode == 1
    assert "TLS handshake failed" in r.stderr and \
        r.stderr.count("\n") == 1, r.stderr


def test_usage():
    usage = "usage: bridgectl connect [-chkq] [-C cafile] [-p port] " \
        "host[:port] | name\n"
    r = subprocess.run([BRIDGECTL, "connect"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert r.stderr == usage, r.stderr
    r = subprocess.run([BRIDGECTL, "connect", "-h"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout == usage and r.stderr == "", r
    r = subprocess.run([BRIDGECTL, "-h"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r
    assert r.stdout.startswith("usage: bridgectl [-Hh] [-s socket] ")
    assert usage[7:] in r.stdout, r.stdout
    r = subprocess.run([BRIDGECTL, "connect", "-p", "0", "h"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "port 0" in r.stderr, r.stderr
    r = subprocess.run([BRIDGECTL, "connect", "-k", "-C", "x", "h"],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stderr


# ---- certificates: -C, -k and pinning ---------------------------------

def test_ca_does_not_pin():
    h = home()
    r = connect(["INFO"], env_home=h)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(h, ".bridge", "known_hosts"))


def test_insecure_is_loud():
    h = home()
    r = connect(["INFO"], "-k", ca=False, env_home=h)
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stderr and "NOT verified" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(h, ".bridge", "known_hosts"))


def test_pin_first_use():
    h = home()
    kh = os.path.join(h, ".bridge", "known_hosts")
    r = connect(["INFO"], ca=False, env_home=h)
    assert r.returncode == 0, r.stderr
    want = "127.0.0.1 %d %s\n" % (d.port, cert_hash(d.crt))
    with open(kh) as f:
        assert f.read() == want
    assert "pinned" in r.stderr and kh in r.stderr, r.stderr
    assert os.stat(kh).st_mode & 0o077 == 0
    assert os.stat(os.path.dirname(kh)).st_mode & 0o077 == 0
    # Known now: silent, unchanged.
    r = connect(["ASK pinned " + marker()], ca=False, env_home=h)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "Echo: pinned" in r.stdout
    with open(kh) as f:
        assert f.read() == want


class TLSServer:
    """A BRIDGE/1 greeter over TLS with a certificate of its own."""

    def __init__(self, crt, key, port=0):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(crt, key)
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        self.received = []
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                s = self.ctx.wrap_socket(c, server_side=True)
                s.sendall(b"ID:000000000000\nConnected\n. OK test ready\n")
                s.settimeout(5)
                data = b""
                while b"QUIT\n" not in data:
                    x = s.recv(4096)
                    if not x:
                        break
                    data += x
                self.received.append(data)
                if b"QUIT\n" in data:
                    s.sendall(b". BYE bye\n")
                s.close()
            except (OSError, ssl.SSLError):
                self.received.append(None)
                c.close()

    def close(self):
        # shutdown wakes the accept() that close() alone would not.
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        self.thread.join(5)


def test_pin_changed_certificate():
    h = home()
    kh = os.path.join(h, ".bridge", "known_hosts")
    dir_a, dir_b = mkdir("certa-"), mkdir("certb-")
    _, crt_a, key_a = make_certs(dir_a)
    _, crt_b, key_b = make_certs(dir_b)
    a = TLSServer(crt_a, key_a)
    port = a.port
    try:
        r = connect([], ca=False, port=port, env_home=h)
    finally:
        a.close()
    assert r.returncode == 0, r.stderr
    with open(kh) as f:
        pinned = f.read()
    assert pinned == "127.0.0.1 %d %s\n" % (port, cert_hash(crt_a)), pinned

    # Another host:port entry first, so the line number is not 1.
    with open(kh, "w") as f:
        f.write("# a comment\nexample.org 65432 SHA256:%s\n" % ("0" * 64) +
                pinned)
    b = TLSServer(crt_b, key_b, port=port)
    try:
        r = connect([], ca=False, port=port, env_home=h)
        wait_for(lambda: b.received, what="the server to see us go")
        received = list(b.received)
    finally:
        b.close()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "CHANGED" in r.stderr, r.stderr
    assert cert_hash(crt_a) in r.stderr and cert_hash(crt_b) in r.stderr
    assert "remove line 3 of %s" % kh in r.stderr, r.stderr
    assert r.stdout == "", r.stdout
    # Nothing was sent to the impostor.
    assert all(not x for x in received), received
    with open(kh) as f:
        assert f.read().endswith(pinned)

    # Fixed as the warning says: the new certificate is pinned.
    with open(kh, "w") as f:
        f.write("# a comment\nexample.org 65432 SHA256:%s\n" % ("0" * 64))
    b = TLSServer(crt_b, key_b, port=port)
    try:
        r = connect([], ca=False, port=port, env_home=h)
    finally:
        b.close()
    assert r.returncode == 0, r.stderr
    with open(kh) as f:
        assert f.read().endswith("127.0.0.1 %d %s\n" % (port,
                                                         cert_hash(crt_b)))


# ---- on a terminal: tmux ------------------------------------------------

class Pane:
    """The client in a detached tmux session of a fixed size."""

    def __init__(self, h=None, width=110, height=40, opts="-c",
                 target=None, env="", first=None):
        if shutil.which("tmux") is None:
            raise Skip("no tmux")
        self.home = h or home()
        self.dir = mkdir("tmux-")
        self.sock = os.path.join(self.dir, "sock")
        target = target or "-C %s -p %d 127.0.0.1" % (d.ca, d.port)
        cmd = ("env HOME=%s LANG=C.UTF-8 TERM=screen %s %s connect %s %s; "
               "echo EXIT=$?; sleep 60" %
               (self.home, env, BRIDGECTL, opts, target))
        self.tmux("new-session", "-d", "-s", "t", "-x", str(width), "-y",
                  str(height), cmd)
        first = first or (PROMPT_CMD if "-c" in opts.split() else
                          PROMPT_CHAT)
        try:
            self.wait(lambda s: s.endswith(first.rstrip()),
                      what="the first prompt")
        except Exception:
            self.close()
            raise

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null"] +
                              list(args), capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def screen(self):
        """The whole pane, scrollback included, trailing blanks dropped."""
        out = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")
        return "\n".join(l.rstrip() for l in out.split("\n")).rstrip("\n")

    def wait(self, pred, timeout=15, what="the screen"):
        """The screen once pred(screen) holds."""
        end = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > end:
                raise AssertionError("timed out waiting for %s; screen:\n%s"
                                     % (what, s[-1500:]))
            time.sleep(0.05)

    def last(self):
        return self.screen().split("\n")[-1]

    def close(self):
        try:
            self.tmux("kill-server")
        except subprocess.CalledProcessError:
            pass


def test_tty_prompt_and_modes():
    p = Pane()
    try:
        s = p.screen()
        assert s.startswith("ID:"), s
        assert "\n. OK " in s, s
        assert p.last() == PROMPT_CMD.rstrip(), s
        # The quiet INFO that learned the model is not on the screen.
        assert "model:" not in s, s
        p.keys("IA", "Enter")
        p.wait(lambda s: s.endswith(PROMPT_CHAT.rstrip()), what="chat prompt")
        p.keys("BACK", "Enter")
        p.wait(lambda s: s.endswith("back in command mode\n" +
                                    PROMPT_CMD.rstrip()),
               what="command prompt again")
        p.keys("CHANGE-MODEL gemini-2.5-flash", "Enter")
        p.wait(lambda s: s.endswith("bridge [command gemini-2.5-flash]>"),
               what="the prompt to show the new model")
        p.keys("CHANGE-MODEL", "Enter")
        p.wait(lambda s: s.endswith("choose a number>"), what="MORE prompt")
        p.keys("0", "Enter")
        p.wait(lambda s: s.endswith("bridge [command gemini-2.5-flash]>"),
               what="the prompt after the menu")
        p.keys("CHANGE-MODEL " + MODEL, "Enter")
        p.wait(lambda s: s.endswith(PROMPT_CMD.rstrip()), what="prompt")
    finally:
        p.close()


def test_tty_streaming_and_spinner():
    p = Pane()
    try:
        p.keys("IA", "Enter")
        p.wait(lambda s: s.endswith(PROMPT_CHAT.rstrip()))
        m = marker()
        # Silence first: the indicator turns on the empty line below.
        p.keys("stream %s [[fake:slow:2000]] [[fake:interval:600]] "
               "[[fake:repeat:3]]" % m, "Enter")
        p.wait(lambda s: s.split("\n")[-1] in ("|", "/", "-", "\\"),
               timeout=1.8, what="the activity indicator")
        # Then the answer streams: text before its status line.
        s = p.wait(lambda s: "Echo: stream " + m in s, what="the first piece")
        tail = s[s.rindex("Echo: stream " + m):]
        assert ". OK" not in tail, tail
        s = p.wait(lambda s: s.endswith(PROMPT_CHAT.rstrip()), timeout=20,
                   what="the end of the answer")
        lines = s.split("\n")
        ans = [l for l in lines if m in l and l.startswith("Echo")]
        assert ans and ans[0].startswith("Echo: stream "), lines[-6:]
        assert STATUS_OK.match(lines[-2]), lines[-6:]
    finally:
        p.close()


def test_tty_ctrl_c_cancels_and_keeps_session():
    p = Pane()
    try:
        m = marker()
        p.keys("ASK [[fake:interval:700]] [[fake:repeat:30]] cancel me " + m,
               "Enter")
        p.wait(lambda s: "Echo:" in s.split(PROMPT_CMD)[-1],
               what="the answer to start")
        t0 = time.monotonic()
        p.keys("C-c")
        s = p.wait(lambda s: s.endswith(PROMPT_CMD.rstrip()), timeout=5,
                   what="the prompt after Ctrl-C")
        assert time.monotonic() - t0 < 4
        assert ". ERR cancelled" in s, s
        # The same session goes on: no second greeting.
        p.keys("ASK after " + m, "Enter")
        s = p.wait(lambda s: ("Echo: after " + m) in s and
                   s.endswith(PROMPT_CMD.rstrip()), what="the next answer")
        assert s.count("ID:") == 1, s
        assert "EXIT=" not in s, s
    finally:
        p.close()


def test_tty_ctrl_c_clears_line():
    p = Pane()
    try:
        p.type("NOT-SENT-LINE")
        p.wait(lambda s: s.endswith("NOT-SENT-LINE"))
        p.keys("C-c")
        p.wait(lambda s: s.endswith("NOT-SENT-LINE^C\n" +
                                    PROMPT_CMD.rstrip()),
               what="a fresh prompt")
        p.keys("INFO", "Enter")
        s = p.wait(lambda s: "\nmodel: " in s and
                   s.endswith(PROMPT_CMD.rstrip()), what="INFO")
        assert "unknown-command" not in s, s
        assert "EXIT=" not in s, s
    finally:
        p.close()


def test_tty_paste_is_one_prompt():
    p = Pane()
    try:
        p.keys("IA", "Enter")
        p.wait(lambda s: s.endswith(PROMPT_CHAT.rstrip()))
        m = marker()
        buf = os.path.join(p.dir, "paste")
        with open(buf, "w") as f:
            f.write("pasted one %s\npasted two\npasted three\n" % m)
        p.tmux("load-buffer", "-b", "x", buf)
        p.tmux("paste-buffer", "-b", "x", "-t", "t")
        s = p.wait(lambda s: ("pasted three [turns=" in s) and
                   s.endswith(PROMPT_CHAT.rstrip()), what="one answer")
        assert ("Echo: pasted one %s\npasted two\npasted three [turns=" % m
                ) in s, s
        after = s[s.index("Echo: pasted one"):]
        assert len([l for l in after.split("\n") if STATUS_OK.match(l)]) \
            == 1, after
    finally:
        p.close()


def test_tty_ctrl_d_and_history():
    h = home()
    p = Pane(h)
    m = marker()
    try:
        p.keys("ASK remember " + m, "Enter")
        p.wait(lambda s: s.endswith(PROMPT_CMD.rstrip()) and
               ("Echo: remember " + m) in s)
        p.keys("AUTH secret-token-" + m, "Enter")
        p.wait(lambda s: s.endswith(PROMPT_CMD.rstrip()) and
               "secret-token" in s.split("\n")[-3])
        p.keys("C-d")
        s = p.wait(lambda s: "EXIT=" in s, what="the client to leave")
        assert "EXIT=0" in s, s
        assert re.search(r"^\. BYE", s, re.M), s
    finally:
        p.close()
    with open(os.path.join(h, ".bridge", "history")) as f:
        hist = f.read()
    assert m in hist, hist
    assert "secret-token" not in hist, hist
    assert os.stat(os.path.join(h, ".bridge", "history")).st_mode & 0o077 \
        == 0
    # A new session recalls it with the up arrow.
    p = Pane(h)
    try:
        p.keys("Up")
        p.wait(lambda s: s.endswith(PROMPT_CMD + "ASK remember " + m),
               what="the recalled line")
    finally:
        p.close()


# ---- chat first ---------------------------------------------------------

def last_line_is_prompt(s):
    return s.endswith(PROMPT_CHAT.rstrip())


def test_pipe_chat_first():
    """Without -c each line is a prompt, / a command, // a prompt."""
    m = marker()
    r = connect(["hello " + m, "//slashed " + m, "/info", "/bogus",
                 '"""', "one " + m, "two", '"""', "BACK"], cmd=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    out = r.stdout
    assert re.search(r"^Echo: hello %s \[turns=" % m, out, re.M), out
    assert re.search(r"^Echo: /slashed %s \[" % m, out, re.M), out
    assert re.search(r"^model: gemini-2\.0-flash$", out, re.M), out
    assert ("Echo: one %s\ntwo [turns=" % m) in out, out
    # BACK alone is a prompt too, not a word of chat mode.
    assert re.search(r"^Echo: BACK \[turns=", out, re.M), out
    assert r.stderr == "bridgectl: unknown command /bogus; /help lists " \
        "them\n", r.stderr
    # No status lines for a script.
    assert ". OK" not in out, out


def test_pipe_slash_commands_map_to_the_protocol():
    m = marker()
    r = connect(["/models", "/model gemini-2.5-flash", "/info",
                 "first " + m, "/history 2", "/new", "/raw HELP",
                 # conversations keep their model: give back the usual
                 "/model " + MODEL, "/bye", "never " + m], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout
    assert re.search(r"^\d+\. gemini-2\.5-pro$", out, re.M), out
    assert re.search(r"^model: gemini-2\.5-flash$", out, re.M), out
    assert re.search(r"^--- \d+ \S+ user$", out, re.M), out
    assert re.search(r"^HELP ", out, re.M), out
    assert "never " + m not in out, out
    assert ("Echo: first " + m) in out, out


def test_pipe_usage_errors_of_slash_commands():
    r = connect(["/info now", "/resume", "/export"], cmd=False)
    assert r.returncode == 1, r
    assert r.stderr.count("bridgectl: usage: /") == 3, r.stderr
    assert r.stdout == "", r.stdout


def test_chat_first_greeting_footer_and_quiet():
    h = home()
    p = Pane(h, opts="")
    try:
        s = p.screen()
        assert s.startswith("ID:"), s
        assert "ID is who this server knows you by" in s, s
        assert ". OK" not in s, s
        m = marker()
        p.type("what is " + m)
        p.keys("Enter")
        s = p.wait(lambda s: last_line_is_prompt(s) and
                   ("Echo: what is " + m) in s, what="the answer")
        lines = s.split("\n")
        assert lines[-3].startswith("Echo: what is " + m), lines[-4:]
        assert FOOTER.match(lines[-2]), lines[-4:]
        assert ". OK" not in s and "ERR" not in s, s
        p.keys("C-d")
        p.wait(lambda s: "EXIT=0" in s, what="the end")
    finally:
        p.close()
    # The second time the ID line is not explained again; -q: no footer.
    p = Pane(h, opts="-q")
    try:
        s = p.screen()
        assert "ID is who" not in s and "/help" in s, s
        m = marker()
        p.type("quiet " + m)
        p.keys("Enter")
        s = p.wait(lambda s: last_line_is_prompt(s) and
                   ("Echo: quiet " + m) in s, what="the answer")
        assert s.split("\n")[-2].startswith("Echo: quiet " + m), s
        assert not any(FOOTER.match(l) for l in s.split("\n")), s
    finally:
        p.close()


def test_chat_first_slash_commands_on_a_terminal():
    p = Pane(opts="")
    try:
        p.type("/help")
        p.keys("Enter")
        s = p.wait(lambda s: last_line_is_prompt(s) and "/usage" in s,
                   what="/help")
        for c in ("/model [NAME]", "/models", "/new [NAME]",
                  "/conversations", "/resume", "/history", "/system",
                  "/role", "/search", "/export FILE", "/import FILE",
                  "/submit", "/dialogue", "/jobs", "/result", "/usage",
                  "/info", "/bye", "/raw LINE"):
            assert c in s, (c, s)
        p.type("/model")
        p.keys("Enter")
        p.wait(lambda s: s.endswith("choose a number>"), what="the menu")
        p.keys("0", "Enter")
        p.wait(last_line_is_prompt, what="the prompt after the menu")
        p.type("/model gemini-2.5-flash")
        p.keys("Enter")
        p.wait(lambda s: s.endswith("bridge [chat gemini-2.5-flash]>"),
               what="the new model in the prompt")
        m = marker()
        p.type("now " + m)
        p.keys("Enter")
        s = p.wait(lambda s: s.endswith("bridge [chat gemini-2.5-flash]>")
                   and ("Echo: now " + m) in s, what="the answer")
        assert s.split("\n")[-2].startswith("(gemini-2.5-flash, "), s
        p.type("/model " + MODEL)
        p.keys("Enter")
        p.wait(last_line_is_prompt, what="the model back")
        p.type("/nonsense")
        p.keys("Enter")
        s = p.wait(lambda s: "unknown command /nonsense" in s and
                   last_line_is_prompt(s), what="the refusal")
        p.type("/bye")
        p.keys("Enter")
        s = p.wait(lambda s: "EXIT=" in s, what="/bye")
        assert "EXIT=0" in s, s
    finally:
        p.close()


def test_chat_block_ctrl_c_abandons():
    p = Pane(opts="")
    try:
        m = marker()
        p.type('"""')
        p.keys("Enter")
        p.wait(lambda s: s.endswith("..."), what="the block prompt")
        p.type("abandoned " + m)
        p.keys("Enter")
        p.wait(lambda s: s.endswith("...") and ("abandoned " + m) in s,
               what="the second line")
        p.keys("C-c")
        s = p.wait(lambda s: last_line_is_prompt(s) and "abandoned;" in s,
                   what="the block to go")
        p.type("after " + m)
        p.keys("Enter")
        s = p.wait(lambda s: last_line_is_prompt(s) and
                   ("Echo: after " + m) in s, what="the next answer")
        assert "EXIT=" not in s, s
    finally:
        p.close()
    sent = [json_text(r) for r in up.requests()]
    assert not any(("abandoned " + m) in t for t in sent), sent
    assert any(("after " + m) in t for t in sent), sent


def json_text(req):
    import json
    return json.dumps(req)


def test_chat_typed_during_an_answer_is_queued_and_echoed_once():
    p = Pane(opts="")
    try:
        m = marker()
        p.type("slow %s [[fake:interval:400]] [[fake:repeat:6]]" % m)
        p.keys("Enter")
        p.wait(lambda s: ("Echo: slow " + m) in s, what="the answer")
        # Two lines typed fast, while it streams.
        p.type("second " + m + "\nthird " + m + "\n")
        s = p.wait(lambda s: last_line_is_prompt(s) and
                   ("Echo: third " + m) in s, timeout=30,
                   what="both answers")
        lines = s.split("\n")
        # Each typed line shows once, after its own prompt.
        assert lines.count(PROMPT_CHAT + "second " + m) == 1, lines
        assert lines.count(PROMPT_CHAT + "third " + m) == 1, lines
        assert sum(1 for l in lines if ("second " + m) in l) == 2, lines
        # Separate prompts: separate answers, each with its footer.
        assert any(l.startswith("Echo: second %s [turns" % m)
                   for l in lines), lines
        assert any(l.startswith("Echo: third %s [turns" % m)
                   for l in lines), lines
        assert sum(1 for l in lines if FOOTER.match(l)) == 3, lines
    finally:
        p.close()


def test_fast_lines_after_block_mark_echoed_once():
    p = Pane(opts="")
    try:
        m = marker()
        p.type('"""')
        p.keys("Enter")
        p.type("fast one %s\nfast two\n" % m + '"""\n')
        s = p.wait(lambda s: last_line_is_prompt(s) and
                   ("Echo: fast one " + m) in s, what="the answer")
        lines = s.split("\n")
        assert lines.count("... fast one " + m) == 1, lines
        assert lines.count("... fast two") == 1, lines
        assert ("Echo: fast one %s\nfast two [turns=" % m) in s, s
    finally:
        p.close()


def test_chat_ctrl_c_stops_an_answer():
    p = Pane(opts="")
    try:
        m = marker()
        p.type("[[fake:interval:500]] [[fake:repeat:30]] stop me " + m)
        p.keys("Enter")
        p.wait(lambda s: "Echo:" in s.split(PROMPT_CHAT)[-1],
               what="the answer to start")
        p.keys("C-c")
        s = p.wait(lambda s: last_line_is_prompt(s), timeout=5,
                   what="the prompt after Ctrl-C")
        assert "cancelled" in s.split("\n")[-2], s
        assert "EXIT=" not in s, s
    finally:
        p.close()


# ---- addresses ----------------------------------------------------------

def test_host_port_forms():
    m = marker()
    r = connect(["ASK v4 " + m], host="127.0.0.1:%d" % d.port, port=False)
    assert r.returncode == 0 and ("Echo: v4 " + m) in r.stdout, r
    r = connect(["ASK v6 " + m], host="[::1]:%d" % port6, port=False)
    assert r.returncode == 0 and ("Echo: v6 " + m) in r.stdout, r
    r = connect(["ASK v6b " + m], "-p", str(port6), host="::1", port=False)
    assert r.returncode == 0 and ("Echo: v6b " + m) in r.stdout, r
    r = connect(["INFO"], host="127.0.0.1:%d" % d.port)
    assert r.returncode == 1 and "drop -p" in r.stderr, r
    for bad in ("[::1", "host:0", "host:x", "[::1]x"):
        r = connect(["INFO"], host=bad, port=False)
        assert r.returncode == 1 and "not host, host:port" in r.stderr, \
            (bad, r.stderr)


# ---- named servers --------------------------------------------------------

def write_config(h, text):
    os.makedirs(os.path.join(h, ".bridge"), mode=0o700, exist_ok=True)
    with open(os.path.join(h, ".bridge", "config"), "w") as f:
        f.write(text)


def test_named_server_with_ca_and_pin():
    h = home()
    write_config(h, "# mine\nserver other\n\thost example.org\n"
                 "server work\n\thost 127.0.0.1:%d\n\tca %s\n"
                 "server pinned\n\thost [::1]:%d\n\tpin %s\n"
                 "server wrongpin\n\thost 127.0.0.1\n\tport %d\n\tpin "
                 "SHA256:%s\n" % (d.port, d.ca, port6, cert_hash(d.crt),
                                  d.port, "0" * 64))
    m = marker()
    r = connect(["ASK named " + m], host="work", port=False, ca=False,
                env_home=h)
    assert r.returncode == 0 and ("Echo: named " + m) in r.stdout, r
    assert r.stderr == "", r.stderr
    r = connect(["ASK pinned " + m], host="pinned", port=False, ca=False,
                env_home=h)
    assert r.returncode == 0 and ("Echo: pinned " + m) in r.stdout, r
    assert not os.path.exists(os.path.join(h, ".bridge", "known_hosts"))
    r = connect(["ASK never " + m], host="wrongpin", port=False, ca=False,
                env_home=h)
    assert r.returncode == 1 and "NOT the one pinned" in r.stderr, r
    assert "wrongpin" in r.stderr and r.stdout == "", r


def test_named_server_config_errors():
    h = home()
    write_config(h, "server work\n\thost 127.0.0.1\n\tcolour blue\n")
    r = connect(["INFO"], host="work", port=False, ca=False, env_home=h)
    assert r.returncode == 1, r
    assert r.stderr.startswith("bridgectl: %s/.bridge/config:3: unknown "
                               "keyword" % h), r.stderr


class TokenDaemon:
    def __enter__(self):
        self.d = Daemon(up, prefork=1, start=False)
        self.tokens = os.path.join(self.d.dir, "tokens")
        with open(self.tokens, "w") as f:
            f.write("secret-alpha-%s\n" % self.d.port)
        os.chmod(self.tokens, 0o600)
        with open(self.d.conf, "a") as f:
            f.write('identity token file "%s"\n' % self.tokens)
        self.d.start()
        self.token = "secret-alpha-%s" % self.d.port
        return self

    def __exit__(self, *a):
        self.d.stop()


def test_named_server_token_sent_with_auth():
    with TokenDaemon() as t:
        h = home()
        tf = os.path.join(h, "work.token")
        with open(tf, "w") as f:
            f.write(t.token + "\n")
        os.chmod(tf, 0o600)
        write_config(h, "server work\n\thost 127.0.0.1:%d\n\tca %s\n"
                     "\ttoken-file %s\n" % (t.d.port, t.d.ca, tf))
        m = marker()
        r = connect(["/info", "token " + m], host="work", port=False,
                    ca=False, env_home=h, cmd=False)
        assert r.returncode == 0, r
        assert ("Echo: token " + m) in r.stdout, r.stdout
        assert re.search(r"^id: [0-9a-f]{12}$", r.stdout, re.M), r.stdout
        assert t.token not in r.stdout + r.stderr
        # Without it: the server asks for AUTH.
        r = connect(["/info"], "-C", t.d.ca, port=t.d.port, ca=False,
                    env_home=h, cmd=False)
        assert r.returncode == 1 and "ERR auth" in r.stderr, r
        p = Pane(h, opts="", target="-C %s -p %d 127.0.0.1" % (
            t.d.ca, t.d.port), first="bridge [chat ?]> ")
        try:
            p.type("/info")
            p.keys("Enter")
            s = p.wait(lambda s: s.endswith("bridge [chat ?]>") and
                       "error: auth" in s, what="the refusal")
            assert "wants a token: put it in a token-file" in s, s
        finally:
            p.close()
        # BRIDGE_TOKEN does it for any server.
        r = connect(["/info"], "-C", t.d.ca, port=t.d.port, ca=False,
                    env_home=home(), cmd=False,
                    env={"BRIDGE_TOKEN": t.token})
        assert r.returncode == 0 and "id: " in r.stdout, r
        # A wrong token ends the session at once, saying whose it was.
        r = connect(["/info"], "-C", t.d.ca, port=t.d.port, ca=False,
                    env_home=home(), cmd=False,
                    env={"BRIDGE_TOKEN": "wrong-token"})
        assert r.returncode == 1 and "refused the token of BRIDGE_TOKEN" \
            in r.stderr, r
        # A token file others can read is refused before connecting.
        os.chmod(tf, 0o644)
        r = connect(["/info"], host="work", port=False, ca=False,
                    env_home=h, cmd=False)
        assert r.returncode == 1 and ("chmod 600 " + tf) in r.stderr, r
        assert r.stdout == "", r


def test_named_server_on_a_terminal():
    """A person types nothing about the token; it is not in history."""
    with TokenDaemon() as t:
        h = home()
        tf = os.path.join(h, "t")
        with open(tf, "w") as f:
            f.write(t.token)
        os.chmod(tf, 0o600)
        write_config(h, "server work\n\thost 127.0.0.1:%d\n\tca %s\n"
                     "\ttoken-file %s\n" % (t.d.port, t.d.ca, tf))
        p = Pane(h, opts="", target="work")
        try:
            m = marker()
            p.type("hi " + m)
            p.keys("Enter")
            s = p.wait(lambda s: last_line_is_prompt(s) and
                       ("Echo: hi " + m) in s, what="the answer")
            assert "auth" not in s.lower() and t.token not in s, s
            p.keys("C-d")
            p.wait(lambda s: "EXIT=0" in s, what="the end")
        finally:
            p.close()
        hist = open(os.path.join(h, ".bridge", "history")).read()
        assert t.token not in hist and m in hist, hist


def test_raw_auth_not_in_history():
    h = home()
    p = Pane(h, opts="")
    try:
        m = marker()
        p.type("/raw AUTH secret-raw-" + m)
        p.keys("Enter")
        s = p.wait(lambda s: last_line_is_prompt(s) and "error: auth" in s,
                   what="the reply to AUTH")
        assert "wants a token" not in s, s
        p.type("/info")
        p.keys("Enter")
        p.wait(lambda s: last_line_is_prompt(s) and "\nid: " in s,
               what="/info")
        p.keys("C-d")
        p.wait(lambda s: "EXIT=" in s, what="the end")
    finally:
        p.close()
    with open(os.path.join(h, ".bridge", "history")) as f:
        hist = f.read()
    assert "secret-raw" not in hist and "/info" in hist, hist


# ---- commands whose server side lands from other branches ---------------

def server_has(command):
    """Skip unless the server knows this command (it may land later)."""
    r = connect([command], timeout=30)
    if "unknown-command" in r.stderr:
        raise Skip("the server has no %s yet" % command.split()[0])


def test_slash_conversations_resume_system():
    server_has("CONVERSATIONS")
    h = home()
    m = marker()
    r = connect(["/new talk-" + m, "hello " + m, "/system be brief " + m,
                 "/system", "/conversations", "/new", "/resume talk-" + m,
                 "/history", "/delete talk-" + m],
                cmd=False, env_home=h)
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout
    assert re.search(r"^conversation \d+ talk-%s$" % m, out, re.M), out
    assert ("be brief " + m) in out, out
    assert re.search(r"^\* \d+ \S+ \d+ \S+ talk-%s$" % m, out, re.M), out
    assert re.search(r"^--- \d+ \S+ user\nhello %s$" % m, out, re.M), out
    assert re.search(r"^deleted \d+ messages", out, re.M), out


def test_slash_search():
    server_has("SEARCH x")
    m = marker()
    r = connect(["/new", "findme " + m, "/search " + m], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert re.search(r"^--- \d+ \d+ \S+ user\n.*findme %s" % m, r.stdout,
                     re.M), r.stdout


def test_slash_export_and_import():
    server_has("EXPORT")
    m = marker()
    dd = mkdir("export-")
    js, md = os.path.join(dd, "c.json"), os.path.join(dd, "c.md")
    r = connect(["/new exp-" + m, "exported " + m, "/export " + js,
                 "/export " + md, "/import " + js, "/conversations"],
                cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    import json
    with open(js) as f:
        data = json.load(f)
    assert ("exported " + m) in json.dumps(data), data
    with open(md) as f:
        assert ("exported " + m) in f.read()
    assert os.stat(js).st_mode & 0o077 == 0
    # The import is a new conversation holding the same two messages.
    ids = re.findall(r"^conversation (\d+) ", r.stdout, re.M)
    assert len(ids) == 2 and ids[0] != ids[1], r.stdout
    assert re.search(r"^[-*] %s \S+ 2 " % ids[1], r.stdout, re.M), r.stdout
    # Another conversation by name; a refused export leaves no file.
    named = os.path.join(dd, "named.md")
    bad = os.path.join(dd, "none.json")
    r = connect(["/export %s exp-%s" % (named, m),
                 "/export %s no-such-%s" % (bad, m)], cmd=False)
    assert r.returncode == 1 and "ERR not-found" in r.stderr, r
    with open(named) as f:
        assert ("exported " + m) in f.read()
    assert not os.path.exists(bad)


def test_slash_jobs_and_result():
    server_has("JOBS")
    m = marker()
    r = connect(["/submit job " + m], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    jm = re.search(r"^job (\d+)$", r.stdout, re.M)
    assert jm, r.stdout
    job = jm.group(1)
    r = connect(["/jobs", "/result " + job], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert re.search(r"^%s \w+ " % job, r.stdout, re.M), r.stdout
    assert ("Echo: job " + m) in r.stdout, r.stdout


def test_slash_result_ctrl_c_stops_following():
    server_has("JOBS")
    m = marker()
    r = connect(["/submit [[fake:interval:500]] [[fake:repeat:40]] long "
                 + m], cmd=False)
    job = re.search(r"^job (\d+)$", r.stdout, re.M).group(1)
    p = Pane(opts="")
    try:
        p.type("/result " + job)
        p.keys("Enter")
        p.wait(lambda s: ("Echo: long " + m) in s, timeout=20,
               what="the job's answer")
        p.keys("C-c")
        s = p.wait(lambda s: last_line_is_prompt(s) and "still running"
                   in s, timeout=10, what="following to stop")
        assert ("job %s" % job) in s, s
        p.type("/kill " + job)
        p.keys("Enter")
        p.wait(lambda s: last_line_is_prompt(s) and "cancelled" in
               s.split("\n")[-2], what="the job killed")
    finally:
        p.close()


def test_slash_usage():
    server_has("USAGE")
    m = marker()
    r = connect(["used " + m, "/usage 1"], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert re.search(r"^\d{4}-\d\d-\d\d \S+ \d+ \d+ \d+$", r.stdout,
                     re.M), r.stdout


def test_slash_dialogue():
    server_has("JOBS")
    m = marker()
    r = connect(["/dialogue 2 gemini-2.0-flash gemini-2.5-flash talk " + m],
                cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    job = re.search(r"^job (\d+)$", r.stdout, re.M).group(1)
    r = connect(["/result " + job], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert re.search(r"^--- gemini-2\.0-flash$", r.stdout, re.M), r.stdout
    assert re.search(r"^--- gemini-2\.5-flash$", r.stdout, re.M), r.stdout


def test_slash_role():
    server_has("ROLES")
    r = connect(["/role"], cmd=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    r = connect(["/role no-such-role-" + marker()], cmd=False)
    assert r.returncode == 1 and re.search(r"^\. ERR (not-found|bad-argument)",
                                           r.stderr, re.M), r
