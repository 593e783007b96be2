"""``bench._paste_app:app`` for servers that import an app by module path
(granian): the paste app named by ``BENCH_PASTE`` and ``BENCH_APP``."""

import os

from paste import deploy

app = deploy.loadapp(
    f"config:{os.environ['BENCH_PASTE']}", name=os.environ["BENCH_APP"]
)
