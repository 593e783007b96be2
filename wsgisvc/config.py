"""The CONF a binary parses, and parse_args() that sets it and logging up.

Library code never reads this module's CONF behind the caller's back: launchers,
servers and services take the ``ConfigOpts`` they work with as an argument, and
register the options they read on it. Binaries pass ``config.CONF``.
"""

import glob
import os
from collections.abc import Mapping
from importlib import metadata

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import opts
from wsgisvc.errors import ConfigValueError

CONF = cfg.CONF
PROJECT = "wsgisvc"
# oslo.log's, and: oslo.service says which backend it loaded in three INFO
# lines; each launcher says which backend it runs on in one.
DEFAULT_LOG_LEVELS = logging.get_default_log_levels() + [
    "alembic=WARN",
    "oslo_service.backend=WARN",
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every wsgisvc option on ``conf`` (safe to call twice)."""
    conf.register_opts(opts.launcher_opts)
    conf.register_opts(opts.service_opts)
    conf.register_opts(opts.wsgi_opts)
    conf.register_opts(opts.periodic_task_opts)
    conf.register_opts(opts.metrics_opts)
    # By name: oslo.config keeps overrides in the OptGroup object, so sharing
    # opts' group objects would leak overrides between ConfigOpts instances.
    conf.register_opts(opts.ssl_opts, group=opts.ssl_group.name)
    conf.register_opts(opts.database_opts, group=opts.database_group.name)
    opts.register_wsgi_service_opts(conf, "osapi")


def parse_args(
    argv: list[str],
    conf: cfg.ConfigOpts = CONF,
    default_config_files: list[str] | None = None,
    default_config_dirs: list[str] | None = None,
) -> cfg.ConfigOpts:
    """Parse ``argv`` (program name first) into ``conf`` and set up oslo.log.

    Gives operators the usual OpenStack command line: ``--config-file``,
    ``--config-dir``, ``--debug``, ``--log-file`` and friends.
    """
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
