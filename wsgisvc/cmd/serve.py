"""wsgisvc-serve: serve any WSGI app on wsgisvc's process model, as uWSGI and
gunicorn do, with no binary to write::

    wsgisvc-serve --app placement.wsgi.api:application --bind 127.0.0.1:8778 \\
        --workers 4 --backend threading -- --config-file /etc/placement/placement.conf

The app is ``--app module:callable`` (what every OpenStack API ships) or
``--paste FILE[#NAME]``; what follows ``--`` is its own command line
(``sys.argv[1:]`` when it loads, uWSGI's ``--pyargv``). wsgisvc's own options
(timeouts, TLS, metrics, ``<name>_max_requests`` ...) come from
``--config-file``/``--config-dir``, on a ConfigOpts of wsgisvc's own: the app
may register options on and parse oslo.config's global CONF as it likes.

Each worker loads the app after the fork, as devstack asks of uWSGI
(``lazy-apps``): OpenStack apps open database engines, messaging transports
and threads when they load, and none of those survive a fork. ``--preload``
loads it once in the parent instead (less memory, faster forks, for apps that
start nothing at load). A worker that cannot load the app stops the binary
with that one line, before any worker served; later, its slot is refilled as
after any crash. The API keeps no row in the services table unless
``<name>_in_services_table`` is set: uWSGI and gunicorn keep none.
"""

import wsgisvc.cmd  # noqa: F401, I001  (backend and monkey patching first)

import argparse
import os
import re
import sys
from typing import NoReturn

from wsgisvc import backend, config, errors, opts, service, wsgi
from wsgisvc.cmd import binary, startup_errors
from wsgisvc.http.listeners import Address

PROG = "wsgisvc-serve"
DEFAULT_BIND = "127.0.0.1:8000"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """A bad flag is one line and exit 1, like every start-up error."""
        raise errors.StartupError(message)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of at least 1")
    return int(text)


def _address(text: str) -> Address:
    try:
        return Address.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _name(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r}: letters, digits and _ only (it names options: "
            f"{text}_workers ...)"
        )
    return text


def _variable(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        allow_abbrev=False,  # --worker is no flag, not --workers
        description="Serve a WSGI app on wsgisvc's launchers and HTTP core.",
        epilog="Arguments after -- are the app's own command line.",
    )
    app = parser.add_mutually_exclusive_group(required=True)
    app.add_argument("--app", metavar="MODULE:CALLABLE", help="the WSGI app")
    app.add_argument(
        "--paste", metavar="FILE[#NAME]", help="a PasteDeploy app (NAME: main)"
    )
    parser.add_argument(
        "--bind",
        action="append",
        type=_address,
        metavar="ADDRESS",
        help="HOST:PORT, [IPv6]:PORT or unix:PATH; repeat for more sockets "
        f"(default: <name>_listen:<name>_listen_port, else {DEFAULT_BIND})",
    )
    parser.add_argument(
        "--workers",
        type=_count,
        help="worker processes (default: <name>_workers, else the CPU count); "
        "1 serves in this process",
    )
    parser.add_argument(
        "--backend",
        choices=backend.BACKENDS,
        help="eventlet or threading (default: $WSGISVC_BACKEND, else eventlet)",
    )
    parser.add_argument(
        "--pool-size",
        type=_count,
        help="requests each worker serves at once (wsgi_default_pool_size)",
    )
    parser.add_argument(
        "--name",
        type=_name,
        help="the service's name in logs and metrics, and of its <name>_* "
        "options (default: the app's top package, or the paste app's name)",
    )
    parser.add_argument(
        "--env",
        action="append",
        type=_variable,
        default=[],
        metavar="KEY=VALUE",
        help="set in the environment before the app loads; repeatable",
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        help="load the app once in the parent, not in each worker after the fork",
    )
    # Both into one list, in the order given: later files win, as in
    # oslo.config's own command line.
    parser.add_argument(
        "--config-file",
        action="append",
        dest="config",
        default=[],
        type=lambda path: ("--config-file", path),
        help="a file of wsgisvc's options (oslo.config); repeatable",
    )
    parser.add_argument(
        "--config-dir",
        action="append",
        dest="config",
        type=lambda path: ("--config-dir", path),
        help="a directory of *.conf files of wsgisvc's options; repeatable",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG level")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """wsgisvc-serve's arguments (``argv`` without the program name); the
    app's own, after ``--``, in ``app_argv``."""
    ours, app_argv = argv, []
    if "--" in argv:
        split = argv.index("--")
        ours, app_argv = argv[:split], argv[split + 1 :]
    args = parser().parse_args(ours)
    args.app_argv = app_argv
    if args.name is None:
        args.name = _default_name(args)
    return args


def _default_name(args: argparse.Namespace) -> str:
    if args.app:
        top = args.app.partition(".")[0].partition(":")[0]
    else:
        top = args.paste.partition("#")[2] or "main"
    return re.sub(r"\W", "_", top)


class _PasteApp:
    """The paste app ``app_name`` of ``loader``'s file, whatever the service
    is called."""

    def __init__(self, loader: wsgi.Loader, app_name: str) -> None:
        self.loader, self.app_name = loader, app_name

    def load_app(self, name: str):
        return self.loader.load_app(self.app_name)


def build(args: argparse.Namespace) -> service.WSGIService:
    """Parse wsgisvc's files, set the flags over them, build the service."""
    conf = config.CONF
    name = args.name
    opts.register_wsgi_service_opts(conf, name)
    conf.set_default(f"{name}_in_services_table", False)
    conf.set_default(f"{name}_listen", DEFAULT_BIND.partition(":")[0])
    conf.set_default(f"{name}_listen_port", int(DEFAULT_BIND.partition(":")[2]))
    sources = [word for flag_and_path in args.config for word in flag_and_path]
    debug = ["--debug"] if args.debug else []
    config.parse_args(
        [PROG, *sources, *debug],
        conf,
        default_config_files=[],
        default_config_dirs=[],
    )
    if args.workers is not None:
        conf.set_override(f"{name}_workers", args.workers)
    if args.pool_size is not None:
        conf.set_override("wsgi_default_pool_size", args.pool_size)
    for key, value in args.env:
        os.environ[key] = value
    sys.argv = [sys.argv[0], *args.app_argv]  # what the app parses, if it does
    sys.path.insert(0, os.getcwd())  # an app beside the operator, as gunicorn has
    if args.app:
        loader = wsgi.ModuleLoader(args.app)
    else:
        path, _, app_name = args.paste.partition("#")
        conf.set_override("api_paste_config", os.path.abspath(path))
        loader = _PasteApp(wsgi.Loader(conf), app_name or "main")
    workers = conf[f"{name}_workers"] or os.cpu_count() or 1
    return service.WSGIService(
        name,
        loader,
        conf=conf,
        addresses=args.bind,
        load_in_workers=workers > 1 and not args.preload,
    )


def _use_backend(name: str | None) -> None:
    """The backend is chosen when wsgisvc is first imported, before anything
    is patched: for another one, exec this command anew with it chosen."""
    if name is None or name == backend.NAME:
        return
    os.environ["WSGISVC_BACKEND"] = name
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


def main(argv: list[str] | None = None) -> NoReturn:
    argv = sys.argv[1:] if argv is None else argv
    args = startup_errors(PROG, lambda: parse(argv))
    _use_backend(args.backend)
    server = startup_errors(PROG, lambda: build(args))
    binary.serve(PROG, server, server.workers_option)


if __name__ == "__main__":
    main()
