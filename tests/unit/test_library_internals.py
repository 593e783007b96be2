"""The private names of other libraries wsgisvc relies on, checked where an
upgrade would remove them: this fails loudly instead of a feature going quiet.

Every such touch lives in one module per library: oslo.messaging's and
futurist's in ``wsgisvc/rpc.py`` (their connection and executor internals are
also exercised by tests/functional/test_rpc_stop.py::
test_reaches_the_internals_it_relies_on); no other module of wsgisvc reaches
into a library's private names.
"""

import pathlib
import re

import wsgisvc

ROOT = pathlib.Path(wsgisvc.__file__).parent


def test_oslo_messaging_still_has_the_global_only_option_lists():
    """rpc._register_global_only_opts: if these moved, its ImportError branch
    would skip registering them, and every call could fail NoSuchOptError."""
    from oslo_messaging._metrics import client as metrics
    from oslo_messaging._tracing import client as tracing

    assert metrics.oslo_messaging_metrics
    assert tracing.oslo_messaging_tracing


def test_private_library_names_are_touched_in_rpc_only():
    private = re.compile(
        r"\b(?:oslo_messaging\._\w+|connection\._consumers|executor\._work_queue)"
    )
    touching = {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if private.search(path.read_text())
    }
    assert touching == {"rpc.py"}
