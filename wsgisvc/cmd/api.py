"""wsgisvc-api: serve the paste app ``osapi`` on the launchers.

    wsgisvc-api --config-dir etc     # etc/wsgisvc.conf + etc/api-paste.ini

A start-up error (paste file or app missing, port in use, unusable TLS files,
bad option value, database schema behind) is one line on stderr (and in the
log) and exit status 1.
"""
# ruff: noqa: I001  (the import of wsgisvc.cmd comes first, out of isort's order)

from wsgisvc.cmd import binary  # first: picks the backend; on eventlet, patches
from wsgisvc import service


def main() -> None:
    binary.run(lambda conf: service.WSGIService("osapi", conf=conf))
