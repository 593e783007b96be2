"""run(): what a service binary does, in one call::

    from wsgisvc.cmd import binary  # first: picks the backend; on eventlet, patches
    from wsgisvc import service

    binary.run(lambda conf: service.WSGIService("osapi", conf=conf))

Parse the command line and the config files (every option's value checked),
build the service, make the services table ready for a service whose workers
keep rows (the SQLite default is synced, a configured database must be
current), serve, wait, exit with the launcher's status. Any start-up error on
the way is one line and exit 1. An API's workers keep no row: WSGIService
checks a configured schema before it binds and syncs the default once it
serves (doc/source/architecture.rst, "Semantics to honour", Start-up).
"""

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from oslo_config import cfg

from wsgisvc import config, registry, service
from wsgisvc.cmd import startup_errors

__all__ = ["run", "serve"]


def run(
    build: Callable[[cfg.ConfigOpts], service.ServiceBase],
    *,
    register_opts: Callable[[cfg.ConfigOpts], None] | None = None,
    workers: int | str | None = None,
    restart_method: str | None = None,
    argv: list[str] | None = None,
) -> NoReturn:
    """Run the service ``build(conf)`` returns, as a binary; never returns.

    ``register_opts(conf)``: registers the binary's own options (its app's,
    its manager's) on the conf, before the command line and the files are
    parsed, so command-line options work and every value is checked with
    wsgisvc's: a bad one is one line naming it, and exit 1, before anything
    binds. The app reads them from the same ConfigOpts, ``config.CONF``.

    ``workers``: a number; or the name of an option holding it (unset means
    the CPU count), read again on each SIGHUP reload; by default the
    service's own (WSGIService's ``<name>_workers``), else 1.

    ``restart_method``: what SIGHUP does, ``"reload"`` or ``"mutate"``
    (see ``service.launch()``); by default the ``restart_method`` option.
    """
    argv = sys.argv if argv is None else argv
    prog = os.path.basename(argv[0])
    server, count = startup_errors(
        prog, lambda: _prepare(argv, build, register_opts, workers)
    )
    serve(prog, server, count, restart_method)


def serve(
    prog: str,
    server: service.ServiceBase,
    workers: int | str,
    restart_method: str | None = None,
) -> NoReturn:
    """Serve ``server`` on ``workers`` processes (a number, or the option
    holding it, as ``service.launch()`` takes it), wait, exit with the status:
    the end of every binary. A start-up error is one line and exit 1, a
    worker's too (one that cannot load the app it loads after the fork)."""
    startup_errors(  # metrics
        prog,
        lambda: service.serve(server, workers=workers, restart_method=restart_method),
    )
    sys.exit(startup_errors(prog, service.wait))


def _prepare(
    argv: list[str],
    build: Callable[[cfg.ConfigOpts], service.ServiceBase],
    register_opts: Callable[[cfg.ConfigOpts], None] | None,
    workers: int | str | None,
) -> tuple[service.ServiceBase, int | str]:
    """Everything that can fail before serving, in the parent, before any fork."""
    if register_opts is not None:
        register_opts(config.CONF)
    conf = config.parse_args(argv, config.CONF)
    server = build(conf)
    if isinstance(server, service.Service):  # its workers keep its row
        registry.prepare_database(conf)
    return server, _workers(server, workers)


def _workers(server: service.ServiceBase, workers: int | str | None) -> int | str:
    """A number, or the name of the option holding it (read again on reload)."""
    if workers is not None:
        return workers
    if isinstance(server, service.WSGIService):
        return server.workers_option
    return getattr(server, "workers", None) or 1
