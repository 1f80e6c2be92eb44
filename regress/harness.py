"""
harness.py: what the live tests share. It starts the fake upstream and
a real bridged on loopback with a generated CA and server certificate,
talks BRIDGE/1 over real TLS, and stops what it started, by pid.

Storage backend: SQLite (a file in the daemon's directory), or
PostgreSQL when the Daemon is made with backend="postgresql" or the
environment says BRIDGED_TEST_BACKEND=postgresql (run.py does that for
the `[pg]` runs): then each Daemon gets a new database on the server
run.py started (regress/pgserver.py), and Daemon.sql() reads either.
HAProxy (Balancer) puts a real TCP balancer in front of several.
"""

import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import pgserver

REGRESS = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(REGRESS)
BRIDGED = os.path.join(TOP, "bridged", "bridged")
BRIDGECTL = os.path.join(TOP, "bridgectl", "bridgectl")
FAKE = os.path.join(REGRESS, "fake_gemini.py")
# The fake of each API: its script and the base path of its URL.
FAKES = {"gemini": ("fake_gemini.py", "/v1beta"),
         "openai": ("fake_openai.py", "/v1"),
         "anthropic": ("fake_anthropic.py", "/v1")}
TMP = os.path.join(REGRESS, "tmp")
API_KEY = "fake-key-0123456789"
IS_ROOT = os.geteuid() == 0


def sanitized():
    """Whether this build has the sanitizers (make SANITIZE=...)."""
    try:
        with open(os.path.join(TOP, "config.mk")) as f:
            return any(l.startswith("SAN_FLAGS") and "-fsanitize" in l
                       for l in f)
    except OSError:
        return False
BACKENDS = ("sqlite", "postgresql")


def backend():
    """The backend the tests of this run use by default."""
    b = os.environ.get("BRIDGED_TEST_BACKEND", "sqlite")
    if b not in BACKENDS:
        raise ValueError("BRIDGED_TEST_BACKEND=%s: not one of %s" %
                         (b, ", ".join(BACKENDS)))
    return b


def need_postgresql(bridged=True):
    """Skip unless run.py started a PostgreSQL for this run (and, with
    bridged, unless this bridged was built without its backend)."""
    if not os.environ.get("BRIDGED_TEST_PG"):
        raise Skip(os.environ.get("BRIDGED_TEST_PG_SKIP") or
                   "PostgreSQL is not available to this run")
    if bridged and not pg_built():
        raise Skip("bridged is built without PostgreSQL (no libpq in %s)"
                   % BRIDGED)


def pg_built():
    """Whether bridged links libpq, its PostgreSQL backend's library."""
    try:
        p = subprocess.run(["ldd", BRIDGED], capture_output=True,
                           text=True, timeout=10)
    except OSError:
        return False
    return "libpq" in p.stdout


class Skip(Exception):
    """A test that cannot run here says why."""


_running = []       # what was started and not yet stopped


def cleanup():
    """Stop whatever a test module left running (the runner calls it)."""
    for thing in list(_running):
        try:
            thing.stop()
        except Exception:
            pass


def tmpdir(prefix):
    os.makedirs(TMP, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=TMP)


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout=10.0, step=0.02, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def make_certs(d, name="server"):
    """A CA and a server certificate for localhost, 127.0.0.1 and ::1."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    csr, ext = os.path.join(d, name + ".csr"), os.path.join(d, "ext.cnf")
    q = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    if not os.path.exists(ca_crt):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", ca_key, "-out", ca_crt, "-days", "2",
                        "-subj", "/CN=bridged test CA"], **q)
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n")
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", csr, "-subj", "/CN=localhost"], **q)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt,
                    "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
                    "-days", "2", "-extfile", ext], **q)
    return ca_crt, crt, key


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, grace=5.0):
    """SIGTERM, then SIGKILL after grace seconds."""
    if not pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end and pid_alive(pid):
        time.sleep(0.02)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def proc_stats():
    """(pid, fields) of every process, fields those of /proc/PID/stat
    after the command's name: state, ppid, pgrp, session, ..."""
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                yield int(e), f.read().split(")")[-1].split()
        except OSError:
            continue


def children_of(ppid):
    """Pids whose parent is ppid (zombies left out)."""
    return sorted(p for p, st in proc_stats()
                  if int(st[1]) == ppid and st[0] != "Z")


class FakeUpstream:
    """A fake API (regress/fake_<kind>.py) on an ephemeral loopback
    port; kind is gemini, openai or anthropic."""

    def __init__(self, key=API_KEY, page_size=None, host="127.0.0.1",
                 kind="gemini"):
        self.kind = kind
        self.dir = tmpdir("fake-")
        self.log = os.path.join(self.dir, "requests.jsonl")
        portfile = os.path.join(self.dir, "port")
        args = [sys.executable, os.path.join(REGRESS, FAKES[kind][0]),
                "--port", "0", "--port-file", portfile,
                "--key", key, "--log", self.log, "--host", host]
        if page_size:
            args += ["--page-size", str(page_size)]
        self.errlog = open(os.path.join(self.dir, "stderr"), "w")
        self.proc = subprocess.Popen(args, stdout=self.errlog,
                                     stderr=self.errlog)
        wait_for(lambda: os.path.exists(portfile) and
                 open(portfile).read().strip(), what="fake upstream")
        self.port = int(open(portfile).read().strip())
        _running.append(self)
        self.url = "http://%s:%d%s" % (
            host if ":" not in host else "[%s]" % host, self.port,
            FAKES[kind][1])

    def requests(self):
        import json
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [json.loads(l) for l in f if l.strip()]

    def stop(self):
        if self in _running:
            _running.remove(self)
        stop_pid(self.proc.pid)
        self.proc.wait()
        self.errlog.close()


class Daemon:
    """A real bridged with its own directory, config and certificates."""

    def __init__(self, upstream=None, extra="", prefork=2, max_clients=64,
                 timeout=300, provider_extra="", listen=None, start=True,
                 key_file=True, user=None, providers=None, keys=None,
                 backend=None, pg_database=None, certs=None,
                 conninfo=False):
        """providers: provider blocks replacing the Gemini one, where
        {dir} stands for the daemon's directory; keys: key files to
        write there, {file name: key}; backend: sqlite or postgresql
        (default: backend()); pg_database: an existing PostgreSQL
        database to share with other daemons (default: a new one);
        certs: another daemon whose CA and certificate to use (daemons
        behind one balancer); conninfo: name the PostgreSQL database
        with a libpq conninfo string, not a URI."""
        self.backend = backend or globals()["backend"]()
        self.pgdb = None
        if self.backend == "postgresql":
            need_postgresql()
            self.pgdb = pg_database or pgserver.new_database()
        self.dir = tmpdir("bridged-")
        os.chmod(self.dir, 0o755)
        if certs is not None:
            self.ca, self.crt, self.key = certs.ca, certs.crt, certs.key
        else:
            self.ca, self.crt, self.key = make_certs(self.dir)
        self.port = free_port()
        self.sock = os.path.join(self.dir, "ctl.sock")
        self.dbdir = os.path.join(self.dir, "db")
        self.db = os.path.join(self.dbdir, "bridged.db")
        self.chroot = os.path.join(self.dir, "empty")
        os.mkdir(self.dbdir)
        os.mkdir(self.chroot, 0o755)
        self.user = user or ("nobody" if IS_ROOT else
                             pwd.getpwuid(os.getuid()).pw_name)
        if IS_ROOT:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dbdir, pw.pw_uid, pw.pw_gid)
        self.keyfile = os.path.join(self.dir, "gemini.key")
        with open(self.keyfile, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.keyfile, 0o600)
        for name, k in (keys or {}).items():
            path = os.path.join(self.dir, name)
            with open(path, "w") as f:
                f.write(k + "\n")
            os.chmod(path, 0o600)
        self.upstream = upstream
        url = upstream.url if upstream else "http://127.0.0.1:9/v1beta"
        if listen is None:
            listen = "listen on 127.0.0.1 port %d tls" % self.port
        keyline = ('api key file "%s"' % self.keyfile if key_file else
                   'api key env "BRIDGED_TEST_KEY"')
        if self.pgdb:
            self.db = None
            base = os.environ["BRIDGED_TEST_PG"].rsplit("/", 1)[0]
            if conninfo:
                host, port = base.rsplit("@", 1)[1].rsplit(":", 1)
                where = "host=%s port=%s user=%s dbname=%s" % (
                    host, port, pgserver.ROLE, self.pgdb)
            else:
                where = base + "/" + self.pgdb
            database = 'database "%s"\ndatabase password file "%s"' % (
                where, os.environ["BRIDGED_TEST_PG_PASSFILE"])
        else:
            database = 'database "%s"' % self.db
        self.conf = os.path.join(self.dir, "bridged.conf")
        with open(self.conf, "w") as f:
            f.write("""%s
tls certificate "%s"
tls key "%s"
user "%s"
chroot "%s"
%s
socket "%s"
prefork %d
max clients %d
timeout %d
handshake timeout 3
%s
%s
""" % (listen, self.crt, self.key, self.user, self.chroot, database,
       self.sock, prefork, max_clients, timeout, extra,
       providers.replace("{dir}", self.dir) if providers is not None else
       """provider "gemini" {
	type gemini
	url "%s"
	%s
	model "gemini-2.0-flash"
	connect timeout 3
	timeout 20
	retries 3
%s
}""" % (url, keyline, provider_extra)))
        self.logfile = os.path.join(self.dir, "bridged.log")
        self.proc = None
        self.prefork = prefork
        if start:
            self.start()

    def start(self, env=None):
        self.log = open(self.logfile, "a")
        # libpq's own variables would let a broken `database password
        # file' pass unseen: bridged gets none of them.
        e = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        e["BRIDGED_TEST_KEY"] = API_KEY
        if env:
            e.update(env)
        self.proc = subprocess.Popen([BRIDGED, "-d", "-v", "-f", self.conf],
                                     stdout=self.log, stderr=self.log, env=e,
                                     start_new_session=True)
        self.pid = self.proc.pid
        _running.append(self)
        wait_for(self.ready, timeout=15, what="bridged to start (see %s)" %
                 self.logfile)

    def ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("bridged exited %s: %s" % (
                self.proc.returncode, self.logtext()[-2000:]))
        r = self.ctl("show", "status", check=False)
        return r.returncode == 0 and "starting" not in r.stdout and \
            ("workers: %d idle" % self.prefork) in r.stdout

    def ctl(self, *args, check=True, timeout=10):
        r = subprocess.run([BRIDGECTL, "-s", self.sock] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("bridgectl %s: %s" % (" ".join(args),
                                                        r.stderr.strip()))
        return r

    def status(self):
        return self.ctl("show", "status").stdout

    def role_pids(self, role):
        """Pids of the parent's children and of its children's children
        (the workers of the template) with title `bridged: role`."""
        kids = children_of(self.pid)
        for k in list(kids):
            if cmdline(k).startswith("bridged: template"):
                kids += children_of(k)
        return [p for p in kids if cmdline(p).startswith("bridged: " + role)]

    def logtext(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def sql(self, query, *args):
        """Rows of query (? placeholders) in this daemon's database, as
        tuples; a statement that is not a SELECT is committed. SQLite
        through Python's sqlite3, PostgreSQL through psql."""
        if self.pgdb:
            return pgserver.query(query, args, db=self.pgdb)
        import sqlite3
        con = sqlite3.connect(self.db, timeout=10)
        try:
            rows = con.execute(query, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def integrity(self):
        """"ok", or what the database's own checker found: SQLite's
        integrity_check, PostgreSQL's pg_amcheck (tables and indexes)."""
        if self.pgdb:
            return pgserver.amcheck(self.pgdb)
        return self.sql("PRAGMA integrity_check")[0][0]

    def dump(self):
        """Every byte the database holds, as bytes: the SQLite file and
        its WAL, or pg_dump of the PostgreSQL database."""
        if self.pgdb:
            return pgserver.dump(self.pgdb)
        blob = b""
        for sfx in ("", "-wal"):
            if os.path.exists(self.db + sfx):
                with open(self.db + sfx, "rb") as f:
                    blob += f.read()
        return blob

    def database_away(self):
        """Make the database unreachable to a storage process that
        starts now: SQLite's directory renamed, or the PostgreSQL
        database refusing connections."""
        if self.pgdb:
            pgserver.query("ALTER DATABASE %s ALLOW_CONNECTIONS false" %
                           self.pgdb)
        else:
            os.rename(self.dbdir, self.dbdir + ".away")

    def database_back(self):
        if self.pgdb:
            pgserver.query("ALTER DATABASE %s ALLOW_CONNECTIONS true" %
                           self.pgdb)
        else:
            os.rename(self.dbdir + ".away", self.dbdir)

    def client(self, **kw):
        return Client(self.port, cafile=self.ca, **kw)

    def stop(self):
        if self in _running:
            _running.remove(self)
        if self.proc is None:
            return
        stop_pid(self.pid)
        self.proc.wait()
        # Whatever it left behind in its session goes too.
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()
        self.proc = None


class Client:
    """One BRIDGE/1 session over real TLS (or plain TCP)."""

    def __init__(self, port, host="127.0.0.1", cafile=None, tls=True,
                 timeout=20, greet=True, session=None, cert=None,
                 source=None):
        raw = socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)
        if tls:
            ctx = ssl.create_default_context(cafile=cafile)
            ctx.check_hostname = False
            if cert is not None:
                ctx.load_cert_chain(*cert)      # (certificate, key)
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost",
                                        session=session)
        else:
            self.sock = raw
        self.buf = b""
        self.greeting = self.reply() if greet else None

    def send(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.sock.sendall(line + b"\n")

    def sendraw(self, data):
        self.sock.sendall(data)

    def readline(self):
        while b"\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed; have %r" % self.buf[:200])
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def reply(self):
        """(body lines, status line) of the next reply block."""
        body = []
        while True:
            line = self.readline()
            if line == "." or line.startswith(". "):
                return body, line
            if line.startswith(".."):
                line = line[1:]
            body.append(line)

    def ask(self, line):
        self.send(line)
        return self.reply()

    def closed(self, timeout=5):
        """True once the server has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ssl.SSLError, ConnectionResetError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def haproxy_path():
    """Debian's haproxy, or None."""
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK)
        else None)


class Balancer:
    """A real HAProxy in TCP mode on a loopback port in front of
    daemons (their TLS passes through untouched), round robin. Each
    server is checked every 300 ms the way an operator would: a TLS
    connection that must bring the greeting's `. OK ` line; two failed
    checks take a server out, one good one puts it back."""

    def __init__(self, daemons, balance="roundrobin"):
        exe = haproxy_path()
        if exe is None:
            raise Skip("HAProxy is not installed (configure installs "
                       "Debian's haproxy)")
        self.dir = tmpdir("haproxy-")
        self.port = free_port()
        self.stats = os.path.join(self.dir, "admin.sock")
        self.conf = os.path.join(self.dir, "haproxy.cfg")
        self.names = ["s%d" % i for i in range(len(daemons))]
        servers = "".join(
            "\tserver %s 127.0.0.1:%d check check-ssl verify none "
            "inter 300ms fall 2 rise 1\n" % (n, dd.port)
            for n, dd in zip(self.names, daemons))
        with open(self.conf, "w") as f:
            f.write("""global
	maxconn 2000
	stats socket %s mode 600 level admin

defaults
	mode tcp
	timeout connect 2s
	timeout client 120s
	timeout server 120s
	timeout check 2s

frontend bridge
	bind 127.0.0.1:%d
	default_backend bridged

backend bridged
	balance %s
	option tcp-check
	tcp-check connect ssl
	tcp-check expect string ". OK "
%s""" % (self.stats, self.port, balance, servers))
        self.logfile = os.path.join(self.dir, "haproxy.log")
        self.log = open(self.logfile, "a")
        self.proc = subprocess.Popen([exe, "-f", self.conf, "-db"],
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        self.pid = self.proc.pid
        _running.append(self)
        wait_for(lambda: self.states() and all(
            v == "UP" for v in self.states().values()), timeout=15,
            what="haproxy to see its servers up (see %s)" % self.logfile)

    def admin(self, cmd):
        """One command on HAProxy's stats socket; its answer."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(5)
            s.connect(self.stats)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    return out.decode(errors="replace")
                out += d
        except (OSError, socket.timeout):
            return ""
        finally:
            s.close()

    def states(self):
        """{server name: UP, DOWN, ...} as HAProxy sees them now; INI
        until its first check (HAProxy starts with every server up)."""
        if self.proc.poll() is not None:
            raise AssertionError("haproxy exited %s: %s" % (
                self.proc.returncode, open(self.logfile).read()[-1000:]))
        out = {}
        lines = self.admin("show stat").splitlines()
        if not lines:
            return out
        head = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(head, line.split(",")))
            if row.get("pxname") == "bridged" and row.get("svname") in \
                    self.names:
                chk = row.get("check_status", "").lstrip("* ")
                out[row["svname"]] = "INI" if chk.startswith("INI") else \
                    row.get("status", "").split(" ")[0]
        return out

    def client(self, daemon, **kw):
        """A session through the balancer, checked against daemon's CA
        (all daemons of a test share the harness's CA)."""
        return Client(self.port, cafile=daemon.ca, **kw)

    def stop(self):
        if self in _running:
            _running.remove(self)
        if self.proc is None:
            return
        stop_pid(self.pid)
        self.proc.wait()
        self.log.close()
        self.proc = None
