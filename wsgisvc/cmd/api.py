"""wsgisvc-api: serve the paste app ``osapi`` on the launchers.

    wsgisvc-api --config-dir etc     # etc/wsgisvc.conf + etc/api-paste.ini

A start-up error (paste file or app missing, port in use, unusable TLS files,
bad option value, database schema behind) is one line on stderr (and in the
log) and exit status 1.
"""

import wsgisvc.cmd  # noqa: F401, I001  (backend and monkey patching first)

from wsgisvc import service
from wsgisvc.cmd import binary


def main() -> None:
    binary.run(lambda conf: service.WSGIService("osapi", conf=conf))
