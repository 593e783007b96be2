"""The threads scheduler in a plain python process: WSGISVC_BACKEND=threading,
nothing monkey patched, and no eventlet imported by the server at any point
(start, requests, TLS-free keep-alive, stop, wait)."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from tests.functional._wsgi_util import ROOT
from tests.helpers import run_in_session

SCRIPT = textwrap.dedent(
    """
    import http.client, sys, threading
    from oslo_config import cfg
    from wsgisvc import config, wsgi

    def app(environ, start_response):
        body = repr((threading.current_thread().name, environ["wsgi.multithread"]))
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body.encode()]

    conf = cfg.ConfigOpts()
    config.register_opts(conf)
    conf([], project="wsgisvc-test", default_config_files=[], default_config_dirs=[])
    server = wsgi.Server(conf, "plain", app, "127.0.0.1", 0, pool_size=2)
    server.start()
    client = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for _ in range(3):  # one keep-alive connection, parked between requests
        client.request("GET", "/")
        print(client.getresponse().read().decode())
    client.close()
    server.stop()
    server.wait()
    # wsgisvc.backend refuses the import: eventlet is not in sys.modules
    print("eventlet imported:", "eventlet" in sys.modules)
    print("pool after wait:", server.pool.size)
    """
)


@pytest.mark.timeout(60)
def test_threads_server_in_a_plain_process_imports_no_eventlet():
    status, output = run_in_session(
        [sys.executable, "-c", SCRIPT],
        timeout=30,
        cwd=ROOT,
        env=dict(os.environ, WSGISVC_BACKEND="threading"),
    )
    assert status == 0, output
    assert output.count("('wsgi-pool', True)") == 3, output
    assert "eventlet imported: False" in output, output
    assert "pool after wait: 0" in output, output
