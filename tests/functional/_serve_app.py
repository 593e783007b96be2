"""A WSGI app for wsgisvc-serve's tests, shaped like an OpenStack one: when it
loads it starts a thread, connects to a peer (as an app opens a database
engine or a transport), and, like glance, keystone and nova's wsgi apps,
registers a command-line option on oslo.config's global CONF and parses it
with its own files and argv. Its answer says where and how it was loaded.

Environment: SERVE_TEST_PEER (HOST:PORT to connect to), SERVE_TEST_FAIL (raise
while loading), SERVE_TEST_APP_CONF (a config file the app parses itself).
"""

import json
import os
import socket
import sys
import threading
import time

from oslo_config import cfg

LOADED_IN = os.getpid()

if os.environ.get("SERVE_TEST_FAIL"):
    raise RuntimeError(os.environ["SERVE_TEST_FAIL"])


def _tick() -> None:
    while True:
        time.sleep(0.05)


_THREAD = threading.Thread(target=_tick, daemon=True)
_THREAD.start()

_PEER = None
if os.environ.get("SERVE_TEST_PEER"):
    host, _, port = os.environ["SERVE_TEST_PEER"].rpartition(":")
    _PEER = socket.create_connection((host, int(port)))
    _PEER.sendall(f"{LOADED_IN}\n".encode())

cfg.CONF.register_cli_opt(cfg.StrOpt("app-flag"))
cfg.CONF.register_opt(cfg.StrOpt("greeting", default="none"))
cfg.CONF(
    sys.argv[1:],
    project="serve-test-app",
    default_config_files=[f for f in [os.environ.get("SERVE_TEST_APP_CONF")] if f],
)


def application(environ, start_response):
    body = json.dumps(
        {
            "pid": os.getpid(),
            "loaded_in": LOADED_IN,
            "thread_alive": _THREAD.is_alive(),
            "argv": sys.argv[1:],
            "env": os.environ.get("SERVE_TEST_ENV"),
            "app_flag": cfg.CONF.app_flag,
            "greeting": cfg.CONF.greeting,
            "eventlet": sys.modules.get("eventlet") is not None,
        }
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def factory(global_conf, **local_conf):
    """The same app as a paste app factory (for wsgisvc-api's paste file)."""
    return application
