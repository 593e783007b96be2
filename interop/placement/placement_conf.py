"""A gabbi fixture's placement configuration, as files a server reads.

The fixtures configure placement in-process, on a ConfigOpts of their own; a
server reads placement.conf from the directory OS_PLACEMENT_CONFIG_DIR names,
and its policy file. ``write_config`` writes every option whose value in the
fixture differs from what placement.wsgi computes from no file at all, which
this module prints when run (``python placement_conf.py``): in a process of its
own, since placement.wsgi changes the defaults of oslo.middleware's CORS
options for the whole process, and the fixtures run without that.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from oslo_config import cfg

# Options of the command line, not of a file: never written to placement.conf.
COMMAND_LINE_OPTS = {
    ("DEFAULT", "config_file"),
    ("DEFAULT", "config_dir"),
    ("DEFAULT", "config_source"),
}
Values = dict[str, dict[str, object]]


def option_values(conf: cfg.ConfigOpts) -> Values:
    """Every registered option's value, by group ("DEFAULT" for no group), as
    JSON has it."""
    values: Values = {"DEFAULT": {}}
    for name in conf:
        value = conf[name]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            values[name] = {opt: value[opt] for opt in value}
        else:
            values["DEFAULT"][name] = value
    return json.loads(json.dumps(values, default=str))


def server_defaults() -> Values:
    """What placement.wsgi computes from an empty placement.conf."""
    out = subprocess.run(
        [sys.executable, __file__], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out)


def _ini_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    if isinstance(value, dict):
        return ",".join(f"{key}:{item}" for key, item in value.items())
    return str(value)


def write_config(
    conf: cfg.ConfigOpts,
    defaults: Values,
    confdir: Path,
    connection: str,
    policy: Path | None,
) -> None:
    """Write confdir/placement.conf: ``conf``'s values that differ from
    ``defaults``, with ``connection`` for the database (the server's copy of
    the fixture's) and ``policy`` as the policy file when there is one."""
    sections: dict[str, dict[str, str]] = {}
    for group, opts in option_values(conf).items():
        for name, value in opts.items():
            if (group, name) in COMMAND_LINE_OPTS:
                continue
            server = defaults.get(group, {}).get(name, "(not registered)")
            if value == server:
                continue
            if value is None:
                raise ValueError(
                    f"[{group}] {name} is unset in the fixture, {server!r} in the "
                    "server, and a file cannot unset it"
                )
            sections.setdefault(group, {})[name] = _ini_value(value)
    sections.setdefault("placement_database", {})["connection"] = connection
    if policy:
        sections.setdefault("oslo_policy", {})["policy_file"] = str(policy)
    with open(confdir / "placement.conf", "w") as out:
        for group, opts in sections.items():
            out.write(f"[{group}]\n")
            out.writelines(f"{name} = {value}\n" for name, value in opts.items())


def write_policy(enforcer, confdir: Path) -> Path | None:
    """The rules a fixture set in-process, as confdir/policy.yaml; None when
    the fixture set none.

    PolicyFixture.set_rules replaces the enforcer's rules and stops it from
    reading files (use_conf False): the server reads them from the file.
    """
    if enforcer is None or enforcer.use_conf:
        return None
    path = confdir / "policy.yaml"
    rules = {name: str(check) for name, check in enforcer.rules.items()}
    path.write_text(yaml.safe_dump(rules))
    return path


# What placement does in every process it loads in (placement.deploy), done
# once here: its standard traits and resource classes written to the table.
_BOOT_SYNC = """
import sys
from oslo_config import cfg
from placement import conf, db_api, deploy
config = cfg.ConfigOpts()
conf.register_opts(config)
config(["--config-file", sys.argv[1]], default_config_files=[])
db_api.configure(config)
deploy.update_database(config)
"""


def sync_database(path: Path) -> None:
    """Make the SQLite file at ``path`` a database at placement's schema, as
    placement-manage does it, with the traits and resource classes placement
    writes when it loads: two workers loading at once on an empty table both
    write them, and SQLite refuses one ("database is locked"), which ends
    that worker (gunicorn then stops: a worker that failed to boot)."""
    conf = path.with_suffix(".conf")
    conf.write_text(f"[placement_database]\nconnection = sqlite:///{path}\n")
    manage = Path(sys.executable).parent / "placement-manage"
    subprocess.run([manage, "--config-file", conf, "db", "sync"], check=True)
    subprocess.run([sys.executable, "-c", _BOOT_SYNC, conf], check=True)


def write_noauth_config(confdir: Path, database: Path) -> None:
    """confdir/placement.conf for placement on ``database``, trusting the
    token as the user (noauth2: ``admin`` is an admin)."""
    (confdir / "placement.conf").write_text(
        "[api]\nauth_strategy = noauth2\n"
        f"[placement_database]\nconnection = sqlite:///{database}\n"
    )


if __name__ == "__main__":
    from placement import conf, wsgi

    config = cfg.ConfigOpts()
    conf.register_opts(config)
    # required, and always written: the fixture's is a SQLite file of its own
    config.set_default("connection", "sqlite://", group="placement_database")
    wsgi._parse_args(config, [], default_config_files=[])
    json.dump(option_values(config), sys.stdout)
