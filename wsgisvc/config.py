"""The CONF a binary parses, and parse_args() that sets it and logging up.

Library code never reads this module's CONF behind the caller's back: launchers,
servers and services take the ``ConfigOpts`` they work with as an argument, and
register the options they read on it. Binaries pass ``config.CONF``.
"""

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import opts

CONF = cfg.CONF
PROJECT = "wsgisvc"


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
    logging.set_defaults(
        default_log_levels=logging.get_default_log_levels() + ["alembic=WARN"]
    )
    conf(
        argv[1:],
        project=PROJECT,
        default_config_files=default_config_files,
        default_config_dirs=default_config_dirs,
    )
    logging.setup(conf, PROJECT)
    return conf
