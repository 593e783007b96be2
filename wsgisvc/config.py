"""The CONF a binary parses, and parse_args() that sets it and logging up.

Library code never reads this module's CONF behind the caller's back: launchers,
servers and services take the ``ConfigOpts`` they work with as an argument, and
register the options they read on it; handed none, they use ``config.CONF``.

``CONF`` is oslo.config's global ``cfg.CONF``, what OpenStack code registers on
and parses (a service that builds wsgisvc's services in its own binary, as a
drop-in for oslo.service's, shares it). In wsgisvc's own binaries it is a
ConfigOpts of their own instead (``wsgisvc.cmd`` calls :func:`use_own_conf`
on import): the app a binary serves may register options on the global CONF,
command-line ones included, or parse it with its own files and argv (glance,
keystone and nova's wsgi apps do, when they load), and none of that may fail
or erase the binary's configuration. Read it as ``config.CONF``, at the time
of use: it is rebound once. An app that leaves the global CONF unparsed (a
paste pipeline of oslo.middleware filters, which read it) gets it parsed with
the binary's files once it has loaded: :func:`share_files_with_global`.
"""

import glob
import os
from collections.abc import Mapping
from importlib import metadata

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import opts
from wsgisvc.errors import ConfigValueError

CONF: cfg.ConfigOpts = cfg.CONF
PROJECT = "wsgisvc"
# oslo.log's, and: oslo.service says which backend it loaded in three INFO
# lines; each launcher says which backend it runs on in one.
DEFAULT_LOG_LEVELS = logging.get_default_log_levels() + [
    "alembic=WARN",
    "oslo_service.backend=WARN",
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every wsgisvc option on ``conf`` (safe to call twice)."""
    opts.register(conf, opts.launcher_opts)
    opts.register(conf, opts.service_opts)
    opts.register(conf, opts.wsgi_opts)
    opts.register(conf, opts.periodic_task_opts)
    opts.register(conf, opts.metrics_opts)
    opts.register(conf, opts.ssl_opts, opts.ssl_group.name)
    opts.register(conf, opts.services_table_opts, opts.services_table_group.name)
    opts.register_wsgi_service_opts(conf, "osapi")


def use_own_conf() -> cfg.ConfigOpts:
    """Make ``CONF`` a new ConfigOpts, not oslo.config's global one (see above)."""
    global CONF
    CONF = cfg.ConfigOpts()
    return CONF


def parse_args(
    argv: list[str],
    conf: cfg.ConfigOpts | None = None,
    default_config_files: list[str] | None = None,
    default_config_dirs: list[str] | None = None,
) -> cfg.ConfigOpts:
    """Parse ``argv`` (program name first) into ``conf`` and set up oslo.log.

    Gives operators the usual OpenStack command line: ``--config-file``,
    ``--config-dir``, ``--debug``, ``--log-file`` and friends. ``conf``:
    ``CONF`` unless given.
    """
    conf = CONF if conf is None else conf
    register_opts(conf)
    logging.register_options(conf)
    logging.set_defaults(default_log_levels=DEFAULT_LOG_LEVELS)
    conf(
        argv[1:],
        project=PROJECT,
        version=metadata.version(PROJECT),
        default_config_files=default_config_files,
        default_config_dirs=default_config_dirs,
    )
    try:
        logging.setup(conf, PROJECT)
    except cfg.ConfigSourceValueError:
        pass  # a logging option's value: check_values() names it, on stderr
    check_values(conf)
    return conf


def share_files_with_global(conf: cfg.ConfigOpts) -> None:
    """Parse oslo.config's global CONF with ``conf``'s files, if the app just
    loaded left it unparsed: libraries in the app read their options there
    (oslo.middleware's filters, ``[oslo_middleware]``), from the binary's
    files as they would under a binary that parsed the global CONF itself.
    An app that parsed it (glance, keystone) keeps what it parsed."""
    if conf is cfg.CONF or "config_file" in cfg.CONF:  # parsed: see its __call__
        return
    files = [flag for path in conf.config_file for flag in ("--config-file", path)]
    dirs = [flag for path in conf.config_dir for flag in ("--config-dir", path)]
    cfg.CONF([*files, *dirs], project=PROJECT, default_config_files=[])


def check_values(conf: cfg.ConfigOpts) -> None:
    """Read every option registered on ``conf`` once, now.

    oslo.config converts a value when it is first read, so a bad one would
    otherwise surface wherever that happens: in a worker, after the bind and
    the fork, as a traceback. Called by parse_args() and again by whatever
    registers more options before using them, so a binary fails here, in the
    parent, with one ConfigValueError naming the option, its file and value.
    """
    for name in list(conf):
        value = _read(conf, None, name)
        if isinstance(value, Mapping):  # a group: read its options too
            for option in list(value):
                _read(conf, name, option)


def _read(conf: cfg.ConfigOpts, group: str | None, name: str):
    try:
        return conf[group][name] if group else conf[name]
    except cfg.ConfigSourceValueError as error:
        raise _value_error(conf, group, name, error) from error


def _value_error(
    conf: cfg.ConfigOpts, group: str | None, name: str, error: Exception
) -> ConfigValueError:
    option = f"[{group}] {name}" if group else name
    why = error.__context__ if isinstance(error.__context__, ValueError) else error
    found = _raw_value(conf, group or "DEFAULT", name)
    where = f"{found[1]!r} in {found[0]}" if found else "its value"
    return ConfigValueError(f"option {option}: {where} is not valid: {why}")


def _raw_value(conf: cfg.ConfigOpts, section: str, name: str):
    """(file, text) of the configuration file that set ``name`` last, as
    oslo.config reads them: --config-file in order, then --config-dir's
    ``*.conf`` sorted."""
    files = list(conf.config_file or [])
    for directory in conf.config_dir or []:
        files += sorted(glob.glob(os.path.join(directory, "*.conf")))
    found = None
    for path in files:
        sections: dict = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue
        values = sections.get(section, {}).get(name)
        if values:
            found = (path, values[-1])
    return found
