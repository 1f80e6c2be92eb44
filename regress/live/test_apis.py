"""
test_apis.py: the three upstream APIs (Gemini, OpenAI-compatible,
Anthropic) behind one bridged with four providers at once (the fourth
an OpenAI-compatible local server without a key). Every fault case of
UPSTREAMS.md that the APIs share runs against each of them, through
their faithful fakes; then what is each API's own (llama.cpp's error
field, reasoning text, content_filter, Anthropic's overload events and
529), the model lists with their paging, names provider/model,
CHANGE-MODEL across APIs with the context kept, summaries, the models
restriction, one provider down, and the fallback.
"""

import hashlib
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import harness  # noqa: E402

CJK = "你好，世界。漢字とかなとカナ、한국어도 있습니다。"
EMOJI = "😀🎉 👍🏽 🇫🇷 👩‍💻 𝄞 ok"
OK_RE = re.compile(r"^\. OK model=(\S+) in=(\d+) out=(\d+) ms=(\d+)"
                   r"( finish=\S+)?$")
ECHO_RE = re.compile(r"^Echo: (.*) \[turns=(\d+) system=(yes|no)\]")
KEYS = {"gemini": harness.API_KEY, "openai": "sk-fake-openai-4242",
        "anthropic": "sk-ant-fake-4343"}
MODEL = {"gemini": "gemini/gemini-2.0-flash",
         "openai": "openai/gpt-4o-mini",
         "anthropic": "anthropic/claude-sonnet-4-5",
         "local": "local/llama3.2:latest"}
GEN_PATH = {"gemini": ":streamGenerateContent", "openai":
            "/v1/chat/completions", "anthropic": "/v1/messages",
            "local": "/v1/chat/completions"}
APIS = ("gemini", "openai", "anthropic")
RETRIES = 2

FK = {}
D = None
_n = [0]


def block(name, kind, url, key=True, extra=""):
    return """provider "%s" {
	type %s
	url "%s"
	%s
	connect timeout 3
	timeout 20
	retries %d
%s}
""" % (name, kind, url, ('api key file "{dir}/%s.key"' % name) if key
       else "", RETRIES, extra)


def setup():
    global D
    try:
        for k in APIS:
            FK[k] = harness.FakeUpstream(kind=k, key=KEYS[k])
        FK["local"] = harness.FakeUpstream(kind="openai", key="")
        provs = (block("gemini", "gemini", FK["gemini"].url) +
                 block("openai", "openai", FK["openai"].url) +
                 block("anthropic", "anthropic", FK["anthropic"].url) +
                 block("local", "openai", FK["local"].url, key=False,
                       extra='\tmodels "llama3.2:latest" "gpt-4o"\n'))
        D = harness.Daemon(providers=provs, max_clients=64, keys={
            "openai.key": KEYS["openai"],
            "anthropic.key": KEYS["anthropic"]})
    except Exception:
        teardown()
        raise


def teardown():
    if D is not None:
        D.stop()
    for f in FK.values():
        f.stop()


def tag():
    """A word no other test uses: the fakes' counters key on it."""
    _n[0] += 1
    return "a%d-%d-%d" % (os.getpid(), int(time.time()) % 100000, _n[0])


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def session(api, daemon=None):
    """A client on a new conversation with the model of api."""
    c = (daemon or D).client()
    _, status = c.ask("NEW")
    check(status.startswith(". OK"), "NEW: " + status)
    _, status = c.ask("CHANGE-MODEL " + MODEL[api])
    check(status == ". OK model " + MODEL[api], "CHANGE-MODEL: " + status)
    return c


def ask(api, text, daemon=None):
    """(answer text, status line) of one ASK to the model of api."""
    c = session(api, daemon)
    try:
        body, status = c.ask("ASK " + text)
    finally:
        c.close()
    return "\n".join(body), status


def calls(api, word):
    """The generation requests the fake of api saw holding word."""
    return [r for r in FK[api].requests()
            if GEN_PATH[api] in r.get("path", "") and
            word in json.dumps(r.get("body"), ensure_ascii=False)]


def expect_ok(api, text, status, word, extra=""):
    m = OK_RE.match(status)
    check(m is not None, "%s: status %r" % (api, status))
    check(m.group(1) == MODEL[api], "%s: model=%s" % (api, m.group(1)))
    m = ECHO_RE.match(text)
    check(m is not None, "%s: answer %r" % (api, text[:200]))
    check(m.group(1) == word + extra, "%s: echo %r, want %r" % (
        api, m.group(1), word + extra))


def expect_err(api, status, code, words=()):
    check(status.startswith(". ERR %s " % code), "%s: status %r, want ERR "
          "%s" % (api, status, code))
    for w in words:
        check(w.lower() in status.lower(), "%s: status %r lacks %r" % (
            api, status, w))


# ---- the cases every API shares ------------------------------------

def case_plain(api):
    w = tag()
    text, status = ask(api, w)
    expect_ok(api, text, status, w)
    r = calls(api, w)
    check(len(r) == 1, "%s: %d requests" % (api, len(r)))
    h, b = r[0]["headers"], r[0]["body"]
    if api == "openai":
        check(h.get("authorization") == "Bearer " + KEYS[api], "bearer")
        check(b["stream"] is True and b["stream_options"] ==
              {"include_usage": True}, "stream options %r" % b)
        check(b["model"] == "gpt-4o-mini", "model %r" % b["model"])
        check("max_tokens" not in b, "max_tokens sent unasked")
    elif api == "anthropic":
        check(h.get("x-api-key") == KEYS[api], "x-api-key")
        check(h.get("anthropic-version") == "2023-06-01", "version")
        check(b["max_tokens"] == 4096 and b["stream"] is True, "body %r"
              % b)
    else:
        check(h.get("x-goog-api-key") == KEYS[api], "x-goog-api-key")


def sent_texts(api, body):
    if api == "gemini":
        t = [p["text"] for c in body["contents"] for p in c["parts"]]
        t += [p["text"] for p in body.get("systemInstruction",
                                          {}).get("parts", [])]
    elif api == "openai":
        t = [m["content"] for m in body["messages"]]
    else:
        t = [m["content"] for m in body["messages"]]
        if body.get("system"):
            t.append(body["system"])
    return t


def case_usage(api):
    w = tag()
    text, status = ask(api, w)
    m = OK_RE.match(status)
    check(m is not None, status)
    prompt = sum((len(s.encode()) + 3) // 4 for s in
                 sent_texts(api, calls(api, w)[0]["body"]))
    answer = (len(text.encode()) + 3) // 4
    check(int(m.group(2)) == prompt, "%s: in=%s, want %d" % (
        api, m.group(2), prompt))
    check(int(m.group(3)) == answer, "%s: out=%s, want %d" % (
        api, m.group(3), answer))


def framing(api, directive, n=1):
    w = tag()
    text, status = ask(api, "%s %s" % (w, directive))
    lines = text.split("\n")
    check(len(lines) >= n, "%s: %d lines, want %d" % (api, len(lines), n))
    for i in range(n):
        expect_ok(api, lines[i], status, w)
    return text


def case_crlf(api):
    framing(api, "[[fake:crlf]]")


def case_lf(api):
    framing(api, "[[fake:lf]]")


def case_cr(api):
    framing(api, "[[fake:cr]]")


def case_mixed(api):
    framing(api, "[[fake:mixed]] [[fake:repeat:3]]", 3)


def case_split(api):
    t = framing(api, "[[fake:split]] [[fake:cjk]] [[fake:emoji]]")
    check(CJK in t and EMOJI in t, "%s: characters damaged" % api)


def case_utf8split(api):
    t = framing(api, "[[fake:utf8split]] [[fake:cjk]] [[fake:emoji]]")
    check(CJK in t and EMOJI in t, "%s: characters damaged" % api)


def case_drip(api):
    framing(api, "[[fake:drip:1]] [[fake:emoji]]")


def case_burst(api):
    framing(api, "[[fake:burst]] [[fake:repeat:5]] [[fake:lf]]", 5)


def case_chunked(api):
    framing(api, "[[fake:chunked]] [[fake:repeat:4]]", 4)


def case_length(api):
    framing(api, "[[fake:length]] [[fake:repeat:4]]", 4)


def case_close(api):
    framing(api, "[[fake:close]] [[fake:repeat:4]]", 4)


def case_big(api):
    w = tag()
    text, status = ask(api, w + " [[fake:big]]")
    check(OK_RE.match(status), status)
    r = [x for x in calls(api, w) if "answer_sha256" in x][0]
    got = (text + "\n").encode()
    check(len(got) == r["answer_len"], "%s: %d bytes, want %d" % (
        api, len(got), r["answer_len"]))
    check(hashlib.sha256(got).hexdigest() == r["answer_sha256"],
          "%s: content differs" % api)


def case_thought(api):
    w = tag()
    text, status = ask(api, w + " [[fake:thought]]")
    expect_ok(api, text, status, w)
    check("Thinking" not in text and "Considering" not in text,
          "%s: reasoning shown: %r" % (api, text))


def case_nousage(api):
    w = tag()
    text, status = ask(api, w + " [[fake:nousage]]")
    expect_ok(api, text, status, w)


def case_maxtokens(api):
    w = tag()
    text, status = ask(api, w + " [[fake:maxtokens]]")
    check(status.endswith(" finish=MAX_TOKENS"), "%s: %r" % (api, status))


def case_nofinish(api):
    w = tag()
    text, status = ask(api, w + " [[fake:nofinish]]")
    expect_err(api, status, "upstream", ["incomplete"])


def case_reset(api):
    w = tag()
    text, status = ask(api, w + " [[fake:reset]]")
    expect_err(api, status, "upstream", ["incomplete"])
    check(len(calls(api, w)) == 1, "%s: streamed text retried" % api)


def case_cut(api):
    for how in ("", " [[fake:close]]", " [[fake:length]]"):
        w = tag()
        text, status = ask(api, w + " [[fake:cut]]" + how)
        expect_err(api, status, "upstream", ["incomplete"])


def case_error_midstream(api):
    w = tag()
    c = session(api)
    try:
        body, status = c.ask("ASK " + w + " [[fake:error-midstream]]")
        expect_err(api, status, "upstream", ["overloaded"])
        check(body and body[0].startswith("Echo: "), "%s: text before the "
              "error lost: %r" % (api, body))
        # The prompt is stored; the partial answer is not.
        body, status = c.ask("HISTORY 1")
        check(status.startswith(". OK") and body[0].endswith(" user") and
              w in body[1], "%s: history %r" % (api, body))
    finally:
        c.close()
    check(len(calls(api, w)) == 1, "%s: retried after text" % api)


def case_badjson(api):
    w = tag()
    text, status = ask(api, w + " [[fake:badjson]]")
    expect_err(api, status, "upstream", ["json"])


def case_429_retry_after(api):
    w = tag()
    t0 = time.monotonic()
    text, status = ask(api, w + " [[fake:429-retryafter:1:1]]")
    expect_ok(api, text, status, w)
    check(len(calls(api, w)) == 2, "%s: %d requests, want 2" % (
        api, len(calls(api, w))))
    check(time.monotonic() - t0 >= 0.95, "%s: Retry-After not honoured"
          % api)


def case_503_then_ok(api):
    w = tag()
    text, status = ask(api, w + " [[fake:503:2]]")
    expect_ok(api, text, status, w)
    check(len(calls(api, w)) == 3, "%s: %d requests, want 3" % (
        api, len(calls(api, w))))


def case_500(api):
    w = tag()
    text, status = ask(api, w + " [[fake:500]]")
    expect_err(api, status, "upstream", ["500"])
    check(len(calls(api, w)) == 1 + RETRIES, "%s: %d requests" % (
        api, len(calls(api, w))))


def case_504(api):
    w = tag()
    text, status = ask(api, w + " [[fake:504]]")
    expect_err(api, status, "upstream-timeout", ["504"])


def case_overflow(api):
    w = tag()
    text, status = ask(api, w + " [[fake:overflow]]")
    expect_err(api, status, "upstream", ["400"])
    check(len(calls(api, w)) == 1, "%s: overflow retried" % api)


def case_404(api):
    w = tag()
    text, status = ask(api, w + " [[fake:404]]")
    expect_err(api, status, "no-model", ["404"])
    check(len(calls(api, w)) == 1, "%s: 404 retried" % api)


def case_html502(api):
    w = tag()
    text, status = ask(api, w + " [[fake:html502]]")
    expect_err(api, status, "upstream", ["502", "Bad Gateway"])
    check("<" not in status, "%s: HTML in the status" % api)


def case_html200(api):
    """A 200 that is an HTML page, not a stream: an error, not an answer."""
    w = tag()
    c = session(api)
    try:
        body, status = c.ask("ASK %s [[fake:html200]]" % w)
        expect_err(api, status, "upstream", ["incomplete"])
        check(body == [], "%s: %r shown" % (api, body))
        body, _ = c.ask("HISTORY 1")
        check(body[0].endswith(" user"), "%s: an answer was stored" % api)
    finally:
        c.close()


def case_summary(api):
    """BACK asks the model of the session (any API) for a summary."""
    c = session(api)
    try:
        _, status = c.ask("IA")
        check(status.startswith(". OK"), status)
        w = tag()
        body, status = c.ask(w)
        check(OK_RE.match(status), status)
        _, status = c.ask("BACK")
        check(status.startswith(". OK back"), "%s: BACK %r" % (api, status))
        body, status = c.ask("SUMMARIES 1")
        check(status == ". OK 1 summaries" and len(body) >= 2 and
              body[1].startswith("Echo: "), "%s: summaries %r %r" % (
                  api, body, status))
    finally:
        c.close()
    r = [x for x in FK[api].requests() if GEN_PATH[api] in x["path"]]
    check(w in json.dumps(r[-1]["body"], ensure_ascii=False),
          "%s: the summary request lacks the conversation" % api)


CASES = [case_plain, case_usage, case_crlf, case_lf, case_cr, case_mixed,
         case_split, case_utf8split, case_drip, case_burst, case_chunked,
         case_length, case_close, case_big, case_thought, case_nousage,
         case_maxtokens, case_nofinish, case_reset, case_cut,
         case_error_midstream, case_badjson, case_429_retry_after,
         case_503_then_ok, case_500, case_504, case_overflow, case_404,
         case_html502, case_html200, case_summary]


def _make(case, api):
    def t():
        case(api)
    t.__name__ = "test_%s_%s" % (api, case.__name__[5:])
    return t


for _c in CASES:
    for _a in APIS:
        globals()["test_%s_%s" % (_a, _c.__name__[5:])] = _make(_c, _a)


# ---- what is each API's own ----------------------------------------

def test_openai_llamacpp_error_field():
    w = tag()
    text, status = ask("openai", w + " [[fake:error-midstream:llamacpp]]")
    expect_err("openai", status, "upstream", ["503", "overloaded"])
    check(text.startswith("Echo: "), text)


def test_openai_bare_error_chunk():
    w = tag()
    text, status = ask("openai", w + " [[fake:error-midstream:bare]]")
    expect_err("openai", status, "upstream", ["overloaded"])


def test_openai_error_before_text_retried():
    w = tag()
    text, status = ask("openai", w + " [[fake:error-first]]")
    expect_ok("openai", text, status, w)
    check(len(calls("openai", w)) == 2, "not retried")


def test_openai_content_filter_and_no_done():
    w = tag()
    text, status = ask("openai", w + " [[fake:content-filter]]")
    check(OK_RE.match(status) and status.endswith(
        " finish=CONTENT_FILTER"), status)
    w = tag()
    text, status = ask("openai", w + " [[fake:nodone]]")
    expect_ok("openai", text, status, w)
    w = tag()
    text, status = ask("openai", w + " [[fake:nullchoices]]")
    expect_ok("openai", text, status, w)


def test_openai_quota_not_retried():
    w = tag()
    text, status = ask("openai", w + " [[fake:429-quota]]")
    expect_err("openai", status, "rate-limited", ["quota"])
    check(len(calls("openai", w)) == 1, "an exhausted quota was retried")


def test_openai_retry_after_ms():
    w = tag()
    t0 = time.monotonic()
    text, status = ask("openai", w + " [[fake:429-ms:1:400]]")
    expect_ok("openai", text, status, w)
    check(len(calls("openai", w)) == 2 and time.monotonic() - t0 >= 0.38,
          "retry-after-ms not honoured")


def test_local_server_without_key():
    w = tag()
    text, status = ask("local", w + " [[fake:system]]")
    expect_ok("local", text.split("\n")[0], status, w)
    r = calls("local", w)
    check(len(r) == 1 and "authorization" not in r[0]["headers"],
          "a key was sent to the keyless server")


def test_anthropic_overload_event_retried():
    w = tag()
    text, status = ask("anthropic", w + " [[fake:overloaded-first]]")
    expect_ok("anthropic", text, status, w)
    check(len(calls("anthropic", w)) == 2, "not retried")


def test_anthropic_529():
    w = tag()
    text, status = ask("anthropic", w + " [[fake:529:1]]")
    expect_ok("anthropic", text, status, w)
    check(len(calls("anthropic", w)) == 2, "529 not retried")
    w = tag()
    text, status = ask("anthropic", w + " [[fake:529]]")
    expect_err("anthropic", status, "upstream", ["529", "overloaded"])
    check(len(calls("anthropic", w)) == 1 + RETRIES, "529 retries")


def test_anthropic_never_retried():
    for d, code in (("413", "upstream"), ("404", "no-model"),
                    ("overflow", "upstream")):
        w = tag()
        text, status = ask("anthropic", "%s [[fake:%s]]" % (w, d))
        expect_err("anthropic", status, code)
        check(len(calls("anthropic", w)) == 1, d + " retried")


def test_anthropic_refusal():
    w = tag()
    text, status = ask("anthropic", w + " [[fake:refusal]]")
    check(OK_RE.match(status) and status.endswith(" finish=REFUSAL"),
          status)


# ---- several providers ---------------------------------------------

def _models(c):
    body, status = c.ask("LIST-MODELS")
    return [re.sub(r"^\d+\. ", "", ln).replace(" (current)", "")
            for ln in body], status


def test_models_of_every_provider():
    c = D.client()
    try:
        names, status = _models(c)
    finally:
        c.close()
    check(status.startswith(". OK %d models, current " % len(names)) and
          ";" not in status, status)
    want = sorted(
        ["gemini/" + m for m in (
            "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite",
            "gemini-2.0-flash", "gemini-2.0-flash-001",
            "gemini-2.0-flash-lite", "gemma-3-27b-it")] +
        ["openai/" + m for m in (
            "gpt-4o", "gpt-4o-mini", "llama3.2:latest",
            "qwen2.5-7b-instruct-q4_k_m.gguf",
            "meta-llama/Llama-3.1-8B-Instruct")] +
        ["anthropic/" + m for m in (
            "claude-sonnet-4-5-20250929", "claude-sonnet-4-5",
            "claude-opus-4-1-20250805", "claude-3-5-haiku-20241022",
            "claude-3-haiku-20240307")] +
        ["local/llama3.2:latest", "local/gpt-4o"])
    check(names == want, "models %r" % names)
    pages = [r for r in FK["anthropic"].requests()
             if r["path"] == "/v1/models"]
    check(len(pages) >= 3 and pages[-1]["query"].get("after_id") ==
          "claude-3-5-haiku-20241022", "anthropic paging %r" %
          [p["query"] for p in pages[-3:]])


def test_bare_names_and_restriction():
    c = D.client()
    try:
        _, status = c.ask("CHANGE-MODEL claude-3-haiku-20240307")
        check(status == ". OK model anthropic/claude-3-haiku-20240307",
              status)
        _, status = c.ask("CHANGE-MODEL gpt-4o")
        check(status.startswith(". ERR bad-argument"), "a name two "
              "providers have was taken: " + status)
        _, status = c.ask("CHANGE-MODEL local/gpt-4o-mini")
        check(status.startswith(". ERR bad-argument"), "a model outside "
              "\"models\" was taken: " + status)
    finally:
        c.close()


def test_change_model_keeps_context_across_apis():
    c = D.client()
    try:
        c.ask("NEW")
        w = tag()
        prev = None
        n = 1
        for api in ("gemini", "openai", "anthropic", "local", "gemini"):
            _, status = c.ask("CHANGE-MODEL " + MODEL[api])
            check(status == ". OK model " + MODEL[api], status)
            body, status = c.ask("ASK %s-%d [[fake:context]]" % (w, n))
            check(OK_RE.match(status), "%s: %s" % (api, status))
            m = ECHO_RE.match(body[0])
            check(m and int(m.group(2)) == 2 * n - 1, "%s: %r" % (
                api, body[0]))
            if prev is not None:
                # The last answer comes back in the API's own role.
                role = "model" if api == "gemini" else "assistant"
                check("%s: %s" % (role, prev) in body, "%s: roles %r" % (
                    api, body))
            prev = body[0]
            n += 1
    finally:
        c.close()


def test_one_provider_down_keeps_the_others():
    f = harness.FakeUpstream(kind="openai", key=KEYS["openai"])
    provs = (block("gemini", "gemini", FK["gemini"].url) +
             block("openai", "openai", f.url) +
             block("anthropic", "anthropic", FK["anthropic"].url, extra=
                   '\tmodels "claude-3-haiku-20240307"\n'))
    d = harness.Daemon(providers=provs, prefork=1, keys={
        "openai.key": "sk-wrong", "anthropic.key": KEYS["anthropic"]})
    try:
        c = d.client()
        names, status = _models(c)
        check(status.startswith(". OK ") and "provider openai failed" in
              status and "401" in status, status)
        check("anthropic/claude-3-haiku-20240307" in names and
              "gemini/gemini-2.0-flash" in names and
              not [n for n in names if n.startswith("openai/")] and
              len([n for n in names if n.startswith("anthropic/")]) == 1,
              "names %r" % names)
        out = d.ctl("show", "models").stdout
        check("gemini/gemini-2.0-flash input 1048576 output 8192" in out
              and "provider openai failed" in out.splitlines()[-1],
              "show models: %r" % out[-300:])
        _, status = c.ask("CHANGE-MODEL anthropic/claude-sonnet-4-5")
        check(status.startswith(". ERR bad-argument"), status)
        _, status = c.ask("CHANGE-MODEL openai/gpt-4o")
        check(status.startswith(". ERR"), status)
        c.close()
        w = tag()
        c = d.client()
        body, status = c.ask("ASK " + w)
        check(OK_RE.match(status) and status.split()[2] ==
              "model=gemini/gemini-2.0-flash", status)
        c.close()
    finally:
        d.stop()
        f.stop()


def test_fallback_before_any_byte_only():
    provs = (block("gemini", "gemini", FK["gemini"].url, extra=
                   '\tfallback "anthropic/claude-3-haiku-20240307"\n') +
             block("anthropic", "anthropic", FK["anthropic"].url))
    d = harness.Daemon(providers=provs, prefork=1, keys={
        "anthropic.key": KEYS["anthropic"]})
    try:
        # Gemini busy to the end: Anthropic answers, and says so.
        w = tag()
        c = d.client()
        body, status = c.ask("ASK %s [[fake:429-retryinfo:9:0.1s]]" % w)
        c.close()
        m = OK_RE.match(status)
        check(m and m.group(1) == "anthropic/claude-3-haiku-20240307",
              status)
        check(body and body[0].startswith("Echo: " + w), body)
        check(len(calls("gemini", w)) == 1 + RETRIES and
              len(calls("anthropic", w)) == 1, "calls %d %d" % (
                  len(calls("gemini", w)), len(calls("anthropic", w))))
        # Not after bytes of the answer: the error stands.
        w = tag()
        c = d.client()
        body, status = c.ask("ASK %s [[fake:error-midstream]]" % w)
        c.close()
        expect_err("gemini", status, "upstream", ["503"])
        check(len(calls("anthropic", w)) == 0, "fell back after text")
        # Not for errors that are not about load.
        w = tag()
        c = d.client()
        body, status = c.ask("ASK %s [[fake:overflow]]" % w)
        c.close()
        expect_err("gemini", status, "upstream", ["400"])
        check(len(calls("anthropic", w)) == 0, "fell back on a 400")
    finally:
        d.stop()


def test_hang_times_out_everywhere():
    provs = "".join(block(a, a, FK[a].url).replace(
        "timeout 20", "timeout 2").replace("retries %d" % RETRIES,
                                           "retries 0")
        for a in ("openai", "anthropic"))
    d = harness.Daemon(providers=provs, prefork=1, keys={
        "openai.key": KEYS["openai"], "anthropic.key": KEYS["anthropic"]})
    try:
        for api in ("openai", "anthropic"):
            for how in ("", ":noheaders"):
                t0 = time.monotonic()
                text, status = ask(api, "%s [[fake:hang%s]]" % (tag(), how),
                                   daemon=d)
                expect_err(api, status, "upstream-timeout")
                check(time.monotonic() - t0 < 10, "took too long")
    finally:
        d.stop()
