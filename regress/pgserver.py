"""
pgserver.py: a real PostgreSQL (Debian's packages) for one test run.

initdb and postgres run as an unprivileged user (postgres, else nobody;
root cannot run postgres), data directory and unix socket directory in
a temporary directory under regress/tmp, listening on 127.0.0.1 at a
free port and on the socket. The role `bridged` logs in over TCP with a
scram password kept in a file only the test runner's user can read (for
`database password file`); the superuser `postgres` is trusted on the
socket only, for creating databases and reading rows back with psql.
The postmaster is our child: stop() sends SIGINT (fast shutdown) to its
pid and waits; if the runner dies first the kernel sends it SIGINT
(PR_SET_PDEATHSIG).

What run.py exports to the unit programs and live modules:
  BRIDGED_TEST_PG            postgresql://bridged@127.0.0.1:PORT/bridged_test
  BRIDGED_TEST_PG_PASSFILE   the file with the role's password
  BRIDGED_TEST_PG_ADMIN      conninfo of the superuser on the socket
  BRIDGED_TEST_PG_BIN        the directory of psql, initdb, pg_ctl
"""

import ctypes
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REGRESS = os.path.dirname(os.path.abspath(__file__))
TMP = os.path.join(REGRESS, "tmp")
ROLE = "bridged"
UNIT_DB = "bridged_test"
PR_SET_PDEATHSIG = 1


class Unavailable(Exception):
    """PostgreSQL cannot run here; the message says why."""


def bindir():
    """The directory of initdb and postgres: the newest of Debian's
    /usr/lib/postgresql/N/bin, else the PATH's."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        v = os.path.basename(os.path.dirname(d))
        if os.access(os.path.join(d, "postgres"), os.X_OK) and \
                os.access(os.path.join(d, "initdb"), os.X_OK):
            try:
                found.append((float(v), d))
            except ValueError:
                pass
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return os.path.dirname(os.path.realpath(initdb))
    return None


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def quote(v):
    """One SQL literal of a Python value (the tests' own values)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (bytes, bytearray)):
        return "'\\x%s'::bytea" % bytes(v).hex()
    return "'%s'" % str(v).replace("'", "''")


def bind(sql, args):
    """sql with each ? outside quotes replaced by the next argument."""
    out, i, inq = [], 0, False
    for ch in sql:
        if ch == "'":
            inq = not inq
        if ch == "?" and not inq:
            if i >= len(args):
                raise ValueError("too few arguments for %r" % sql)
            out.append(quote(args[i]))
            i += 1
        else:
            out.append(ch)
    if i != len(args):
        raise ValueError("too many arguments for %r" % sql)
    return "".join(out)


class PgServer:
    """One postmaster for the run; databases are made per test."""

    def __init__(self, fsync=False):
        self.bin = bindir()
        if self.bin is None:
            raise Unavailable("it is not installed (no initdb; "
                              "configure installs Debian's postgresql)")
        self.proc = None
        self.owner = self._owner()
        os.makedirs(TMP, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="pg-", dir=TMP)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        self.sockdir = os.path.join(self.dir, "sock")
        os.mkdir(self.sockdir, 0o700)
        if self.owner:
            os.chown(self.sockdir, self.owner.pw_uid, self.owner.pw_gid)
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.passfile = os.path.join(self.dir, "password")
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                     0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password + "\n")
        self.logfile = os.path.join(self.dir, "postgres.log")
        self._initdb(fsync)
        self._start()
        self.psql("CREATE ROLE %s LOGIN PASSWORD %s" %
                  (ROLE, quote(self.password)))
        self.create_database(UNIT_DB)

    def _owner(self):
        """Root runs PostgreSQL as postgres (Debian's package makes
        that user) or nobody; anyone else runs it as themselves."""
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                pass
        raise Unavailable("no unprivileged user to run PostgreSQL as")

    def _drop(self):
        """In the child before exec: become the owner, and get SIGINT
        (fast shutdown) when the test runner dies."""
        if self.owner:
            os.setgroups([])
            os.setgid(self.owner.pw_gid)
            os.setuid(self.owner.pw_uid)
        os.setsid()
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
        except (OSError, AttributeError):
            pass

    def _env(self):
        e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        e["LC_ALL"] = "C"
        if self.owner:
            e["HOME"] = self.dir
            e["USER"] = e["LOGNAME"] = self.owner.pw_name
        return e

    def _initdb(self, fsync):
        if self.owner:
            os.chown(self.dir, self.owner.pw_uid, self.owner.pw_gid)
        p = subprocess.run(
            [os.path.join(self.bin, "initdb"), "-D", self.data, "-U",
             "postgres", "-E", "UTF8", "--locale=C", "--no-sync",
             "--auth-local=trust", "--auth-host=scram-sha-256"],
            capture_output=True, text=True, preexec_fn=self._drop,
            env=self._env(), cwd=self.dir)
        if p.returncode != 0:
            raise Unavailable("initdb failed: %s" %
                              " ".join(p.stderr.split())[-400:])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# regress/pgserver.py\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "port = %d\n"
                    "unix_socket_directories = '%s'\n"
                    "max_connections = 200\n"
                    "shared_buffers = 32MB\n"
                    "fsync = %s\n"
                    "full_page_writes = %s\n"
                    "log_min_messages = warning\n"
                    "password_encryption = 'scram-sha-256'\n" %
                    (self.port, self.sockdir, "on" if fsync else "off",
                     "on" if fsync else "off"))
        # The superuser on the socket only; the role with its password
        # over loopback TCP only.
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("local all postgres trust\n"
                    "local all all scram-sha-256\n"
                    "host all %s 127.0.0.1/32 scram-sha-256\n" % ROLE)

    def _start(self):
        self.log = open(self.logfile, "a")
        if self.owner:
            os.chown(self.logfile, self.owner.pw_uid, self.owner.pw_gid)
        self.proc = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data],
            stdout=self.log, stderr=self.log, preexec_fn=self._drop,
            env=self._env(), cwd=self.dir)
        self.pid = self.proc.pid
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise Unavailable("postgres exited %d: %s" % (
                    self.proc.returncode, self.logtail()))
            r = subprocess.run(
                [os.path.join(self.bin, "pg_isready"), "-q", "-h",
                 self.sockdir, "-p", str(self.port)], env=self._env())
            if r.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise Unavailable("postgres did not accept connections in 30 s")

    def logtail(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return " ".join(f.read().split())[-600:]
        except OSError:
            return ""

    def admin(self, db="postgres"):
        """The superuser's conninfo (unix socket, trusted)."""
        return "host=%s port=%d user=postgres dbname=%s" % (
            self.sockdir, self.port, db)

    def uri(self, db):
        """The role's address of database db (password from a file)."""
        return "postgresql://%s@127.0.0.1:%d/%s" % (ROLE, self.port, db)

    def psql(self, sql, db="postgres"):
        return psql(self.bin, self.admin(db), sql)

    def create_database(self, name=None):
        """A new empty database owned by the role; its name."""
        return create_database(self.bin, self.admin(), name)

    def env(self):
        """What run.py exports."""
        return {"BRIDGED_TEST_PG": self.uri(UNIT_DB),
                "BRIDGED_TEST_PG_PASSFILE": self.passfile,
                "BRIDGED_TEST_PG_ADMIN": self.admin(),
                "BRIDGED_TEST_PG_BIN": self.bin}

    def stop(self):
        """Fast shutdown by pid (SIGINT), SIGQUIT after 20 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait()
        self.proc = None
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def psql(bin_dir, conninfo, sql):
    """Run sql through psql with conninfo; the rows, each a list of
    strings (None for NULL). Raises RuntimeError with psql's message."""
    null = "\x01NULL\x01"
    p = subprocess.run(
        [os.path.join(bin_dir, "psql"), "-X", "-q", "-A", "-t", "-v",
         "ON_ERROR_STOP=1", "-F", "\x1f", "-R", "\x1e", "-P",
         "null=" + null, "-d", conninfo, "-c", sql],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    if p.returncode != 0:
        raise RuntimeError("psql: %s" % " ".join(p.stderr.split())[:400])
    out = p.stdout
    if out.endswith("\n"):
        out = out[:-1]
    if not out:
        return []
    return [[None if c == null else c for c in r.split("\x1f")]
            for r in out.split("\x1e")]


_serial = [0]


def create_database(bin_dir, admin, name=None):
    """CREATE DATABASE through the superuser's conninfo admin; its name
    (new and unique unless given)."""
    if name is None:
        _serial[0] += 1
        name = "t%d_%d_%s" % (os.getpid(), _serial[0], secrets.token_hex(3))
    psql(bin_dir, admin, "CREATE DATABASE %s OWNER %s" % (name, ROLE))
    return name


def new_database():
    """A new database on run.py's server (from the environment)."""
    return create_database(os.environ["BRIDGED_TEST_PG_BIN"],
                           os.environ["BRIDGED_TEST_PG_ADMIN"])


def _admin_args(db):
    """psql-style options of the superuser for database db."""
    f = dict(kv.split("=", 1)
             for kv in os.environ["BRIDGED_TEST_PG_ADMIN"].split())
    return ["-h", f["host"], "-p", f["port"], "-U", f["user"], "-d", db]


def _tool(name, args):
    """Run one of PostgreSQL's programs; (exit status, output)."""
    p = subprocess.run(
        [os.path.join(os.environ["BRIDGED_TEST_PG_BIN"], name)] + args,
        capture_output=True, timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    return p.returncode, p.stdout + p.stderr


def amcheck(db):
    """"ok", or what pg_amcheck found in database db."""
    rc, out = _tool("pg_amcheck", _admin_args(db) + ["--install-missing",
                                                     "--heapallindexed"])
    return "ok" if rc == 0 else out.decode(errors="replace")[-1000:]


def dump(db):
    """pg_dump of database db (data and schema), as bytes."""
    rc, out = _tool("pg_dump", _admin_args(db))
    if rc != 0:
        raise RuntimeError("pg_dump: %s" % out[-400:])
    return out


def query(sql, args=(), db=None):
    """Rows of sql (with ? placeholders) in database db, as tuples of
    Python values, through the superuser: for tests reading back what
    bridged committed. Uses run.py's exported server."""
    import json
    admin = os.environ["BRIDGED_TEST_PG_ADMIN"]
    if db:
        admin = admin.replace("dbname=postgres", "dbname=" + db)
    sql = bind(sql.strip().rstrip(";"), list(args))
    head = sql.split(None, 1)[0].upper()
    if head not in ("SELECT", "WITH"):
        psql(os.environ["BRIDGED_TEST_PG_BIN"], admin, sql)
        return []
    # Through JSON, so numbers come back as numbers and NULL as None;
    # the pairs hook keeps columns of the same name apart, in order.
    rows = psql(os.environ["BRIDGED_TEST_PG_BIN"], admin,
                "SELECT coalesce(json_agg(to_json(q)), '[]') FROM (%s) q"
                % sql)
    return json.loads(rows[0][0], object_pairs_hook=lambda kv: tuple(
        v for _, v in kv))


def main(argv):
    """pgserver.py exec COMMAND...: COMMAND with a PostgreSQL of its own
    (fsync on, as a real one), its address in the environment as run.py
    gives it; the server is stopped by pid when COMMAND ends."""
    import sys
    if len(argv) < 2 or argv[0] != "exec":
        sys.stderr.write("usage: pgserver.py exec command [arg ...]\n")
        return 2
    try:
        pg = PgServer(fsync=True)
    except Unavailable as e:
        print("PostgreSQL is not available: %s" % e)
        return 3
    try:
        env = dict(os.environ)
        env.update(pg.env())
        return subprocess.run(argv[1:], env=env).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        pg.stop()


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
