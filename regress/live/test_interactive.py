"""
An interactive answer (chat mode or ASK) stops when its client leaves:
nobody is there to read it, so it is neither finished upstream nor
stored, and it does not become a job. Only SUBMIT and DIALOGUE outlive
their session (test_jobs.py).
"""

import hashlib
import random
import time

from harness import Daemon, FakeUpstream, wait_for

d = up = None
RUN = "%08x" % random.getrandbits(32)
# Eight events 300 ms apart: about 2.4 s of answer.
SLOW = "[[fake:interval:300]][[fake:repeat:8]]"


def setup():
    global d, up
    up = FakeUpstream()
    d = Daemon(up, prefork=2)


def teardown():
    d.stop()
    up.stop()


def rows(addr):
    return d.sql("SELECT role, content FROM messages WHERE client_id = ?"
                 " ORDER BY id", hashlib.sha256(addr.encode()).hexdigest())


def leave_mid_answer(addr, first, prompt):
    """Send the prompt after `first` (a mode switch, or None), read the
    first fragment of the answer, and drop the connection."""
    c = d.client(source=addr)
    if first is not None:
        _, status = c.ask(first)
        assert status.startswith(". OK"), status
    c.send(prompt)
    c.sock.settimeout(10)
    data = c.sock.recv(1)
    assert data, "no answer began streaming"
    c.close()


def check_abandoned(addr, prompt):
    # Longer than the whole stream would take, then some.
    time.sleep(4)
    stored = rows(addr)
    assert ("user", prompt) in stored, stored
    assert [r for r in stored if r[0] == "model"] == [], stored
    c = d.client(source=addr)
    body, status = c.ask("JOBS")
    assert status.startswith(". OK"), status
    assert not any(prompt[:20] in line for line in body), body
    # The session that comes back is usable and has no answer waiting.
    body, status = c.ask("HISTORY 5")
    assert status.startswith(". OK"), status
    assert not any(" model" in line for line in body
                   if line.startswith("--- ")), body
    c.close()


def test_chat_answer_stops_when_client_leaves():
    addr = "127.0.0.31"
    prompt = "chat-leaves %s %s" % (RUN, SLOW)
    leave_mid_answer(addr, "IA", prompt)
    check_abandoned(addr, prompt)


def test_ask_answer_stops_when_client_leaves():
    addr = "127.0.0.32"
    prompt = "ask-leaves %s %s" % (RUN, SLOW)
    leave_mid_answer(addr, None, "ASK " + prompt)
    check_abandoned(addr, prompt)


def test_staying_client_gets_the_whole_answer():
    # The control case: the same slow stream, read to the end, is stored.
    addr = "127.0.0.33"
    prompt = "stays %s %s" % (RUN, SLOW)
    c = d.client(source=addr)
    body, status = c.ask("ASK " + prompt)
    assert status.startswith(". OK model="), status
    c.close()
    wait_for(lambda: [r for r in rows(addr) if r[0] == "model"],
             what="the answer to be stored")
