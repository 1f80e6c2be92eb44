"""
Sharing one bridged: issued tokens (add, list, revoke, expiry, models),
limits per identity counted by storage (across sessions, across a
restart), USAGE and the operator's tables, the event log, the metrics
(checked by promtool), the limit on wrong tokens per address, purge
ending live sessions, and no secret in the database, logs or events.
"""

import hashlib
import os
import shutil
import subprocess
import time

from harness import API_KEY, BRIDGECTL, Daemon, FakeUpstream, Skip, \
    wait_for

up = d = None
FILE_TOKEN = "file-token-7c2d9e"


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


def setup():
    global up, d
    up = FakeUpstream()
    d = Daemon(up, prefork=3, start=False)
    tokens = os.path.join(d.dir, "tokens")
    with open(tokens, "w") as f:
        f.write(FILE_TOKEN + "\n")
    with open(d.conf, "a") as f:
        f.write('identity token file "%s"\n' % tokens)
        f.write("limits {\n\trequests 100 per minute\n}\n")
    d.start()


def teardown():
    d.stop()
    up.stop()


def add_token(daemon, *opts):
    r = daemon.ctl("token", "add", *opts)
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("token "), r.stdout
    tid = int(lines[1].split()[1])
    return lines[0], tid


def session(daemon, token):
    c = daemon.client()
    _, status = c.ask("AUTH " + token)
    assert status.startswith(". OK authenticated"), status
    return c


def generations():
    return len([r for r in up.requests()
                if "streamGenerateContent" in r.get("path", "")])


def db_rows(daemon, sql, args=()):
    return daemon.sql(sql, *args)


def test_token_add_shown_once_and_stored_as_hash():
    tok, tid = add_token(d, "-l", "alice", "-e", "30", "-r", "50")
    assert tok.startswith("bt-") and len(tok) == 43, tok
    out = d.ctl("token", "list").stdout
    assert tok not in out, out
    lines = out.splitlines()
    assert lines[0].startswith("ID LABEL CREATED EXPIRES"), lines
    row = [l.split() for l in lines[1:] if l.split()[0] == str(tid)][0]
    assert row[1] == "alice" and row[5] == "live" and row[6] == "50", row
    assert row[2] != "never" and row[3] != "never" and row[4] == "never"
    assert row[7] == "-" and row[9] == "*", row
    assert db_rows(d, "SELECT hash FROM tokens WHERE id = ?",
                   (tid,)) == [(sha(tok),)]
    # Issued and file tokens work side by side.
    c = session(d, tok)
    body, _ = c.ask("INFO")
    assert "id: " + sha(tok)[:12] in body, body
    c.close()
    c = session(d, FILE_TOKEN)
    c.close()
    row = [l.split() for l in d.ctl("-H", "token", "list").stdout
           .splitlines() if l.split()[0] == str(tid)][0]
    assert row[4] != "never", row      # last used


def test_token_expired_is_refused_like_a_wrong_one():
    tok, tid = add_token(d, "-e", "1")
    session(d, tok).close()
    # A day later, as far as storage can tell.
    d.sql("UPDATE tokens SET expires = ? WHERE id = ?",
          int(time.time()) - 1, tid)
    c = d.client()
    _, status = c.ask("AUTH " + tok)
    assert status == ". ERR auth unknown token", status
    c.close()
    assert "expired" in d.ctl("token", "list").stdout


def test_token_revoked_ends_its_live_session():
    tok, tid = add_token(d, "-l", "bob")
    c = session(d, tok)
    other = session(d, FILE_TOKEN)
    r = d.ctl("token", "revoke", str(tid))
    assert "revoked" in r.stdout, r.stdout
    _, status = c.reply()
    assert status == ". BYE token revoked", status
    assert c.closed()
    # Another identity's session goes on.
    _, status = other.ask("INFO")
    assert status.startswith(". OK"), status
    other.close()
    c = d.client()
    _, status = c.ask("AUTH " + tok)
    assert status == ". ERR auth unknown token", status
    c.close()
    r = d.ctl("token", "revoke", str(tid), check=False)
    assert r.returncode == 1, r


def test_token_restricted_to_one_model():
    tok, _ = add_token(d, "-m", "gemini-2.5-pro")
    c = session(d, tok)
    body, status = c.ask("LIST-MODELS")
    assert body == ["1. gemini-2.5-pro (current)"], body
    assert status == ". OK 1 models, current gemini-2.5-pro", status
    _, status = c.ask("CHANGE-MODEL gemini-2.0-flash")
    assert status.startswith(". ERR bad-argument"), status
    body, status = c.ask("CHANGE-MODEL")
    assert "gemini-2.0-flash" not in " ".join(body), body
    _, status = c.ask("0")
    _, status = c.ask("ASK which model are you")
    assert status.startswith(". OK model=gemini-2.5-pro "), status
    c.close()


def test_limit_reached_across_two_sessions_of_one_identity():
    tok, _ = add_token(d, "-r", "3")
    a, b = session(d, tok), session(d, tok)
    for c in (a, b, a):
        _, status = c.ask("ASK count me")
        assert status.startswith(". OK model="), status
    before = generations()
    _, status = b.ask("ASK one too many")
    assert status.startswith(". ERR rate-limited requests-per-minute "
                             "limit 3 reached, retry in "), status
    n = int(status.split("retry in ")[1].split()[0])
    assert 1 <= n <= 60, status
    assert generations() == before, "a refused prompt went upstream"
    # Other identities are not held back by it.
    c = session(d, FILE_TOKEN)
    _, status = c.ask("ASK not limited")
    assert status.startswith(". OK model="), status
    for x in (a, b, c):
        x.close()
    ev = d.ctl("show", "events", "-i", sha(tok)[:16]).stdout
    assert "limit requests-per-minute 3 reached" in ev, ev


def test_usage_command_and_operator_tables():
    session(d, FILE_TOKEN).close()
    tok, _ = add_token(d, "-t", "100000")
    c = session(d, tok)
    _, status = c.ask("ASK use some tokens")
    assert status.startswith(". OK model="), status
    fields = dict(f.split("=") for f in status[5:].split()[1:])
    body, status = c.ask("USAGE")
    assert status == ". OK usage of the last 7 days", status
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert body[0] == "%s gemini-2.0-flash 1 %s %s" % (
        day, fields["in"], fields["out"]), (body, fields)
    assert "limit requests-per-minute 100 used 1" in body, body
    assert "limit tokens-per-day 100000 used %d" % (
        int(fields["in"]) + int(fields["out"])) in body, body
    _, status = c.ask("USAGE 0")
    assert status.startswith(". ERR bad-argument"), status
    c.close()
    out = d.ctl("show", "usage", sha(tok)[:20], "-d", "2").stdout
    lines = out.splitlines()
    assert lines[0] == "IDENTITY DAY MODEL PROMPTS TOKENS-IN TOKENS-OUT"
    assert lines[1].split() == [sha(tok)[:12], day, "gemini-2.0-flash",
                                "1", fields["in"], fields["out"]], lines
    ids = d.ctl("show", "identities").stdout.splitlines()
    assert ids[0].startswith("IDENTITY AUTH FIRST-SEEN LAST-SEEN"), ids
    mine = [l.split() for l in ids if l.startswith(sha(tok)[:12])][0]
    assert mine[1].startswith("token:") and mine[4] == "1", mine
    assert mine[5] == "2", mine
    assert mine[6] == str(int(fields["in"]) + int(fields["out"])), mine
    filed = [l.split() for l in ids if l.startswith(sha(FILE_TOKEN)[:12])]
    assert filed and filed[0][1] == "token-file", ids
    # -H drops the header; an empty table says so, unless -H.
    out = d.ctl("-H", "show", "usage", sha(tok)[:20]).stdout
    assert not out.startswith("IDENTITY"), out
    out = d.ctl("show", "usage", "0123456789abcdef").stdout
    assert out.strip() == "no usage", out
    assert d.ctl("-H", "show", "usage", "0123456789abcdef").stdout == ""
    wait_for(lambda: d.ctl("show", "sessions").stdout == "no sessions\n",
             what="no sessions")
    c = session(d, tok)
    out = d.ctl("show", "sessions").stdout.splitlines()
    assert out[0].startswith("ID ADDRESS IDENTITY MODEL"), out
    assert out[1].split()[2] == sha(tok)[:12], out
    c.close()


def test_events_and_monitor_have_times():
    p = subprocess.Popen([BRIDGECTL, "-s", d.sock, "monitor"],
                         stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        c = session(d, FILE_TOKEN)
        c.ask("QUIT")
        line = p.stdout.readline()
        assert line[:4].isdigit() and line[10] == "T" and \
            line[19] == "Z", line
    finally:
        p.terminate()
        p.wait()
    tok, tid = add_token(d, "-r", "1")
    c = session(d, tok)
    c.ask("ASK one")
    _, status = c.ask("ASK two")
    assert status.startswith(". ERR rate-limited"), status
    d.ctl("token", "revoke", str(tid))
    _, status = c.reply()
    assert status == ". BYE token revoked", status
    c.close()
    out = d.ctl("show", "events", "-n", "500").stdout.splitlines()
    assert out[0] == "TIME IDENTITY EVENT", out[:2]
    text = "\n".join(out)
    for what in ("connect session", "auth accepted", "token add",
                 "token revoke", "end session", "limit requests-per-minute"):
        assert what in text, what
    three = d.ctl("-H", "show", "events", "-n", "3").stdout.splitlines()
    assert len(three) == 3, three
    mine = d.ctl("-H", "show", "events", "-i",
                 sha(FILE_TOKEN)[:10]).stdout.splitlines()
    assert mine and all(l.split()[1] == sha(FILE_TOKEN)[:12]
                        for l in mine), mine


def test_metrics_pass_promtool():
    promtool = shutil.which("promtool")
    if promtool is None:
        raise Skip("promtool is not installed (Debian: prometheus)")
    tok, _ = add_token(d, "-r", "1")
    c = session(d, tok)
    for q in ("ASK measured", "ASK limited"):
        c.ask(q)
    c.close()
    c = d.client()
    c.ask("AUTH not-a-token")
    c.close()
    out = d.ctl("show", "metrics").stdout
    r = subprocess.run([promtool, "check", "metrics"], input=out,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ('bridged_connections_total{outcome="accepted"}',
                 'bridged_prompts_total{provider="gemini",'
                 'model="gemini-2.0-flash"}',
                 'bridged_tokens_total{direction="in"}',
                 'bridged_limits_hit_total{limit="requests-per-minute"}',
                 "bridged_sessions", "bridged_idle_workers",
                 "bridged_jobs_queued", "bridged_jobs_running",
                 'bridged_first_byte_seconds_bucket{le="+Inf"}',
                 "bridged_answer_seconds_count"):
        assert name in out, name
    m = dict(l.rsplit(" ", 1) for l in out.splitlines()
             if not l.startswith("#"))
    assert int(m['bridged_limits_hit_total{limit="requests-per-minute"}']) \
        >= 1, m
    assert int(m["bridged_answer_seconds_count"]) >= 1, m
    assert int(m['bridged_auth_failures_total']) >= 1, m


def test_purge_ends_the_identity_sessions():
    tok, _ = add_token(d)
    c = session(d, tok)
    _, status = c.ask("ASK something to purge")
    assert status.startswith(". OK"), status
    r = d.ctl("purge", "-f", sha(tok))
    assert "rows deleted" in r.stdout, r.stdout
    _, status = c.reply()
    assert status == ". BYE identity purged", status
    assert c.closed()


def test_no_secret_in_database_logs_or_events():
    prompt = "the secret prompt word is xylophonic-marmalade"
    tok, _ = add_token(d, "-l", "secrets")
    c = session(d, tok)
    _, status = c.ask("ASK " + prompt)
    assert status.startswith(". OK"), status
    c.ask("QUIT")
    c.close()
    c = d.client()
    c.ask("AUTH bt-not-a-real-token-but-secret-all-the-same")
    c.close()
    events = d.ctl("show", "events", "-n", "100000").stdout
    ev_db = "\n".join(r[0] for r in db_rows(d, "SELECT text FROM events"))
    for secret in (tok, FILE_TOKEN, API_KEY, prompt,
                   "bt-not-a-real-token-but-secret-all-the-same"):
        assert secret not in events, secret
        assert secret not in ev_db, secret
        assert secret not in d.logtext(), secret
    blob = d.dump()
    for secret in (tok, FILE_TOKEN, API_KEY):
        assert secret.encode() not in blob, secret


def test_wrong_tokens_limited_per_address():
    dd = Daemon(up, prefork=2, extra="identity token\n"
                "auth failures 3 per minute\n")
    try:
        tok, _ = add_token(dd)
        for i in range(2):
            c = dd.client()
            _, status = c.ask("AUTH wrong-%d" % i)
            assert status == ". ERR auth unknown token", status
            c.close()
        c = dd.client()
        _, status = c.ask("AUTH wrong-2")
        assert status.startswith(". BYE auth too many"), status
        assert c.closed()
        # Now even a good token from this address is turned away.
        c = dd.client()
        _, status = c.ask("AUTH " + tok)
        assert status.startswith(". BYE auth too many"), status
        c.close()
    finally:
        dd.stop()


def test_daily_token_budget_survives_a_restart():
    dd = Daemon(up, prefork=1, extra="limits {\n\ttokens 30 per day\n}\n")
    try:
        c = dd.client()
        used = 0
        while True:
            _, status = c.ask("ASK spend the budget")
            if status.startswith(". ERR"):
                break
            f = dict(x.split("=") for x in status[5:].split()[1:])
            used += int(f["in"]) + int(f["out"])
            assert used < 1000, status
        assert status.startswith(". ERR rate-limited tokens-per-day limit"
                                 " 30 reached, retry in "), status
        c.close()
        dd.stop()
        dd.start()
        before = generations()
        c = dd.client()
        _, status = c.ask("ASK after the restart")
        assert status.startswith(". ERR rate-limited tokens-per-day"), \
            status
        assert generations() == before
        body, _ = c.ask("USAGE 1")
        assert "limit tokens-per-day 30 used %d" % used in body, body
        c.close()
    finally:
        dd.stop()


def job_state(c, jid):
    body, status = c.ask("JOBS")
    assert status.startswith(". OK"), status
    for line in body:
        f = line.split()
        if f and f[0] == str(jid):
            return f[1]
    return None


def test_token_jobs_limit_overrides_the_global_one():
    tok, _ = add_token(d, "-j", "1")
    c = session(d, tok)
    ids = []
    for i in range(2):
        _, status = c.ask("SUBMIT one at a time %d [[fake:slow:1500]]" % i)
        assert status.startswith(". OK job "), status
        ids.append(int(status.split()[-1]))
    wait_for(lambda: job_state(c, ids[0]) == "running", timeout=5,
             what="the first job running")
    time.sleep(0.5)
    assert job_state(c, ids[1]) == "queued", "the token's limit of 1"
    body, _ = c.ask("USAGE 1")
    assert "limit jobs 1 used 1" in body, body
    jobs = d.ctl("show", "jobs").stdout.splitlines()
    assert jobs[0] == "ID STATE IDENTITY MODEL CREATED TOKENS PROMPT", jobs
    wait_for(lambda: job_state(c, ids[1]) == "done", timeout=20,
             what="the second job done")
    c.close()


def test_jobs_count_against_the_identity_limits():
    tok, _ = add_token(d, "-r", "1", "-m", "gemini-2.0-flash")
    c = session(d, tok)
    # Refused by the session (the model is not listed for the token) or
    # by storage: either way, not accepted.
    _, status = c.ask("DIALOGUE 2 gemini-2.0-flash gemini-2.5-pro hello")
    assert status.startswith(". ERR ") and "gemini-2.5-pro" in status, \
        status
    _, status = c.ask("SUBMIT counted as a request")
    assert status.startswith(". OK job "), status
    jid = int(status.split()[-1])
    _, status = c.ask("SUBMIT one too many")
    assert status.startswith(". ERR rate-limited requests-per-minute"), \
        status
    wait_for(lambda: job_state(c, jid) == "done", timeout=20,
             what="the job done")
    body, _ = c.ask("USAGE 1")
    row = [l.split() for l in body if "gemini-2.0-flash" in l][0]
    assert row[2] == "1" and int(row[3]) > 0 and int(row[4]) > 0, body
    c.close()
