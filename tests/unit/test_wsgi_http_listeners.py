"""The accept policy the three runtimes share (``listeners.AcceptErrors``):
what each class of accept() error means, and what is logged. Each runtime's
way of acting on it is tested end to end: test_wsgi_http_core (out of
descriptors, both schedulers), tests/functional/test_accept_failure (a broken
listener) and tests/functional/test_gunicorn (both, in the gunicorn worker).
"""

from __future__ import annotations

import errno
import logging
import os

import pytest

from wsgisvc.http import listeners

LOG = logging.getLogger("test.accept")


def _error(number: int) -> OSError:
    return OSError(number, os.strerror(number))


@pytest.mark.parametrize("number", sorted(listeners.CLIENT_ACCEPT_ERRORS))
def test_a_clients_error_is_no_news(number, caplog):
    errors = listeners.AcceptErrors(LOG, "api")
    assert errors.failed(_error(number)) == 0.0
    assert not caplog.records


def test_out_of_a_resource_backs_off_logged_once_per_streak(caplog):
    caplog.set_level(logging.INFO, logger="test.accept")
    errors = listeners.AcceptErrors(LOG, "api")
    for number in sorted(listeners.RESOURCE_ACCEPT_ERRORS) * 2:
        assert errors.failed(_error(number)) == listeners.RESOURCE_BACKOFF
    errors.accepted()
    errors.accepted()
    assert errors.failed(_error(errno.EMFILE)) == listeners.RESOURCE_BACKOFF
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "ERROR",
            "api cannot accept: [Errno 12] Cannot allocate memory; "
            f"retrying every {listeners.RESOURCE_BACKOFF:.1f} s until it can",
        ),
        ("WARNING", "api accepting connections again"),
        (
            "ERROR",
            "api cannot accept: [Errno 24] Too many open files; "
            f"retrying every {listeners.RESOURCE_BACKOFF:.1f} s until it can",
        ),
    ]


@pytest.mark.parametrize("number", [errno.EINVAL, errno.EBADF, errno.ENOTSOCK])
def test_anything_else_is_a_broken_listener(number, caplog):
    assert listeners.AcceptErrors(LOG, "api").failed(_error(number)) is None
    assert not caplog.records
