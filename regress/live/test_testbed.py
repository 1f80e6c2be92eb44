"""
The test bed of the several-server tests, checked on its own: the
PostgreSQL run.py started (regress/pgserver.py) runs as an unprivileged
user, lets the bridged role in with the password of its file only and
the superuser on its socket only; a database made for a test is empty
and owned by the role; a PostgreSQL started here stops by pid and leaves
no process. The HAProxy of harness.Balancer spreads sessions over two
real bridged, takes a stopped one out by its health check (the
greeting) and puts it back when it is up again.
"""

import os
import stat
import subprocess
import time

import pgserver
from harness import Balancer, Daemon, FakeUpstream, IS_ROOT, \
    need_postgresql, pid_alive, wait_for

up = None


def setup():
    global up
    up = FakeUpstream()


def teardown():
    up.stop()


def psql_as_role(password, db=pgserver.UNIT_DB):
    """psql over TCP as the bridged role with this password."""
    uri = os.environ["BRIDGED_TEST_PG"].rsplit("/", 1)[0] + "/" + db
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    return subprocess.run(
        [os.path.join(os.environ["BRIDGED_TEST_PG_BIN"], "psql"), "-X",
         "-A", "-t", "-d", uri, "-c", "SELECT current_user"],
        capture_output=True, text=True, env=env, timeout=30)


def postmaster_pid():
    """The server's pid, from postmaster.pid in its data directory (a
    backend's parent is not: the psql that asked has ended, and its
    backend with it, before /proc could be read)."""
    data = pgserver.query("SELECT setting FROM pg_settings"
                          " WHERE name = 'data_directory'")[0][0]
    with open(os.path.join(data, "postmaster.pid")) as f:
        return int(f.readline())


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def test_postgresql_unprivileged_and_password_only():
    need_postgresql(bridged=False)
    pm = postmaster_pid()
    assert uid_of(pm) != 0 or not IS_ROOT, "postgres runs as root"
    pf = os.environ["BRIDGED_TEST_PG_PASSFILE"]
    st = os.stat(pf)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_uid == os.geteuid()
    with open(pf) as f:
        password = f.read().strip()
    r = psql_as_role(password)
    assert r.returncode == 0 and r.stdout.strip() == "bridged", r.stderr
    r = psql_as_role(password + "x")
    assert r.returncode != 0 and "password authentication failed" in \
        r.stderr, r.stderr
    # The superuser is not let in over TCP, whatever its password.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = password
    port = os.environ["BRIDGED_TEST_PG"].rsplit(":", 1)[1].split("/")[0]
    r = subprocess.run(
        [os.path.join(os.environ["BRIDGED_TEST_PG_BIN"], "psql"), "-X",
         "-d", "postgresql://postgres@127.0.0.1:%s/postgres" % port, "-c",
         "SELECT 1"], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode != 0 and "no pg_hba.conf entry" in r.stderr, \
        r.stderr


def test_new_database_is_empty_and_the_roles():
    need_postgresql(bridged=False)
    db = pgserver.new_database()
    owner = pgserver.query("SELECT pg_get_userbyid(datdba) FROM"
                           " pg_database WHERE datname = ?", [db])
    assert owner == [("bridged",)], owner
    tables = pgserver.query("SELECT count(*) FROM pg_tables WHERE"
                            " schemaname = 'public'", db=db)
    assert tables == [(0,)], tables
    assert pgserver.new_database() != db


def test_postgresql_stops_by_pid():
    need_postgresql(bridged=False)
    pg = pgserver.PgServer()
    try:
        pid = pg.pid
        assert pid_alive(pid)
        kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and
                _ppid(int(p)) == pid]
        assert kids, "no postgres children"
    finally:
        pg.stop()
    assert not pid_alive(pid)
    assert not [k for k in kids if pid_alive(k)], kids
    assert not os.path.exists(pg.dir)


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().split(")")[-1].split()[1])
    except (OSError, ValueError):
        return None


def served_by(lb, daemons, n):
    """Which daemon answered each of n sessions through the balancer,
    by the listening port the greeting names."""
    ports = {dd.port: i for i, dd in enumerate(daemons)}
    seen = []
    for _ in range(n):
        c = lb.client(daemons[0])
        port = int(c.greeting[0][1].rsplit(":", 1)[1])
        seen.append(ports[port])
        c.close()
    return seen


def test_balancer_spreads_and_health_checks():
    a = Daemon(up, backend="sqlite")
    b = Daemon(up, backend="sqlite", certs=a)
    lb = Balancer([a, b])
    try:
        assert sorted(set(served_by(lb, [a, b], 6))) == [0, 1]
        a.stop()
        wait_for(lambda: lb.states().get("s0") == "DOWN", timeout=5,
                 what="haproxy to take the stopped server out")
        assert served_by(lb, [a, b], 4) == [1, 1, 1, 1]
        a.start()
        t0 = time.monotonic()
        wait_for(lambda: lb.states().get("s0") == "UP", timeout=5,
                 what="haproxy to put it back")
        assert time.monotonic() - t0 < 5
        assert 0 in served_by(lb, [a, b], 6)
        pid = lb.pid
    finally:
        lb.stop()
        a.stop()
        b.stop()
    assert not pid_alive(pid)
