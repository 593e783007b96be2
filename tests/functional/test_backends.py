"""WSGISVC_BACKEND: one switch; under threading nothing imports eventlet."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.functional._launcher_util import TARGET
from tests.functional._wsgi_util import ROOT
from tests.helpers import PYTHON, run_in_session

pytestmark = pytest.mark.timeout(120)

# Every binary's module, the launchers and what an RPC worker runs.
MODULES = [
    "wsgisvc.cmd.api",
    "wsgisvc.cmd.worker",
    "wsgisvc.cmd.manage",
    "wsgisvc.cmd.sample",
    "wsgisvc.cmd.binary",
    "wsgisvc.launcher",
    "wsgisvc.process_launcher",
    "wsgisvc.service",
    "wsgisvc.rpc",
    "wsgisvc.manager",
    "wsgisvc.periodic_task",
    "wsgisvc.loopingcall",
    "wsgisvc.registry",
    "wsgisvc.sslutils",
    "wsgisvc.sample.manager",
]

PROBE = """
import importlib, json, socket, sys, threading, types
for name in sys.argv[1:]:
    importlib.import_module(name)
from wsgisvc import backend
print(json.dumps({
    "backend": backend.NAME,
    "eventlet": sorted(m for m, mod in sys.modules.items()
                       if m.split(".")[0] == "eventlet"
                       and isinstance(mod, types.ModuleType)),
    "patched": socket.socket.__module__ != "socket"
               or threading.Thread.__module__ != "threading",
}))
"""


def probe(backend: str, modules: list[str]) -> dict:
    result = subprocess.run(
        [PYTHON, "-c", PROBE, *modules],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"WSGISVC_BACKEND": backend, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_on_threading_no_binary_imports_eventlet_and_nothing_is_patched():
    found = probe("threading", MODULES)
    assert found == {"backend": "threading", "eventlet": [], "patched": False}


def test_on_threading_the_wsgi_server_imports_no_eventlet():
    assert probe("threading", ["wsgisvc.cmd", "wsgisvc.wsgi"])["eventlet"] == []


# What nova's WSGI modules check before they load (nova.monkey_patch): an app
# that keeps eventlet out itself refuses to load when it finds "eventlet" in
# sys.modules at all, even as the None that blocks an import.
ALOOF_APP = """
import sys
import wsgisvc.cmd
assert "eventlet" not in sys.modules, sys.modules["eventlet"]
for name in ("eventlet", "eventlet.greenthread"):
    try:
        __import__(name)
    except ImportError as exc:
        print(type(exc).__name__, exc.name)
assert "eventlet" not in sys.modules
"""


def test_on_threading_eventlet_is_refused_and_absent_from_sys_modules():
    result = subprocess.run(
        [PYTHON, "-c", ALOOF_APP],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"WSGISVC_BACKEND": "threading", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "ModuleNotFoundError eventlet\nModuleNotFoundError eventlet\n"
    )


def test_on_eventlet_the_binaries_monkey_patch():
    found = probe("eventlet", ["wsgisvc.cmd.worker"])
    assert found["backend"] == "eventlet" and found["patched"]
    assert "eventlet" in found["eventlet"]


def test_an_unknown_backend_is_one_line_and_exit_1():
    result = subprocess.run(
        [PYTHON, str(TARGET), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"WSGISVC_BACKEND": "gevent", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert result.stderr == (
        "WSGISVC_BACKEND='gevent': use one of eventlet, threading\n"
    )


@pytest.mark.timeout(300)
def test_the_in_process_tests_pass_on_threads():
    """Looping calls, the signal plumbing, the RPC Service (start order,
    periodic tasks, heartbeat, stop, kill) and the heartbeat through database
    outages, run again in a process on native threads."""
    status, output = run_in_session(
        [
            PYTHON,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_loopingcall.py",
            "tests/unit/test_signals.py",
            "tests/functional/test_rpc_service.py",
            "tests/functional/test_registry_heartbeat.py",
        ],
        timeout=240,
        cwd=ROOT,
        env={"WSGISVC_BACKEND": "threading", "PATH": "/usr/bin:/bin"},
    )
    assert status == 0, output
