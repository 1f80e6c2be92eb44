"""
The API key: read from its file by the provider alone, and read again
after a reload (the provider restarts once idle to do it).
"""

from harness import Daemon, FakeUpstream, API_KEY, wait_for

up = d = None


def setup():
    global up, d
    up = FakeUpstream()
    d = Daemon(up, prefork=1, start=False)
    with open(d.keyfile, "w") as f:
        f.write("not-the-right-key\n")
    d.start()


def teardown():
    d.stop()
    up.stop()


def test_wrong_key_is_an_upstream_error():
    c = d.client()
    _, status = c.ask("ASK who am i")
    assert status.startswith(". ERR upstream"), status
    assert "API key" in status or "400" in status, status
    c.close()


def test_reload_reads_a_rotated_key():
    old = d.role_pids("provider")[0]
    with open(d.keyfile, "w") as f:
        f.write(API_KEY + "\n")
    d.ctl("reload")
    wait_for(lambda: [p for p in d.role_pids("provider") if p != old],
             what="the provider to restart after the reload")
    wait_for(lambda: "workers: 1 idle" in d.status(), what="a worker")
    c = d.client()
    _, status = c.ask("ASK who am i now")
    assert status.startswith(". OK model="), status
    c.close()


def test_key_only_in_the_provider():
    key = API_KEY.encode()
    for role in ("storage", "control", "worker"):
        for pid in d.role_pids(role):
            with open("/proc/%d/environ" % pid, "rb") as f:
                assert key not in f.read(), role


def test_two_providers_two_keys():
    """Each provider's key goes to its own API, and only the provider
    process ever holds them (both from the environment, then wiped)."""
    import json
    g = FakeUpstream()
    o = FakeUpstream(kind="openai", key="sk-second-key-5151")
    provs = """provider "gemini" {
	url "%s"
	api key env "BRIDGED_TEST_KEY"
}
provider "openai" {
	type openai
	url "%s"
	api key env "BRIDGED_TEST_KEY2"
}
""" % (g.url, o.url)
    d2 = Daemon(providers=provs, prefork=1, start=False)
    try:
        d2.start(env={"BRIDGED_TEST_KEY2": "sk-second-key-5151"})
        for model in ("gemini/gemini-2.0-flash", "openai/gpt-4o-mini"):
            c = d2.client()
            _, status = c.ask("CHANGE-MODEL " + model)
            assert status == ". OK model " + model, status
            _, status = c.ask("ASK whose key")
            assert status.startswith(". OK model=" + model), status
            c.close()
        gr = [r for r in g.requests() if ":stream" in r["path"]]
        orq = [r for r in o.requests() if r["path"].endswith("/chat/"
                                                             "completions")]
        assert gr[-1]["headers"]["x-goog-api-key"] == API_KEY
        assert orq[-1]["headers"]["authorization"] == \
            "Bearer sk-second-key-5151"
        assert "sk-second" not in json.dumps(gr) and \
            API_KEY not in json.dumps(orq)
        keys = (API_KEY.encode(), b"sk-second-key-5151")
        for role in ("storage", "control", "worker", "provider"):
            for pid in d2.role_pids(role):
                with open("/proc/%d/environ" % pid, "rb") as f:
                    env = f.read()
                for k in keys:
                    assert k not in env, role
        assert d2.role_pids("provider"), "no provider"
    finally:
        d2.stop()
        g.stop()
        o.stop()
