#!/usr/bin/env python3
"""
bench_upstream.py: regress/fake_gemini.py, unchanged in what it
answers, that also notes when it writes the first SSE event of a
streamed answer, for the streaming benchmark.

    bench_upstream.py --first-log FILE [fake_gemini.py options]

For every streamGenerateContent request whose last user text holds the
word `firstbyte` and then a marker `#<number>` (as loadgen sends with
-m firstbyte), one line is appended to
FILE: `<number> <CLOCK_MONOTONIC ns>`, taken just before the write of
the first event. CLOCK_MONOTONIC is shared by every process of the
machine, so loadgen's first-byte times compare with it directly.
"""

import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_gemini  # noqa: E402

MARK = re.compile(r"firstbyte.*#(\d+)")
LOCK = threading.Lock()
FIRST_LOG = None


class Watch:
    """Stands in for the handler's wfile and times the first event."""

    def __init__(self, handler, real, seq):
        self.handler = handler
        self.real = real
        self.seq = seq
        self.noted = False

    def write(self, data):
        if not self.noted and self.handler.headers_out and data:
            t = time.monotonic_ns()
            self.noted = True
            with LOCK:
                with open(FIRST_LOG, "a") as f:
                    f.write("%d %d\n" % (self.seq, t))
        return self.real.write(data)

    def __getattr__(self, name):
        return getattr(self.real, name)


class Handler(fake_gemini.Handler):
    headers_out = False

    def end_headers(self):
        super().end_headers()
        self.headers_out = True

    def send_stream(self, plan, writes, body, mode, tail):
        m = MARK.search(plan.last)
        if FIRST_LOG is None or m is None:
            return super().send_stream(plan, writes, body, mode, tail)
        real = self.wfile
        self.headers_out = False
        self.wfile = Watch(self, real, int(m.group(1)))
        try:
            return super().send_stream(plan, writes, body, mode, tail)
        finally:
            self.wfile = real


def main():
    global FIRST_LOG
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--first-log":
        FIRST_LOG = args[1]
        args = args[2:]
    sys.argv = [sys.argv[0]] + args
    fake_gemini.Handler = Handler
    return fake_gemini.main()


if __name__ == "__main__":
    sys.exit(main())
