#!/usr/bin/env python3
"""
run.py: the one test runner. It runs the C unit programs, the
configuration cases and the live test modules, prints `ok name` or
`FAIL name: why` for each case, and ends with `N passed, N failed`.

usage: run.py [-k substring] [suite ...]
  suites: unit config fuzz live sandbox install (default: all)

PostgreSQL: when Debian's postgresql is installed, run.py starts one
server for the whole run (regress/pgserver.py), exports its address to
the unit programs and live modules (BRIDGED_TEST_PG...), runs the
modules of PG_MODULES a second time on it (names suffixed [pg]), and
stops it by pid at the end, also when interrupted. When it cannot, it
says so in one skip line per module it leaves out.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
import traceback

REGRESS = os.path.dirname(os.path.abspath(__file__))
# A sanitized build (make test SANITIZE=...): what is not ours to fix.
os.environ.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0"
                      % os.path.join(REGRESS, "lsan.supp"))
sys.path.insert(0, REGRESS)
import harness  # noqa: E402
import pgserver  # noqa: E402

passed = failed = skipped = 0
MODULE_LIMIT = 600      # seconds for one live module, a hang guard
# Run again against PostgreSQL: storage, conversations, jobs, tokens and
# limits, where the backend matters (test_scale.py runs on it alone).
PG_MODULES = ["live/test_storage.py", "live/test_conversations.py",
              "live/test_jobs.py", "live/test_tokens.py"]


def result(name, ok, why=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok %s" % name, flush=True)
    else:
        failed += 1
        why = " ".join(str(why).split())[:600]
        print("FAIL %s: %s" % (name, why), flush=True)


def skip(name, why):
    global skipped
    skipped += 1
    print("skip %s: %s" % (name, why), flush=True)


def count_lines(prefix, proc_out, rc):
    """Fold a program's ok/FAIL lines into the totals."""
    seen = 0
    for line in proc_out.splitlines():
        if line.startswith("ok "):
            result(prefix + line[3:], True)
            seen += 1
        elif line.startswith("FAIL "):
            name, _, why = line[5:].partition(":")
            result(prefix + name, False, why)
            seen += 1
        elif line.startswith("skip "):
            name, _, why = line[5:].partition(":")
            skip(prefix + name, why.strip())
            seen += 1
    if rc != 0 and "FAIL " not in proc_out:
        result(prefix + "exit", False, "exit status %d" % rc)


def run_program(name, argv, timeout=300):
    try:
        p = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout, cwd=os.path.dirname(argv[0]))
    except subprocess.TimeoutExpired:
        result(name, False, "timed out after %d s" % timeout)
        return
    if p.returncode != 0 and "FAIL" not in p.stdout:
        sys.stdout.write(p.stderr[-2000:])
    count_lines(name + ":", p.stdout, p.returncode)


def suite_unit(k):
    d = os.path.join(REGRESS, "unit")
    for f in sorted(os.listdir(d)):
        path = os.path.join(d, f)
        if f.startswith("t_") and not f.endswith(".c") and \
                os.access(path, os.X_OK) and k in f:
            run_program("unit/" + f, [path])


def suite_config(k):
    script = os.path.join(REGRESS, "config", "run.sh")
    if os.path.exists(script) and k in "config":
        run_program("config", ["/bin/sh", script])


def suite_fuzz(k):
    """Each libFuzzer target once over its corpus (regress/fuzz)."""
    script = os.path.join(REGRESS, "fuzz", "run.sh")
    if os.path.exists(script) and k in "fuzz":
        run_program("fuzz", ["/bin/sh", script, "check"], timeout=600)


class Hang(Exception):
    pass


def on_alarm(sig, frame):
    raise Hang("module took longer than %d s" % MODULE_LIMIT)


def run_module(rel, k, tag=""):
    """Every test_ function of one module (tag: what its names get
    after the module's, e.g. [pg])."""
    path = os.path.join(REGRESS, rel)
    spec = importlib.util.spec_from_file_location(
        rel.replace("/", "_")[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(MODULE_LIMIT)
    try:
        spec.loader.exec_module(mod)
        tests = [n for n in dir(mod) if n.startswith("test_") and
                 callable(getattr(mod, n)) and k in rel + tag + ":" + n]
        tests.sort(key=lambda n: getattr(mod, n).__code__.co_firstlineno)
        if not tests:
            return
        try:
            if hasattr(mod, "setup"):
                mod.setup()
            for n in tests:
                name = "%s%s:%s" % (rel, tag, n)
                t0 = time.monotonic()
                try:
                    getattr(mod, n)()
                    result(name, True)
                except harness.Skip as e:
                    skip(name, str(e))
                except Hang:
                    raise
                except Exception as e:
                    tb = traceback.extract_tb(e.__traceback__)
                    where = "%s:%d" % (os.path.basename(tb[-1].filename),
                                       tb[-1].lineno) if tb else ""
                    result(name, False, "%s %s: %s" % (
                        where, type(e).__name__, e))
                if os.environ.get("REGRESS_TIMES"):
                    print("  %.2fs" % (time.monotonic() - t0))
        finally:
            try:
                if hasattr(mod, "teardown"):
                    mod.teardown()
            finally:
                harness.cleanup()
    except harness.Skip as e:
        skip(rel + tag, str(e))
    except Exception as e:
        result(rel + tag, False, "%s: %s" % (type(e).__name__, e))
    finally:
        signal.alarm(0)


def suite_live(k, sub="live"):
    d = os.path.join(REGRESS, sub)
    if not os.path.isdir(d):
        return
    for f in sorted(os.listdir(d)):
        if f.startswith("test_") and f.endswith(".py"):
            run_module(sub + "/" + f, k)
    if sub == "live":
        suite_live_pg(k)


def suite_live_pg(k):
    """PG_MODULES again with BRIDGED_TEST_BACKEND=postgresql."""
    for rel in PG_MODULES:
        try:
            harness.need_postgresql()
        except harness.Skip as e:
            if k in rel + "[pg]":
                skip(rel + "[pg]", str(e))
            continue
        os.environ["BRIDGED_TEST_BACKEND"] = "postgresql"
        try:
            run_module(rel, k, "[pg]")
        finally:
            del os.environ["BRIDGED_TEST_BACKEND"]


def start_postgresql():
    """The run's PostgreSQL, or None with BRIDGED_TEST_PG_SKIP saying
    why not."""
    os.environ.pop("BRIDGED_TEST_PG", None)
    try:
        pg = pgserver.PgServer()
    except (pgserver.Unavailable, OSError, RuntimeError) as e:
        why = "PostgreSQL is not available: %s" % e
        os.environ["BRIDGED_TEST_PG_SKIP"] = why
        print("skip postgresql: %s: the [pg] runs and the several-server "
              "tests are skipped" % why, flush=True)
        return None
    os.environ.update(pg.env())
    print("postgresql: %s on 127.0.0.1:%d for this run" %
          (os.path.basename(os.path.dirname(pg.bin)), pg.port), flush=True)
    return pg


def on_term(sig, frame):
    raise SystemExit(128 + sig)


def main():
    args = sys.argv[1:]
    k = ""
    if len(args) >= 2 and args[0] == "-k":
        k = args[1]
        args = args[2:]
    suites = args or ["unit", "config", "fuzz", "live", "sandbox",
                      "install"]
    for s in suites:
        if s not in ("unit", "config", "fuzz", "live", "sandbox",
                     "install"):
            print("unknown suite %s" % s)
            sys.exit(2)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    # A suite started in the background (`make test &`) inherits SIGINT
    # ignored, and so would every program it starts: tests that stop
    # bridgectl with SIGINT, as Ctrl-C does, need it at its default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pg = None
    if "unit" in suites or "live" in suites:
        pg = start_postgresql()
    try:
        for s in suites:
            if s == "unit":
                suite_unit(k)
            elif s == "config":
                suite_config(k)
            elif s == "fuzz":
                suite_fuzz(k)
            else:
                suite_live(k, s)
    finally:
        if pg is not None:
            pg.stop()
    print("%d passed, %d failed" % (passed, failed) +
          (", %d skipped" % skipped if skipped else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
