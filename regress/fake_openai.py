#!/usr/bin/env python3
"""fake_openai.py: an offline imitation of an OpenAI-compatible chat
completions server (OpenAI, and the ways Ollama, llama.cpp's server and
vLLM differ from it).

Usage:
    fake_openai.py [--host 127.0.0.1|::1] [--port 0] [--port-file F]
                   [--key K] [--log F] [--input-limit N] [--verbose]

Point a provider of type openai at http://127.0.0.1:PORT/v1.  With a
key (default "fake-key"), requests need "Authorization: Bearer KEY"
(401 invalid_api_key otherwise); --key "" wants none, as a local server.

Endpoints: GET /v1/models ({"object":"list","data":[...]}, with
embedding, speech, image and moderation models to be filtered out and
llama.cpp's "meta" and vLLM's "max_model_len" on some), POST
/v1/chat/completions with "stream": true (a non-streamed request is
refused: bridged never sends one).  Test helpers without a key: GET
/_fake/stats, POST /_fake/reset, POST /_fake/config (fake_common.py).

The answer is fake_common.py's Echo.  The stream: a first chunk with
delta.role, content chunks, a chunk with finish_reason "stop" and an
empty delta, with stream_options.include_usage a last chunk with
"choices": [] and usage, then "data: [DONE]".  Events are LF framed.

Directives [[fake:NAME]] or [[fake:NAME:ARG]] in the last user message
(fake_common.py has the framing and write ones: crlf lf cr mixed split
drip utf8split burst interval slow slowheaders chunked length close
reset cut hang html200, and the content ones: cjk emoji big repeat context
system):
  thought          reasoning first, as delta.reasoning_content
                   (llama.cpp, vLLM) and delta.reasoning (Ollama)
  nofinish         no finish_reason and no [DONE]: a clean close
  nodone           finish_reason but no [DONE] (some servers)
  maxtokens        finish_reason "length"
  content-filter   finish_reason "content_filter"
  nousage          no usage chunk even if asked
  nullchoices      the usage chunk has "choices": null
  badjson          an event that is not JSON in the middle
  error-midstream[:llamacpp|:bare]  after some text, an error and
                   [DONE]: vLLM's data: {"error":{...}} (default),
                   llama.cpp's "error: {...}" field, or a bare
                   {"object":"error",...} chunk
  error-first      an error chunk (503 overloaded) before any text
  429-retryafter[:N[:S]]  429 rate_limit_exceeded with Retry-After
                   (N times, default 1; S default 1)
  429-ms[:N[:MS]]  429 with retry-after-ms only
  429-quota        429 insufficient_quota (always; not worth a retry)
  503[:N] 500[:N] 504[:N]  N times then success; without N always
  overflow         400 context_length_exceeded
  404              404 model_not_found
  html502          a 502 HTML page from a proxy
"""

import json
import sys
import time
import uuid

import fake_common as fc
from fake_common import arg

MODELS = [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741,
     "owned_by": "system"},
    {"id": "gpt-4o", "object": "model", "created": 1715367049,
     "owned_by": "system"},
    {"id": "text-embedding-3-small", "object": "model",
     "created": 1705948997, "owned_by": "system"},
    {"id": "whisper-1", "object": "model", "created": 1677532384,
     "owned_by": "openai-internal"},
    {"id": "tts-1-hd", "object": "model", "created": 1699046015,
     "owned_by": "system"},
    {"id": "dall-e-3", "object": "model", "created": 1698785189,
     "owned_by": "system"},
    {"id": "omni-moderation-latest", "object": "model",
     "created": 1731689265, "owned_by": "system"},
    {"id": "llama3.2:latest", "object": "model", "created": 1733000000,
     "owned_by": "library"},
    {"id": "nomic-embed-text:latest", "object": "model",
     "created": 1733000001, "owned_by": "library"},
    {"id": "qwen2.5-7b-instruct-q4_k_m.gguf", "object": "model",
     "created": 1733000002, "owned_by": "llamacpp",
     "meta": {"vocab_type": 2, "n_vocab": 152064, "n_ctx_train": 32768,
              "n_embd": 3584, "n_params": 7615616512,
              "size": 4677120000}},
    {"id": "meta-llama/Llama-3.1-8B-Instruct", "object": "model",
     "created": 1733000003, "owned_by": "vllm", "root":
     "meta-llama/Llama-3.1-8B-Instruct", "parent": None,
     "max_model_len": 131072, "permission": [{"id": "modelperm-1"}]},
]
def err(message, etype, code=None, param=None):
    return {"error": {"message": message, "type": etype, "param": param,
                      "code": code}}


class Handler(fc.Handler):
    API = "openai"

    def error(self, status, message, etype, code=None, param=None,
              extra=None):
        self.reply_json(status, err(message, etype, code, param),
                        extra=extra, indent=2)

    def check_key(self):
        want = self.server.state.key
        if not want:
            return True
        got = self.headers.get("Authorization", "")
        if got == "Bearer " + want:
            return True
        if got == "":
            self.error(401, "You didn't provide an API key. You need to "
                       "provide your API key in an Authorization header "
                       "using Bearer auth (i.e. Authorization: Bearer "
                       "YOUR_KEY).", "invalid_request_error")
        else:
            shown = got[7:][:3] + "*" * 8 + got[-4:]
            self.error(401, "Incorrect API key provided: %s. You can find "
                       "your API key at https://platform.openai.com/"
                       "account/api-keys." % shown,
                       "invalid_request_error", "invalid_api_key")
        return False

    def find_model(self, name):
        with fc.LOCK:
            for m in self.server.state.models:
                if m.get("id") == name:
                    return dict(m)
        return None

    def do_GET(self):
        self.begin()
        p = self.url.path
        if p.startswith("/_fake/"):
            return self.helper(p, b"")
        if p not in ("/v1/models", "/v1/models/"):
            return self.error(404, "Invalid URL (GET %s)" % p,
                              "invalid_request_error")
        if not self.check_key():
            return
        with fc.LOCK:
            data = list(self.server.state.models)
        self.reply_json(200, {"object": "list", "data": data})

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
        if p != "/v1/chat/completions":
            return self.error(404, "Invalid URL (POST %s)" % p,
                              "invalid_request_error")
        if not self.check_key():
            return
        if body is None:
            return self.error(400, "We could not parse the JSON body of "
                              "your request.", "invalid_request_error")
        why = self.validate(body)
        if why is not None:
            return self.error(400, why, "invalid_request_error")
        name = body["model"]
        if self.find_model(name) is None:
            return self.error(404, "The model `%s` does not exist or you "
                              "do not have access to it." % name,
                              "invalid_request_error", "model_not_found")
        turns = [(m["role"], m["content"]) for m in body["messages"]
                 if m["role"] != "system"]
        system = "".join(m["content"] for m in body["messages"]
                         if m["role"] == "system")
        plan = fc.Plan(name, turns, system)
        self.log_answer(plan)
        if self.fail_first(plan):
            return
        inc = body.get("stream_options", {}).get("include_usage") is True
        self.stream(plan, self.events(plan, inc))

    def validate(self, body):
        """Check a chat completion request as the real API does."""
        if not isinstance(body, dict):
            return "Invalid type for 'body': expected an object."
        if not isinstance(body.get("model"), str):
            return "you must provide a model parameter"
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return "[] is too short - 'messages'"
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in (
                    "system", "user", "assistant", "developer"):
                return "Invalid value for 'messages[%d].role'." % i
            if not isinstance(m.get("content"), str):
                return "Invalid type for 'messages[%d].content'." % i
        if body.get("stream") is not True:
            return "this fake serves streams only"
        so = body.get("stream_options")
        if so is not None and not isinstance(so, dict):
            return "Invalid type for 'stream_options'."
        t = body.get("temperature")
        if t is not None and (not isinstance(t, (int, float)) or
                              not 0 <= t <= 2):
            return "Invalid 'temperature': must be between 0 and 2."
        mt = body.get("max_tokens")
        if mt is not None and (not isinstance(mt, int) or mt < 1):
            return "Invalid 'max_tokens': integer below minimum value."
        return None

    def fail_first(self, plan):
        """Answer the error directives; True when an error was sent."""
        d = plan.d
        limit = self.server.state.input_limit or 128000
        if "429-quota" in d:
            self.error(429, "You exceeded your current quota, please "
                       "check your plan and billing details.",
                       "insufficient_quota", "insufficient_quota")
            return True
        if "429-retryafter" in d and self.fail_count(plan,
                                                     "429-retryafter"):
            self.error(429, "Rate limit reached for requests",
                       "requests", "rate_limit_exceeded", extra={
                           "Retry-After": arg(d, "429-retryafter", 1, "1"),
                           "x-ratelimit-remaining-requests": "0"})
            return True
        if "429-ms" in d and self.fail_count(plan, "429-ms"):
            self.error(429, "Rate limit reached for tokens", "tokens",
                       "rate_limit_exceeded", extra={
                           "retry-after-ms": arg(d, "429-ms", 1, "300")})
            return True
        for code, etype, msg in (
                (503, "server_error", "The server is overloaded or not "
                 "ready yet."),
                (500, "server_error", "The server had an error while "
                 "processing your request. Sorry about that!"),
                (504, "server_error", "Gateway timeout.")):
            c = str(code)
            if c in d and self.fail_always(plan, c):
                self.error(code, msg, etype)
                return True
        if "html502" in d:
            self.reply(502, fc.HTML502, "text/html")
            return True
        if "404" in d:
            self.error(404, "The model `%s` does not exist or you do not "
                       "have access to it." % plan.model,
                       "invalid_request_error", "model_not_found")
            return True
        if "overflow" in d or plan.prompt_tokens > limit:
            n = plan.prompt_tokens + (limit if plan.prompt_tokens <= limit
                                      else 0)
            self.error(400, "This model's maximum context length is %d "
                       "tokens. However, your messages resulted in %d "
                       "tokens. Please reduce the length of the messages."
                       % (limit, n), "invalid_request_error",
                       "context_length_exceeded", "messages")
            return True
        return False

    def events(self, plan, include_usage):
        d = plan.d
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())

        def chunk(delta, finish=None, choices=True):
            c = {"id": cid, "object": "chat.completion.chunk",
                 "created": created, "model": plan.model,
                 "system_fingerprint": "fp_fake"}
            c["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}] if choices else []
            return ["data: " + json.dumps(c, ensure_ascii=False)]

        evs = [chunk({"role": "assistant", "content": ""})]
        if "thought" in d:
            evs.append(chunk({"reasoning_content": fc.THOUGHTS[0]}))
            evs.append(chunk({"reasoning": fc.THOUGHTS[1]}))
        for p in plan.pieces:
            evs.append(chunk({"content": p}))
        if "error-first" in d and self.fail_count(plan, "error-first"):
            evs = [chunk({"role": "assistant", "content": ""}),
                   ["data: " + json.dumps(err(
                       "The server is overloaded or not ready yet.",
                       "server_error", 503))], ["data: [DONE]"]]
            return evs
        finish = None
        if "maxtokens" in d:
            finish = "length"
        elif "content-filter" in d:
            finish = "content_filter"
        elif "nofinish" not in d:
            finish = "stop"
        if finish is not None:
            evs.append(chunk({}, finish))
        if include_usage and "nousage" not in d:
            n = fc.tokens(plan.answer)
            c = chunk({}, choices=False)
            obj = json.loads(c[0][6:])
            obj["choices"] = None if "nullchoices" in d else []
            obj["usage"] = {"prompt_tokens": plan.prompt_tokens,
                            "completion_tokens": n,
                            "total_tokens": plan.prompt_tokens + n}
            evs.append(["data: " + json.dumps(obj)])
        if "nofinish" not in d and "nodone" not in d:
            evs.append(["data: [DONE]"])
        if "badjson" in d and len(evs) >= 2:
            k = len(evs) // 2
            evs.insert(k, ['data: {"choices": [{"delta": {"content": '
                           '"broken'])
        if "error-midstream" in d:
            keep = max(2, len(evs) // 2)
            evs = evs[:keep]
            how = arg(d, "error-midstream", 0, "")
            e = {"code": 503, "message": "The server is overloaded",
                 "type": "unavailable_error"}
            if how == "llamacpp":
                evs.append(["error: " + json.dumps(e)])
            elif how == "bare":
                evs.append(["data: " + json.dumps(dict(
                    e, object="error"))])
            else:
                evs.append(["data: " + json.dumps({"error": e})])
            evs.append(["data: [DONE]"])
        return evs


if __name__ == "__main__":
    sys.exit(fc.main("openai", Handler, MODELS, 1000, "fake-key"))
