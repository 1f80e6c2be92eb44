#!/usr/bin/env python3
"""fake_anthropic.py: an offline imitation of the Anthropic Messages API.

Usage:
    fake_anthropic.py [--host 127.0.0.1|::1] [--port 0] [--port-file F]
                      [--key K] [--log F] [--page-size N]
                      [--input-limit N] [--verbose]

Point a provider of type anthropic at http://127.0.0.1:PORT/v1.  Every
request needs "x-api-key: KEY" (default "fake-key"; 401
authentication_error otherwise) and "anthropic-version" (400 without).

Endpoints: GET /v1/models?limit=&after_id= (paged by has_more, first_id
and last_id; at most --page-size a page, default 2, so the default 5
models span 3 pages), POST /v1/messages with "stream": true (max_tokens
required, roles user and assistant, content not empty).  Test helpers
without a key: GET /_fake/stats, POST /_fake/reset, POST /_fake/config.

The answer is fake_common.py's Echo, streamed as the API does:
message_start (input usage), content_block_start (an empty text block),
ping, content_block_delta text_delta per piece, content_block_stop,
message_delta (stop_reason end_turn, output usage), message_stop.
Events are "event: TYPE" + "data: JSON", LF framed.

Directives [[fake:NAME]] or [[fake:NAME:ARG]] in the last user message
(fake_common.py has the framing and write ones: crlf lf cr mixed split
drip utf8split burst interval slow slowheaders chunked length close
reset cut hang html200, and the content ones: cjk emoji big repeat context
system):
  thought          a thinking block (thinking_delta, signature_delta)
                   before the text block
  nofinish         no message_delta and no message_stop: a clean close
  maxtokens        stop_reason "max_tokens"
  refusal          stop_reason "refusal"
  nousage          no usage in message_start and message_delta
  badjson          an event whose data is not JSON in the middle
  error-midstream  after some text, event: error overloaded_error
  overloaded-first[:N]  event: error overloaded_error right after
                   message_start, before any text (N times, default 1)
  429-retryafter[:N[:S]]  429 rate_limit_error with retry-after
                   (N times, default 1; S default 1)
  529[:N] 500[:N] 503[:N] 504[:N]  N times then success; without N
                   always (529 is overloaded_error)
  overflow         400 invalid_request_error "prompt is too long"
  404              404 not_found_error for the model
  413              413 request_too_large
  html502          a 502 HTML page from a proxy
"""

import json
import sys
import uuid

import fake_common as fc
from fake_common import arg

MODELS = [
    {"type": "model", "id": "claude-sonnet-4-5-20250929",
     "display_name": "Claude Sonnet 4.5",
     "created_at": "2025-09-29T00:00:00Z"},
    {"type": "model", "id": "claude-sonnet-4-5",
     "display_name": "Claude Sonnet 4.5",
     "created_at": "2025-09-29T00:00:00Z"},
    {"type": "model", "id": "claude-opus-4-1-20250805",
     "display_name": "Claude Opus 4.1",
     "created_at": "2025-08-05T00:00:00Z"},
    {"type": "model", "id": "claude-3-5-haiku-20241022",
     "display_name": "Claude Haiku 3.5",
     "created_at": "2024-10-22T00:00:00Z", "futureField": [1, {"a": None}]},
    {"type": "model", "id": "claude-3-haiku-20240307",
     "display_name": "Claude Haiku 3",
     "created_at": "2024-03-07T00:00:00Z"},
]

ERRORS = {400: "invalid_request_error", 401: "authentication_error",
          403: "permission_error", 404: "not_found_error",
          413: "request_too_large", 429: "rate_limit_error",
          500: "api_error", 503: "api_error", 504: "timeout_error",
          529: "overloaded_error"}


def err(etype, message):
    return {"type": "error", "error": {"type": etype, "message": message},
            "request_id": "req_" + uuid.uuid4().hex[:24]}


def ev(etype, obj):
    return ["event: " + etype, "data: " + json.dumps(obj,
                                                     ensure_ascii=False)]


class Handler(fc.Handler):
    API = "anthropic"

    def error(self, status, message, extra=None):
        self.reply_json(status, err(ERRORS.get(status, "api_error"),
                                    message), extra=extra)

    def check_headers(self):
        k = self.headers.get("x-api-key")
        if k != self.server.state.key:
            self.error(401, "invalid x-api-key")
            return False
        if not self.headers.get("anthropic-version"):
            self.error(400, "anthropic-version: header is required")
            return False
        return True

    def do_GET(self):
        self.begin()
        p = self.url.path
        if p.startswith("/_fake/"):
            return self.helper(p, b"")
        if p not in ("/v1/models", "/v1/models/"):
            return self.error(404, "Not Found")
        if not self.check_headers():
            return
        st = self.server.state
        with fc.LOCK:
            models = list(st.models)
            size = st.page_size
        q = self.query
        try:
            limit = int(q.get("limit", ["20"])[-1])
        except ValueError:
            return self.error(400, "limit: Input should be a valid integer")
        if not 1 <= limit <= 1000:
            return self.error(400, "limit: Input should be less than or "
                              "equal to 1000")
        size = min(size, limit)
        start = 0
        after = q.get("after_id", [""])[-1]
        if after:
            ids = [m["id"] for m in models]
            if after not in ids:
                return self.error(400, "after_id: no such model")
            start = ids.index(after) + 1
        page = models[start:start + size]
        out = {"data": page, "has_more": start + size < len(models),
               "first_id": page[0]["id"] if page else None,
               "last_id": page[-1]["id"] if page else None}
        self.reply_json(200, out)

    def do_POST(self):
        self.begin()
        p = self.url.path
        if p.startswith("/_fake/"):
            try:
                raw = self.read_body()
            except (ValueError, OSError):
                raw = b""
            return self.helper(p, raw)
        body, raw = self.json_body()
        if p != "/v1/messages":
            return self.error(404, "Not Found")
        if not self.check_headers():
            return
        if body is None:
            return self.error(400, "There was an issue with your request: "
                              "the body is not valid JSON")
        why = self.validate(body)
        if why is not None:
            return self.error(400, why)
        name = body["model"]
        with fc.LOCK:
            known = any(m["id"] == name for m in self.server.state.models)
        if not known:
            return self.error(404, "model: %s" % name)
        turns = [(m["role"], m["content"]) for m in body["messages"]]
        plan = fc.Plan(name, turns, body.get("system", ""))
        self.log_answer(plan)
        if self.fail_first(plan):
            return
        self.stream(plan, self.events(plan))

    def validate(self, body):
        """Check a Messages request as the real API does."""
        if not isinstance(body, dict):
            return "Input should be a valid dictionary"
        if not isinstance(body.get("model"), str):
            return "model: Field required"
        mt = body.get("max_tokens")
        if mt is None:
            return "max_tokens: Field required"
        if not isinstance(mt, int) or mt < 1:
            return "max_tokens: Input should be greater than or equal to 1"
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return "messages: at least one message is required"
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in (
                    "user", "assistant"):
                return ("messages.%d.role: Input should be 'user' or "
                        "'assistant'" % i)
            c = m.get("content")
            if not isinstance(c, str):
                return "messages.%d.content: Input should be a string" % i
            if c == "":
                return ("messages.%d: all messages must have non-empty "
                        "content except for the optional final assistant "
                        "message" % i)
        s = body.get("system")
        if s is not None and not isinstance(s, str):
            return "system: Input should be a valid string"
        t = body.get("temperature")
        if t is not None and (not isinstance(t, (int, float)) or
                              not 0 <= t <= 1):
            return "temperature: Input should be less than or equal to 1"
        if body.get("stream") is not True:
            return "this fake serves streams only"
        return None

    def fail_first(self, plan):
        """Answer the error directives; True when an error was sent."""
        d = plan.d
        limit = self.server.state.input_limit or 200000
        if "429-retryafter" in d and self.fail_count(plan,
                                                     "429-retryafter"):
            self.error(429, "Number of request tokens has exceeded your "
                       "per-minute rate limit", extra={
                           "retry-after": arg(d, "429-retryafter", 1, "1")})
            return True
        for code, msg in ((529, "Overloaded"),
                          (500, "Internal server error"),
                          (503, "Service unavailable"),
                          (504, "Request timed out")):
            c = str(code)
            if c in d and self.fail_always(plan, c):
                self.error(code, msg)
                return True
        if "html502" in d:
            self.reply(502, fc.HTML502, "text/html")
            return True
        if "404" in d:
            self.error(404, "model: %s" % plan.model)
            return True
        if "413" in d:
            self.error(413, "Request exceeds the maximum allowed number of "
                       "bytes.")
            return True
        if "overflow" in d or plan.prompt_tokens > limit:
            n = plan.prompt_tokens + (limit if plan.prompt_tokens <= limit
                                      else 0)
            self.error(400, "prompt is too long: %d tokens > %d maximum"
                       % (n, limit))
            return True
        return False

    def events(self, plan):
        d = plan.d
        usage = "nousage" not in d
        mid = "msg_" + uuid.uuid4().hex[:24]
        start = {"type": "message_start", "message": {
            "id": mid, "type": "message", "role": "assistant",
            "model": plan.model, "content": [], "stop_reason": None,
            "stop_sequence": None}}
        if usage:
            start["message"]["usage"] = {
                "input_tokens": plan.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": 1}
        evs = [ev("message_start", start)]
        if "overloaded-first" in d and self.fail_count(plan,
                                                       "overloaded-first"):
            evs.append(ev("error", err("overloaded_error", "Overloaded")))
            return evs
        idx = 0
        if "thought" in d:
            evs.append(ev("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "",
                                  "signature": ""}}))
            for t in fc.THOUGHTS:
                evs.append(ev("content_block_delta", {
                    "type": "content_block_delta", "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": t}}))
            evs.append(ev("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta",
                          "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}}))
            evs.append(ev("content_block_stop", {
                "type": "content_block_stop", "index": 0}))
            idx = 1
        evs.append(ev("content_block_start", {
            "type": "content_block_start", "index": idx,
            "content_block": {"type": "text", "text": ""}}))
        evs.append(ev("ping", {"type": "ping"}))
        for p in plan.pieces:
            evs.append(ev("content_block_delta", {
                "type": "content_block_delta", "index": idx,
                "delta": {"type": "text_delta", "text": p}}))
        evs.append(ev("content_block_stop", {
            "type": "content_block_stop", "index": idx}))
        if "nofinish" not in d:
            stop = "end_turn"
            if "maxtokens" in d:
                stop = "max_tokens"
            elif "refusal" in d:
                stop = "refusal"
            md = {"type": "message_delta", "delta": {
                "stop_reason": stop, "stop_sequence": None}}
            if usage:
                md["usage"] = {"output_tokens": fc.tokens(plan.answer)}
            evs.append(ev("message_delta", md))
            evs.append(ev("message_stop", {"type": "message_stop"}))
        if "badjson" in d and len(evs) >= 2:
            k = len(evs) // 2
            evs.insert(k, ["event: content_block_delta",
                           'data: {"type": "content_block_delta", "delta": '
                           '{"type": "text_delta", "text": "broken'])
        if "error-midstream" in d:
            keep = max(4, len(evs) // 2)
            evs = evs[:keep]
            evs.append(ev("error", err("overloaded_error", "Overloaded")))
        return evs


if __name__ == "__main__":
    sys.exit(fc.main("anthropic", Handler, MODELS, 2, "fake-key"))
