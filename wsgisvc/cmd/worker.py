"""wsgisvc-worker: the RPC worker binary.

Runs ``worker_manager`` (the sample WorkerManager by default) behind the
``worker`` topic in ``worker_workers`` processes::

    wsgisvc-worker --config-file etc/wsgisvc.conf
"""

import wsgisvc.cmd  # noqa: F401, I001  (backend and monkey patching first)

from oslo_config import cfg

from wsgisvc import service
from wsgisvc.cmd import binary


def build(conf: cfg.ConfigOpts) -> service.Service:
    return service.Service.create(binary="wsgisvc-worker", topic="worker", conf=conf)


def main() -> None:
    binary.run(build, workers="worker_workers")


if __name__ == "__main__":
    main()
