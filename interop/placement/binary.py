"""placement, unchanged, under the README's pattern of a binary of one's own:
``binary.run()`` with a ``WSGIService`` named ``placement``, its app loaded by
module path in each worker after the fork (placement opens its database
engine when it loads). The harness passes the listening socket named
``placement``, as systemd would; ``placement_workers`` is unset: the CPU
count."""

from wsgisvc.cmd import binary  # noqa: I001  (first: the backend, patching)
from wsgisvc import service, wsgi

binary.run(
    lambda conf: service.WSGIService(
        "placement",
        wsgi.ModuleLoader("placement.wsgi.api:application"),
        conf=conf,
        load_in_workers=True,
    )
)
