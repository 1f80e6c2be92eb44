"""
Fail fast, with the fix in the message: what `bridged -n` and a start
find wrong on this system (a certificate and key that are not a pair,
a file that cannot be read, a user that does not exist, a database
directory the user cannot write, a provider key that is missing), the
privacy warning of identity ip off loopback, and a reload that prints
the file:line errors through bridgectl.
"""

import os
import re
import subprocess

from harness import (BRIDGED, IS_ROOT, Daemon, FakeUpstream, free_port,
                     make_certs, tmpdir)

up = None


def setup():
    global up
    up = FakeUpstream()


def teardown():
    up.stop()


def edit(d, old, new):
    with open(d.conf) as f:
        text = f.read()
    assert old in text, (old, text)
    with open(d.conf, "w") as f:
        f.write(text.replace(old, new))


def check(d, *flags, env=None):
    e = dict(os.environ, BRIDGED_TEST_KEY="k")
    e.update(env or {})
    return subprocess.run([BRIDGED] + list(flags) + ["-f", d.conf],
                          capture_output=True, text=True, env=e, timeout=30)


def start(d, env=None):
    """bridged -d on d's file: it must give up at once, before listening."""
    e = dict(os.environ, BRIDGED_TEST_KEY="k")
    e.update(env or {})
    return subprocess.run([BRIDGED, "-d", "-f", d.conf], capture_output=True,
                          text=True, env=e, timeout=30,
                          start_new_session=True)


def test_good_file_is_ok():
    d = Daemon(up, start=False)
    r = check(d, "-n")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "configuration OK\n", r.stderr


def test_key_not_the_certificates():
    d = Daemon(up, start=False)
    _, _, other_key = make_certs(tmpdir("other-"))
    edit(d, 'tls key "%s"' % d.key, 'tls key "%s"' % other_key)
    for r in (check(d, "-n"), start(d)):
        assert r.returncode == 1, r
        assert "configuration OK" not in r.stderr, r.stderr
        assert re.search(r"tls certificate %s and tls key %s do not load "
                         r"as a pair" % (re.escape(d.crt),
                                         re.escape(other_key)), r.stderr), \
            r.stderr
        assert "openssl req" in r.stderr, r.stderr
    # -nn checks the file alone.
    r = check(d, "-nn")
    assert r.returncode == 0 and r.stderr == "configuration OK\n", r.stderr


def test_unreadable_files():
    d = Daemon(up, start=False)
    missing = os.path.join(d.dir, "no-such.key")
    edit(d, 'tls key "%s"' % d.key, 'tls key "%s"' % missing)
    r = check(d, "-n")
    assert r.returncode == 1, r
    assert ("tls key %s: No such file or directory" % missing) in r.stderr, \
        r.stderr


def test_user_must_exist():
    d = Daemon(up, start=False)
    edit(d, 'user "%s"' % d.user, 'user "no-such-user-b7"')
    for r in (check(d, "-n"), start(d)):
        assert r.returncode == 1, r
        assert 'user "no-such-user-b7" does not exist' in r.stderr, r.stderr
        assert d.conf in r.stderr, r.stderr


def test_database_directory_writable_by_the_user():
    d = Daemon(up, start=False)
    os.chmod(d.dbdir, 0o555)
    if IS_ROOT:
        os.chown(d.dbdir, 0, 0)
    try:
        for r in (check(d, "-n"), start(d)):
            assert r.returncode == 1, r
            assert ("database directory %s is not writable by user %s" %
                    (d.dbdir, d.user)) in r.stderr, r.stderr
            assert ("chown %s %s" % (d.user, d.dbdir)) in r.stderr
    finally:
        os.chmod(d.dbdir, 0o755)
    gone = os.path.join(d.dir, "nodir", "x.db")
    edit(d, 'database "%s"' % d.db, 'database "%s"' % gone)
    r = check(d, "-n")
    assert r.returncode == 1 and ("database directory %s does not exist" %
                                  os.path.dirname(gone)) in r.stderr, r


def test_provider_key_missing():
    d = Daemon(up, start=False)
    os.unlink(d.keyfile)
    r = check(d, "-n")
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and d.keyfile in r.stderr, r.stderr
    assert r.stderr.endswith("configuration OK\n"), r.stderr
    r = start(d)
    assert r.returncode == 1, r
    assert ("api key file %s" % d.keyfile) in r.stderr, r.stderr

    e = Daemon(up, start=False, key_file=False)
    env = {"BRIDGED_TEST_KEY": ""}
    r = check(e, "-n", env=env)
    assert r.returncode == 0 and "api key env BRIDGED_TEST_KEY is not set" \
        in r.stderr, r.stderr
    r = start(e, env=env)
    assert r.returncode == 1 and "api key env BRIDGED_TEST_KEY is not set" \
        in r.stderr, r.stderr


def test_identity_ip_off_loopback_warns():
    port = free_port(host="0.0.0.0")
    d = Daemon(up, listen="listen on 0.0.0.0 port %d tls" % port)
    try:
        log = d.logtext()
        assert re.search(r"identity ip: listen on 0\.0\.0\.0 port %d is not "
                         r"loopback-only; everyone connecting from one "
                         r"address .* shares one history" % port, log), log
    finally:
        d.stop()
    # Loopback alone, or another identity: no warning.
    d = Daemon(up, start=False)
    assert "shares one history" not in check(d, "-n").stderr
    d = Daemon(up, start=False, listen="listen on 0.0.0.0 port %d tls" %
               port, extra="identity certificate")
    r = check(d, "-n")
    assert r.returncode == 0 and "shares one history" not in r.stderr, r


def test_reload_prints_the_errors():
    d = Daemon(up, prefork=1)
    try:
        with open(d.conf) as f:
            good = f.read()
        with open(d.conf, "a") as f:
            f.write("prefrok 3\nmax clients lots\n")
        n = good.count("\n")
        r = d.ctl("reload", check=False)
        assert r.returncode == 1, r
        assert r.stdout == "", r.stdout
        assert ('%s:%d: unknown keyword "prefrok"' % (d.conf, n + 1)) in \
            r.stderr, r.stderr
        assert ("%s:%d:" % (d.conf, n + 2)) in r.stderr, r.stderr
        assert r.stderr.rstrip().endswith("reload failed: the running "
                                          "configuration is kept"), r.stderr
        # A key that is not the certificate's, caught at reload too.
        _, _, other_key = make_certs(tmpdir("other-"))
        with open(d.conf, "w") as f:
            f.write(good.replace('tls key "%s"' % d.key,
                                 'tls key "%s"' % other_key))
        r = d.ctl("reload", check=False)
        assert r.returncode == 1 and "do not load as a pair" in r.stderr, r
        with open(d.conf, "w") as f:
            f.write(good)
        r = d.ctl("reload")
        assert r.returncode == 0 and r.stderr == "", r
        c = d.client()
        _, status = c.ask("INFO")
        assert status.startswith(". OK"), status
        c.close()
    finally:
        d.stop()
