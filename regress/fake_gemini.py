#!/usr/bin/env python3
"""fake_gemini.py: an offline imitation of the Gemini REST API v1beta.

Usage:
    fake_gemini.py [--host 127.0.0.1|::1] [--port 0] [--port-file F]
                   [--key K] [--log F] [--page-size N] [--input-limit N]
                   [--last-token absent|empty] [--verbose]

Serves HTTP/1.1 (plain, no TLS) on the given address; point a provider
at http://127.0.0.1:PORT/v1beta.  --port 0 picks a free port, written to
--port-file (atomically) once the socket listens.  SIGTERM or SIGINT
stops it cleanly.

Endpoints (all need the key, as x-goog-api-key or ?key=; default key
"fake-key"): GET /v1beta/models?pageSize=&pageToken= (paged, at most
--page-size per page, default 8, so the default 20 models span 3
pages), GET /v1beta/models/M, POST /v1beta/models/M:generateContent,
:streamGenerateContent?alt=sse, :countTokens.  Test helpers without a
key: GET /_fake/stats, POST /_fake/reset, POST /_fake/config (JSON:
pageSize, lastToken "absent"|"empty", inputLimit, models, addModels).

The answer is deterministic:
    Echo: <prompt, directives removed> [turns=T system=yes|no]
where T is the number of entries in "contents" and the prompt is the
last part of the last user content (a client may merge turns of one
role into parts of one content: the last part is the prompt).
usageMetadata carries running totals: promptTokenCount = sum over
every text sent (contents and systemInstruction) of ceil(bytes/4);
candidatesTokenCount = ceil(bytes of answer text so far / 4).  The
normal stream has at least 3 events, the last one with finishReason
STOP.

Directives in the prompt choose a behaviour; several combine.  Beware:
a summary request that quotes old prompts quotes their directives.
[[fake:NAME]] or [[fake:NAME:ARG:ARG]]:
  event framing:   crlf (default)  lf  cr  mixed (all in one stream)
  write pattern:   split (1-7 byte writes)  drip[:MS] (1 byte per MS,
                   default 100)  utf8split (writes split inside every
                   multi-byte character and CRLF)  burst (one write)
                   interval:MS (between events)  slow:MS (after the
                   headers, before the first event)  slowheaders:MS
  body framing:    chunked (default; named: chunk boundaries off the
                   event boundaries)  length  close
  content:         cjk  emoji  big (about 5 MB, one event over 64 KiB)
                   repeat:N (the answer N times, one a line)  context (every part
                   of every turn, "role: text")  system (shows the
                   system instruction)  thought (thought parts first,
                   to be dropped)  emptyfinal (a last event with text
                   "" and STOP)
  stream endings:  finish-every  nofinish  reset  cut  badjson
                   error-midstream[:multiline]  blocked[:REASON]
                   safety  maxtokens  nousage  hang[:noheaders]
                   html200 (an HTML page with status 200)
  HTTP errors:     429-retryinfo[:N[:DELAY]] (N times, default 1, then
                   success; DELAY default 0.2s)  429-retryafter[:N[:S]]
                   (default 1 time, Retry-After 1)  429-perday (always)
                   503[:N] 500[:N] 504[:N] (N times then success;
                   without N always)  overflow  html502  404
"Fail N times" counters are keyed by directive, model and prompt, so a
retry sees the next state: use a distinct prompt per test (or POST
/_fake/reset).  Every request appends one JSON line to --log (method,
path, query, headers that matter, parsed body, status, directives,
answer_len and answer_sha256 of the answer meant to be sent).
"""

import argparse
import base64
import hashlib
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import fake_common as fc
from fake_common import (CJK_TEXT, DIRECTIVE, EMOJI_TEXT, LOCK, STOP, arg,
                         directives, tokens)

OVERLOADED = "The model is overloaded. Please try again later."
QUOTA_MSG = ("You exceeded your current quota, please check your plan and "
             "billing details. For more information on this error, head "
             "to: https://ai.google.dev/gemini-api/docs/rate-limits.")
NOKEY_MSG = ("Method doesn't allow unregistered callers (callers without "
             "established identity). Please use API Key or other form of "
             "API consumer identity to call this API.")
BADKEY_MSG = "API key not valid. Please pass a valid API key."
HTML502 = (b"<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n"
           b"<title>Error 502 (Server Error)!!1</title>\n"
           b"<p><b>502.</b> <ins>That's an error.</ins>\n"
           b"<p>The server encountered a temporary error and could not "
           b"complete your request.<p>Please try again in 30 seconds. "
           b"<ins>That's all we know.</ins>\n")


def model(name, display, inp, out, methods, **extra):
    m = {
        "name": "models/" + name,
        "version": extra.pop("version", "001"),
        "displayName": display,
        "description": extra.pop("description", display + " model"),
        "inputTokenLimit": inp,
        "outputTokenLimit": out,
        "supportedGenerationMethods": methods,
    }
    m.update(extra)
    return m


GEN = ["generateContent", "countTokens", "createCachedContent",
       "batchGenerateContent"]
DEFAULT_MODELS = [
    model("embedding-001", "Embedding 001", 2048, 1,
          ["embedContent"]),
    model("text-embedding-004", "Text Embedding 004", 2048, 1,
          ["embedContent"], version="004"),
    model("gemini-2.5-pro", "Gemini 2.5 Pro", 1048576, 65536, GEN,
          version="2.5", temperature=1, topP=0.95, topK=64,
          maxTemperature=2, thinking=True),
    model("gemini-2.5-flash-preview-tts", "Gemini 2.5 Flash Preview TTS",
          8192, 16384, ["countTokens", "generateContent"],
          version="gemini-2.5-flash-exp-tts-2025-05-19", temperature=1,
          topP=0.95, topK=64, maxTemperature=2),
    model("gemini-2.5-flash", "Gemini 2.5 Flash", 1048576, 65536, GEN,
          version="2.5", temperature=1, topP=0.95, topK=64,
          maxTemperature=2, thinking=True),
    model("veo-3.0-generate-001", "Veo 3", 480, 8192,
          ["predictLongRunning"], version="3.0"),
    model("gemini-2.0-flash", "Gemini 2.0 Flash", 1048576, 8192, GEN,
          version="2.0", temperature=1, topP=0.95, topK=40,
          maxTemperature=2),
    model("imagen-4.0-generate-001", "Imagen 4", 480, 8192, ["predict"],
          version="4.0"),
    model("gemini-2.5-flash-image", "Nano Banana", 32768, 32768,
          ["generateContent", "countTokens", "batchGenerateContent"],
          version="2.0", temperature=1, topP=0.95, topK=64,
          maxTemperature=2),
    model("gemini-2.0-flash-001", "Gemini 2.0 Flash 001", 1048576, 8192,
          GEN, temperature=1, topP=0.95, topK=40, maxTemperature=2,
          futureField={"nested": [1, "two", {"three": None}]}),
    model("gemini-2.5-flash-native-audio-preview-09-2025",
          "Gemini 2.5 Flash Native Audio", 131072, 8192,
          ["countTokens", "bidiGenerateContent"], temperature=1,
          topP=0.95, topK=64, maxTemperature=2, thinking=True),
    model("gemini-2.0-flash-lite", "Gemini 2.0 Flash-Lite", 1048576, 8192,
          GEN, temperature=1, topP=0.95, topK=40, maxTemperature=2),
    model("aqa", "Model that performs Attributed Question Answering.",
          7168, 1024, ["generateAnswer"], temperature=0.2, topP=1,
          topK=40),
    model("gemini-2.0-flash-preview-image-generation",
          "Gemini 2.0 Flash Preview Image Generation", 32768, 8192,
          ["generateContent", "countTokens", "batchGenerateContent"],
          temperature=1, topP=0.95, topK=40, maxTemperature=2),
    model("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite", 1048576,
          65536, GEN, temperature=1, topP=0.95, topK=64,
          maxTemperature=2, thinking=True),
    model("gemini-live-2.5-flash-preview", "Gemini Live 2.5 Flash Preview",
          1048576, 8192, ["bidiGenerateContent", "countTokens"],
          temperature=1, topP=0.95, topK=64, maxTemperature=2),
    model("gemini-2.5-pro-preview-tts", "Gemini 2.5 Pro Preview TTS",
          8192, 16384, ["countTokens", "generateContent"],
          temperature=1, topP=0.95, topK=64, maxTemperature=2),
    model("gemma-3-27b-it", "Gemma 3 27B", 131072, 8192,
          ["generateContent", "countTokens"], temperature=1, topP=0.95,
          topK=64),
    model("gemini-embedding-001", "Gemini Embedding 001", 2048, 1,
          ["embedContent", "countTextTokens", "countTokens"]),
    model("imagen-3.0-generate-002", "Imagen 3.0", 480, 8192, ["predict"],
          version="002"),
]


class State:
    """Everything mutable the handlers share; guarded by LOCK."""

    def __init__(self, args):
        self.key = args.key
        self.page_size = args.page_size
        self.last_token = args.last_token
        self.input_limit = args.input_limit
        self.pace = args.pace / 1000.0
        self.models = json.loads(json.dumps(DEFAULT_MODELS))
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
        """Return how many times this key was seen before, and bump it."""
        with LOCK:
            n = self.failures.get(key, 0)
            self.failures[key] = n + 1
            return n

    def find_model(self, name):
        with LOCK:
            for m in self.models:
                if m.get("name") == "models/" + name:
                    return dict(m)
        return None


def err_body(code, status, message, details=None):
    e = {"code": code, "message": message, "status": status}
    if details is not None:
        e["details"] = details
    # Google pretty-prints its error bodies.
    return (json.dumps({"error": e}, indent=2, ensure_ascii=False) +
            "\n").encode("utf-8")


def err_429(model, perday, delay):
    qid = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if perday
           else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    metric = ("generativelanguage.googleapis.com/"
              "generate_content_free_tier_requests")
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure",
         "violations": [{"quotaMetric": metric, "quotaId": qid,
                         "quotaDimensions": {"location": "global",
                                             "model": model},
                         "quotaValue": "200" if perday else "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help",
         "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/"
                           "rate-limits"}]},
    ]
    if delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": delay})
    return err_body(429, "RESOURCE_EXHAUSTED", QUOTA_MSG, details)


def texts_of(content):
    out = []
    if not isinstance(content, dict):
        return out
    parts = content.get("parts")
    if isinstance(parts, list):
        for p in parts:
            if isinstance(p, dict) and isinstance(p.get("text"), str):
                out.append(p["text"])
    return out


def validate(body):
    """Check a GenerateContentRequest as the real API does."""
    if not isinstance(body, dict):
        return "Invalid JSON payload received. Expected an object."
    contents = body.get("contents")
    if contents is None or contents == []:
        return "* GenerateContentRequest.contents: contents is not " \
               "specified\n"
    if not isinstance(contents, list):
        return "Invalid JSON payload received. Unknown name \"contents\": " \
               "Proto field is not repeating, cannot start list."
    for i, c in enumerate(contents):
        if not isinstance(c, dict):
            return "Invalid value at 'contents[%d]'" % i
        role = c.get("role", "user")
        if role not in ("user", "model"):
            return "Please use a valid role: user, model."
        parts = c.get("parts")
        if not isinstance(parts, list) or len(parts) == 0:
            return ("* GenerateContentRequest.contents[%d].parts: "
                    "contents.parts must not be empty.\n" % i)
        for p in parts:
            if not isinstance(p, dict) or ("text" in p and
                                           not isinstance(p["text"], str)):
                return "Invalid value at 'contents[%d].parts'" % i
            if p.get("text") == "":
                return ("Unable to submit request because it has an empty "
                        "text parameter. Add a value to the parameter and "
                        "try again. Learn more: https://cloud.google.com/"
                        "vertex-ai/generative-ai/docs/model-reference/"
                        "gemini")
    si = body.get("systemInstruction")
    if si is not None and not isinstance(si, dict):
        return "Invalid value at 'system_instruction'"
    if isinstance(si, dict) and "parts" in si and \
            (not isinstance(si["parts"], list) or len(si["parts"]) == 0):
        return ("* GenerateContentRequest.system_instruction.parts: "
                "contents.parts must not be empty.\n")
    return None


class Plan:
    """What one generate request will answer, derived from its body."""

    def __init__(self, state, model, body):
        contents = body["contents"]
        last, lastpart = "", ""
        for c in contents:
            if c.get("role", "user") == "user":
                t = texts_of(c)
                last = "".join(t)
                lastpart = t[-1] if t else ""
        self.last = lastpart
        self.d = directives(lastpart)
        si = body.get("systemInstruction")
        self.system = "".join(texts_of(si)) if si is not None else ""
        self.prompt_tokens = sum(tokens(t) for c in contents
                                 for t in texts_of(c))
        if self.system:
            self.prompt_tokens += tokens(self.system)
        self.model = model
        self.contents = contents
        text = DIRECTIVE.sub("", lastpart).strip()
        ans = "Echo: %s [turns=%d system=%s]" % (
            text, len(contents), "yes" if self.system else "no")
        d = self.d
        if "system" in d:
            ans += "\nsystem: " + self.system
        if "context" in d:
            for c in contents:
                for t in texts_of(c):
                    ans += "\n%s: %s" % (c.get("role", "user"), t)
        if "cjk" in d:
            ans += CJK_TEXT
        if "emoji" in d:
            ans += EMOJI_TEXT
        n = arg(d, "repeat", 0, 1, int)
        if 1 < n <= 100000:
            ans = "\n".join([ans] * n)
        if "big" in d:
            self.pieces = fc.big_pieces(ans)
        else:
            self.pieces = fc.split_answer(ans)
        self.answer = "".join(self.pieces)

class Handler(fc.Handler):
    API = "gemini"
    server_version = "scaffolding"
    sys_version = "on HTTPServer2"

    def version_string(self):
        return "scaffolding on HTTPServer2"

    def base_headers(self, ctype):
        self.send_header("Content-Type", ctype)
        self.send_header("Vary", "Origin")
        self.send_header("Vary", "X-Origin")
        self.send_header("Vary", "Referer")
        self.send_header("X-XSS-Protection", "0")
        self.send_header("X-Frame-Options", "SAMEORIGIN")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Server-Timing", "gfet4t7; dur=%d" %
                         random.randint(100, 900))
        self.send_header("Alt-Svc", 'h3=":443"; ma=2592000')

    def reply(self, code, body, ctype="application/json; charset=UTF-8",
              extra=None):
        self.entry["status"] = code
        if not self.entry["path"].startswith("/_fake/"):
            self.server.state.log(self.entry)
        try:
            self.send_response(code)
            self.base_headers(ctype)
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True

    def error(self, code, status, message, details=None, extra=None):
        self.reply(code, err_body(code, status, message, details),
                   extra=extra)

    def begin(self, body_obj=None):
        u = urlsplit(self.path)
        self.url = u
        self.query = parse_qs(u.query, keep_blank_values=True)
        hdrs = {}
        for h in ("Content-Type", "Content-Length", "Transfer-Encoding",
                  "x-goog-api-key", "x-goog-api-client", "User-Agent",
                  "Accept", "Expect", "Connection"):
            v = self.headers.get(h)
            if v is not None:
                hdrs[h.lower()] = v
        self.entry = {"time": time.time(), "method": self.command,
                      "path": u.path, "query": {k: v[-1] for k, v in
                                                self.query.items()},
                      "headers": hdrs, "body": body_obj}

    def check_key(self):
        k = self.headers.get("x-goog-api-key")
        if k is None and "key" in self.query:
            k = self.query["key"][-1]
        if k is None or k == "":
            self.error(403, "PERMISSION_DENIED", NOKEY_MSG)
            return False
        if k != self.server.state.key:
            self.error(400, "INVALID_ARGUMENT", BADKEY_MSG, [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                 "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                 "metadata": {"service":
                              "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                 "locale": "en-US", "message": BADKEY_MSG}])
            return False
        return True

    def not_found_model(self, name):
        self.error(404, "NOT_FOUND",
                   "models/%s is not found for API version v1beta, or is "
                   "not supported for generateContent. Call ListModels to "
                   "see the list of available models and their supported "
                   "methods." % name)

    # ---- methods -----------------------------------------------------

    def do_GET(self):
        self.begin()
        p = self.url.path
        if p == "/_fake/stats":
            with LOCK:
                body = json.dumps(self.server.state.stats).encode()
            return self.reply(200, body)
        if p.startswith("/_fake/"):
            return self.error(404, "NOT_FOUND", "unknown helper")
        if not p.startswith("/v1beta/models"):
            return self.reply(404, b"<html><body>Not Found</body></html>",
                              "text/html; charset=UTF-8")
        if not self.check_key():
            return
        if p in ("/v1beta/models", "/v1beta/models/"):
            return self.list_models()
        name = p[len("/v1beta/models/"):]
        if ":" in name:
            return self.error(404, "NOT_FOUND", "Method not found.")
        m = self.server.state.find_model(name)
        if m is None:
            return self.error(404, "NOT_FOUND", "models/%s is not found "
                              "for API version v1beta." % name)
        self.reply(200, (json.dumps(m, indent=2) + "\n").encode())

    def do_HEAD(self):
        self.do_GET()

    def do_POST(self):
        self.begin()
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return self.error(400, "INVALID_ARGUMENT", "Bad body framing")
        p = self.url.path
        if p.startswith("/_fake/"):
            return self.helper(p, raw)
        body = None
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
            self.entry["body"] = body
        except (ValueError, UnicodeDecodeError):
            self.entry["body"] = raw[:200].decode("latin-1")
        if not p.startswith("/v1beta/models/"):
            return self.reply(404, b"<html><body>Not Found</body></html>",
                              "text/html; charset=UTF-8")
        if not self.check_key():
            return
        name, _, method = p[len("/v1beta/models/"):].partition(":")
        if method not in ("generateContent", "streamGenerateContent",
                          "countTokens"):
            return self.error(404, "NOT_FOUND", "Method not found.")
        m = self.server.state.find_model(name)
        if m is None or "generateContent" not in \
                m.get("supportedGenerationMethods", []):
            return self.not_found_model(name)
        if body is None:
            return self.error(400, "INVALID_ARGUMENT",
                              "Invalid JSON payload received. Unexpected "
                              "token.\n%s\n^" % raw[:40].decode("latin-1"))
        why = validate(body)
        if why is not None:
            return self.error(400, "INVALID_ARGUMENT", why)
        plan = Plan(self.server.state, name, body)
        self.entry["directives"] = plan.d
        if method == "countTokens":
            return self.reply(200, json.dumps({
                "totalTokens": plan.prompt_tokens,
                "promptTokensDetails": [{"modality": "TEXT",
                                         "tokenCount": plan.prompt_tokens}]
            }, indent=2).encode())
        limit = self.server.state.input_limit or m["inputTokenLimit"]
        if self.fail_first(plan, m, limit):
            return
        self.entry["answer_len"] = len(plan.answer.encode("utf-8"))
        self.entry["answer_sha256"] = hashlib.sha256(
            plan.answer.encode("utf-8")).hexdigest()
        if method == "generateContent":
            return self.generate(plan)
        return self.stream_gemini(plan, self.query.get("alt",
                                                       [""])[-1] == "sse")

    def do_PUT(self):
        self.begin()
        self.error(404, "NOT_FOUND", "Method not found.")

    do_DELETE = do_PUT
    do_PATCH = do_PUT

    def helper(self, p, raw):
        st = self.server.state
        if p == "/_fake/reset":
            with LOCK:
                st.reset()
            return self.reply(200, b"{}\n")
        if p == "/_fake/config":
            try:
                c = json.loads(raw.decode() or "{}")
            except ValueError:
                return self.error(400, "INVALID_ARGUMENT", "bad json")
            with LOCK:
                if "pageSize" in c:
                    st.page_size = max(1, int(c["pageSize"]))
                if "lastToken" in c:
                    st.last_token = c["lastToken"]
                if "inputLimit" in c:
                    st.input_limit = int(c["inputLimit"])
                if "models" in c:
                    st.models = (c["models"] if c["models"] is not None
                                 else json.loads(json.dumps(DEFAULT_MODELS)))
                for m in c.get("addModels", []):
                    st.models.append(m)
            return self.reply(200, b"{}\n")
        return self.error(404, "NOT_FOUND", "unknown helper")

    def list_models(self):
        st = self.server.state
        with LOCK:
            models = list(st.models)
            maxsize = st.page_size
            last_token = st.last_token
        size = maxsize
        q = self.query
        if "pageSize" in q and q["pageSize"][-1] != "":
            try:
                size = int(q["pageSize"][-1])
            except ValueError:
                return self.error(400, "INVALID_ARGUMENT",
                                  "Invalid value at 'page_size' (TYPE_INT32)"
                                  ", \"%s\"" % q["pageSize"][-1])
            if size <= 0:
                size = maxsize
            size = min(size, maxsize, 1000)
        start = 0
        tok = q.get("pageToken", [""])[-1]
        if tok != "":
            try:
                start = int(base64.urlsafe_b64decode(
                    tok.encode() + b"==").decode().split(":")[1])
                if start < 0 or start > len(models):
                    raise ValueError
            except (ValueError, IndexError, UnicodeDecodeError):
                return self.error(400, "INVALID_ARGUMENT",
                                  "Invalid page token.")
        page = models[start:start + size]
        out = {"models": page}
        nxt = start + size
        if nxt < len(models):
            out["nextPageToken"] = base64.urlsafe_b64encode(
                ("models:%d:%08x" % (nxt, random.getrandbits(32))).encode()
            ).decode().rstrip("=")
        elif last_token == "empty":
            out["nextPageToken"] = ""
        self.reply(200, (json.dumps(out, indent=2) + "\n").encode())

    # ---- generation --------------------------------------------------

    def fail_first(self, plan, m, limit):
        """Answer the error directives; True when an error was sent."""
        d, st = plan.d, self.server.state
        key = plan.model + "\0" + plan.last
        if "429-perday" in d:
            self.reply(429, err_429(plan.model, True, "30s"))
            return True
        if "429-retryinfo" in d:
            n = arg(d, "429-retryinfo", 0, 1, int)
            if st.count("429-retryinfo\0" + key) < n:
                delay = arg(d, "429-retryinfo", 1, "0.2s")
                self.reply(429, err_429(plan.model, False, delay))
                return True
        if "429-retryafter" in d:
            n = arg(d, "429-retryafter", 0, 1, int)
            if st.count("429-retryafter\0" + key) < n:
                secs = arg(d, "429-retryafter", 1, "1")
                self.reply(429, err_429(plan.model, False, None),
                           extra={"Retry-After": secs})
                return True
        for code, status, msg in ((503, "UNAVAILABLE", OVERLOADED),
                                  (500, "INTERNAL", "An internal error has "
                                   "occurred. Please retry or report in "
                                   "https://developers.generativeai.google/"
                                   "guide/troubleshooting"),
                                  (504, "DEADLINE_EXCEEDED",
                                   "Deadline expired before operation could "
                                   "complete.")):
            c = str(code)
            if c in d:
                n = arg(d, c, 0, -1, int)
                if n < 0 or st.count(c + "\0" + key) < n:
                    self.error(code, status, msg)
                    return True
        if "html502" in d:
            self.reply(502, HTML502, "text/html; charset=UTF-8")
            return True
        if "404" in d:
            self.not_found_model(plan.model)
            return True
        if "overflow" in d or plan.prompt_tokens > limit:
            n = plan.prompt_tokens
            if n <= limit:
                n += limit
            self.error(400, "INVALID_ARGUMENT",
                       "The input token count (%d) exceeds the maximum "
                       "number of tokens allowed (%d)." % (n, limit))
            return True
        return False

    def gen_responses(self, plan):
        """The list of GenerateContentResponse objects of the answer."""
        d = plan.d
        rid = hashlib.sha1((plan.last + str(time.time())).encode()
                           ).hexdigest()[:22]
        usage = "nousage" not in d
        out = []

        def resp(cand, sofar, thoughts=0):
            r = {}
            if cand is not None:
                r["candidates"] = [cand]
            if usage:
                u = {"promptTokenCount": plan.prompt_tokens,
                     "candidatesTokenCount": tokens(sofar),
                     "totalTokenCount": plan.prompt_tokens + tokens(sofar)
                     + thoughts,
                     "promptTokensDetails": [
                         {"modality": "TEXT",
                          "tokenCount": plan.prompt_tokens}]}
                if thoughts:
                    u["thoughtsTokenCount"] = thoughts
                r["usageMetadata"] = u
            r["modelVersion"] = plan.model
            r["responseId"] = rid
            return r

        if "blocked" in d:
            reason = arg(d, "blocked", 0, "SAFETY")
            r = resp(None, "")
            r["promptFeedback"] = {"blockReason": reason, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                 "probability": "HIGH"}]}
            return [r]
        thoughts = 0
        if "thought" in d:
            for t in ("Thinking about the question. ",
                      "Considering the answer."):
                thoughts += tokens(t)
                out.append(resp({"content": {"parts": [
                    {"text": t, "thought": True}], "role": "model"},
                    "index": 0}, "", thoughts))
        sofar = ""
        n = len(plan.pieces)
        for i, p in enumerate(plan.pieces):
            sofar += p
            c = {"content": {"parts": [{"text": p}], "role": "model"},
                 "index": 0}
            last = i == n - 1
            if "finish-every" in d or (last and not any(
                    k in d for k in ("nofinish", "safety", "maxtokens",
                                     "emptyfinal"))):
                c["finishReason"] = "STOP"
            out.append(resp(c, sofar, thoughts))
        if "emptyfinal" in d and "nofinish" not in d:
            out.append(resp({"content": {"parts": [{"text": ""}],
                                         "role": "model"},
                             "finishReason": "STOP", "index": 0},
                            sofar, thoughts))
        if "safety" in d:
            out.append(resp({"finishReason": "SAFETY", "index": 0,
                             "safetyRatings": [
                                 {"category": "HARM_CATEGORY_HARASSMENT",
                                  "probability": "HIGH", "blocked": True}]},
                            sofar, thoughts))
        if "maxtokens" in d:
            out.append(resp({"content": {"role": "model"},
                             "finishReason": "MAX_TOKENS", "index": 0},
                            sofar, thoughts + 100))
        return out

    def generate(self, plan):
        d = plan.d
        self.server.state.log(dict(self.entry, status=200))
        self.entry["status"] = 200
        if not self.pause(arg(d, "slowheaders", 0, 0, int)):
            return
        if "hang" in d:
            return self.hang(arg(d, "hang", 0, "") != "noheaders")
        rs = self.gen_responses(plan)
        # Merge the stream into one response, as the real API does.
        final = rs[-1]
        if "candidates" in final:
            c = json.loads(json.dumps(final["candidates"][0]))
            text = "".join(p["text"] for r in rs for cand in
                           r.get("candidates", [])
                           for p in cand.get("content", {}).get("parts", [])
                           if not p.get("thought"))
            if "content" in c and "parts" in c["content"]:
                c["content"]["parts"] = [{"text": text}]
            elif text and "maxtokens" in d:
                c["content"] = {"parts": [{"text": text}], "role": "model"}
            final["candidates"] = [c]
        body = (json.dumps(final, indent=2, ensure_ascii=False) +
                "\n").encode("utf-8")
        if not self.pause(arg(d, "slow", 0, 0, int)):
            return
        try:
            self.send_response(200)
            self.base_headers("application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.done(True)
        except OSError:
            self.done(False)

    def events(self, plan, sse):
        d = plan.d
        seps = {"lf": [b"\n\n"], "cr": [b"\r\r"],
                "mixed": [b"\r\n\r\n", b"\n\n", b"\r\n\n"]}
        sep_cycle = [b"\r\n\r\n"]
        for k in ("lf", "cr", "mixed"):
            if k in d:
                sep_cycle = seps[k]
        rs = self.gen_responses(plan)
        evs = []
        for i, r in enumerate(rs):
            js = json.dumps(r, ensure_ascii=False,
                            separators=(", ", ": ")).encode("utf-8")
            if not sse:
                evs.append((b"[" if i == 0 else b"\r\n,") + js)
                continue
            sep = sep_cycle[i % len(sep_cycle)]
            evs.append(b"data: " + js + sep)
        if not sse:
            evs.append(b"]")
            return evs
        if "badjson" in d and len(evs) >= 2:
            k = len(evs) // 2
            evs.insert(k, b'data: {"candidates": [{"content": {"parts": '
                          b'[{"text": "broken\r\n\r\n')
        if "error-midstream" in d:
            keep = max(1, len(evs) // 2)
            evs = evs[:keep]
            e = {"error": {"code": 503, "message": OVERLOADED,
                           "status": "UNAVAILABLE"}}
            if arg(d, "error-midstream", 0, "") == "multiline":
                lines = json.dumps(e, indent=2).split("\n")
                evs.append(b"".join(b"data: " + ln.encode() + b"\r\n"
                                    for ln in lines) + b"\r\n")
            else:
                evs.append(b"data: " + json.dumps(e).encode() + b"\r\n\r\n")
        return evs

    def stream_headers(self):
        self.base_headers("text/event-stream" if self.query.get(
            "alt", [""])[-1] == "sse" else "application/json; charset=UTF-8")
        self.send_header("Content-Disposition", "attachment")

    def stream_gemini(self, plan, sse):
        fc.Handler.stream(self, plan, self.events(plan, sse))


def main():
    ap = argparse.ArgumentParser(description="fake Gemini API v1beta")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--key", default="fake-key")
    ap.add_argument("--log")
    ap.add_argument("--page-size", type=int, default=8)
    ap.add_argument("--input-limit", type=int, default=0)
    ap.add_argument("--last-token", choices=("absent", "empty"),
                    default="absent")
    ap.add_argument("--pace", type=int, default=0, metavar="MS",
                    help="wait MS before each streamed write after the "
                    "first, so a person sees the answer come (make demo)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.page_size < 1:
        ap.error("--page-size must be at least 1")

    if ":" in args.host:
        fc.Server.address_family = socket.AF_INET6
    srv = fc.Server((args.host, args.port), Handler)
    srv.state = State(args)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    if args.verbose:
        sys.stderr.write("fake_gemini: listening on %s port %d\n" %
                         (args.host, port))

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


if __name__ == "__main__":
    sys.exit(main())
