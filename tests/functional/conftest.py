"""Fixtures that run a functional test once per backend."""

import pytest

from wsgisvc.backend import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The WSGISVC_BACKEND a test's child processes run on: eventlet, threading."""
    return request.param
