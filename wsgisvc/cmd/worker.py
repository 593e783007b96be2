"""wsgisvc-worker: the RPC worker binary.

Runs ``worker_manager`` (the sample WorkerManager by default) behind the
``worker`` topic in ``worker_workers`` processes::

    wsgisvc-worker --config-file etc/wsgisvc.conf
"""
# ruff: noqa: I001  (the import of wsgisvc.cmd comes first, out of isort's order)

from wsgisvc.cmd import binary  # first: picks the backend; on eventlet, patches
from wsgisvc import service


def main() -> None:
    binary.run(
        lambda conf: service.Service.create(
            binary="wsgisvc-worker", topic="worker", conf=conf
        ),
        workers="worker_workers",
    )


if __name__ == "__main__":
    main()
