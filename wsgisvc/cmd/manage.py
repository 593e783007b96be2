"""wsgisvc-manage: the operator's view of the services table.

    wsgisvc-manage db sync | db version
    wsgisvc-manage service list
    wsgisvc-manage service disable HOST BINARY [--reason TEXT]
    wsgisvc-manage service enable HOST BINARY
    wsgisvc-manage service force-down HOST BINARY [--unset]
    wsgisvc-manage service delete HOST BINARY

Exit status: 0 done, 1 no such service (or database error), 2 usage.
"""

import wsgisvc.cmd  # noqa: I001  (backend and monkey patching first)

import sys
from collections.abc import Callable

import sqlalchemy as sa
from oslo_config import cfg

from wsgisvc import config, registry
from wsgisvc.registry import api, migration


def db_sync(conf: cfg.ConfigOpts, engine: sa.Engine) -> int:
    revision = migration.db_sync(engine)
    print(f"Database {_where(engine)} at revision {revision}")
    return 0


def _where(engine: sa.Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def db_version(conf: cfg.ConfigOpts, engine: sa.Engine) -> int:
    print(migration.db_version(engine) or "None (empty database: run db sync)")
    return 0


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(str(v)) for v in column) for column in zip(headers, *rows, strict=True)
    ]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(values):
        return (
            "| "
            + " | ".join(str(v).ljust(w) for v, w in zip(values, widths, strict=True))
            + " |"
        )

    return "\n".join([rule, line(headers), rule, *map(line, rows), rule])


def service_list(conf: cfg.ConfigOpts, engine: sa.Engine) -> int:
    headers = ["Id", "Binary", "Host", "Topic", "Status", "State", "Updated At",
               "Forced Down", "Disabled Reason"]  # fmt: skip
    rows = [
        [
            row.id,
            row.binary,
            row.host,
            row.topic or "",
            "disabled" if row.disabled else "enabled",
            "up" if registry.is_up(row, conf.service_down_time) else "down",
            (row.last_seen_up or row.created_at).isoformat(sep=" ", timespec="seconds"),
            row.forced_down,
            row.disabled_reason or "",
        ]
        for row in api.get_all(engine)
    ]
    print(_table(headers, rows))
    return 0


def _change(apply: Callable[[cfg.ConfigOpts, sa.Engine, int], object], done: str):
    def command(conf: cfg.ConfigOpts, engine: sa.Engine) -> int:
        host, binary = conf.category.service_host, conf.category.service_binary
        try:
            row = api.find(engine, host, binary)
        except api.ServiceNotFound as error:
            print(f"Error: {error}", file=sys.stderr)
            return 1
        apply(conf, engine, row.id)
        print(f"Service {binary} on {host} (id {row.id}) {done}")
        return 0

    return command


def _disable(conf: cfg.ConfigOpts, engine: sa.Engine, service_id: int) -> None:
    api.set_disabled(engine, service_id, True, conf.category.reason)


def _enable(conf: cfg.ConfigOpts, engine: sa.Engine, service_id: int) -> None:
    api.set_disabled(engine, service_id, False)


def _force_down(conf: cfg.ConfigOpts, engine: sa.Engine, service_id: int) -> None:
    api.set_forced_down(engine, service_id, not conf.category.unset)


def _delete(conf: cfg.ConfigOpts, engine: sa.Engine, service_id: int) -> None:
    api.soft_delete(engine, service_id)


COMMANDS = {
    "db": {"sync": db_sync, "version": db_version},
    "service": {
        "list": service_list,
        "disable": _change(_disable, "disabled"),
        "enable": _change(_enable, "enabled"),
        "force-down": _change(_force_down, "forced-down flag updated"),
        "delete": _change(_delete, "deleted"),
    },
}


# What --help says of each command.
HELP = {
    "db": "the services table's schema in [services_table] connection",
    "sync": "create the services table, or bring it to this release's schema",
    "version": "print the schema revision the database is at",
    "service": "the rows of the services table",
    "list": "every service row: host, binary, topic, up or down, disabled",
    "disable": "stop scheduling to a service (HOST BINARY), with --reason",
    "enable": "schedule to a disabled service again",
    "force-down": "report a service down now, whatever its heartbeat says",
    "delete": "soft-delete a service's row (a service that is gone)",
}


def add_command_parsers(subparsers) -> None:
    for category, actions in COMMANDS.items():
        parser = subparsers.add_parser(category, help=HELP[category])
        commands = parser.add_subparsers(dest="action", required=True)
        for action, func in actions.items():
            sub = commands.add_parser(action, help=HELP[action])
            sub.set_defaults(action_fn=func)
            if category == "service" and action != "list":
                # dest names must not clash with options such as ``host``.
                sub.add_argument("service_host", metavar="HOST")
                sub.add_argument("service_binary", metavar="BINARY")
            if action == "disable":
                sub.add_argument("--reason", help="Why the service is disabled.")
            if action == "force-down":
                sub.add_argument(
                    "--unset", action="store_true", help="Clear the flag instead."
                )


category_opt = cfg.SubCommandOpt(
    "category", title="Commands", handler=add_command_parsers
)


def main() -> None:
    conf = config.CONF
    conf.register_cli_opt(category_opt)
    wsgisvc.cmd.startup_errors("wsgisvc-manage", lambda: config.parse_args(sys.argv))
    engine = wsgisvc.cmd.startup_errors(
        "wsgisvc-manage", lambda: registry.create_engine(conf)
    )
    try:
        status = conf.category.action_fn(conf, engine)
    except sa.exc.SQLAlchemyError as error:
        print(f"Database error: {str(getattr(error, 'orig', error))}", file=sys.stderr)
        status = 1
    finally:
        engine.dispose()
    sys.exit(status)


if __name__ == "__main__":
    main()
