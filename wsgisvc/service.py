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

# This section's imports stay with it so the sections can be edited apart.
import os as _os  # noqa: E402

from oslo_config import cfg as _cfg  # noqa: E402

from wsgisvc import config as _config  # noqa: E402
from wsgisvc import opts as _opts  # noqa: E402
from wsgisvc import wsgi as _wsgi  # noqa: E402

__all__ += ["WSGIService"]


class WSGIService(ServiceBase):
    """A paste application served over HTTP(S) by :class:`wsgisvc.wsgi.Server`.

    Everything that can fail at start-up (paste file, app name, options, TLS
    files, the port) fails here, in the constructor, before any fork. The socket
    is bound here too, so ``.port`` is the real port (``<name>_listen_port = 0``
    lets the kernel choose) and forked workers share it.
    """

    def __init__(
        self,
        name: str,
        loader: _wsgi.Loader | None = None,
        use_ssl: bool = False,
        max_url_len: int | None = None,
        *,
        conf: _cfg.ConfigOpts | None = None,
    ) -> None:
        self.conf = conf if conf is not None else _config.CONF
        self.name = name
        self.conf.register_opts(_opts.wsgi_opts)
        _opts.register_wsgi_service_opts(self.conf, name)
        self.workers = self._read_workers()
        self.use_ssl = use_ssl or self.conf[f"{name}_use_ssl"]
        self.loader = loader or _wsgi.Loader(self.conf)
        self.app = self.loader.load_app(name)
        self.server = _wsgi.Server(
            self.conf,
            name,
            self.app,
            host=self.conf[f"{name}_listen"],
            port=self.conf[f"{name}_listen_port"],
            use_ssl=self.use_ssl,
            max_url_len=max_url_len,
        )
        self.host, self.port = self.server.host, self.server.port

    def __repr__(self) -> str:
        return f"<WSGIService {self.name} {self.server.url}>"

    def _read_workers(self) -> int:
        option = f"{self.name}_workers"
        workers = self.conf[option]
        if workers is None:
            return _os.cpu_count() or 1
        if workers < 1:
            raise _wsgi.StartupError(f"{option} must be at least 1, got {workers}")
        return workers

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def wait(self) -> None:
        self.server.wait()

    def reset(self) -> None:
        self.server.reset()



# --- Service (RPC, issue 5) below this line -----------------------------------
