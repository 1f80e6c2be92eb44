"""
The sandboxes seen from outside, on a real daemon (root only; skipped
otherwise): every process shows its seccomp filter, no_new_privs and
the configured user; workers and control live in the chroot; storage
holds no internet socket; the provider holds no database file; the API
key, the TLS private key and another client's words are not in the
memory of processes that must not hold them; a worker that makes a
forbidden call (a build with -DSANDBOX_TEST) is killed by SIGSYS, the
parent logs it and the other sessions go on; an unknown user stops the
start, and a daemon started by a user other than root says so once and
runs with the filters alone.
"""

import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time

import harness
from harness import (Daemon, FakeUpstream, API_KEY, IS_ROOT, TOP, Skip,
                     wait_for, pid_alive)

d = up = None
INET_TABLES = ("tcp", "tcp6", "udp", "udp6", "raw", "raw6", "udplite",
               "udplite6")
ROLES = ("control", "storage", "provider", "template", "worker")


def setup():
    global d, up
    if not IS_ROOT:
        raise Skip("not root: user, chroot and the /proc of other users "
                   "need root")
    up = FakeUpstream()
    d = Daemon(up, prefork=2, start=False)
    try:
        d.start()
    except Exception:
        d.stop()
        up.stop()
        d = up = None
        raise


def teardown():
    if d is not None:
        d.stop()
    if up is not None:
        up.stop()


def status(pid, task=None):
    out = {}
    with open("/proc/%d/status" % pid if task is None else
              "/proc/%d/task/%d/status" % (pid, task)) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def fd_links(pid):
    out = []
    d_ = "/proc/%d/fd" % pid
    for fd in os.listdir(d_):
        try:
            out.append(os.readlink(os.path.join(d_, fd)))
        except OSError:
            pass
    return out


def inet_inodes():
    """Inodes of every internet socket in this network namespace."""
    out = set()
    for t in INET_TABLES:
        try:
            with open("/proc/net/" + t) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            f_ = line.split()
            if len(f_) > 9:
                out.add(f_[9])
    return out


def memory_has(pid, needles):
    """Which of needles (bytes) occur in the readable memory of pid."""
    if harness.sanitized():
        # AddressSanitizer reserves terabytes of shadow memory: reading
        # it through /proc maps a page table entry for every page, and
        # the kernel kills the process scanned for its page tables.
        raise Skip("no memory scans in a sanitized build")
    found = set()
    keep = max(len(n) for n in needles) - 1
    with open("/proc/%d/maps" % pid) as f:
        maps = f.readlines()
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    try:
        for line in maps:
            f_ = line.split()
            if f_[1][0] != "r" or (len(f_) > 5 and f_[5].startswith(
                    ("[vvar", "[vsyscall"))):
                continue
            lo, hi = (int(x, 16) for x in f_[0].split("-"))
            off, tail = lo, b""
            while off < hi:
                try:
                    data = os.pread(fd, min(1 << 20, hi - off), off)
                except OSError:
                    break
                if not data:
                    break
                buf = tail + data
                for n in needles:
                    if n in buf:
                        found.add(n)
                tail = buf[-keep:] if keep > 0 else b""
                off += len(data)
    finally:
        os.close(fd)
    return found


def user_ids(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def check_sandboxed(pid, what, uid, gid):
    st = status(pid)
    assert st["Seccomp"] == "2", "%s: Seccomp %s" % (what, st["Seccomp"])
    assert st["NoNewPrivs"] == "1", "%s: NoNewPrivs %s" % (
        what, st["NoNewPrivs"])
    want = "\t".join([str(uid)] * 4)
    assert st["Uid"] == want, "%s: Uid %r, want %r" % (what, st["Uid"], want)
    want = "\t".join([str(gid)] * 4)
    assert st["Gid"] == want, "%s: Gid %r, want %r" % (what, st["Gid"], want)
    assert st["Groups"] in ("", str(gid)), "%s: Groups %r" % (
        what, st["Groups"])


def worker_of(daemon, client):
    """The worker holding the server end of client's connection."""
    lport = client.sock.getsockname()[1]
    inodes = set()
    for t in ("tcp", "tcp6"):
        with open("/proc/net/" + t) as f:
            for line in f.readlines()[1:]:
                f_ = line.split()
                if int(f_[1].rsplit(":", 1)[1], 16) == daemon.port and \
                        int(f_[2].rsplit(":", 1)[1], 16) == lport:
                    inodes.add("socket:[%s]" % f_[9])
    for pid in daemon.role_pids("worker"):
        if inodes & set(fd_links(pid)):
            return pid
    raise AssertionError("no worker holds the connection from port %d" %
                         lport)


def client_from(daemon, src):
    """A session from another loopback address: another identity."""
    raw = socket.create_connection(("127.0.0.1", daemon.port), timeout=20,
                                   source_address=(src, 0))
    ctx = ssl.create_default_context(cafile=daemon.ca)
    ctx.check_hostname = False
    c = harness.Client.__new__(harness.Client)
    c.sock = ctx.wrap_socket(raw, server_hostname="localhost")
    c.buf = b""
    c.greeting = c.reply()
    return c


def chat(c, prompt):
    body, st = c.ask("ASK " + prompt)
    assert st.startswith(". OK"), (body, st)
    return body


def all_sandboxed(daemon):
    """Every child has entered its sandbox (storage may still be
    migrating the database when the workers are ready)."""
    def done():
        pids = [p for r in ROLES for p in daemon.role_pids(r)]
        try:
            return len(pids) >= 5 and all(status(p)["Seccomp"] == "2"
                                          for p in pids)
        except OSError:
            return False
    wait_for(done, what="every child sandboxed")


def test_every_role_sandboxed():
    uid, gid = user_ids(d.user)
    all_sandboxed(d)
    for role in ROLES:
        pids = d.role_pids(role)
        assert pids, "no %s process" % role
        for pid in pids:
            check_sandboxed(pid, "%s %d" % (role, pid), uid, gid)
    st = status(d.pid)
    assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
    assert st["Uid"].split()[1] == "0", "the parent stays root"


def test_storage_checkpoint_thread_sandboxed():
    """Storage checkpoints SQLite's WAL in a thread of its own, started
    after its sandbox: the thread has the same filter, no new
    privileges and the same user, and its checkpoints (one every 1000
    pages, about 90 prompts) run under them without storage dying."""
    uid, gid = user_ids(d.user)
    all_sandboxed(d)
    pid = d.role_pids("storage")[0]
    tasks = sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))
    assert len(tasks) == 2, "storage threads: %s" % tasks
    for t in tasks:
        st = status(pid, t)
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
        want = "\t".join([str(uid)] * 4)
        assert st["Uid"] == want, "thread %d: Uid %r" % (t, st["Uid"])
    c = d.client()
    try:
        for i in range(300):
            chat(c, "a prompt for the WAL %d" % i)
    finally:
        c.close()
    assert d.role_pids("storage") == [pid], "storage restarted"
    assert len(os.listdir("/proc/%d/task" % pid)) == 2, "thread gone"


def test_busy_worker_sandboxed_in_chroot():
    uid, gid = user_ids(d.user)
    c = d.client()
    try:
        chat(c, "hello from the sandbox test")
        pid = worker_of(d, c)
        check_sandboxed(pid, "busy worker", uid, gid)
        assert os.readlink("/proc/%d/root" % pid) == \
            os.path.realpath(d.chroot)
    finally:
        c.close()


def test_root_directories():
    chroot = os.path.realpath(d.chroot)
    for role in ("worker", "control"):
        for pid in d.role_pids(role):
            assert os.readlink("/proc/%d/root" % pid) == chroot, role
    for role in ("storage", "provider"):
        for pid in d.role_pids(role):
            assert os.readlink("/proc/%d/root" % pid) == "/", role


def test_storage_has_no_internet_socket():
    c = d.client()
    try:
        chat(c, "something for storage to keep")
    finally:
        c.close()
    pid = d.role_pids("storage")[0]
    links = fd_links(pid)
    assert os.path.realpath(d.db) in links, "storage without its database"
    inet = inet_inodes()
    bad = [l for l in links if l.startswith("socket:[") and
           l[8:-1] in inet]
    assert not bad, "storage holds internet sockets %s" % bad


def test_provider_has_no_database_open():
    c = d.client()
    try:
        chat(c, "something for the provider")
    finally:
        c.close()
    dbdir = os.path.realpath(d.dbdir)
    for pid in d.role_pids("provider"):
        bad = [l for l in fd_links(pid) if l.startswith(dbdir)]
        assert not bad, "provider holds %s" % bad


def test_api_key_only_in_provider():
    key = API_KEY.encode()
    c = d.client()
    try:
        chat(c, "a question that goes upstream")
        busy = worker_of(d, c)
        # The scan can find it: the provider holds the key.
        prov = d.role_pids("provider")[0]
        assert key in memory_has(prov, [key]), "scanner cannot see the key"
        pids = [(r, p) for r in ("worker", "storage", "control")
                for p in d.role_pids(r)]
        assert busy in [p for _, p in pids]
        for role, pid in pids:
            assert not memory_has(pid, [key]), \
                "API key in the memory of %s %d" % (role, pid)
    finally:
        c.close()


def tls_private_scalar(path):
    """The EC private key of a PEM file, big- and little-endian."""
    import base64
    with open(path) as f:
        body = "".join(l.strip() for l in f if not l.startswith("-----"))
    der = base64.b64decode(body)
    i = der.find(b"\x02\x01\x01\x04\x20")
    assert i >= 0, "not an EC private key"
    k = der[i + 5:i + 37]
    return [k, k[::-1], der]


def test_tls_key_not_in_storage_or_provider():
    needles = tls_private_scalar(d.key)
    c = d.client()
    try:
        chat(c, "tls key test")
        # The scan can find it: a worker serving TLS holds the key.
        assert memory_has(worker_of(d, c), needles[:2]), \
            "scanner cannot see the key in a worker"
    finally:
        c.close()
    for role in ("storage", "provider", "control"):
        for pid in d.role_pids(role):
            assert not memory_has(pid, needles), \
                "TLS key in the memory of %s %d" % (role, pid)
            assert os.path.realpath(d.key) not in fd_links(pid)


def test_worker_holds_no_other_clients_words():
    marker = ("private-words-" + secrets.token_hex(12)).encode()
    a = client_from(d, "127.0.0.2")
    b = None
    try:
        chat(a, marker.decode())
        wa = worker_of(d, a)
        assert marker in memory_has(wa, [marker]), \
            "scanner cannot see the words in their own worker"
        a.close()
        wait_for(lambda: not pid_alive(wa), what="a's worker to leave")
        b = client_from(d, "127.0.0.3")
        chat(b, "something else")
        wb = worker_of(d, b)
        assert wb != wa
        for pid in d.role_pids("worker"):
            assert not memory_has(pid, [marker]), \
                "worker %d%s holds another client's words" % (
                    pid, " (b's)" if pid == wb else "")
    finally:
        a.close()
        if b is not None:
            b.close()


def test_unknown_user_refuses_to_start():
    e = Daemon(up, start=False)
    with open(e.conf) as f:
        conf = f.read().replace('user "%s"' % e.user,
                                'user "bridged-no-such-user"')
    with open(e.conf, "w") as f:
        f.write(conf)
    r = subprocess.run([harness.BRIDGED, "-d", "-f", e.conf],
                       capture_output=True, text=True, timeout=15)
    assert r.returncode != 0, r
    assert "bridged-no-such-user" in r.stderr and \
        "does not exist" in r.stderr, r.stderr


def build_test_daemon():
    """A copy of the daemon as built, with the sandbox compiled again
    with -DSANDBOX_TEST: SIGUSR2 makes a sandboxed process attempt a
    call its role forbids. The other objects are used as they are, so a
    source in the middle of an edit does not matter."""
    dst = os.path.join(harness.TMP, "sandbox-test-build")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for sub in ("lib", "bridged"):
        shutil.copytree(os.path.join(TOP, sub), os.path.join(dst, sub))
    for f in ("config.mk", "common.mk"):
        shutil.copy2(os.path.join(TOP, f), dst)
    now = time.time()
    for sub in ("lib", "bridged"):
        for f in os.listdir(os.path.join(dst, sub)):
            if f.endswith(".o") or f == "parse.c":
                os.utime(os.path.join(dst, sub, f), (now, now))
    for f in ("lib/sandbox_linux.o", "lib/libbridge.a", "bridged/bridged",
              "bridged/bridged-worker"):
        try:
            os.unlink(os.path.join(dst, f))
        except FileNotFoundError:
            pass
    for sub in ("lib", "bridged"):
        r = subprocess.run(["make", "-C", os.path.join(dst, sub),
                            "COPTS=-O2 -g -DSANDBOX_TEST"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError("test build failed: " + r.stderr[-1000:])
    return os.path.join(dst, "bridged", "bridged")


def start_with(daemon, program):
    saved = harness.BRIDGED
    harness.BRIDGED = program
    try:
        daemon.start()
    finally:
        harness.BRIDGED = saved


def test_forbidden_call_kills_only_that_worker():
    if not os.path.exists("/proc/self/status"):
        raise Skip("no /proc")
    program = build_test_daemon()
    e = Daemon(up, prefork=2, start=False)
    a = b = c = None
    try:
        start_with(e, program)
        a = e.client()
        b = e.client()
        chat(a, "first session")
        chat(b, "second session")
        wa, wb = worker_of(e, a), worker_of(e, b)
        os.kill(wa, signal.SIGUSR2)
        wait_for(lambda: not pid_alive(wa), what="the worker to die")
        assert a.closed(), "the client of the killed worker is still served"
        want = "(pid %d) killed by signal %d (sandbox violation)" % (
            wa, signal.SIGSYS)
        wait_for(lambda: want in e.logtext(), what="the parent to log " +
                 want)
        assert pid_alive(wb)
        body = chat(b, "still here")
        assert body, "no answer for the other session"
        c = e.client()
        chat(c, "a new session")
        wait_for(lambda: "workers: 2 idle" in e.status(),
                 what="the pool refilled")
    finally:
        for x in (a, b, c):
            if x is not None:
                x.close()
        e.stop()


def test_not_root_runs_with_filters_alone():
    pw = pwd.getpwnam("nobody")
    e = Daemon(up, prefork=2, start=False, user="nobody")
    for root, dirs, files in os.walk(e.dir):
        for n in dirs + files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(e.dir, pw.pw_uid, pw.pw_gid)

    def drop():
        os.setgroups([])
        os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
        os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)

    env = dict(os.environ)
    env["BRIDGED_TEST_KEY"] = API_KEY
    e.log = open(e.logfile, "a")
    e.proc = subprocess.Popen([harness.BRIDGED, "-d", "-v", "-f", e.conf],
                              stdout=e.log, stderr=e.log, env=env,
                              start_new_session=True, preexec_fn=drop)
    e.pid = e.proc.pid
    try:
        wait_for(e.ready, timeout=15, what="bridged as nobody (see %s)" %
                 e.logfile)
        all_sandboxed(e)
        c = e.client()
        try:
            chat(c, "as nobody")
            pids = [worker_of(e, c)]
            for role in ROLES:
                pids += e.role_pids(role)
            for pid in pids:
                check_sandboxed(pid, "pid %d" % pid, pw.pw_uid, pw.pw_gid)
                assert os.readlink("/proc/%d/root" % pid) == "/", pid
        finally:
            c.close()
        text = e.logtext()
        n = text.count("not running as root")
        assert n == 1, "said %d times: %s" % (n, text[-1500:])
        st = status(e.pid)
        assert st["Seccomp"] == "2" and st["NoNewPrivs"] == "1", st
    finally:
        e.stop()


def test_template_filter_and_identity():
    """The template runs as the user in the chroot under its own filter
    (on the parent's, inherited through exec); each worker stacks its
    stricter one on the template's, and may not fork: RLIMIT_NPROC 0."""
    uid, gid = user_ids(d.user)
    all_sandboxed(d)
    t = d.role_pids("template")
    assert len(t) == 1, t
    check_sandboxed(t[0], "template", uid, gid)
    assert os.readlink("/proc/%d/root" % t[0]) == os.path.realpath(d.chroot)
    parent = int(status(d.pid)["Seccomp_filters"])
    assert int(status(t[0])["Seccomp_filters"]) == parent + 1, status(t[0])
    workers = d.role_pids("worker")
    assert workers
    for w in workers:
        assert w in harness.children_of(t[0]), "worker %d not forked" % w
        assert int(status(w)["Seccomp_filters"]) == parent + 2, status(w)
        with open("/proc/%d/limits" % w) as f:
            nproc = [l for l in f if l.startswith("Max processes")][0]
        assert nproc.split()[2:4] == ["0", "0"], nproc
    with open("/proc/%d/limits" % t[0]) as f:
        nproc = [l for l in f if l.startswith("Max processes")][0]
    assert nproc.split()[2] != "0", "the template cannot fork: " + nproc


def bases(pid):
    """Where the program, libc, the heap and the stack start."""
    out = {}
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            f_ = line.split()
            name = f_[5] if len(f_) > 5 else ""
            key = ("program" if name.endswith("/bridged-worker") else
                   "libc" if "/libc.so" in name or "/libc-" in name else
                   name if name in ("[heap]", "[stack]") else None)
            if key and key not in out:
                out[key] = int(f_[0].split("-")[0], 16)
    return out


def test_crashing_worker_new_layout():
    """A worker that crashes: the parent starts a new template, a new
    process with its own layout (other base addresses in its maps)."""
    with open("/proc/sys/kernel/randomize_va_space") as f:
        if f.read().strip() == "0":
            raise Skip("address space layout randomization is off")
    e = Daemon(up, prefork=2, start=False)
    try:
        e.start()
        t1 = e.role_pids("template")[0]
        old = bases(t1)
        assert {"program", "libc", "[stack]"} <= set(old), old
        w = e.role_pids("worker")[0]
        assert bases(w) == old, "a worker has its template's layout"
        os.kill(w, signal.SIGSEGV)
        wait_for(lambda: [p for p in e.role_pids("template") if p != t1]
                 and "workers: 2 idle" in e.status(),
                 what="a new template")
        t2 = [p for p in e.role_pids("template") if p != t1][0]
        new = bases(t2)
        for k in ("program", "libc", "[stack]"):
            assert new[k] != old[k], "%s at %x again" % (k, old[k])
        for p in e.role_pids("worker"):
            assert p in harness.children_of(t2)
    finally:
        e.stop()


def test_template_dying_young_backs_off():
    """A template that cannot start (its chroot is gone) is restarted
    ever more slowly, not in a loop; status counts each restart and
    shows the last reason; a reload that mends it starts one at once."""
    e = Daemon(up, prefork=2, start=False)
    try:
        e.start()
        os.rmdir(e.chroot)
        os.kill(e.pid, signal.SIGHUP)
        time.sleep(6)
        text = e.logtext()
        deaths = len([l for l in text.splitlines()
                      if "template (pid" in l and "restarting" in l])
        assert 2 <= deaths <= 6, "%d template deaths in 6 s" % deaths
        assert "died 3 times in a row before it was ready" in text, text
        out = e.status()
        n = int([l for l in out.splitlines()
                 if l.startswith("restarts:")][0].split()[1])
        assert n == text.count("; restarting"), (out, n)
        assert "last restart: template (pid" in out and "chroot" in out, \
            out
        os.mkdir(e.chroot, 0o755)
        os.kill(e.pid, signal.SIGHUP)
        wait_for(lambda: "workers: 2 idle" in e.status(), timeout=5,
                 what="a template again after the mend")
    finally:
        e.stop()
