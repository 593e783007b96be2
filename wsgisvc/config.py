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
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata

from oslo_config import cfg
from oslo_log import log as logging

from wsgisvc import DISTRIBUTION, opts
from wsgisvc.errors import ConfigValueError

__all__ = ["CONF", "parse_args", "check_values", "register_opts", "workers"]

#: The ConfigOpts a binary parses: oslo.config's global ``cfg.CONF``, or, in
#: wsgisvc's own binaries, a ConfigOpts of their own. Read it as
#: ``config.CONF`` when it is used: it is rebound once.
CONF: cfg.ConfigOpts = cfg.CONF
LOG = logging.getLogger(__name__)
# The oslo.config project of wsgisvc's own binaries (project_of): their files
# are found as /etc/wsgisvc/wsgisvc.conf, ~/.wsgisvc/... (the package's name,
# not the distribution's).
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
    # the sample binaries': wsgisvc-worker's (Service adds worker_max_worker_rss_mib
    # for its topic) and wsgisvc-api's osapi_*
    opts.register(conf, opts.sample_worker_opts)
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
    project = project_of(argv[0])
    defines_state_path = "state_path" not in conf  # not the service's own
    register_opts(conf)
    if defines_state_path:
        conf.set_default("state_path", opts.state_home(project))
    logging.register_options(conf)
    logging.set_defaults(default_log_levels=DEFAULT_LOG_LEVELS)
    conf(
        argv[1:],
        project=project,
        version=metadata.version(DISTRIBUTION),
        default_config_files=default_config_files,
        default_config_dirs=default_config_dirs,
    )
    try:
        logging.setup(conf, project)
    except cfg.ConfigSourceValueError:
        pass  # a logging option's value: check_values() names it, on stderr
    check_values(conf)
    return conf


def project_of(program: str) -> str:
    """The project a binary belongs to, as OpenStack names its binaries: the
    name up to its first ``-`` (nova-api and nova-compute: nova; wsgisvc-api:
    wsgisvc; myproj-api: myproj). Its files are found under that name, as
    nova's under /etc/nova (``/etc/myproj/myproj.conf``, ``~/.myproj/``), and
    its state goes under it, so a project's binaries share one services table
    (an API lists its workers' rows) and one project's rows are never
    another's."""
    name = os.path.splitext(os.path.basename(program))[0].partition("-")[0]
    return name or PROJECT


def share_files_with_global(conf: cfg.ConfigOpts) -> None:
    """Parse oslo.config's global CONF with ``conf``'s files, if the app just
    loaded left it unparsed: libraries in the app read their options there
    (oslo.middleware's filters, ``[oslo_middleware]``), from the binary's
    files as they would under a binary that parsed the global CONF itself.
    An app that parsed it (glance, keystone) keeps what it parsed. Parsed
    here, its values are checked as the binary's are (:func:`check_values`):
    an option the app registered there with a bad value in the binary's
    files is one line, not a traceback at its first request."""
    parsed = "config_file" in cfg.CONF  # registered by its __call__
    if conf is cfg.CONF or parsed or "config_file" not in conf:
        return
    files = [flag for path in conf.config_file for flag in ("--config-file", path)]
    dirs = [flag for path in conf.config_dir for flag in ("--config-dir", path)]
    cfg.CONF([*files, *dirs], project=PROJECT, default_config_files=[])
    check_values(cfg.CONF)


def workers(conf: cfg.ConfigOpts, option: str) -> int:
    """The number of worker processes ``option`` says: unset is the CPU count.

    Raises ConfigValueError below 1 (a definition of the option without
    wsgisvc's bounds may hold one).
    """
    count = conf[option]
    if count is None:
        return os.cpu_count() or 1
    if count < 1:
        raise ConfigValueError(f"{option} must be at least 1, got {count}")
    return count


class Reloader:
    """SIGHUP's reload of the configuration a launcher serves: checked whole
    before anything of it applies.

    oslo.config's reload_config_files() takes whatever the files say, and
    converts a value only where it is first read: a broken value would be
    served from the reload on, and fail later as a traceback (a worker's
    report, the next fork), or fail the next start. oslo.config cannot parse
    into a copy, so the files are parsed first into a scratch ConfigOpts with
    the same options, defaults, overrides and command line, and every value
    is read there, as :func:`check_values` does at start (plus the
    launcher's own ``check``). Only a configuration that passes replaces the
    live one; one that does not is one line, and the old one serves on.
    """

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf
        self.loaded_at = _now()

    def check(self, check: Callable[[cfg.ConfigOpts], None] | None = None) -> bool:
        """Would a reload pass? When not, say why in one line: False."""
        try:
            scratch = _parse_again(self.conf)
            check_values(scratch)
            if check is not None:
                check(scratch)
        except (cfg.Error, ConfigValueError, SystemExit) as error:
            refused = error
        else:
            return True
        self._refuse(refused)  # out of the except block: no traceback logged
        return False

    def reload(
        self,
        mutate: bool = False,
        check: Callable[[cfg.ConfigOpts], None] | None = None,
    ) -> dict[str, tuple[object, object]] | None:
        """Check, then reload (``mutate``: oslo.config's mutable options
        only) and log what changed in one line; the changes by option
        (``[group] name``): (old, new). None when refused: nothing changed.
        """
        if not self.check(check):
            return None
        before = _values(self.conf)
        try:
            if mutate:
                self.conf.mutate_config_files()
            elif not self.conf.reload_config_files():  # it logged why
                raise cfg.Error("the files changed while being reloaded")
        except cfg.Error as error:  # rewritten between the check and here
            refused = error
        else:
            refused = None
        if refused is not None:
            self._refuse(refused)
            return None
        after = _values(self.conf)
        changes = {
            name: (before[name][0] if name in before else None, value)
            for name, (value, _) in after.items()
            if name not in before or before[name][0] != value
        }
        self.loaded_at = _now()
        described = ", ".join(
            f"{name}: {_shown(before.get(name))} -> {_shown(after[name])}"
            for name in changes
        )
        LOG.info("reload: %s", described or "no option changed")
        return changes

    def _refuse(self, error: BaseException) -> None:
        why = " ".join(str(error).split()) or type(error).__name__
        if isinstance(error, SystemExit):  # argparse's, for a command-line option
            why = "a command-line option's value in the files is not valid"
        LOG.error(
            "reload refused: %s; still serving the configuration loaded at %s",
            why,
            self.loaded_at,
        )


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _parse_again(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """A new ConfigOpts with ``conf``'s options, parsed as ``conf`` was."""
    scratch = cfg.ConfigOpts()
    for group, opt, info in _registered(conf):
        if group is None and opt.dest in ("config_file", "config_dir"):
            continue  # oslo.config registers its own when it parses
        if info.get("cli"):
            scratch.register_cli_opt(opt, group)
        else:
            scratch.register_opt(opt, group)
        if "default" in info:
            scratch.set_default(opt.dest, info["default"], group)
        if "override" in info:
            scratch.set_override(opt.dest, info["override"], group)
    scratch(
        list(conf._args or []),
        project=conf.project,
        prog=conf.prog,
        default_config_files=conf.default_config_files,
        default_config_dirs=conf.default_config_dirs,
        use_env=conf._use_env,
    )
    return scratch


def _registered(conf: cfg.ConfigOpts) -> Iterator[tuple[str | None, cfg.Opt, dict]]:
    """(group name, option, oslo.config's record of it) of every option on
    ``conf``: oslo.config lists them nowhere public (its sample generator
    reads entry points instead)."""
    for info, group in conf._all_opt_infos():
        yield (group.name if group is not None else None), info["opt"], info


def _values(conf: cfg.ConfigOpts) -> dict[str, tuple[object, bool]]:
    """(value, secret) of every option on ``conf``, by ``[group] name``."""
    values = {}
    for group, opt, _ in _registered(conf):
        if isinstance(opt, cfg.SubCommandOpt):  # a command, not a value
            continue
        try:
            value = conf[group][opt.dest] if group else conf[opt.dest]
        except (cfg.Error, ValueError):  # registered since the last check
            continue
        values[f"[{group}] {opt.dest}" if group else opt.dest] = (value, opt.secret)
    return values


def _shown(found: tuple[object, bool] | None) -> str:
    if found is None:
        return "(unset)"
    value, secret = found
    return "****" if secret and value is not None else repr(value)


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
    variable = f"OS_{(group or 'DEFAULT').upper()}__{name.upper()}"
    found = _raw_value(conf, group or "DEFAULT", name)
    if getattr(conf, "_use_env", True) and variable in os.environ:
        # oslo.config reads OS_<GROUP>__<NAME> over the files
        where = f"{os.environ[variable]!r} in the environment variable {variable}"
    elif found:
        where = f"{found[1]!r} in {found[0]}"
    else:
        where = "its value"
    return ConfigValueError(f"option {option}: {where} is not valid: {why}")


def _raw_value(conf: cfg.ConfigOpts, section: str, name: str):
    """(file, text) of the configuration file that set ``name`` last, in the
    order oslo.config parsed them (:func:`_parsed_files`)."""
    found = None
    for path in _parsed_files(conf):
        sections: dict = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue
        values = sections.get(section, {}).get(name)
        if values:
            found = (path, values[-1])
    return found


def _parsed_files(conf: cfg.ConfigOpts) -> list[str]:
    """The files ``conf`` parsed, first to last, as oslo.config orders them:
    the default files and directories when no flag named any, then each
    ``--config-file`` and each ``--config-dir`` (its ``*.conf`` sorted) in
    the order of the command line, the two flags together: a file given
    after a directory overrides it, and one before it does not. The command
    line is the one ``conf`` parsed (oslo.config keeps it, unexposed, as
    ``_args``; its ``config_file`` and ``config_dirs`` lose that order)."""
    named = list(_config_flags(list(getattr(conf, "_args", None) or [])))
    paths: list[str] = []
    if not any(flag == "--config-file" for flag, _ in named):
        paths += map(_expand, getattr(conf, "default_config_files", None) or [])
    if not any(flag == "--config-dir" for flag, _ in named):
        dirs = getattr(conf, "default_config_dirs", None) or []
        named = [("--config-dir", path) for path in dirs] + named
    for flag, path in named:
        if flag == "--config-file":
            paths.append(_expand(path))
        else:
            paths += sorted(glob.glob(os.path.join(os.path.expanduser(path), "*.conf")))
    return paths


def _config_flags(args: list[str]) -> Iterator[tuple[str, str]]:
    """(flag, value) of each --config-file and --config-dir in ``args``."""
    flags = ("--config-file", "--config-dir")
    for index, arg in enumerate(args):
        if arg == "--":
            return
        flag, equals, value = arg.partition("=")
        if flag not in flags:
            continue
        if equals:
            yield flag, value
        elif index + 1 < len(args):
            yield flag, args[index + 1]


def _expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))
