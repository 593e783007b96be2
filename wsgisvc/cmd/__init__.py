"""Binaries. Importing this package monkey patches the standard library for eventlet.

It must happen before anything else imports socket, threading or time, so every
``wsgisvc.cmd.*`` module is an entry point and imports nothing before this.
``import wsgisvc`` (implied) first installs the filters for eventlet's own
deprecation warnings (see wsgisvc/__init__.py and doc/source/eventlet.rst).
"""

import os

# eventlet's green DNS (dnspython, a sixth of the start-up) only when asked for:
# EVENTLET_NO_GREENDNS=no turns it back on.
os.environ.setdefault("EVENTLET_NO_GREENDNS", "yes")

import eventlet  # noqa: E402

eventlet.monkey_patch()
