"""
make demo as a new user meets it, in a tmux pane: Ctrl-C at the prompt
and during an answer reaches the client only, the daemon stays; the
answer streams at a human pace; the printed `show status` line works;
closing the terminal (killing the tmux server), Ctrl-C during start-up
and a SIGKILL of the script leave nothing the demo started; a port that
is already taken is refused with one line.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

from harness import (BRIDGECTL, TOP, Skip, free_port, pid_alive, proc_stats,
                     stop_pid, tmpdir, wait_for)

DEMO = os.path.join(TOP, "regress", "demo.sh")
DEMODIR = os.path.join(TOP, "regress", "tmp", "demo")
made = []


def teardown():
    for p in made:
        shutil.rmtree(p, ignore_errors=True)


def procs():
    """{pid: (sid, cmdline)} of every live process."""
    out = {}
    for pid, st in proc_stats():
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if st[0] != "Z":
            out[pid] = (int(st[3]), cmd)
    return out


def started_by_demo():
    """Pids of the demo's fake upstream, watchdog and bridged sessions."""
    ps = procs()
    fake = [p for p, (_, c) in ps.items() if "fake_gemini.py" in c and
            os.path.join(DEMODIR, "fake.port") in c]
    watch = [p for p, (_, c) in ps.items() if c.startswith("sh -c") and
             os.path.join(DEMODIR, "watchdog") in c]
    leaders = [p for p, (sid, c) in ps.items() if sid == p and
               c.startswith("bridged: parent") and
               os.path.exists("/proc/%d/cwd" % p)]
    ours = []
    for p in leaders:
        # A demo daemon's control socket is in DEMODIR.
        r = subprocess.run([BRIDGECTL, "-s", os.path.join(DEMODIR,
                            "bridged.sock"), "show", "status"],
                           capture_output=True, text=True, timeout=10)
        if "process: parent %d" % p in r.stdout:
            ours.append(p)
    return fake + watch + ours


def session_members(sid):
    return [p for p, (s, _) in procs().items() if s == sid]


class Pane:
    """make demo in a detached tmux server of its own."""

    def __init__(self, port, cmd=None):
        if shutil.which("tmux") is None:
            raise Skip("no tmux")
        self.dir = tmpdir("demo-tmux-")
        made.append(self.dir)
        self.sock = os.path.join(self.dir, "sock")
        cmd = cmd or "make -s demo"
        self.tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "40",
                  "cd %s && env HOME=%s DEMO_PORT=%d %s; echo EXIT=$?; "
                  "sleep 60" % (TOP, self.dir, port, cmd))

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null"] +
                              list(args), capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self):
        out = self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")
        return "\n".join(l.rstrip() for l in out.split("\n")).rstrip("\n")

    def wait(self, pred, timeout=30, what="the screen"):
        end = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            if time.monotonic() > end:
                raise AssertionError("timed out waiting for %s; screen:\n%s"
                                     % (what, s[-2000:]))
            time.sleep(0.05)

    def kill(self):
        try:
            self.tmux("kill-server")
        except subprocess.CalledProcessError:
            pass


def chat_prompt(s):
    return re.search(r"> *$", s.split("\n")[-1]) is not None and \
        "bridge [" in s.split("\n")[-1]


def demo_pid(s):
    m = re.search(r"demo: bridged \(pid (\d+)\)", s)
    assert m, s
    return int(m.group(1))


def gone(pids):
    return not any(pid_alive(p) for p in pids)


def no_demo_running():
    wait_for(lambda: not started_by_demo(), timeout=15,
             what="no demo to be running: %s" % started_by_demo())


def test_demo_ctrl_c_and_closing_the_terminal():
    no_demo_running()
    port = free_port()
    p = Pane(port)
    try:
        s = p.wait(chat_prompt, timeout=60, what="the demo's prompt")
        pid = demo_pid(s)
        ours = started_by_demo()
        assert pid in ours and len(ours) == 3, (ours, s)
        # bridged leads a session of its own.
        assert procs()[pid][0] == pid
        # The status line it prints is ready to use.
        m = re.search(r"^    (\S+ -s \S+ show status)$", s, re.M)
        assert m, s
        r = subprocess.run(m.group(1).split(), capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 0 and ("process: parent %d" % pid) in \
            r.stdout, r

        # A second demo is refused, on the same port or another.
        for other in (port, free_port()):
            r = subprocess.run(["sh", DEMO], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL, timeout=60,
                               env=dict(os.environ, DEMO_PORT=str(other)))
            assert r.returncode == 1 and r.stdout == "", r
            assert len(r.stderr.strip().split("\n")) == 1, r.stderr
            assert ("port %d" % port in r.stderr and "DEMO_PORT" in
                    r.stderr) if other == port else \
                "another demo is running" in r.stderr, r.stderr
        assert set(started_by_demo()) == set(ours)

        # Ctrl-C at the prompt: only the client's line goes.
        p.keys("C-c")
        p.wait(lambda s: s.split("\n")[-1].startswith("bridge [") and
               "^C" in s.split("\n")[-2], what="a fresh prompt")
        time.sleep(0.3)
        assert pid_alive(pid), p.screen()

        # An answer streams at a human pace; Ctrl-C stops it.
        p.keys("-l", "stream me [[fake:repeat:30]]")
        p.keys("Enter")
        s = p.wait(lambda s: s.count("Echo: stream me") >= 2,
                   what="the answer to start")
        tail = s[s.index("Echo: stream me"):]
        assert " tokens, " not in tail and ". OK" not in tail, tail
        p.keys("C-c")
        s = p.wait(lambda s: "cancelled" in s and
                   s.split("\n")[-1].startswith("bridge ["),
                   timeout=10, what="the cancelled answer")
        assert s.count("Echo: stream me") < 30, s
        time.sleep(0.3)
        assert pid_alive(pid) and "EXIT=" not in s, s
        assert set(started_by_demo()) == set(ours)

        # The next question is answered by the same daemon.
        p.keys("-l", "after the cancel")
        p.keys("Enter")
        p.wait(lambda s: "Echo: after the cancel" in s and
               s.split("\n")[-1].startswith("bridge ["),
               what="the next answer")
        sid_members = session_members(pid)
        assert sid_members, sid_members
    finally:
        p.kill()
    # Closing the terminal stops everything the demo started.
    wait_for(lambda: gone(ours + sid_members), timeout=15,
             what="the demo's processes to go: %s" % [
                 (x, procs().get(x)) for x in ours + sid_members])
    assert not os.path.exists(os.path.join(DEMODIR, "bridged.sock")) or \
        subprocess.run([BRIDGECTL, "-s", os.path.join(DEMODIR,
                        "bridged.sock"), "show", "status"],
                       capture_output=True).returncode != 0


def test_demo_ctrl_c_during_start_up():
    no_demo_running()
    port = free_port()
    p = Pane(port, cmd="sh regress/demo.sh")
    try:
        # The fake upstream is up; bridged is starting.
        p.wait(lambda s: "using the fake upstream" in s, timeout=30,
               what="the start-up")
        p.keys("C-c")
        s = p.wait(lambda s: "EXIT=" in s, timeout=15,
                   what="the demo to end")
        assert "demo: bridged (pid" not in s, "Ctrl-C came too late: " + s
        assert "EXIT=130" in s, s
        wait_for(lambda: not started_by_demo(), timeout=10,
                 what="the demo's processes to go: %s" % started_by_demo())
    finally:
        p.kill()


def test_demo_ends_with_the_client():
    no_demo_running()
    port = free_port()
    p = Pane(port, cmd="sh regress/demo.sh")
    try:
        s = p.wait(chat_prompt, timeout=60, what="the demo's prompt")
        pid = demo_pid(s)
        ours = started_by_demo()
        p.keys("C-d")
        s = p.wait(lambda s: "EXIT=" in s, timeout=15, what="the end")
        assert "EXIT=0" in s, s
        wait_for(lambda: gone(ours + [pid]), timeout=10, what="cleanup")
    finally:
        p.kill()


def test_demo_watchdog_after_sigkill():
    """Killed outright, the script cannot clean up: its watchdog does."""
    no_demo_running()
    port = free_port()
    p = Pane(port, cmd="sh regress/demo.sh")
    try:
        s = p.wait(chat_prompt, timeout=60, what="the demo's prompt")
        pid = demo_pid(s)
        ours = started_by_demo()
        script = [x for x, (_, c) in procs().items()
                  if c.startswith("sh regress/demo.sh") and
                  os.path.realpath("/proc/%d/cwd" % x) == TOP]
        assert len(script) == 1, script
        os.kill(script[0], signal.SIGKILL)
        wait_for(lambda: gone(ours + [pid]), timeout=10,
                 what="the watchdog to stop the demo")
    finally:
        p.kill()


def test_demo_refuses_a_busy_port():
    no_demo_running()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    port = ls.getsockname()[1]
    try:
        r = subprocess.run(["sh", DEMO], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60,
                           env=dict(os.environ, DEMO_PORT=str(port)))
    finally:
        ls.close()
    assert r.returncode == 1, r
    assert r.stdout == "", r.stdout
    lines = r.stderr.strip().split("\n")
    assert len(lines) == 1, r.stderr
    assert ("port %d" % port) in lines[0] and "DEMO_PORT" in lines[0], lines
    assert not started_by_demo()


def test_fake_pace():
    """--pace spaces the streamed writes: the demo's human pace."""
    from harness import FAKE
    d = tmpdir("pace-")
    made.append(d)
    portfile = os.path.join(d, "port")
    proc = subprocess.Popen(["python3", FAKE, "--port", "0", "--port-file",
                             portfile, "--key", "k", "--pace", "200"],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.path.exists(portfile), what="the fake")
        port = int(open(portfile).read())
        s = socket.create_connection(("127.0.0.1", port))
        body = b'{"contents":[{"role":"user","parts":[{"text":"a b c d e f"}]}]}'
        s.sendall(b"POST /v1beta/models/gemini-2.0-flash:"
                  b"streamGenerateContent?alt=sse HTTP/1.1\r\n"
                  b"Host: x\r\nx-goog-api-key: k\r\nContent-Type: "
                  b"application/json\r\nContent-Length: %d\r\n\r\n" %
                  len(body) + body)
        t0 = time.monotonic()
        times, data = [], b""
        while b'"STOP"' not in data:
            x = s.recv(65536)
            if not x:
                break
            data += x
            times.append(time.monotonic() - t0)
        s.close()
        assert b'"STOP"' in data, data
        assert len(times) >= 3 and times[-1] - times[0] >= 0.35, times
    finally:
        stop_pid(proc.pid)
        proc.wait()
