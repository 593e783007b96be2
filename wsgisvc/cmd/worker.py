"""wsgisvc-worker: the RPC worker binary.

Runs ``worker_manager`` (the sample WorkerManager by default) behind the
``worker`` topic in ``worker_workers`` processes::

    wsgisvc-worker --config-file etc/wsgisvc.conf
"""

import wsgisvc.cmd  # noqa: F401, I001  (monkey patching first)

import logging
import os
import sys

from wsgisvc import config, registry, service

LOG = logging.getLogger("wsgisvc.worker")


def main() -> None:
    conf = config.parse_args(sys.argv)
    try:
        registry.sync_default_database(conf)
        server = service.Service.create(binary="wsgisvc-worker", topic="worker")
    except (service.ServiceConfigError, registry.DatabaseSyncError) as error:
        LOG.error("wsgisvc-worker cannot start: %s", error)
        sys.exit(1)
    service.serve(server, workers=conf.worker_workers or os.cpu_count() or 1)
    sys.exit(service.wait())


if __name__ == "__main__":
    main()
