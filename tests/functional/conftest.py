"""Fixtures that run a functional test once per backend."""

import functools
import subprocess
import sys

import pytest

from wsgisvc.backend import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The WSGISVC_BACKEND a test's child processes run on: eventlet, threading."""
    return request.param


@functools.cache
def _wsgi_server_on_threads() -> bool:
    """Does wsgisvc.wsgi import on the threading backend (issue 12 item 3)?"""
    probe = "import wsgisvc.cmd, wsgisvc.wsgi"
    return (
        subprocess.run(
            [sys.executable, "-c", probe],
            env={"WSGISVC_BACKEND": "threading", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            timeout=60,
        ).returncode
        == 0
    )


@pytest.fixture(params=BACKENDS)
def api_backend(request) -> str:
    """``backend`` for tests of wsgisvc-api: threading once the WSGI server
    runs on threads (the http part of issue 12), skipped until then."""
    if request.param == "threading" and not _wsgi_server_on_threads():
        pytest.skip("wsgisvc.wsgi does not run on the threading backend yet")
    return request.param
