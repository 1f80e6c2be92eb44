"""fake_common.py: what the fake upstream APIs share (fake_gemini.py,
fake_openai.py, fake_anthropic.py): the [[fake:...]] directives, the
deterministic answer, HTTP plumbing, the request log, and the stream
writer that frames events (CRLF, LF, CR, mixed), splits writes
anywhere, drips, paces, cuts, resets and hangs.

An API's fake subclasses Handler and gives it: API (its name for
logs), do_GET/do_POST routing, and calls stream(plan, events), each
event a list of field lines ("event: x", "data: {...}") or bytes
already framed; stream_headers() may be its own.

The answer is deterministic, as in fake_gemini.py:
    Echo: <prompt, directives removed> [turns=T system=yes|no]
where T is the number of conversation turns sent (the system prompt
not counted) and the prompt is the last user turn.  Token counts are
ceil(bytes/4) of every text sent (prompt) and of the answer.
"""

import argparse
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STOP = threading.Event()
LOCK = threading.Lock()

CJK_TEXT = " 你好，世界。漢字とかなとカナ、한국어도 있습니다。"
EMOJI_TEXT = " 😀🎉 👍🏽 🇫🇷 👩‍💻 𝄞 ok"
HTML502 = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title>"
           b"</head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n"
           b"<hr><center>nginx</center>\n</body>\n</html>\n")
THOUGHTS = ("Thinking about the question. ", "Considering the answer.")


def html200_page():
    """An HTML page served with 200 where a stream was expected."""
    return (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
            b"<body><p>Please sign in to continue.</p></body></html>\n")

DIRECTIVE = re.compile(r"\[\[fake:([a-z0-9-]+)((?::[^\]\s:]*)*)\]\]")


def directives(text):
    d = {}
    for m in DIRECTIVE.finditer(text):
        d[m.group(1)] = [a for a in m.group(2).split(":")[1:]]
    return d


def arg(d, name, i, default, conv=str):
    a = d.get(name, [])
    if len(a) > i and a[i] != "":
        try:
            return conv(a[i])
        except ValueError:
            return default
    return default


def tokens(s):
    return (len(s.encode("utf-8")) + 3) // 4


def split_answer(ans):
    """At least 3 pieces (when there are words enough), on words."""
    words = re.findall(r"\S+\s*|\s+", ans)
    if len(words) < 3:
        n = max(1, (len(ans) + 2) // 3)
        return [ans[i:i + n] for i in range(0, len(ans), n)] or [""]
    pieces, cur = [], ""
    target = max(1, min(24, len(ans) // 3))
    for w in words:
        cur += w
        if len(cur) >= target:
            pieces.append(cur)
            cur = ""
    if cur:
        pieces.append(cur)
    while len(pieces) < 3:
        i = max(range(len(pieces)), key=lambda k: len(pieces[k]))
        w = re.findall(r"\S+\s*|\s+", pieces[i])
        if len(w) < 2:
            break
        h = len(w) // 2
        pieces[i:i + 1] = ["".join(w[:h]), "".join(w[h:])]
    return pieces


def big_pieces(ans):
    """About 5 MB: the 4th event over 64 KiB (96 KiB), the rest 16."""
    pieces = [ans + "\n"]
    line = 0
    total = len(pieces[0])
    while total < 5 * 1024 * 1024:
        size = 96 * 1024 if len(pieces) == 3 else 16 * 1024
        buf, n = [], 0
        while n < size:
            s = "line %07d the quick brown fox jumps over the lazy " \
                "dog\n" % line
            line += 1
            buf.append(s)
            n += len(s)
        p = "".join(buf)
        pieces.append(p)
        total += len(p)
    return pieces


class Plan:
    """What one generation answers, from a neutral view of its request:
    turns [(role, text)] without the system prompt, the system prompt,
    and the model."""

    def __init__(self, model, turns, system):
        self.model = model
        self.turns = turns
        self.system = system or ""
        last = ""
        for role, text in turns:
            if role == "user":
                last = text
        self.last = last
        self.d = directives(last)
        self.prompt_tokens = sum(tokens(t) for _, t in turns)
        if self.system:
            self.prompt_tokens += tokens(self.system)
        text = DIRECTIVE.sub("", last).strip()
        ans = "Echo: %s [turns=%d system=%s]" % (
            text, len(turns), "yes" if self.system else "no")
        d = self.d
        if "system" in d:
            ans += "\nsystem: " + self.system
        if "context" in d:
            for role, t in turns:
                ans += "\n%s: %s" % (role, t)
        if "cjk" in d:
            ans += CJK_TEXT
        if "emoji" in d:
            ans += EMOJI_TEXT
        n = arg(d, "repeat", 0, 1, int)
        if 1 < n <= 100000:
            ans = "\n".join([ans] * n)
        self.pieces = big_pieces(ans) if "big" in d else split_answer(ans)
        self.answer = "".join(self.pieces)


class State:
    """Everything mutable the handlers share; guarded by LOCK."""

    def __init__(self, args, models):
        self.key = args.key
        self.page_size = args.page_size
        self.input_limit = args.input_limit
        self.pace = getattr(args, "pace", 0) / 1000.0
        self.default_models = models
        self.models = json.loads(json.dumps(models))
        self.logf = open(args.log, "a", encoding="utf-8") if args.log \
            else None
        self.verbose = args.verbose
        self.reset()

    def reset(self):
        self.failures = {}
        self.stats = {"requests": 0, "active": 0, "completed": 0,
                      "client_closed": 0, "by_path": {}, "by_status": {}}

    def log(self, entry):
        with LOCK:
            self.stats["requests"] += 1
            p = entry.get("path", "")
            self.stats["by_path"][p] = self.stats["by_path"].get(p, 0) + 1
            s = str(entry.get("status"))
            self.stats["by_status"][s] = \
                self.stats["by_status"].get(s, 0) + 1
            if self.logf is not None:
                self.logf.write(json.dumps(entry, ensure_ascii=False) +
                                "\n")
                self.logf.flush()

    def count(self, key):
        """How many times this key was seen before; bumps it."""
        with LOCK:
            n = self.failures.get(key, 0)
            self.failures[key] = n + 1
            return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    API = "fake"
    LOG_HEADERS = ("Content-Type", "Content-Length", "Transfer-Encoding",
                   "Authorization", "x-api-key", "anthropic-version",
                   "User-Agent", "Accept", "Expect", "Connection")
    DEFAULT_NL = b"\n"        # real servers of these APIs use LF

    def version_string(self):
        return "uvicorn"

    def log_message(self, fmt, *args):
        if self.server.state.verbose:
            sys.stderr.write("fake_%s: %s\n" % (self.API, fmt % args))

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # ---- plumbing ----------------------------------------------------

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline(1024)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n",
                                                            b""):
                        pass
                    return out
                out += self.rfile.read(n)
                self.rfile.readline(1024)
        n = int(self.headers.get("Content-Length", "0") or "0")
        return self.rfile.read(n) if n > 0 else b""

    def begin(self):
        u = urlsplit(self.path)
        self.url = u
        self.query = parse_qs(u.query, keep_blank_values=True)
        hdrs = {}
        for h in self.LOG_HEADERS:
            v = self.headers.get(h)
            if v is not None:
                hdrs[h.lower()] = v
        self.entry = {"time": time.time(), "method": self.command,
                      "path": u.path, "query": {k: v[-1] for k, v in
                                                self.query.items()},
                      "headers": hdrs, "body": None}

    def json_body(self):
        """The parsed body, or None (logged as text) when not JSON."""
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return None, b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
            self.entry["body"] = body
            return body, raw
        except (ValueError, UnicodeDecodeError):
            self.entry["body"] = raw[:200].decode("latin-1")
            return None, raw

    def reply(self, code, body, ctype="application/json", extra=None):
        self.entry["status"] = code
        if not self.entry["path"].startswith("/_fake/"):
            self.server.state.log(self.entry)
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def reply_json(self, code, obj, extra=None, indent=None):
        self.reply(code, (json.dumps(obj, indent=indent,
                                     ensure_ascii=False) + "\n").encode(),
                   extra=extra)

    def helper(self, p, raw):
        """Test helpers: /_fake/reset, /_fake/config, /_fake/stats."""
        st = self.server.state
        if p == "/_fake/stats":
            with LOCK:
                body = json.dumps(st.stats).encode()
            return self.reply(200, body)
        if p == "/_fake/reset":
            with LOCK:
                st.reset()
            return self.reply(200, b"{}\n")
        if p == "/_fake/config":
            try:
                c = json.loads(raw.decode() or "{}")
            except ValueError:
                return self.reply(400, b"{}\n")
            with LOCK:
                if "pageSize" in c:
                    st.page_size = max(1, int(c["pageSize"]))
                if "inputLimit" in c:
                    st.input_limit = int(c["inputLimit"])
                if "key" in c:
                    st.key = c["key"]
                if "models" in c:
                    st.models = (c["models"] if c["models"] is not None
                                 else json.loads(json.dumps(
                                     st.default_models)))
                for m in c.get("addModels", []):
                    st.models.append(m)
            return self.reply(200, b"{}\n")
        return self.reply(404, b"{}\n")

    def fail_count(self, plan, name):
        """Whether directive name:N still fails (N times, default 1,
        or always when N is absent and always is wanted)."""
        key = "%s\0%s\0%s" % (name, plan.model, plan.last)
        n = arg(plan.d, name, 0, 1, int)
        return self.server.state.count(key) < n

    def fail_always(self, plan, name):
        """name alone fails always; name:N fails N times."""
        key = "%s\0%s\0%s" % (name, plan.model, plan.last)
        n = arg(plan.d, name, 0, -1, int)
        return n < 0 or self.server.state.count(key) < n

    def log_answer(self, plan):
        self.entry["directives"] = plan.d
        self.entry["answer_len"] = len(plan.answer.encode("utf-8"))
        self.entry["answer_sha256"] = hashlib.sha256(
            plan.answer.encode("utf-8")).hexdigest()

    # ---- streams -----------------------------------------------------

    def pause(self, ms):
        if ms > 0:
            STOP.wait(ms / 1000.0)
        return not STOP.is_set()

    def done(self, ok):
        with LOCK:
            self.server.state.stats["completed" if ok else
                                    "client_closed"] += 1

    def stream_headers(self):
        """The headers of a 200 stream, before its framing ones."""
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")

    def hang(self, headers):
        if headers:
            self.send_response(200)
            self.stream_headers()
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        self.close_connection = True
        sock = self.connection
        while not STOP.is_set():
            r, _, _ = select.select([sock], [], [], 0.2)
            if r:
                try:
                    if sock.recv(4096) == b"":
                        break
                except OSError:
                    break
        self.done(False)

    def frame(self, plan, evs):
        """Events (lists of field lines) as bytes, with the line ends
        the directives ask for."""
        d = plan.d
        nl = {"crlf": b"\r\n", "lf": b"\n", "cr": b"\r"}
        cycle = [self.DEFAULT_NL]
        for k in ("crlf", "lf", "cr"):
            if k in d:
                cycle = [nl[k]]
        if "mixed" in d:
            cycle = [b"\r\n", b"\n", b"\r"]
        out = []
        for i, ev in enumerate(evs):
            if isinstance(ev, bytes):
                out.append(ev)      # raw, already framed (broken)
                continue
            e = cycle[i % len(cycle)]
            out.append(b"".join(ln.encode("utf-8") + e for ln in ev) + e)
        return out

    def schedule(self, plan, evs):
        """Split the body into (delay in s, bytes) writes."""
        d = plan.d
        body = b"".join(evs)
        ends, pos = [], 0
        for e in evs:
            pos += len(e)
            ends.append(pos)
        framing = any(k in d for k in ("chunked", "length", "close"))
        if "burst" in d:
            cuts = [len(body)]
        elif "split" in d:
            rnd = random.Random(plan.last)
            cuts, pos = [], 0
            hi = 7 if len(body) < 256 * 1024 else 4096
            while pos < len(body):
                pos = min(len(body), pos + rnd.randint(1, hi))
                cuts.append(pos)
        elif "drip" in d:
            cuts = list(range(1, len(body) + 1))
        elif "utf8split" in d:
            cuts = set(ends)
            for i, b in enumerate(body):
                if b >= 0xc0 or (b == 0x0a and i > 0 and
                                 body[i - 1] == 0x0d):
                    cuts.add(i + 1 if b >= 0xc0 else i)
                if b >= 0xe0:
                    cuts.add(i + 2)
            cuts = sorted(c for c in cuts if 0 < c <= len(body))
        elif framing:
            cuts = [min(len(body), e + 5) for e in ends]
        else:
            cuts = ends
        if not cuts or cuts[-1] != len(body):
            cuts.append(len(body))
        interval = arg(d, "interval", 0, 0, int) / 1000.0
        if "drip" in d:
            gap = arg(d, "drip", 0, 100, int) / 1000.0
        elif "split" in d or "utf8split" in d:
            gap = 0.002 if len(body) < 256 * 1024 else 0
        else:
            gap = 0
        pace = self.server.state.pace
        out, prev = [], 0
        for c in sorted(set(cuts)):
            delay = gap if prev > 0 else 0
            if interval and prev > 0 and prev in ends:
                delay += interval
            if pace and prev > 0:
                delay += pace
            out.append((delay, body[prev:c]))
            prev = c
        return out, body

    def stream(self, plan, evs):
        """Send a 200 event stream of evs (already API-shaped)."""
        d = plan.d
        self.server.state.log(dict(self.entry, status=200))
        if not self.pause(arg(d, "slowheaders", 0, 0, int)):
            return
        if "hang" in d:
            return self.hang(arg(d, "hang", 0, "") != "noheaders")
        if "html200" in d:
            # A captive portal or a proxy's page, with a 200.
            page = html200_page()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        evs = self.frame(plan, evs)
        tail = None
        if "reset" in d or "cut" in d:
            keep = max(1, len(evs) // 2)
            nxt = evs[keep] if keep < len(evs) else evs[-1]
            evs = evs[:keep] + [nxt[:max(8, len(nxt) // 2)]]
            tail = "reset" if "reset" in d else "cut"
        writes, body = self.schedule(plan, evs)
        mode = "chunked"
        if "length" in d:
            mode = "length"
        elif "close" in d:
            mode = "close"
        with LOCK:
            self.server.state.stats["active"] += 1
        ok = False
        try:
            ok = self.send_stream(plan, writes, body, mode, tail)
        except OSError:
            ok = False
        finally:
            with LOCK:
                self.server.state.stats["active"] -= 1
        self.done(ok)

    def send_stream(self, plan, writes, body, mode, tail):
        d = plan.d
        self.send_response(200)
        self.stream_headers()
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif mode == "length":
            n = len(body) + (64 if tail is not None else 0)
            self.send_header("Content-Length", str(n))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not self.pause(arg(d, "slow", 0, 0, int)):
            return False
        split_chunks = "chunked" in d
        for delay, data in writes:
            if delay > 0 and not self.pause(int(delay * 1000)):
                return False
            if mode == "chunked":
                if split_chunks and len(data) > 1:
                    h = len(data) // 2
                    out = b"%x\r\n%s\r\n%x\r\n%s\r\n" % (
                        h, data[:h], len(data) - h, data[h:])
                else:
                    out = b"%x\r\n%s\r\n" % (len(data), data)
            else:
                out = data
            self.wfile.write(out)
        if tail == "reset":
            # Let the client read the text first: a RST discards what
            # the peer has not read yet.
            self.pause(200)
            self.close_connection = True
            self.rfile.close()
            self.wfile.close()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            return True
        if tail == "cut":
            self.close_connection = True
            return True
        if mode == "chunked":
            self.wfile.write(b"0\r\n\r\n")
        return True

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except OSError:
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        if self.state.verbose:
            super().handle_error(request, client_address)


def main(api, handler, models, page_size, default_key):
    ap = argparse.ArgumentParser(description="fake %s API" % api)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--key", default=default_key,
                    help='the key it wants; "" for none (a local server)')
    ap.add_argument("--log")
    ap.add_argument("--page-size", type=int, default=page_size)
    ap.add_argument("--input-limit", type=int, default=0)
    ap.add_argument("--pace", type=int, default=0, metavar="MS",
                    help="a pause before every write of a stream")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.page_size < 1:
        ap.error("--page-size must be at least 1")
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    srv = Server((args.host, args.port), handler)
    srv.state = State(args, models)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    if args.verbose:
        sys.stderr.write("fake_%s: listening on %s port %d\n" %
                         (api, args.host, port))

    def stop(signo, frame):
        STOP.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    t = threading.Thread(target=srv.serve_forever, kwargs={
        "poll_interval": 0.1}, daemon=True)
    t.start()
    while not STOP.wait(1.0):
        pass
    srv.shutdown()
    srv.server_close()
    return 0
