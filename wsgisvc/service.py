"""The public face: what a service binary imports.

``serve()`` / ``wait()`` run one launcher per process; ``Service`` (RPC) and
``WSGIService`` (paste app over HTTP) are the two kinds of service wsgisvc ships.
The process machinery lives in ``launcher`` and ``signals``.
"""

from wsgisvc.launcher import (
    Launcher,
    ProcessLauncher,
    ServerWrapper,
    ServiceBase,
    ServiceLauncher,
    Services,
    get_launcher,
    launch,
    process_launcher,
    serve,
    wait,
)
from wsgisvc.signals import SignalExit

__all__ = [
    "Launcher",
    "ProcessLauncher",
    "ServerWrapper",
    "ServiceBase",
    "ServiceLauncher",
    "Services",
    "SignalExit",
    "get_launcher",
    "launch",
    "process_launcher",
    "serve",
    "wait",
]

# --- WSGIService (issue 4) below this line ------------------------------------

# --- Service (RPC, issue 5) below this line -----------------------------------
