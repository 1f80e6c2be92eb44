"""
Installation and service scripts: `make install` into a temporary
DESTDIR and the tree it leaves; the user and directories it creates on
request; the systemd unit (systemd-analyze verify, and the daemon run
under the unit's capability bounding set); the rc.d script driven by a
stand-in rc.subr.
"""

import os
import pwd
import shutil
import stat
import subprocess

from harness import (TOP, BRIDGED, IS_ROOT, Daemon, FakeUpstream, Skip,
                     Client, tmpdir, wait_for)

PREFIX = "/usr/local"
UNIT = os.path.join(TOP, "rc.d", "bridged.service")
RCD = os.path.join(TOP, "rc.d", "bridged")

# Options systemd implements with a seccomp filter or a user namespace
# of its own: the unit must leave confinement of that kind to bridged.
FORBIDDEN = ("SystemCallFilter", "SystemCallArchitectures",
             "SystemCallErrorNumber", "SystemCallLog", "PrivateUsers",
             "PrivateDevices", "ProtectKernelModules", "ProtectKernelLogs",
             "ProtectClock", "ProtectHostname", "RestrictAddressFamilies",
             "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
             "LockPersonality", "MemoryDenyWriteExecute", "DynamicUser",
             "User", "Group")
# What the parent needs: bind, read keys, chroot, drop to the user,
# hand the database and socket to it, signal its children.
NEEDED_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL",
               "CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETUID",
               "CAP_SYS_CHROOT")

# Linux capability numbers (linux/capability.h) of those the unit names.
CAPNUM = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2,
          "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5,
          "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
          "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_CHROOT": 18,
          "CAP_SYS_RESOURCE": 24}

dest = None


def make_install(destdir, *extra, env=None, check=True):
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run(["make", "-s", "install", "DESTDIR=" + destdir] +
                       list(extra), cwd=TOP, capture_output=True,
                       text=True, env=e, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError("make install: %s %s" % (r.stdout[-800:],
                                                      r.stderr[-800:]))
    return r


def install_sh(destdir, *args, env=None, path_prefix=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    if path_prefix:
        e["PATH"] = path_prefix + ":" + e["PATH"]
    return subprocess.run(["sh", os.path.join(TOP, "install.sh")] +
                          list(args) + [destdir, PREFIX], cwd=TOP,
                          capture_output=True, text=True, env=e,
                          timeout=120)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def same(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def unit_lines(path):
    """(key, value) of every setting of a unit file."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, _, v = line.partition("=")
            out.append((k.strip(), v.strip()))
    return out


def setup():
    global dest
    dest = tmpdir("install-")


def test_tree():
    r = make_install(dest)
    root = dest + PREFIX
    want = {
        "sbin/bridged": (0o555, os.path.join(TOP, "bridged", "bridged")),
        "sbin/bridgectl": (0o555, os.path.join(TOP, "bridgectl",
                                                "bridgectl")),
        "libexec/bridged-worker": (0o555, os.path.join(
            TOP, "bridged", "bridged-worker")),
        "share/examples/bridged/bridged.conf": (
            0o644, os.path.join(TOP, "bridged.conf")),
    }
    for rel, (m, src) in want.items():
        p = os.path.join(root, rel)
        assert os.path.isfile(p), "%s missing; output: %s" % (p, r.stdout)
        assert mode(p) == m, "%s mode %o, want %o" % (p, mode(p), m)
        assert same(p, src), "%s differs from %s" % (p, src)
    conf = os.path.join(dest, "etc", "bridged.conf")
    assert os.path.isfile(conf) and mode(conf) == 0o640, conf
    assert same(conf, os.path.join(TOP, "bridged.conf"))
    assert os.path.isdir(os.path.join(dest, "etc", "bridged"))
    # Every page of man/, in its section, read-only.
    pages = [p for p in os.listdir(os.path.join(TOP, "man"))
             if p[-2:] in (".5", ".8")]
    for p in pages:
        got = os.path.join(root, "share", "man", "man" + p[-1], p)
        assert os.path.isfile(got), got + " missing"
        assert mode(got) == 0o444, got
    unit = os.path.join(root, "lib", "systemd", "system",
                        "bridged.service")
    assert os.path.isfile(unit) and mode(unit) == 0o644, unit
    # It says what it did.
    assert "sbin/bridged" in r.stdout and "useradd" in r.stdout, r.stdout
    # Nothing landed outside DESTDIR's own tree of the usual places.
    top = sorted(os.listdir(dest))
    assert top == ["etc", "usr"], top


def test_installed_programs_run():
    """The installed bridged finds its worker beside it or in LIBEXECDIR
    (compiled in as PREFIX/libexec) and checks a configuration."""
    with open(os.path.join(dest + PREFIX, "sbin", "bridged"), "rb") as f:
        strings = f.read().split(b"\0")
    assert (PREFIX + "/libexec").encode() in strings, \
        "LIBEXECDIR is not " + PREFIX + "/libexec"
    d = Daemon(start=False)
    r = subprocess.run([os.path.join(dest + PREFIX, "sbin", "bridged"),
                        "-n", "-f", d.conf], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([os.path.join(dest + PREFIX, "sbin", "bridgectl"),
                        "-s", os.path.join(d.dir, "none.sock"), "show",
                        "status"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode != 0 and "none.sock" in r.stderr, r.stderr


def test_existing_config_kept():
    conf = os.path.join(dest, "etc", "bridged.conf")
    with open(conf, "a") as f:
        f.write("# local change\n")
    make_install(dest)
    with open(conf) as f:
        assert f.read().endswith("# local change\n"), "config replaced"


def test_other_prefix_refused():
    """A bridged built for /usr/local would not find its worker in
    /usr/libexec: install.sh says so and installs nothing."""
    d = tmpdir("install-prefix-")
    r = subprocess.run(["sh", os.path.join(TOP, "install.sh"), d,
                        "/opt/elsewhere"], cwd=TOP, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    assert "PREFIX" in r.stderr and "/opt/elsewhere" in r.stderr, r.stderr
    assert os.listdir(d) == [], os.listdir(d)


def test_openbsd_layout():
    """The OpenBSD branch, with uname answering OpenBSD: man pages in
    PREFIX/man, the rc.d script in /etc/rc.d, no systemd unit."""
    d = tmpdir("install-obsd-")
    fake = tmpdir("fake-uname-")
    with open(os.path.join(fake, "uname"), "w") as f:
        f.write("#!/bin/sh\necho OpenBSD\n")
    os.chmod(os.path.join(fake, "uname"), 0o755)
    r = install_sh(d, path_prefix=fake)
    assert r.returncode == 0, r.stderr
    rc = os.path.join(d, "etc", "rc.d", "bridged")
    assert os.path.isfile(rc) and mode(rc) == 0o555, r.stdout
    with open(rc) as f:
        assert 'daemon="%s/sbin/bridged"' % PREFIX in f.read()
    assert os.path.isdir(os.path.join(d + PREFIX, "man")) or \
        not [p for p in os.listdir(os.path.join(TOP, "man"))
             if p[-2:] in (".5", ".8")]
    assert not os.path.exists(os.path.join(d + PREFIX, "lib", "systemd"))
    assert not os.path.exists(os.path.join(d + PREFIX, "share", "man"))
    # No useradd --prefix there: asked for a user under DESTDIR, it
    # refuses and says what to run on the target.
    r = install_sh(d, "--create-user", path_prefix=fake)
    assert r.returncode != 0 and "useradd" in r.stderr, r.stderr


def seed_passwd(d):
    os.makedirs(os.path.join(d, "etc"), exist_ok=True)
    for name, text in (("passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                       ("group", "root:x:0:\n"),
                       ("shadow", "root:*:19000:0:99999:7:::\n"),
                       ("gshadow", "root:*::\n")):
        with open(os.path.join(d, "etc", name), "w") as f:
            f.write(text)


def test_create_user():
    """make install BRIDGED_CREATE_USER=1 under a DESTDIR: the user goes
    into DESTDIR/etc/passwd, never the host's; the directories get
    their owners and modes; a second run changes nothing."""
    if not IS_ROOT:
        raise Skip("needs root to give /var/bridged to another uid")
    if shutil.which("useradd") is None:
        raise Skip("no useradd")
    d = tmpdir("install-user-")
    seed_passwd(d)
    with open("/etc/passwd") as f:
        host_before = f.read()
    r = make_install(d, env={"BRIDGED_CREATE_USER": "1"})
    with open(os.path.join(d, "etc", "passwd")) as f:
        ent = [l.split(":") for l in f if l.startswith("_bridged:")]
    assert len(ent) == 1, r.stdout + r.stderr
    uid, gid = int(ent[0][2]), int(ent[0][3])
    assert uid != 0 and ent[0][6].strip().endswith("nologin"), ent
    assert ent[0][5] == "/var/empty", ent
    st = os.stat(os.path.join(d, "var", "bridged"))
    assert (st.st_uid, st.st_gid) == (uid, gid), (st.st_uid, st.st_gid)
    assert stat.S_IMODE(st.st_mode) == 0o750, oct(st.st_mode)
    st = os.stat(os.path.join(d, "var", "empty"))
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o755
    assert "created user _bridged" in r.stdout, r.stdout
    with open("/etc/passwd") as f:
        assert f.read() == host_before, "the host's passwd changed"
    r = make_install(d, env={"BRIDGED_CREATE_USER": "1"})
    assert "user _bridged exists" in r.stdout, r.stdout
    with open(os.path.join(d, "etc", "passwd")) as f:
        assert sum(l.startswith("_bridged:") for l in f) == 1


def test_unit_settings():
    s = unit_lines(UNIT)
    keys = [k for k, _ in s]
    for k in FORBIDDEN:
        assert k not in keys, "%s= would fight bridged's own sandbox" % k
    get = {}
    for k, v in s:
        get.setdefault(k, []).append(v)
    assert get["Type"] == ["simple"], get["Type"]
    start = get["ExecStart"][0].split()
    assert start[0] == PREFIX + "/sbin/bridged" and "-d" in start, start
    pre = get["ExecStartPre"][0].split()
    assert pre[0] == start[0] and "-n" in pre, pre
    reload = get["ExecReload"]
    assert "-n" in reload[0].split(), reload
    assert reload[-1].split()[1:] == ["-HUP", "$MAINPID"], reload
    caps = " ".join(get["CapabilityBoundingSet"]).split()
    for c in NEEDED_CAPS:
        assert c in caps, "%s missing from CapabilityBoundingSet" % c
    assert get.get("Restart") == ["on-failure"], get.get("Restart")


def verify_env():
    if shutil.which("systemd-analyze") is None:
        raise Skip("systemd-analyze is not installed")


def test_unit_verifies():
    """systemd-analyze verify on the installed unit, its programs
    pointed into DESTDIR so that they exist."""
    verify_env()
    src = os.path.join(dest + PREFIX, "lib", "systemd", "system",
                       "bridged.service")
    if not os.path.exists(src):
        make_install(dest)
    d = tmpdir("unit-")
    with open(src) as f:
        text = f.read().replace(PREFIX + "/sbin/", dest + PREFIX + "/sbin/")
    unit = os.path.join(d, "bridged.service")
    with open(unit, "w") as f:
        f.write(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                       capture_output=True, text=True, timeout=60)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out
    # And a broken one is caught, so the check above means something.
    with open(unit, "w") as f:
        f.write(text.replace("ExecStart=", "ExecStart=/nonexistent/x ",
                             1).replace("Type=simple", "Type=simpel"))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 or (r.stdout + r.stderr).strip(), \
        "verify accepted a broken unit"


def test_unit_capabilities_suffice():
    """bridged started as root under the unit's capability bounding set
    and no_new_privs, its database directory mode 0750 and owned by the
    user: it drops to the user, serves a client and reloads."""
    if not IS_ROOT:
        raise Skip("needs root: the bounding set matters only to root")
    if shutil.which("setpriv") is None:
        raise Skip("setpriv (util-linux) is not installed")
    caps = []
    for k, v in unit_lines(UNIT):
        if k == "CapabilityBoundingSet":
            caps += v.split()
    bset = "-all," + ",".join("+" + c[4:].lower() for c in caps)
    wrapper_dir = tmpdir("setpriv-")
    wrapper = os.path.join(wrapper_dir, "bridged")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec setpriv --bounding-set %s "
                "--inh-caps -all --no-new-privs %s \"$@\"\n" %
                (bset, BRIDGED))
    os.chmod(wrapper, 0o755)
    import harness
    up = FakeUpstream()
    saved = harness.BRIDGED
    harness.BRIDGED = wrapper
    d = None
    try:
        d = Daemon(up, prefork=2, start=False)
        # As install.sh leaves /var/bridged: only its user may enter.
        os.chmod(d.dbdir, 0o750)
        d.start()
        with open("/proc/%d/status" % d.pid) as f:
            status = f.read()
        bnd = [l for l in status.splitlines() if l.startswith("CapBnd:")]
        want = sum(1 << CAPNUM[c] for c in caps)
        assert bnd and int(bnd[0].split()[1], 16) == want, (bnd, want)
        c = Client(d.port, cafile=d.ca)
        assert c.greeting[1].startswith(". OK"), c.greeting
        # A prompt needs storage, which opens the database as root in
        # that directory before it drops to the user.
        body, st = c.ask("ASK capabilities")
        assert st.startswith(". OK"), (body, st, d.logtext()[-800:])
        assert os.path.exists(d.db), "no database"
        uid = pwd.getpwnam(d.user).pw_uid
        assert os.stat(d.db).st_uid == uid, "database not given to the user"
        c.close()

        def dropped():
            ws = d.role_pids("worker")
            for p in ws:
                with open("/proc/%d/status" % p) as f:
                    uid = [l for l in f if l.startswith("Uid:")][0]
                if uid.split()[1] == "0":
                    return False
            return len(ws) > 0
        wait_for(dropped, timeout=10, what="workers running as the user")
        os.kill(d.pid, 1)
        wait_for(lambda: "workers: 2 idle" in d.status(), timeout=10,
                 what="bridged after SIGHUP")
        assert d.proc.poll() is None, d.logtext()[-1500:]
    finally:
        harness.BRIDGED = saved
        if d is not None:
            d.stop()
        up.stop()


def rcd_run(cmd, flags, conf_ok=True):
    """Run rc.d/bridged with a stand-in rc.subr; return (rc, out, log)."""
    d = tmpdir("rcd-")
    log = os.path.join(d, "log")
    subr = os.path.join(d, "rc.subr")
    with open(subr, "w") as f:
        f.write("""# stand-in for OpenBSD's /etc/rc.d/rc.subr
daemon_flags=${daemon_flags-}
daemon_rtable=0
pkill() { echo "pkill $*" >>%s; }
rc_cmd() {
	case "$1" in
	pre) rc_pre ;;
	reload) rc_reload ;;
	*) return 2 ;;
	esac
}
""" % log)
    with open(RCD) as f:
        text = f.read()
    assert 'daemon="/usr/local/sbin/bridged"' in text, "daemon= line"
    text = text.replace("/etc/rc.d/rc.subr", subr)
    text = text.replace('daemon="/usr/local/sbin/bridged"',
                        'daemon="%s"' % BRIDGED)
    script = os.path.join(d, "bridged")
    with open(script, "w") as f:
        f.write(text)
    env = dict(os.environ, daemon_flags=flags)
    r = subprocess.run(["sh", script, cmd], capture_output=True,
                       text=True, env=env, timeout=60)
    got = open(log).read() if os.path.exists(log) else ""
    return r.returncode, r.stdout + r.stderr, got


def test_rcd_script():
    r = subprocess.run(["sh", "-n", RCD], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    good = Daemon(start=False)
    bad = os.path.join(good.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("prefork banana\n")
    rc, out, _ = rcd_run("pre", "-f " + good.conf)
    assert rc == 0, out
    rc, out, _ = rcd_run("pre", "-f " + bad)
    assert rc != 0 and "bad.conf" in out, out
    rc, out, log = rcd_run("reload", "-f " + good.conf)
    assert rc == 0 and log == "pkill -HUP -T 0 -xf bridged: parent\n", \
        (out, log)
    rc, out, log = rcd_run("reload", "-f " + bad)
    assert rc != 0 and log == "", "reloaded with a bad configuration"
