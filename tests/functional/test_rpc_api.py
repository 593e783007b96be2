"""The sample API's worker-side routes, on real wsgisvc-api and wsgisvc-worker
processes: GET /v1/services and POST /v1/rpc/echo (200, 504, 503)."""

import json
import re

import pytest

from tests.functional._svc_util import require
from tests.functional._worker_util import worker_process
from tests.functional._wsgi_util import api_server


def post_echo(api, document):
    status, headers, body = api.request(
        "/v1/rpc/echo",
        method="POST",
        body=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
    )
    return status, headers, json.loads(body)


def shared_settings(worker) -> str:
    """The API joins the worker's broker exchange and services table."""
    text = worker.conf_path.read_text()
    keep = ("transport_url", "control_exchange", "state_path", "host")
    return "".join(
        line + "\n"
        for line in text.splitlines()
        if re.match(rf"({'|'.join(keep)}) =", line)
    )


@pytest.mark.timeout(150)
def test_echo_services_and_timeout(tmp_path):
    with worker_process(tmp_path, workers=1) as worker:
        with api_server(tmp_path, workers=1, extra=shared_settings(worker)) as api:
            status, _, body = post_echo(api, {"payload": {"hello": [1, 2]}})
            assert status == 200, body
            assert body["echo"]["payload"] == {"hello": [1, 2]}
            assert body["echo"]["pid"] == worker.proc.pid  # one worker: no fork

            status, headers, body = post_echo(
                api, {"payload": 1, "host": "nobody-" + worker.host, "timeout": 1}
            )
            assert status == 504, body
            assert headers["Content-Type"].startswith("application/json")
            (fault,) = body.values()
            assert fault["code"] == 504 and "within 1.0 s" in fault["message"]

            status, _, body = api.request("/v1/services")
            services = json.loads(body)["services"]
            assert status == 200
            by_binary = {s["binary"]: s for s in services}
            assert by_binary["wsgisvc-worker"]["state"] == "up"
            assert by_binary["wsgisvc-worker"]["topic"] == "worker"
            # The API registers and heartbeats its own row too.
            assert by_binary["wsgisvc-osapi"]["host"] == worker.host
            assert by_binary["wsgisvc-osapi"]["state"] == "up"


@pytest.mark.timeout(90)
def test_echo_is_503_when_the_broker_is_unreachable_and_api_lives_on(tmp_path):
    dead_broker = "rabbit://guest:guest@127.0.0.1:9/"
    extra = f"transport_url = {dead_broker}\nstate_path = {tmp_path}/s\n"
    with api_server(tmp_path, workers=1, extra=extra) as api:
        status, headers, body = post_echo(api, {"payload": 1})
        assert status == 503, body
        (fault,) = body.values()
        assert fault["code"] == 503 and "broker" in fault["message"]
        status, _, _ = api.request("/v1/ping")
        assert status == 200
        status, _, body = api.request("/v1/services")
        assert status == 200 and [
            s["binary"] for s in json.loads(body)["services"]
        ] == ["wsgisvc-osapi"]


@pytest.mark.timeout(60)
def test_bad_echo_body_is_400(tmp_path):
    require("127.0.0.1", 5672, "RabbitMQ")
    with api_server(tmp_path, workers=1, extra=f"state_path = {tmp_path}/s\n") as api:
        status, _, body = post_echo(api, {"payload": 1, "timeout": "soon"})
        assert status == 400, body
        status, _, body = post_echo(api, {"payload": 1, "timeout": 600})
        assert status == 400, body
