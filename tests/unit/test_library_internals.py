"""The private names of other libraries wsgisvc relies on, checked where an
upgrade would remove them: this fails loudly instead of a feature going quiet.

Every such touch lives in one module per library: oslo.messaging's and
futurist's in ``wsgisvc/rpc.py`` (their connection and executor internals are
also exercised by tests/functional/test_rpc_stop.py::
test_reaches_the_internals_it_relies_on), prometheus_client's in
``wsgisvc/metrics.py``, the standard library's atexit's in
``wsgisvc/process_launcher.py``, oslo.config's in ``wsgisvc/config.py``,
eventlet's green TLS socket's in ``wsgisvc/sslutils.py``; no
other module of wsgisvc reaches into a library's
private names.
"""

import pathlib
import re

import pytest

import wsgisvc

ROOT = pathlib.Path(wsgisvc.__file__).parent

# Each private name (or private module) wsgisvc touches, and the one module
# where it may be touched.
PRIVATE_TOUCHES = {
    r"\boslo_messaging\._\w+": "rpc.py",
    r"\b_poll_style_listener\b": "rpc.py",
    r"\bconnection\._consumers\b": "rpc.py",
    r"\b_work_executor\b": "rpc.py",
    r"\bexecutor\._work_queue\b": "rpc.py",
    r"\bfuturist(?:\.|\s+import\s+)_\w+": "rpc.py",
    r"\b_multiprocess\b": "metrics.py",
    r"\batexit\._\w+": "process_launcher.py",
    r"\bconf\._(?:args|use_env|all_opt_infos)\b": "config.py",
    r"\b_context=": "sslutils.py",
}


def test_oslo_config_still_keeps_what_a_reload_check_copies(tmp_path):
    """config.Reloader rebuilds a ConfigOpts from the live one's command line
    (``_args``), environment setting (``_use_env``) and options
    (``_all_opt_infos``) to check a reload before it happens."""
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.IntOpt("n"))
    conf(["--config-dir", str(tmp_path)], default_config_files=[])
    assert conf._args == ["--config-dir", str(tmp_path)]
    assert isinstance(conf._use_env, bool)
    assert any(info["opt"].name == "n" for info, _ in conf._all_opt_infos())


def test_atexit_can_still_be_cleared_and_run():
    """process_launcher._run_worker drops the parent's exit handlers in a new
    worker and runs the worker's own before os._exit."""
    import atexit

    assert callable(atexit._clear) and callable(atexit._run_exitfuncs)


def test_oslo_messaging_still_has_the_global_only_option_lists():
    """rpc._register_global_only_opts: if these moved, its ImportError branch
    would skip registering them, and every call could fail NoSuchOptError."""
    from oslo_messaging._metrics import client as metrics
    from oslo_messaging._tracing import client as tracing

    assert metrics.oslo_messaging_metrics
    assert tracing.oslo_messaging_tracing


def test_prometheus_client_still_says_which_value_class_is_multiprocess(
    monkeypatch, tmp_path
):
    """metrics._Instruments reads ``values.ValueClass._multiprocess`` to refuse
    a prometheus_client imported before wsgisvc set PROMETHEUS_MULTIPROC_DIR.
    If the attribute went, its getattr default would refuse every start with
    metrics on; read here without a default, so it fails by name."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert values.get_value_class()._multiprocess is True
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    monkeypatch.delenv("prometheus_multiproc_dir", raising=False)
    assert values.get_value_class()._multiprocess is False


def test_eventlet_still_wraps_with_the_context_it_is_given():
    """sslutils.wrap hands its SSLContext to ``GreenSSLSocket`` as
    ``_context`` (as eventlet's own ``GreenSSLContext.wrap_socket`` does): the
    context, built before or after ``ssl`` was patched, is the one used."""
    import ssl

    from eventlet.green import socket as green_socket
    from eventlet.green import ssl as green_ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ours, theirs = green_socket.socketpair()
    wrapped = green_ssl.GreenSSLSocket(
        ours, server_side=True, do_handshake_on_connect=False, _context=context
    )
    try:
        assert wrapped.context is context
    finally:
        wrapped.close()
        theirs.close()


@pytest.mark.parametrize("pattern", sorted(PRIVATE_TOUCHES))
def test_each_private_library_name_is_touched_in_one_module(pattern):
    touching = {
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if re.search(pattern, path.read_text())
    }
    assert touching == {PRIVATE_TOUCHES[pattern]}
