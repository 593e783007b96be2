"""wsgisvc: run OpenStack-style API and RPC worker services.

eventlet is in maintenance mode and says so with an EventletDeprecationWarning on
import and a DeprecationWarning before every fork. wsgisvc runs on eventlet
knowingly (doc/source/eventlet.rst says why and what replaces it later), and forks
its workers before any child uses the hub, then gives each child a fresh hub.
Those two warnings are therefore expected here and would only teach operators to
ignore warnings, so they are filtered by their exact text, here, before anything
imports eventlet; every other warning is left alone. ``WSGISVC_EVENTLET_WARNINGS=1``
shows them again, and each launcher logs the backend (and eventlet's version) at
start. ``WSGISVC_BACKEND=threading`` runs on native threads instead, and then
nothing imports eventlet (see wsgisvc.backend and doc/source/backends.rst).
"""

import os
import warnings

# The distribution's name on the package index, what pip installs and
# importlib.metadata knows: "wsgisvc" there is an unrelated project (paste
# configurations as Windows services). The import name, the binaries and the
# configuration project (/etc/wsgisvc/) stay wsgisvc.
DISTRIBUTION = "wsgisvc-server"

if os.environ.get("WSGISVC_EVENTLET_WARNINGS") != "1":
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    warnings.filterwarnings(
        "ignore", message=r"Using fork\(\) is a bad idea", category=DeprecationWarning
    )

from wsgisvc import backend  # noqa: E402,F401  (read WSGISVC_BACKEND once, first)
