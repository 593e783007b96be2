"""Which scheduler wsgisvc runs on: ``eventlet`` (the default) or ``threading``.

Read once, from ``WSGISVC_BACKEND``, when ``wsgisvc`` is first imported and before
anything monkey patches, so every module of one process agrees on it. What differs
between the two backends lives in this package; everything else reads ``NAME``.
"""

import os

BACKENDS = ("eventlet", "threading")


def _chosen() -> str:
    name = os.environ.get("WSGISVC_BACKEND", "").strip() or "eventlet"
    if name not in BACKENDS:
        raise SystemExit(f"WSGISVC_BACKEND={name!r}: use one of {', '.join(BACKENDS)}")
    return name


NAME = _chosen()
