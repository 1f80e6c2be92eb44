"""
The Makefiles are read by GNU make and BSD make alike: both must plan
the whole build, and bmake must build the unit tests' objects it owns.
"""

import os
import shutil
import subprocess

from harness import TOP, Skip


def bsd_env():
    """The environment without GNU make's own flags: under `make test
    SANITIZE=...` MAKEFLAGS holds `w -- SANITIZE=...`, and bmake would
    take the w for a target."""
    return {k: v for k, v in os.environ.items()
            if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}


def plan(make):
    if shutil.which(make) is None:
        raise Skip("%s is not installed" % make)
    r = subprocess.run([make, "-n", "all"], cwd=TOP, capture_output=True,
                       text=True, timeout=120, env=bsd_env())
    assert r.returncode == 0, r.stderr[-1000:]
    return r.stdout


def test_gnu_make_plans_the_build():
    plan("make")


def test_bsd_make_plans_the_build():
    out = plan("bmake")
    for d in ("lib", "bridged", "bridgectl"):
        assert "cd %s" % d in out, out[-500:]


def test_bsd_make_builds_in_a_copy():
    if shutil.which("bmake") is None:
        raise Skip("bmake is not installed")
    from harness import tmpdir
    d = tmpdir("bmake-")
    subprocess.run(["git", "clone", "-q", TOP, d], check=True)
    shutil.copy(TOP + "/config.mk", d + "/config.mk")
    r = subprocess.run(["bmake", "-j2"], cwd=d, capture_output=True,
                       text=True, timeout=600, env=bsd_env())
    assert r.returncode == 0, r.stderr[-1500:]
    for prog in ("bridged/bridged", "bridged/bridged-worker",
                 "bridgectl/bridgectl"):
        assert subprocess.run(["test", "-x", d + "/" + prog]).returncode == 0
    shutil.rmtree(d)
