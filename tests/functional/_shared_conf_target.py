"""A cinder-api-like binary serving on wsgisvc's WSGIService, as a drop-in for
oslo.service's: oslo.config's global CONF holds cinder-like definitions of
``host``, ``state_path``, ``report_interval``, ``osapi_volume_*``, oslo.db's
``[database]`` options and what oslo.service registers itself (its wsgi,
``[ssl]``, service and periodic task options), registered before wsgisvc's
(``first``) or after them (``last``); then it parses the file, as cinder does,
and builds ``WSGIService("osapi_volume")`` with no conf of its own.

    python -m tests.functional._shared_conf_target first|last --config-file F
"""

import os

if os.environ.get("WSGISVC_BACKEND", "eventlet") == "eventlet":
    import eventlet  # as cinder's binaries do, first

    eventlet.monkey_patch()

import sys  # noqa: E402

from oslo_config import cfg  # noqa: E402
from oslo_db import options as db_options  # noqa: E402
from oslo_log import log as logging  # noqa: E402

# What oslo.service's wsgi, sslutils, service and periodic_task modules
# register on a service's CONF (oslo_service.wsgi imports eventlet, which a
# threading service cannot: the same option objects, taken where they live).
from oslo_service import _options as service_options  # noqa: E402

from wsgisvc import config, opts, service  # noqa: E402

CONF = cfg.CONF

CINDER_LIKE = [
    cfg.StrOpt("host", default="cinder-host", help="cinder's own help"),
    cfg.StrOpt("state_path", default="/var/lib/cinder", help="cinder's"),
    cfg.IntOpt("report_interval", default=10, help="cinder's"),
    cfg.IntOpt("service_down_time", default=60, help="cinder's"),
    cfg.IntOpt("periodic_interval", default=60, help="cinder's"),
    cfg.IntOpt("periodic_fuzzy_delay", default=60, help="cinder's"),
    cfg.StrOpt("osapi_volume_listen", default="0.0.0.0", help="cinder's"),
    cfg.PortOpt("osapi_volume_listen_port", default=8776, help="cinder's"),
    cfg.IntOpt("osapi_volume_workers", help="cinder's"),
    cfg.BoolOpt("osapi_volume_use_ssl", default=False, help="cinder's"),
]


def register_the_services_own() -> None:
    CONF.register_opts(CINDER_LIKE)
    CONF.register_opts(db_options.database_opts, "database")
    CONF.register_opts(service_options.wsgi_opts)
    CONF.register_opts(service_options.service_opts)
    CONF.register_opts(service_options.periodic_opts)
    CONF.register_opts(service_options.ssl_opts, "ssl")
    logging.register_options(CONF)


def main() -> int:
    order, argv = sys.argv[1], sys.argv[2:]
    if order == "first":
        register_the_services_own()
    else:
        config.register_opts(CONF)
        opts.register_wsgi_service_opts(CONF, "osapi_volume")
        register_the_services_own()
    CONF(argv, project="cinder")
    logging.setup(CONF, "cinder")
    server = service.WSGIService("osapi_volume")  # no conf: cinder's, the global
    return service.launch(CONF, server, workers=server.workers).wait()


if __name__ == "__main__":
    sys.exit(main())
