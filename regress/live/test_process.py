"""
Foundation: the process tree, restarts, reload, shutdown and the
control socket, with real processes and signals.
"""

import os
import signal
import stat
import subprocess
import time

from harness import (Daemon, FakeUpstream, BRIDGED, BRIDGECTL, wait_for,
                     pid_alive, children_of, cmdline, tmpdir)

d = up = None


def setup():
    global d, up
    up = FakeUpstream()
    d = Daemon(up, prefork=3)


def teardown():
    d.stop()
    up.stop()


def roles():
    return sorted(cmdline(p).split()[1] for p in children_of(d.pid))


def test_tree():
    assert cmdline(d.pid).startswith("bridged: parent"), cmdline(d.pid)
    want = sorted(["control", "storage", "provider"] + ["worker"] * 3)
    wait_for(lambda: roles() == want, what="tree %s, have %s" % (
        want, roles()))


def test_status():
    out = d.status()
    assert "version: 0.1" in out, out
    assert "process: parent %d" % d.pid in out, out
    for r in ("storage", "provider", "control"):
        assert "process: %s %d" % (r, d.role_pids(r)[0]) in out, out
    assert "workers: 3 idle, 0 busy" in out, out


def replaced(role):
    old = d.role_pids(role)[0]
    os.kill(old, signal.SIGKILL)
    t0 = time.monotonic()
    new = wait_for(lambda: [p for p in d.role_pids(role) if p != old],
                   timeout=1.0, step=0.01, what="a new " + role)
    assert not pid_alive(old)
    return new[0], time.monotonic() - t0


def test_kill_storage_restarts():
    new, _ = replaced("storage")
    wait_for(lambda: "process: storage %d" % new in d.status(),
             what="status to show the new storage")
    assert "storage (pid" in d.logtext() and "killed by signal 9" in \
        d.logtext()


def test_kill_provider_restarts():
    replaced("provider")


def test_kill_control_restarts():
    replaced("control")
    wait_for(lambda: d.ctl("show", "status", check=False).returncode == 0,
             what="control socket served again")


def test_kill_worker_replaced():
    old = d.role_pids("worker")[0]
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: old not in d.role_pids("worker") and
             len(d.role_pids("worker")) == 3, timeout=1.0, step=0.01,
             what="three workers again")
    wait_for(lambda: "workers: 3 idle" in d.status(), what="3 idle")


def test_restarts_counted():
    line = [l for l in d.status().splitlines() if l.startswith("restarts:")]
    assert line and int(line[0].split()[1]) >= 3, line


def test_sighup_invalid_config_keeps_running():
    with open(d.conf) as f:
        good = f.read()
    try:
        with open(d.conf, "a") as f:
            f.write("\nthis is not a statement\n")
        os.kill(d.pid, signal.SIGHUP)
        wait_for(lambda: "keeping the running configuration" in d.logtext(),
                 what="reload failure logged")
        assert pid_alive(d.pid)
        assert "workers: 3 idle" in d.status()
        r = d.ctl("reload", check=False)
        assert r.returncode == 1 and "reload failed" in r.stderr, r
    finally:
        with open(d.conf, "w") as f:
            f.write(good)


def test_sighup_valid_config_applies():
    with open(d.conf) as f:
        good = f.read()
    try:
        with open(d.conf, "w") as f:
            f.write(good.replace("prefork 3", "prefork 4"))
        os.kill(d.pid, signal.SIGHUP)
        wait_for(lambda: "workers: 4 idle" in d.status(),
                 what="four idle workers after reload")
        r = d.ctl("reload")
        assert "reloaded" in r.stdout
    finally:
        with open(d.conf, "w") as f:
            f.write(good)
        d.ctl("reload")


def test_log_verbose_brief():
    assert "logging brief" in d.ctl("log", "brief").stdout
    assert "logging verbose" in d.ctl("log", "verbose").stdout


def test_control_socket_not_world_writable():
    st = os.stat(d.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert not st.st_mode & (stat.S_IWOTH | stat.S_IROTH), oct(st.st_mode)


def test_control_served_by_unprivileged_process():
    ctl = d.role_pids("control")[0]
    with open("/proc/%d/status" % ctl) as f:
        uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
    if os.geteuid() == 0:
        assert uid != "0", "control runs as root"
    # With control stopped, nobody answers: the parent does not serve it.
    os.kill(ctl, signal.SIGSTOP)
    try:
        try:
            d.ctl("show", "status", check=False, timeout=1.5)
            answered = True
        except subprocess.TimeoutExpired:
            answered = False
        assert not answered, "someone other than control answered"
    finally:
        os.kill(ctl, signal.SIGCONT)
    assert "version:" in d.status()


def test_bridgectl_errors():
    r = d.ctl("frobnicate", check=False)
    assert r.returncode == 1 and "frobnicate" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([BRIDGECTL, "-s", "/nonexistent/sock", "show",
                        "status"], capture_output=True, text=True)
    assert r.returncode == 1 and "not running" in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_config_check():
    r = subprocess.run([BRIDGED, "-n", "-f", d.conf], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "configuration OK" in r.stderr, r
    bad = os.path.join(tmpdir("bad-"), "bad.conf")
    with open(bad, "w") as f:
        f.write("prefork 2\nlisten on 127.0.0.1 port x\n")
    r = subprocess.run([BRIDGED, "-n", "-f", bad], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "bad.conf:2:" in r.stderr, r


def test_second_daemon_refuses_socket():
    r = subprocess.run([BRIDGED, "-d", "-f", d.conf], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0, r
    assert pid_alive(d.pid)
    assert "workers: 3 idle" in d.status()


def test_parent_death_leaves_no_child():
    e = Daemon(up, prefork=2)
    kids = children_of(e.pid)
    assert len(kids) == 5, kids
    os.kill(e.pid, signal.SIGKILL)
    e.proc.wait()
    wait_for(lambda: not any(pid_alive(k) for k in kids), timeout=1.0,
             step=0.01, what="children to exit after the parent died")
    e.stop()


def test_sigterm_stops_everything():
    e = Daemon(up, prefork=2)
    c = e.client()
    kids = children_of(e.pid)
    os.kill(e.pid, signal.SIGTERM)
    body, status = c.reply()
    assert status == ". BYE server shutting down", (body, status)
    assert c.closed()
    assert e.proc.wait(timeout=5) == 0
    wait_for(lambda: not any(pid_alive(k) for k in kids), timeout=2,
             what="children gone")
    assert not os.path.exists(e.sock), "control socket left behind"
    e.stop()
