"""
test_idle.py: the idle clock of a session (PROTOCOL.md: a client
waiting for an answer is not idle; the idle time counts from the end
of the last reply), against an upstream that hangs until the request
timeout, which equals the idle timeout.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import harness  # noqa: E402

IDLE = 3        # s, both the idle timeout and the request timeout


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def idle_after_hang(request_timeout):
    """A hung request, then the idle clock from the end of its reply."""
    f = harness.FakeUpstream()
    d = None
    try:
        d = harness.Daemon(upstream=f, timeout=IDLE,
                           provider_extra="\ttimeout %d\n\tretries 0\n" %
                           request_timeout)
        c = d.client()
        body, status = c.ask("NEW")
        check(status.startswith(". OK"), "NEW: " + status)
        t0 = time.monotonic()
        body, status = c.ask("ASK idle-%d [[fake:hang]]" % os.getpid())
        t1 = time.monotonic()
        check(status.startswith(". ERR upstream-timeout"),
              "status %r" % status)
        check(t1 - t0 >= request_timeout - 0.5,
              "answered after %.1f s" % (t1 - t0))
        # Waiting for that answer was not idleness: no BYE now.
        check(not c.closed(timeout=IDLE - 1.0),
              "closed %.1f s after the reply: %r" % (
                  time.monotonic() - t1, c.buf[-200:]))
        check(b"BYE" not in c.buf, "early %r" % c.buf)
        c.sock.settimeout(20)
        # The session still works, and its idle clock starts again.
        body, status = c.ask("HELP")
        check(status.startswith(". OK"), "HELP: " + status)
        t2 = time.monotonic()
        body, status = c.reply()
        t3 = time.monotonic()
        check(status == ". BYE idle timeout", "status %r" % status)
        check(IDLE - 0.5 <= t3 - t2 <= IDLE + 2,
              "BYE %.1f s after the last reply" % (t3 - t2))
        c.close()
    finally:
        if d is not None:
            d.stop()
        f.stop()


def test_request_timeout_shorter_than_idle():
    idle_after_hang(IDLE - 1)


def test_request_timeout_equal_to_idle():
    idle_after_hang(IDLE)
