"""An app with options of its own ([myapi] max_items, greeting), answering
their values, for the tests of an author's binary (``_own_opts_binary``).

Its paste factory registers them itself when told to (``register = late``,
the natural guess of an author; ``global``: on oslo.config's global CONF, as
OpenStack code does), and reads one as it loads when told to
(``read_at_load = true``); else the binary registers them first.
"""

import json
import os

from oslo_config import cfg

from wsgisvc import config

OPTS = [
    cfg.IntOpt("max_items", default=10, min=1, help="Items per page."),
    cfg.StrOpt("greeting", default="hello", mutable=True, help="Said back."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(OPTS, group="myapi")


def app_factory(global_conf, register="early", read_at_load="false"):
    conf = cfg.CONF if register == "global" else config.CONF
    if register in ("late", "global"):
        register_opts(conf)
    if read_at_load == "true":
        conf.myapi.max_items  # noqa: B018  (read now, as some apps do)

    def app(environ, start_response):
        own = conf.myapi
        body = json.dumps(
            {"pid": os.getpid(), "max_items": own.max_items, "greeting": own.greeting}
        ).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app
