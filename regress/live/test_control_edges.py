"""
Malformed requests on the control socket, written raw (imsg framing by
hand, as a broken or hostile bridgectl would): each closes that client
with CTL_FAIL where it can still be told, and nothing else. Another
client connected all along is still served, and control, storage, the
provider and the parent keep their pids.
"""

import os
import re
import socket
import struct

from harness import Daemon, FakeUpstream, wait_for

d = up = None
HDR = struct.Struct("=IIHHII")     # type, len, flags, pad, peerid, pid
CTL = {}
CTL_VERSION = 0


def setup():
    global d, up, CTL_VERSION
    up = FakeUpstream()
    d = Daemon(up, prefork=1)
    # The request types as lib/ctl.h numbers them.
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "lib", "ctl.h")) as f:
        text = f.read()
    CTL_VERSION = int(re.search(r"#define CTL_VERSION\s+(\d+)",
                                text).group(1))
    body = text[text.index("enum ctl_type {"):]
    body = body[:body.index("};")]
    for i, name in enumerate(re.findall(r"^\s*(CTL_[A-Z_]+),", body,
                                        re.M)):
        CTL[name] = i


def teardown():
    d.stop()
    up.stop()


class Raw:
    """A connection to the control socket that sends what it is told."""

    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(d.sock)
        self.buf = b""

    def send(self, type_, payload=b"", peerid=None, length=None):
        if peerid is None:
            peerid = CTL_VERSION
        if length is None:
            length = HDR.size + len(payload)
        self.s.sendall(HDR.pack(type_, length, 0, 0, peerid, 0) + payload)

    def message(self):
        """(type, payload), or None at EOF."""
        while True:
            if len(self.buf) >= HDR.size:
                t, n = HDR.unpack(self.buf[:HDR.size])[:2]
                if len(self.buf) >= n:
                    m = (t, self.buf[HDR.size:n])
                    self.buf = self.buf[n:]
                    return m
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def answer(self):
        """The lines of one answer and its last message type."""
        lines = []
        while True:
            m = self.message()
            assert m is not None, "closed before the end of an answer"
            t, p = m
            text = p[4:-1].decode()
            if t == CTL["CTL_DATA"]:
                lines.append(text)
            else:
                return lines, t, text

    def closed(self):
        """Whether the daemon closed us, after at most a FAIL."""
        m = self.message()
        fail = None
        if m is not None:
            assert m[0] == CTL["CTL_FAIL"], m
            fail = m[1][4:-1].decode()
            m = self.message()
        return m is None, fail

    def close(self):
        self.s.close()


def pids():
    return {r: d.role_pids(r) for r in ("control", "storage", "provider")}


def u32(v):
    return struct.pack("=I", v)


def unterminated(s):
    """A string as ibuf_add_str writes it, without its NUL."""
    return u32(len(s)) + s


def check_edge(send, want_fail):
    """One bad client: closed (told want_fail if not None), and
    nothing else touched."""
    before = pids()
    assert all(before.values()), before
    other = Raw()
    other.send(CTL["CTL_STATUS"])
    lines, t, _ = other.answer()
    assert t == CTL["CTL_END"] and any("version" in l for l in lines)
    bad = Raw()
    send(bad)
    gone, fail = bad.closed()
    bad.close()
    assert gone, "the bad client was not closed"
    if want_fail is not None:
        assert fail is not None and want_fail in fail, fail
    # The client connected all along is still served, and a new one.
    other.send(CTL["CTL_STATUS"])
    lines, t, _ = other.answer()
    assert t == CTL["CTL_END"] and any("version" in l for l in lines)
    other.close()
    assert "version" in d.ctl("show", "status").stdout
    assert pids() == before, (before, pids())
    assert d.proc.poll() is None


def test_short_payload():
    # KILL wants a u32: two bytes of one.
    check_edge(lambda c: c.send(CTL["CTL_KILL"], b"\x01\x00"),
               "malformed request")


def test_trailing_bytes():
    check_edge(lambda c: c.send(CTL["CTL_STATUS"], b"\x00"),
               "malformed request")


def test_string_without_nul():
    # EXPORT: str identity, str format; the identity lacks its NUL.
    check_edge(lambda c: c.send(CTL["CTL_EXPORT"],
                                unterminated(b"e0e0") + u32(4) +
                                b"json\x00"), "malformed request")


def test_string_length_past_the_end():
    check_edge(lambda c: c.send(CTL["CTL_PURGE"], u32(1000) + b"ab\x00"),
               "malformed request")


def test_token_add_cut_short():
    # str label, u32 days, str models, u64 x3: the u64s are missing.
    check_edge(lambda c: c.send(CTL["CTL_TOKEN_ADD"],
                                u32(1) + b"l\x00" + u32(0) + u32(0) +
                                b"\x00"), "malformed request")


def test_unknown_type():
    check_edge(lambda c: c.send(999), "unknown request")


def test_an_answer_type_as_request():
    check_edge(lambda c: c.send(CTL["CTL_DATA"], u32(0) + b"\x00"),
               "unknown request")


def test_other_version():
    check_edge(lambda c: c.send(CTL["CTL_STATUS"], peerid=CTL_VERSION + 1),
               "versions differ")


def test_framing_length_below_header():
    check_edge(lambda c: c.send(CTL["CTL_STATUS"], length=4), None)


def test_framing_length_too_large():
    check_edge(lambda c: c.send(CTL["CTL_STATUS"], b"x" * 16,
                                length=64 * 1024 * 1024), None)


def test_garbage_then_good_client():
    # Bytes that are no imsg at all.
    def send(c):
        c.s.sendall(os.urandom(7) + b"\xff" * 64)
    check_edge(send, None)
