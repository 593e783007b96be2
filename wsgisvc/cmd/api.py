"""wsgisvc-api: serve the paste app ``osapi`` on the launchers.

    wsgisvc-api --config-dir etc     # etc/wsgisvc.conf + etc/api-paste.ini

A start-up error (paste file or app missing, port in use, unusable TLS files,
bad option) is one line on stderr (and in the log) and exit status 1.
"""

import wsgisvc.cmd  # noqa: F401, I001  (monkey patching first)

import sys

from oslo_log import log as logging

from wsgisvc import config, registry, service, sslutils, wsgi

LOG = logging.getLogger(__name__)
STARTUP_ERRORS = (
    wsgi.StartupError,
    sslutils.TLSConfigError,
    registry.DatabaseSyncError,
)


def main() -> None:
    config.parse_args(sys.argv)
    try:
        registry.sync_default_database(config.CONF)  # the services table, issue 5
        server = service.WSGIService("osapi")
    except STARTUP_ERRORS as exc:
        error = f"wsgisvc-api cannot start: {exc}"
    else:
        service.serve(server, workers=server.workers)
        sys.exit(service.wait())
    # Logged outside the except block: oslo.log would append the exception.
    LOG.error("%s", error)
    if not _logs_to_stderr():
        print(error, file=sys.stderr)
    sys.exit(1)


def _logs_to_stderr() -> bool:
    """oslo.log writes to stderr unless a log file or syslog was configured."""
    conf = config.CONF
    return not (conf.log_file or conf.use_syslog or conf.use_journal)
