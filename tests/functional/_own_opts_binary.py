"""An author's API binary with options of its own, as api-binary.rst shows
it: ``binary.run(build, register_opts=...)``. ``MYAPI_REGISTER=late`` leaves
the registering to the app's paste factory; ``MYAPI_RESTART_METHOD`` is the
``restart_method`` keyword.

    python -m tests.functional._own_opts_binary --config-file F
"""

import wsgisvc.cmd  # noqa: F401, I001  (backend and monkey patching first)

import os

from wsgisvc import service
from wsgisvc.cmd import binary
from tests.functional import _own_opts_app


def main() -> None:
    early = os.environ.get("MYAPI_REGISTER", "early") == "early"
    binary.run(
        lambda conf: service.WSGIService("myapi", conf=conf),
        register_opts=_own_opts_app.register_opts if early else None,
        restart_method=os.environ.get("MYAPI_RESTART_METHOD") or None,
    )


if __name__ == "__main__":
    main()
