"""A WSGI app for wsgisvc-serve's tests, shaped like an OpenStack one: when it
loads it starts a thread, connects to a peer (as an app opens a database
engine or a transport), and, like glance, keystone and nova's wsgi apps,
registers a command-line option on oslo.config's global CONF and parses it
with its own files and argv. Its answer says where and how it was loaded.

Environment: SERVE_TEST_PEER (HOST:PORT to connect to), SERVE_TEST_FAIL (raise
while loading), SERVE_TEST_APP_CONF (a config file the app parses itself),
SERVE_TEST_ATEXIT_DIR (at its exit, the process that loaded the app writes a
file named after its pid there, as glance drains its tasks at exit).
"""

import atexit
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


def _mark_exit(directory: str) -> None:
    open(os.path.join(directory, str(os.getpid())), "w").close()


if os.environ.get("SERVE_TEST_ATEXIT_DIR"):
    atexit.register(_mark_exit, os.environ["SERVE_TEST_ATEXIT_DIR"])

_THREAD = threading.Thread(target=_tick, daemon=True)
_THREAD.start()

_PEER = None
if os.environ.get("SERVE_TEST_PEER"):
    host, _, port = os.environ["SERVE_TEST_PEER"].rpartition(":")
    _PEER = socket.create_connection((host, int(port)))
    _PEER.sendall(f"{LOADED_IN}\n".encode())

cfg.CONF.register_cli_opt(cfg.StrOpt("app-flag"))
cfg.CONF.register_opt(cfg.StrOpt("greeting", default="none"))
_OWN_FILE = os.environ.get("SERVE_TEST_APP_CONF")
cfg.CONF(
    sys.argv[1:] + (["--config-file", _OWN_FILE] if _OWN_FILE else []),
    project="serve-test-app",
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
