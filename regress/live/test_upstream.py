"""
test_upstream.py: the upstream side end to end. A real bridged talks
to regress/fake_gemini.py; a client asks over TLS and every case of
the fake (UPSTREAMS.md, last section) must come back as the right
reply: the answer streamed whole, or the right `. ERR <code>`, with
retries made or not made as the fake's request log shows.
"""

import hashlib
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import harness  # noqa: E402

CJK = "你好，世界。漢字とかなとカナ、한국어도 있습니다。"
EMOJI = "😀🎉 👍🏽 🇫🇷 👩‍💻 𝄞 ok"
OK_RE = re.compile(r"^\. OK model=(\S+) in=(\d+) out=(\d+) ms=(\d+)$")
ECHO_RE = re.compile(r"^Echo: (.*) \[turns=(\d+) system=(yes|no)\]")

F = D = None
_n = [0]


def setup():
    global F, D
    F = harness.FakeUpstream()
    try:
        D = harness.Daemon(upstream=F, max_clients=128)
    except Exception:
        F.stop()
        raise


def teardown():
    if D is not None:
        D.stop()
    if F is not None:
        F.stop()


def tag():
    """A word no other test uses: the fake's counters key on it."""
    _n[0] += 1
    return "t%d-%d-%d" % (os.getpid(), int(time.time()) % 100000, _n[0])


def ask(text, daemon=None, client=None):
    """(answer text, status line) of one ASK."""
    c = client or (daemon or D).client()
    try:
        if client is None:
            # Every session of 127.0.0.1 shares one history: start
            # afresh so that no test sends another's context.
            body, status = c.ask("NEW")
            check(status.startswith(". OK"), "NEW: " + status)
        body, status = c.ask("ASK " + text)
    finally:
        if client is None:
            c.close()
    return "\n".join(body), status


def calls(word, fake=None):
    """The generate requests the fake saw whose prompt holds word."""
    out = []
    for r in (fake or F).requests():
        if ":" in r.get("path", "") and word in json.dumps(
                r.get("body"), ensure_ascii=False):
            out.append(r)
    return out


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_ok(text, status, word, extra=""):
    check(OK_RE.match(status), "status %r" % status)
    m = ECHO_RE.match(text)
    check(m is not None, "answer %r" % text[:200])
    check(m.group(1) == word + extra, "echo %r, want %r" % (
        m.group(1), word + extra))
    return m


def expect_err(status, code, words=()):
    check(status.startswith(". ERR %s " % code) or status == ". ERR " +
          code, "status %r, want ERR %s" % (status, code))
    for w in words:
        check(w.lower() in status.lower(), "status %r lacks %r" % (
            status, w))


def answer_of(word):
    """What the fake meant to send for this prompt: (length, sha256)."""
    for r in calls(word):
        if r.get("status") == 200 and "answer_sha256" in r:
            return r["answer_len"], r["answer_sha256"]
    raise AssertionError("fake logged no answer for " + word)


# ---- answers that arrive whole -------------------------------------

def test_plain():
    w = tag()
    text, status = ask(w)
    expect_ok(text, status, w)
    r = calls(w)
    check(len(r) == 1, "%d requests" % len(r))
    check(r[0]["query"].get("alt") == "sse", "not alt=sse: %r" % r[0])
    check(r[0]["headers"].get("x-goog-api-key") == harness.API_KEY,
          "key not sent as x-goog-api-key")
    check("key" not in r[0]["query"], "key in the URL")


def test_usage_running_totals():
    w = tag()
    text, status = ask(w)
    m = OK_RE.match(status)
    check(m is not None, status)
    body = calls(w)[0]["body"]
    sent = [p["text"] for c in body["contents"] for p in c["parts"]]
    if "systemInstruction" in body:
        sent += [p["text"] for p in body["systemInstruction"]["parts"]]
    prompt = sum((len(s.encode()) + 3) // 4 for s in sent)
    answer = (len(text.encode()) + 3) // 4
    check(int(m.group(2)) == prompt, "in=%s, want %d" % (m.group(2), prompt))
    check(int(m.group(3)) == answer, "out=%s, want %d (the last total, "
          "not a sum)" % (m.group(3), answer))


def test_nousage():
    w = tag()
    text, status = ask(w + " [[fake:nousage]]")
    expect_ok(text, status, w)


def _framing(directive, n=1):
    w = tag()
    text, status = ask("%s %s" % (w, directive))
    lines = text.split("\n")
    check(len(lines) >= n, "%d lines, want %d" % (len(lines), n))
    for i in range(n):
        expect_ok(lines[i], status, w)
    return text


def test_crlf():
    _framing("[[fake:crlf]]")


def test_lf():
    _framing("[[fake:lf]]")


def test_cr():
    _framing("[[fake:cr]]")


def test_mixed_line_ends():
    _framing("[[fake:mixed]] [[fake:repeat:3]]", 3)


def test_split_anywhere():
    text = _framing("[[fake:split]] [[fake:cjk]] [[fake:emoji]]")
    check(CJK in text and EMOJI in text, "characters damaged: %r" % text)


def test_utf8_split():
    text = _framing("[[fake:utf8split]] [[fake:cjk]] [[fake:emoji]]")
    check(CJK in text and EMOJI in text, "characters damaged: %r" % text)


def test_drip():
    _framing("[[fake:drip:1]] [[fake:emoji]]")


def test_burst():
    _framing("[[fake:burst]] [[fake:repeat:5]] [[fake:lf]]", 5)


def test_finish_every_chunk():
    w = tag()
    text, status = ask(w + " [[fake:finish-every]] [[fake:repeat:3]]")
    check(OK_RE.match(status), status)
    check(text.count("Echo: " + w) == 3, "text cut at the first finish: %r"
          % text)


def test_empty_final_part():
    _framing("[[fake:emptyfinal]]")


def test_thoughts_dropped():
    w = tag()
    text, status = ask(w + " [[fake:thought]]")
    expect_ok(text, status, w)
    check("Thinking" not in text and "Considering" not in text,
          "thought text leaked: %r" % text)


def test_maxtokens():
    w = tag()
    text, status = ask(w + " [[fake:maxtokens]]")
    check(ECHO_RE.match(text), "text %r" % text)
    check(status.startswith(". OK") or status.startswith(". ERR"), status)


def test_chunked_body():
    _framing("[[fake:chunked]] [[fake:repeat:4]]", 4)


def test_length_body():
    _framing("[[fake:length]] [[fake:repeat:4]]", 4)


def test_close_delimited_body():
    _framing("[[fake:close]] [[fake:repeat:4]]", 4)


def test_slow_first_event():
    w = tag()
    t0 = time.monotonic()
    text, status = ask(w + " [[fake:slow:1500]]")
    expect_ok(text, status, w)
    check(time.monotonic() - t0 >= 1.4, "too fast")


def test_big_answer():
    w = tag()
    text, status = ask(w + " [[fake:big]]")
    check(OK_RE.match(status), status)
    n, sha = answer_of(w)
    got = text + "\n"
    check(len(got.encode()) == n, "%d bytes, want %d" % (
        len(got.encode()), n))
    check(hashlib.sha256(got.encode()).hexdigest() == sha, "content differs")


# ---- broken streams ------------------------------------------------

def test_nofinish():
    w = tag()
    text, status = ask(w + " [[fake:nofinish]]")
    expect_err(status, "upstream", ["incomplete"])


def test_reset_midstream():
    w = tag()
    text, status = ask(w + " [[fake:reset]]")
    expect_err(status, "upstream", ["incomplete"])
    check(len(calls(w)) == 1, "a stream that sent text was retried")


def test_cut_chunked():
    w = tag()
    text, status = ask(w + " [[fake:cut]]")
    expect_err(status, "upstream", ["incomplete"])


def test_cut_close_delimited():
    w = tag()
    text, status = ask(w + " [[fake:cut]] [[fake:close]]")
    expect_err(status, "upstream", ["incomplete"])


def test_cut_length():
    w = tag()
    text, status = ask(w + " [[fake:cut]] [[fake:length]]")
    expect_err(status, "upstream", ["incomplete"])


def test_error_midstream():
    w = tag()
    text, status = ask(w + " [[fake:error-midstream]]")
    expect_err(status, "upstream", ["503", "overloaded"])
    check(text.startswith("Echo: "), "text before the error lost")


def test_error_midstream_multiline():
    w = tag()
    text, status = ask(w + " [[fake:error-midstream:multiline]]")
    expect_err(status, "upstream", ["503", "overloaded"])


def test_bad_json_event():
    w = tag()
    text, status = ask(w + " [[fake:badjson]]")
    expect_err(status, "upstream", ["json"])


def test_blocked_prompt():
    w = tag()
    text, status = ask(w + " [[fake:blocked:PROHIBITED_CONTENT]]")
    expect_err(status, "upstream", ["blocked", "PROHIBITED_CONTENT"])
    check(text == "", "text %r" % text)


def test_safety_finish():
    w = tag()
    text, status = ask(w + " [[fake:safety]]")
    expect_err(status, "upstream", ["safety"])


# ---- HTTP errors and retries ---------------------------------------

def test_429_retryinfo_then_ok():
    w = tag()
    t0 = time.monotonic()
    text, status = ask(w + " [[fake:429-retryinfo:2:0.3s]]")
    expect_ok(text, status, w)
    check(len(calls(w)) == 3, "%d requests, want 3" % len(calls(w)))
    check(time.monotonic() - t0 >= 0.55, "RetryInfo delay not honoured")


def test_429_retry_after_then_ok():
    w = tag()
    t0 = time.monotonic()
    text, status = ask(w + " [[fake:429-retryafter:1:1]]")
    expect_ok(text, status, w)
    check(len(calls(w)) == 2, "%d requests, want 2" % len(calls(w)))
    check(time.monotonic() - t0 >= 0.95, "Retry-After not honoured")


def test_429_per_day_not_retried():
    w = tag()
    text, status = ask(w + " [[fake:429-perday]]")
    expect_err(status, "rate-limited", ["quota"])
    check(len(calls(w)) == 1, "per-day quota retried: %d requests" %
          len(calls(w)))


def test_429_exhausted():
    w = tag()
    text, status = ask(w + " [[fake:429-retryinfo:9:0.1s]]")
    expect_err(status, "rate-limited", ["429"])
    check(len(calls(w)) == 4, "%d requests, want 1 + 3 retries" %
          len(calls(w)))


def test_503_then_ok():
    w = tag()
    text, status = ask(w + " [[fake:503:2]]")
    expect_ok(text, status, w)
    check(len(calls(w)) == 3, "%d requests, want 3" % len(calls(w)))


def test_500_retried_then_error():
    w = tag()
    text, status = ask(w + " [[fake:500]]")
    expect_err(status, "upstream", ["500"])
    check(len(calls(w)) == 4, "%d requests, want 4" % len(calls(w)))


def test_504_timeout():
    w = tag()
    text, status = ask(w + " [[fake:504:1]]")
    expect_ok(text, status, w)
    w = tag()
    text, status = ask(w + " [[fake:504]] [[fake:emoji]]")
    expect_err(status, "upstream-timeout", ["504"])


def test_overflow_not_retried():
    w = tag()
    text, status = ask(w + " [[fake:overflow]]")
    expect_err(status, "upstream", ["exceeds the maximum number of tokens"])
    check(len(calls(w)) == 1, "context overflow retried")


def test_unknown_model():
    w = tag()
    text, status = ask(w + " [[fake:404]]")
    expect_err(status, "no-model", ["not found"])
    check(len(calls(w)) == 1, "404 retried")


def test_html_502():
    w = tag()
    text, status = ask(w + " [[fake:html502]]")
    expect_err(status, "upstream", ["502", "Bad Gateway"])
    check("<" not in status, "HTML in the status: %r" % status)


# ---- the model list ------------------------------------------------

def _models(c):
    body, status = c.ask("LIST-MODELS")
    check(status.startswith(". OK"), status)
    return [re.sub(r"^\d+\. ", "", l).replace(" (current)", "")
            for l in body]


def test_models_paged_filtered_sorted():
    before = len([r for r in F.requests() if r["path"] == "/v1beta/models"])
    c = D.client()
    try:
        names = _models(c)
        want = sorted(["gemini-2.5-pro", "gemini-2.5-flash",
                       "gemini-2.5-flash-lite", "gemini-2.0-flash",
                       "gemini-2.0-flash-001", "gemini-2.0-flash-lite",
                       "gemma-3-27b-it"])
        check(names == want, "models %r" % names)
        pages = [r for r in F.requests() if r["path"] == "/v1beta/models"]
        check(len(pages) - before in (0, 3), "%d page requests" %
              (len(pages) - before))
        if len(pages) - before == 3:
            check(pages[-1]["query"].get("pageToken"), "no page token sent")
        again = _models(c)
        check(again == names, "second list differs")
        n = len([r for r in F.requests() if r["path"] == "/v1beta/models"])
        check(n == len(pages), "the cached list was fetched again")
    finally:
        c.close()


# ---- timeouts, cancel, load, keys: daemons of their own -------------

def test_hang_times_out():
    f = harness.FakeUpstream(host="::1")
    d = None
    try:
        # This fake ends its model list with an empty page token.
        _get(f, "/_fake/config", json.dumps({"lastToken": "empty"}).encode())
        d = harness.Daemon(upstream=f, provider_extra="\ttimeout 2\n"
                           "\tretries 1\n", extra="models cache 1")
        w = tag()
        t0 = time.monotonic()
        text, status = ask(w + " [[fake:hang]]", daemon=d)
        expect_err(status, "upstream-timeout")
        check(1.5 < time.monotonic() - t0 < 10, "took %.1f s" % (
            time.monotonic() - t0))
        w = tag()
        text, status = ask(w + " [[fake:hang:noheaders]]", daemon=d)
        expect_err(status, "upstream-timeout")
        # Over IPv6, and the model cache of 1 s expires.
        c = d.client()

        def pages():
            return len([r for r in f.requests()
                        if r["path"] == "/v1beta/models"])
        _models(c)
        n0 = pages()
        _models(c)
        check(pages() == n0, "a list younger than 1 s fetched again")
        time.sleep(1.2)
        _models(c)
        check(pages() == n0 + 3, "%d page requests, want 3 more" %
              (pages() - n0))
        c.close()
    finally:
        if d is not None:
            d.stop()
        f.stop()


def test_cancel_stops_upstream():
    c = D.client()
    try:
        body, status = c.ask("NEW")
        body, status = c.ask("IA")
        check(status.startswith(". OK"), status)
        w = tag()
        c.send(w + " [[fake:repeat:400]] [[fake:interval:50]]")
        line = c.readline()
        check(line.startswith("Echo: " + w), "first line %r" % line)
        c.send("CANCEL")
        body, status = c.reply()
        expect_err(status, "cancelled")

        def stopped():
            st = json.loads(_get(F, "/_fake/stats"))
            return st["active"] == 0
        harness.wait_for(stopped, timeout=5, what="the upstream stream to "
                         "be closed")
        # The session goes on.
        w = tag()
        c.send(w)
        body, status = c.reply()
        check(OK_RE.match(status), status)
    finally:
        c.close()


def _get(f, path, data=None):
    import urllib.request
    host = "127.0.0.1" if "[" not in f.url else "[::1]"
    with urllib.request.urlopen("http://%s:%d%s" % (host, f.port, path),
                                data=data, timeout=5) as r:
        return r.read().decode()


def test_fifty_concurrent_streams():
    results = [None] * 50
    errors = []

    def one(i):
        try:
            w = tag() + "-c%d" % i
            text, status = ask(w + " [[fake:interval:20]] [[fake:repeat:5]]"
                               " [[fake:split]]")
            results[i] = (w, text, status)
        except Exception as e:
            errors.append("%d: %s" % (i, e))

    ts = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check(not errors, "; ".join(errors[:3]))
    for w, text, status in results:
        check(OK_RE.match(status), "%s: %s" % (w, status))
        check(text.count("Echo: " + w) == 5, "%s: answer %r" % (w, text[:80]))


def test_wrong_key():
    d = harness.Daemon(upstream=F, prefork=1)
    try:
        with open(d.keyfile, "w") as f:
            f.write("not-the-key\n")
        d.stop()
        d.start()
        w = tag()
        text, status = ask(w, daemon=d)
        expect_err(status, "upstream", ["400", "API key not valid"])
        check(len(calls(w)) == 1, "invalid key retried")
    finally:
        d.stop()


def test_key_from_env():
    d = harness.Daemon(upstream=F, prefork=1, key_file=False)
    try:
        w = tag()
        text, status = ask(w, daemon=d)
        expect_ok(text, status, w)
        # The key is not left in the provider's environment.
        for pid in d.role_pids("provider"):
            try:
                with open("/proc/%d/environ" % pid, "rb") as f:
                    env = f.read()
            except PermissionError:
                continue
            check(harness.API_KEY.encode() not in env,
                  "key still in the provider's environment")
    finally:
        d.stop()


def test_no_key():
    """Without its key bridged does not start (test_startup.py); a key
    that goes later is an upstream error once the provider restarts."""
    d = harness.Daemon(upstream=F, prefork=1)
    try:
        os.unlink(d.keyfile)
        old = d.role_pids("provider")
        os.kill(old[0], signal.SIGKILL)
        harness.wait_for(lambda: [p for p in d.role_pids("provider")
                                  if p not in old],
                         what="the provider to restart")
        text, status = ask(tag(), daemon=d)
        expect_err(status, "upstream", ["api key"])
    finally:
        d.stop()


def test_unreachable_upstream():
    d = harness.Daemon(upstream=None, prefork=1,
                       provider_extra="\tretries 1\n")
    try:
        # Nothing listens there: refused, retried once, then reported.
        text, status = ask(tag(), daemon=d)
        expect_err(status, "upstream", ["cannot reach"])
        c = d.client()
        body, status = c.ask("LIST-MODELS")
        c.close()
        check(status.startswith(". ERR"), "list from nowhere: " + status)
    finally:
        d.stop()


def test_reload_keeps_serving():
    c = D.client()
    try:
        _models(c)

        def pages():
            return len([r for r in F.requests()
                        if r["path"] == "/v1beta/models"])
        n0 = pages()
        D.ctl("reload")
        time.sleep(0.3)
        w = tag()
        text, status = ask(w)
        expect_ok(text, status, w)
        _models(c)
        check(pages() == n0 + 3, "the list was not fetched again after a "
              "reload (%d pages)" % (pages() - n0))
    finally:
        c.close()
