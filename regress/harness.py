"""
harness.py: what the live tests share. It starts the fake upstream and
a real bridged on loopback with a generated CA and server certificate,
talks BRIDGE/1 over real TLS, and stops what it started, by pid.
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


def children_of(ppid):
    """Pids whose parent is ppid."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % e) as f:
                st = f.read().split(")")[-1].split()
        except OSError:
            continue
        if int(st[1]) == ppid and st[0] != "Z":
            out.append(int(e))
    return sorted(out)


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
                 key_file=True, user=None, providers=None, keys=None):
        """providers: provider blocks replacing the Gemini one, where
        {dir} stands for the daemon's directory; keys: key files to
        write there, {file name: key}."""
        self.dir = tmpdir("bridged-")
        os.chmod(self.dir, 0o755)
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
        self.conf = os.path.join(self.dir, "bridged.conf")
        with open(self.conf, "w") as f:
            f.write("""%s
tls certificate "%s"
tls key "%s"
user "%s"
chroot "%s"
database "%s"
socket "%s"
prefork %d
max clients %d
timeout %d
handshake timeout 3
%s
%s
""" % (listen, self.crt, self.key, self.user, self.chroot, self.db,
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
        e = dict(os.environ)
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
