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
