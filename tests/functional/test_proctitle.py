"""ps tells the parent from its workers: the titles of wsgisvc-api's
processes, on both backends, also after a worker is respawned."""

import os
import signal

import pytest

from tests.functional._wsgi_util import api_server
from tests.helpers import wait_for


def title(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode().strip()


@pytest.mark.timeout(90)
def test_parent_and_workers_say_what_they_are(tmp_path, backend):
    with api_server(tmp_path, workers=2, backend=backend) as api:
        assert title(api.pid) == "wsgisvc-api: parent [osapi]"
        workers = api.workers()
        expected = [
            "wsgisvc-api: worker 1/2 [osapi]",
            "wsgisvc-api: worker 2/2 [osapi]",
        ]
        # a worker just forked shows its parent's title for an instant
        wait_for(lambda: sorted(title(pid) for pid in workers) == expected)
        killed = min(workers)
        lost = title(killed)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: len(api.workers() - workers) == 1, timeout=30)
        [respawned] = api.workers() - workers
        wait_for(lambda: title(respawned) == lost)  # the same slot
