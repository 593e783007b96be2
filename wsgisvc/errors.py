"""Why a binary cannot start: one root, :class:`StartupError`, for all of it.

A binary that meets one of these before serving says so in one line (logged,
and on stderr) and exits 1: ``wsgisvc.cmd.binary`` is the one place that does.
The message is that line, so each class's message says what is wrong and, when
it can, how to fix it. Every class is also importable from where it was first
defined (``wsgi.BindError``, ``sslutils.TLSConfigError``, ...).
"""


class StartupError(RuntimeError):
    """The binary cannot start; the message is the one line an operator reads."""


class ConfigValueError(StartupError):
    """An option has a value its type refuses (names the option, file, value)."""


class ServiceConfigError(StartupError):
    """The configuration cannot run this service (a manager, a state path)."""


class PasteConfigNotFound(StartupError):
    """``api_paste_config`` names no readable file."""


class PasteAppNotFound(StartupError):
    """The paste file has no application of the requested name."""


class PasteLoadError(StartupError):
    """The app exists but a section it uses or a factory it calls failed."""


class AppLoadError(StartupError):
    """The WSGI app ``module:callable`` cannot be found, imported or called."""


class BindError(StartupError):
    """The address stayed in use (or unusable) for the whole retry window."""


class SocketActivationError(StartupError):
    """The sockets passed in ``LISTEN_FDS`` (by systemd, or by an upgrade)
    do not match the services: one named for no service, a service with none,
    one that is no listening TCP or unix stream socket."""


class TLSConfigError(StartupError):
    """The ``[ssl]`` options cannot serve TLS; the message says which and why."""


class DatabaseSyncError(StartupError):
    """The default database could not be brought up to date at start."""


class DatabaseDriverMissing(StartupError):
    """``[services_table] connection`` names a driver that is not installed;
    the message names the extra that installs it."""


class SchemaNotCurrent(StartupError):
    """A configured ``[services_table] connection`` lacks the services table's
    current schema; ``wsgisvc-manage db sync`` brings it there."""


__all__ = [
    "AppLoadError",
    "BindError",
    "ConfigValueError",
    "DatabaseDriverMissing",
    "DatabaseSyncError",
    "PasteAppNotFound",
    "PasteConfigNotFound",
    "PasteLoadError",
    "SchemaNotCurrent",
    "ServiceConfigError",
    "SocketActivationError",
    "StartupError",
    "TLSConfigError",
]
