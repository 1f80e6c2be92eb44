"""
The operator's commands over the control socket, against a daemon with
real clients: show sessions, kill session, show models, monitor,
export (validated as JSON, and as Markdown) and purge.
"""

import hashlib
import json
import os
import signal
import subprocess
import time

from harness import Daemon, FakeUpstream, BRIDGECTL, Skip, wait_for

d = up = None


def setup():
    global d, up
    up = FakeUpstream()
    d = Daemon(up, prefork=2)


def teardown():
    d.stop()
    up.stop()


IDENT = hashlib.sha256(b"127.0.0.1").hexdigest()


def chat(c, prompt):
    body, status = c.ask("ASK " + prompt)
    assert status.startswith(". OK"), (body, status)
    return body


def test_show_sessions_and_kill():
    c = d.client()
    chat(c, "hello sessions")

    def mine():
        out = d.ctl("show", "sessions").stdout.splitlines()
        return [l for l in out if IDENT[:12] in l]
    assert len(mine()) == 1, mine()
    f = mine()[0].split()
    sid = f[0]
    assert f[1] == "127.0.0.1" and f[2] == IDENT[:12], f
    assert f[3] == "gemini-2.0-flash", f
    # Prompt and answer stored: the counts come within a second.
    wait_for(lambda: int(mine()[0].split()[5]) >= 2, timeout=3,
             what="the session's two stored messages counted")
    assert mine()[0].split()[0] == sid
    r = d.ctl("kill", "session", sid)
    assert "ended" in r.stdout
    body, status = c.reply()
    assert status.startswith(". BYE"), status
    assert c.closed()
    wait_for(lambda: sid not in [l.split()[0] for l in
             d.ctl("show", "sessions").stdout.splitlines()],
             what="session gone from the list")
    r = d.ctl("kill", "session", "999999", check=False)
    assert r.returncode == 1 and "no session" in r.stderr, r


def test_metrics_and_counts_of_an_open_session():
    """A session still open: its prompts' metrics reach the parent
    (they ride with the worker's next message, or come within a
    second), and show sessions counts its messages once each prompt is
    over."""
    def prompts():
        out = d.ctl("show", "metrics").stdout
        return sum(int(l.rsplit(" ", 1)[1]) for l in out.splitlines()
                   if l.startswith("bridged_prompts_total{"))
    before = prompts()
    c = d.client()
    try:
        for i in range(3):
            chat(c, "counted %d" % i)
        wait_for(lambda: prompts() >= before + 3, timeout=5,
                 what="three more prompts in the metrics")
        mine = [l for l in d.ctl("show", "sessions").stdout.splitlines()
                if IDENT[:12] in l]
        assert mine and int(mine[0].split()[5]) >= 6, mine
    finally:
        c.close()


def test_show_models():
    out = d.ctl("show", "models").stdout.splitlines()
    names = [l.split()[0] for l in out]
    assert "gemini-2.0-flash" in names, out
    assert names == sorted(names), names
    assert not [n for n in names if "embed" in n or "tts" in n or
                "imagen" in n or "veo" in n], names


def test_monitor_streams_events():
    p = subprocess.Popen([BRIDGECTL, "-s", d.sock, "monitor"],
                         stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        c = d.client()
        chat(c, "watched prompt")
        c.ask("QUIT")
        c.close()
        lines = []
        end = time.monotonic() + 5
        os.set_blocking(p.stdout.fileno(), False)
        while time.monotonic() < end:
            l = p.stdout.readline()
            if l:
                lines.append(l.strip())
                if any("disconnect" in x for x in lines):
                    break
            else:
                time.sleep(0.05)
        text = "\n".join(lines)
        assert "connect session" in text, text
        assert "prompt" in text, text
        assert "disconnect" in text, text
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=5)


def control_read():
    """How often the control process has woken up to read (it sleeps
    in poll until a channel or its socket has something)."""
    pid = d.role_pids("control")[0]
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError as e:
        raise Skip("/proc/%d/status: %s" % (pid, e))
    raise Skip("no voluntary_ctxt_switches in /proc/%d/status" % pid)


def sessions(n, prompt):
    for i in range(n):
        c = d.client()
        chat(c, "%s %d" % (prompt, i))
        c.ask("QUIT")
        c.close()


def test_monitor_lines_only_while_a_monitor_is_attached():
    time.sleep(0.5)
    before = control_read()
    sessions(3, "unwatched")
    time.sleep(0.5)
    assert control_read() == before, "monitor lines with no monitor"
    p = subprocess.Popen([BRIDGECTL, "-s", d.sock, "monitor"],
                         stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        sessions(1, "watched")
        line = p.stdout.readline()
        assert "connect session" in line, line
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=5)
    # Detached again: the parent hears of it and stops.
    time.sleep(0.5)
    before = control_read()
    sessions(2, "unwatched again")
    time.sleep(0.5)
    assert control_read() == before, "monitor lines after it left"


def test_monitor_sees_a_session_that_began_before_it():
    """Workers send their prompt lines only while a monitor is
    attached: one already in session hears of the monitor too."""
    c = d.client()
    chat(c, "before the monitor")
    p = subprocess.Popen([BRIDGECTL, "-s", d.sock, "monitor"],
                         stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        chat(c, "while watched")
        os.set_blocking(p.stdout.fileno(), False)
        lines, end = "", time.monotonic() + 5
        while ": prompt bytes=" not in lines and time.monotonic() < end:
            lines += p.stdout.readline() or ""
            time.sleep(0.05)
        assert ": prompt bytes=" in lines, lines
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(timeout=5)
    time.sleep(0.5)
    chat(c, "after the monitor")
    c.ask("QUIT")
    c.close()


def test_event_log_keeps_connections_not_prompts():
    c = d.client()
    chat(c, "not a log line")
    c.ask("QUIT")
    c.close()
    wait_for(lambda: "disconnect session" in
             d.ctl("show", "events", "-n", "5").stdout,
             what="disconnect event")
    out = d.ctl("show", "events", "-n", "1000", "-i", IDENT[:12]).stdout
    for want in ("connect session", ": connect TLSv1.3",
                 ": disconnect closed", "disconnect session"):
        assert want in out, (want, out)
    for unwanted in ("prompt bytes=", "answer model=", ": model "):
        assert unwanted not in out, (unwanted, out)


def test_export_json_and_markdown():
    c = d.client()
    chat(c, "export me \"quoted\" and \\ backslash")
    c.ask("QUIT")
    r = d.ctl("export", IDENT[:12])
    doc = json.loads(r.stdout)
    assert doc["identity"] == IDENT, doc.get("identity")
    contents = [m["content"] for m in doc["messages"]]
    assert "export me \"quoted\" and \\ backslash" in contents, contents
    roles = {m["role"] for m in doc["messages"]}
    assert roles == {"user", "model"}, roles
    assert isinstance(doc["summaries"], list)
    md = d.ctl("export", IDENT, "markdown").stdout
    assert md.startswith("# bridged conversation " + IDENT), md[:100]
    assert "export me" in md and "## " in md
    r = d.ctl("export", "abcdef0123", check=False)
    assert r.returncode == 1 and r.stderr.strip(), r


def test_purge_needs_confirmation_then_deletes():
    c = d.client()
    chat(c, "purge me")
    c.ask("QUIT")
    r = subprocess.run([BRIDGECTL, "-s", d.sock, "purge", IDENT],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True)
    assert r.returncode == 1 and "-f" in r.stderr, r
    assert json.loads(d.ctl("export", IDENT).stdout)["messages"]
    r = d.ctl("purge", "-f", IDENT)
    assert "deleted" in r.stdout, r.stdout
    doc = json.loads(d.ctl("export", IDENT).stdout)
    assert doc["messages"] == [] and doc["summaries"] == [], doc
