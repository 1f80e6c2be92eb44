#!/usr/bin/env python3
"""
seeds.py: write the hand-made seeds of regress/fuzz/corpus and the
dictionaries of regress/fuzz/dict. The seeds of the scripted targets
(fuzz_proto, fuzz_worker) follow the byte layout their harnesses read
(fuzz_common.c: u8, u16 and u32 little-endian, a run of bytes after
its length: u8 when the limit is at most 255, else u16).
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def u8(v):
    return bytes([v & 0xff])


def u16(v):
    return struct.pack("<H", v)


def u64(v):
    return struct.pack("<Q", v)


def run(b, limit):
    """A run of bytes as fin_bytes() reads it."""
    if isinstance(b, str):
        b = b.encode()
    return (u16(len(b)) if limit > 255 else u8(len(b))) + b


def seed(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def dictionary(target, words):
    os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
    with open(os.path.join(HERE, "dict", target + ".dict"), "w") as f:
        f.write("# %s: words libFuzzer splices into inputs\n" % target)
        for w in words:
            out = ""
            for c in w.encode():
                ch = chr(c)
                out += ch if 32 <= c < 127 and ch not in '\\"' else \
                    "\\x%02x" % c
            f.write('"%s"\n' % out)


# ---- fuzz_proto: a session scripted (fuzz_proto.c) ------------------

def p_client(text):
    return u8(0) + run(text, 1024)


def p_models(names):
    b = u8(5) + u8(0) + u8(len(names))
    for n in names:
        b += u8(0) + run(n, 136) + u64(1000000) + u64(8192)
    return b + u8(0)


def p_chunk(text):
    return u8(5) + u8(1) + run(text, 2048) + u8(0)


def p_done():
    return u8(5) + u8(4) + u8(0) + u64(3) + u64(4) + run("STOP", 48)


def p_error(code, text):
    return u8(5) + u8(6) + u8(0) + run(code, 40) + run(text, 300)


def p_stored(which):        # 0 user, 1 model
    return u8(7) + u8(which) + u8(0) + u8(0) + u64(1)


def p_ctx_end():
    return u8(7) + u8(4) + u8(0) + u8(2) + u8(0) + u8(0)


def p_item(which, role, text):
    return u8(7) + u8(which) + u8(0) + u8(1) + run(text, 2048) + \
        u64(1) + u64(1700000000) + u8(role)


def p_end(which, n):
    return u8(7) + u8(which) + u8(0) + u8(2) + u8(n) + u8(n)


def p_answer(text):
    return p_chunk(text) + p_done() + p_stored(0) + p_stored(1)


HEAD = u8(0) + u8(0) + u16(0x1000) + u16(0x1000)
START = HEAD + p_ctx_end() + p_models(["gemini-2.0-flash",
                                       "gemini-2.5-pro"])

PROTO_SEEDS = {
    "help": START + p_client("HELP\n") + p_client("help me\n"),
    "ask": START + p_client("ASK hello\n") + p_answer("Hi.\n.dot\n"),
    "chat": START + p_client("CHAT\n") + p_client("hi\n") +
    p_answer("ok") + p_client('"""\n') + p_client("a\n.b\n") +
    p_client('"""\n') + p_answer("two") + p_client("STOP\n"),
    "cancel": START + p_client("ASK long\n") + p_chunk("part") +
    p_client("CANCEL\n") + p_error("cancelled", "cancelled") +
    p_client("CANCEL\n"),
    "models": START + p_client("LIST-MODELS\n") + p_client("CHANGE-MODEL\n")
    + p_client("2\n") + p_client("CHANGE-MODEL gemini-2.0-flash\n") +
    p_client("INFO\n"),
    "history": START + p_client("HISTORY 2\n") + p_item(3, 0, "q") +
    p_item(3, 1, "a") + p_end(3, 2) + p_client("SUMMARIES\n") +
    p_end(3, 0) + p_client("NEW\n") + p_client("BACK\n"),
    "errors": START + p_client("ASK x\n") + p_error("upstream", "down") +
    p_client("ASK y\n") + p_chunk("half") +
    u8(5) + u8(7) + p_client("QUIT\n"),
    "token": u8(2) + u8(1) + u16(0x1000) + u16(0x1000) +
    p_models(["m"]) + p_client("AUTH abc\n") + u8(10) + u8(1) +
    run("3f1a9c0b22de0123456789abcdef0123456789abcdef0123456789abcdef",
        80) + p_ctx_end() + p_client("ASK x\n"),
    "long": HEAD[:2] + u16(0) + u16(0) + p_ctx_end() +
    p_client("ASK " + "x" * 100 + "\n") + p_client("CHAT\n") +
    p_client('"""\n' + "y\n" * 40 + '"""\n'),
}

CMDS = ("ASK AUTH BACK CANCEL CHANGE-MODEL CHAT EXIT HELP HISTORY INFO "
        "LIST-MODELS NEW QUIT RESET SUMMARIES MORE STOP").split()
PROTO_WORDS = CMDS + [c + "\n" for c in CMDS] + [
    '"""', '"""\n', "\r\n", "\n", "gemini-2.0-flash", "1\n"]

GEM_WORDS = [
    "@type", "blockReason", "candidates", "code", "content", "details",
    "error", "finishReason", "inputTokenLimit", "message", "models",
    "name", "nextPageToken", "outputTokenLimit", "parts",
    "promptFeedback", "reason", "retryDelay", "status", "text",
    "thought", "usageMetadata", "violations", "promptTokenCount",
    "candidatesTokenCount", "totalTokenCount", "thoughtsTokenCount",
    "supportedGenerationMethods", "generateContent", "countTokens",
    "embedContent", "models/", "type.googleapis.com/google.rpc.RetryInfo",
    "type.googleapis.com/google.rpc.QuotaFailure",
    "type.googleapis.com/google.rpc.ErrorInfo", "API_KEY_INVALID",
    "RESOURCE_EXHAUSTED", "PerDay", "STOP", "MAX_TOKENS", "SAFETY",
    "RECITATION", "1.5s", "true", "false", "null", "{", "}", "[", "]",
    "\\u0000", "\\ud83d\\ude00", "data: ", "\n\n", "\r\n"]

EVENT = ('{"candidates":[{"content":{"parts":[{"text":"Hello"},'
         '{"text":"think","thought":true}],"role":"model"},'
         '"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":3,'
         '"candidatesTokenCount":4,"totalTokenCount":7}}')
ERROR = ('{"error":{"code":429,"message":"Quota exceeded","status":'
         '"RESOURCE_EXHAUSTED","details":[{"@type":'
         '"type.googleapis.com/google.rpc.QuotaFailure","violations":'
         '[{"quotaId":"GenerateRequestsPerDayPerProject"}]},{"@type":'
         '"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}')
MODELS = ('{"models":[{"name":"models/gemini-2.0-flash","inputTokenLimit":'
          '1048576,"outputTokenLimit":8192,"supportedGenerationMethods":'
          '["generateContent","countTokens"]},{"name":"models/embedding-001",'
          '"supportedGenerationMethods":["embedContent"]},{"name":"bad name"'
          '}],"nextPageToken":"abc"}')


def main():
    for name, data in PROTO_SEEDS.items():
        seed("fuzz_proto", name, data)
    dictionary("fuzz_proto", PROTO_WORDS)
    dictionary("fuzz_worker", PROTO_WORDS)

    seed("fuzz_gemini_stream", "stream",
         b"\x00data: " + EVENT.encode() + b"\r\n\r\ndata: {\"candidates\":"
         b"[{\"content\":{\"parts\":[{\"text\":\"!\"}]},\"finishReason\":"
         b"\"MAX_TOKENS\"}]}\n\n")
    seed("fuzz_gemini_stream", "blocked", b"\x01data: "
         b"{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\n\n")
    seed("fuzz_gemini_stream", "error", b"\x02" + ERROR.encode())
    seed("fuzz_gemini_stream", "error_key", b"\x02{\"error\":{\"code\":400,"
         b"\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"reason\":"
         b"\"API_KEY_INVALID\"}]}}")
    seed("fuzz_gemini_stream", "retry_after", b"\x03Wed, 21 Oct 2015 "
         b"07:28:00 GMT")
    seed("fuzz_gemini_stream", "duration", b"\x031.500s")
    seed("fuzz_gemini_models", "page", MODELS)
    seed("fuzz_gemini_models", "last", '{"models":[{"name":"models/a",'
         '"supportedGenerationMethods":["generateContent"]}]}')
    dictionary("fuzz_gemini_stream", GEM_WORDS)
    dictionary("fuzz_gemini_models", GEM_WORDS)

    # fuzz_request: api, system, temperature, max tokens (the prompt's
    # and the block's), turns of role and text.
    def req(api, system, temp, turns):
        b = u8(api) + run(system, 300) + u8(temp) + u16(0) + u8(0)
        b += u8(len(turns))
        for role, text in turns:
            b += u8(role) + run(text, 300)
        return b
    talk = [(0, "hello \"you\"\n\\ \u00e9\u2028\U0001f600"), (1, "hi"),
            (1, ""), (0, "x\x00y\x1f\x7f"), (0, "again")]
    for api, name in ((0, "gemini"), (1, "openai"), (2, "anthropic")):
        seed("fuzz_request", name, req(api, "be brief", 170, talk))
        seed("fuzz_request", name + "_bad", req(api, "", 0,
                                                [(0, b"\xc3(")]))
    seed("fuzz_request", "empty", req(1, "", 255, [(0, ""), (1, "")]))
    dictionary("fuzz_request", ["\"", "\\", "\n", "\x00", "\u2028",
                                "\xc3\xa9"])

    seed("fuzz_sse", "events", b"\x00\x10\x02\x03\x07" +
         b"\xef\xbb\xbfevent: x\r\ndata: a\rdata:b\n\n: comment\n"
         b"id: 1\nretry: 5\ndata\n\n")
    dictionary("fuzz_sse", ["data:", "data: ", "event:", "event: ", "id:",
                            "retry:", ":", "\n", "\r", "\r\n", "\n\n",
                            "\ufeff"])

    seed("fuzz_reply", "roundtrip", b"\x01" + run("model=x in=1", 200) +
         run(".a\n..b\nc", 8192) + b"\x01\x02\x03")
    seed("fuzz_reply", "status", b"\x00" + run(". ERR busy now", 4096))
    seed("fuzz_reply_feed", "session", b"\x01" + b"\x02" +
         run("ID:3f1a9c0b22de\nConnected to 127.0.0.1:65432\n. OK bridged/"
             "0.1 ready\n", 4096) + b"\x00\x03" + b"\x02" +
         run("Hello\n..dot\npart", 4096) + b"\x02" +
         run("ial\n. OK model=m in=1 out=2 ms=3\n", 4096) +
         b"\x00\x04" + b"\x02" + run("model: gemini\n. OK\n", 4096) +
         b"\x00\x07" + b"\x02" + run(". BYE bye\n", 4096))
    dictionary("fuzz_reply_feed", [". OK", ". ERR", ". BYE", ". MORE",
                                   ". OK chat mode",
                                   ". OK back in command mode",
                                   ". OK model ", "..", ".\n", "\n",
                                   "\r\n", "model: ", ". ERR cancelled"])

    kw = ("api cache certificate chroot clients connect database env file "
          "full gemini handshake identity include insecure ip keep key "
          "limit line listen max memory model models normal on port "
          "prefork provider retries socket summaries sync timeout tls "
          "token type url user").split()
    dictionary("fuzz_config", kw + ["{", "}", "\n", '"', "=", "$", "#",
                                    "127.0.0.1", "::1", "*", "1M", "4K",
                                    "http://", "https://"])
    seed("fuzz_config", "leak_provider_without_brace",
         'provider "a"\nprovider "b"\n')
    seed("fuzz_config", "leak_string_on_syntax_error", 'user "x" junk\n')
    seed("fuzz_config", "macros", 'k = "K"\nport = 4000\nlisten on ::1 '
         'port $port\nprovider "g" {\n\tapi key env $k\n\ttimeout 5\n}\n')


if __name__ == "__main__":
    main()
