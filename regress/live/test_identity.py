"""
Identities other than the address: `identity token` (AUTH, checked by
the parent, stored under the token's hash) and `identity certificate`
(stored under the client certificate's hash), each proven by what
storage keeps.
"""

import hashlib
import json
import os
import ssl

from harness import Daemon, FakeUpstream, make_certs

up = tok = None


def sha(b):
    return hashlib.sha256(b).hexdigest()


def setup():
    global up, tok
    up = FakeUpstream()
    tok = Daemon(up, prefork=2, start=False)
    tokens = os.path.join(tok.dir, "tokens")
    with open(tokens, "w") as f:
        f.write("# operators hand these out\nalpha-token\n\nbeta-token\n")
    os.chmod(tokens, 0o600)
    with open(tok.conf, "a") as f:
        f.write('identity token file "%s"\n' % tokens)
    tok.start()


def teardown():
    tok.stop()
    up.stop()


def test_token_greeting_has_no_identity_until_auth():
    c = tok.client()
    body, status = c.greeting
    assert body[0] == "ID:-", body
    _, status = c.ask("INFO")
    assert status.startswith(". ERR auth "), status
    _, status = c.ask("IA")
    assert status.startswith(". ERR auth "), status
    body, status = c.ask("HELP")
    assert status.startswith(". OK"), status
    c.close()


def test_token_accepted_and_stored_under_its_hash():
    ident = sha(b"alpha-token")
    c = tok.client()
    _, status = c.ask("AUTH wrong-token")
    assert status == ". ERR auth unknown token", status
    _, status = c.ask("AUTH alpha-token")
    assert status == ". OK authenticated ID:" + ident[:12], status
    body, _ = c.ask("INFO")
    assert "id: " + ident[:12] in body, body
    _, status = c.ask("ASK remember the word heliotrope")
    assert status.startswith(". OK model="), status
    c.ask("QUIT")
    c.close()
    doc = json.loads(tok.ctl("export", ident).stdout)
    assert any("heliotrope" in m["content"] for m in doc["messages"]), doc
    # Nothing went under the address's identity.
    r = tok.ctl("export", sha(b"127.0.0.1"), check=False)
    assert r.returncode == 1 or not json.loads(r.stdout)["messages"], r


def test_token_identities_are_separate():
    c = tok.client()
    c.ask("AUTH beta-token")
    body, status = c.ask("HISTORY")
    assert status == ". OK 0 messages", (body, status)
    c.close()
    c = tok.client()
    c.ask("AUTH alpha-token")
    body, status = c.ask("HISTORY")
    assert any("heliotrope" in l for l in body), body
    c.close()


def test_three_wrong_tokens_end_the_session():
    c = tok.client()
    for t in ("x", "y"):
        _, status = c.ask("AUTH " + t)
        assert status == ". ERR auth unknown token", status
    _, status = c.ask("AUTH z")
    assert status.startswith(". BYE auth"), status
    assert c.closed()
    assert "unknown token" in tok.logtext()


def test_token_file_reloaded():
    tokens = os.path.join(tok.dir, "tokens")
    with open(tokens, "a") as f:
        f.write("gamma-token\n")
    tok.ctl("reload")
    c = tok.client()
    _, status = c.ask("AUTH gamma-token")
    assert status.startswith(". OK authenticated"), status
    c.close()


def test_certificate_identity_is_stored_under_the_certificate():
    dd = Daemon(up, prefork=1, extra="identity certificate")
    try:
        _, ccrt, ckey = make_certs(dd.dir, name="client")
        with open(ccrt) as f:
            ident = sha(ssl.PEM_cert_to_DER_cert(f.read()))
        c = dd.client(cert=(ccrt, ckey))
        body, _ = c.greeting
        assert body[0] == "ID:" + ident[:12], body
        _, status = c.ask("ASK certified prompt")
        assert status.startswith(". OK model="), status
        c.ask("QUIT")
        c.close()
        doc = json.loads(dd.ctl("export", ident).stdout)
        assert any("certified prompt" in m["content"]
                   for m in doc["messages"]), doc
    finally:
        dd.stop()
