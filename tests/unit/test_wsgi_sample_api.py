"""The sample API (etc/api-paste.ini) served in process: routes, faults, limits."""

from __future__ import annotations

import json
import logging
import pathlib

import pytest
import webob
from paste import deploy

from tests.unit._wsgi_inproc import (  # noqa: F401
    connect,
    get,
    make_conf,
    read_response,
    running,
    scheduler,
)
from wsgisvc import wsgi
from wsgisvc.sample import faultwrap

PASTE = pathlib.Path(__file__).resolve().parents[2] / "etc" / "api-paste.ini"
MAX_BODY = 114688  # oslo.middleware's default max_request_body_size


@pytest.fixture(scope="module")
def api(scheduler):  # noqa: F811  (a server per scheduler, not one for both)
    conf = make_conf(api_paste_config=str(PASTE))
    app = wsgi.Loader(conf).load_app("osapi")
    with running(conf, app) as server:
        yield server


def _json(body: bytes) -> dict:
    return json.loads(body)


@pytest.mark.timeout(30)
def test_version_document(api):
    status, headers, body = get(api, "/")
    assert status == 200 and headers["Content-Type"] == "application/json"
    [version] = _json(body)["versions"]
    assert version["id"] == "v1.0"
    assert version["links"][0]["href"] == f"http://127.0.0.1:{api.port}/v1/"


@pytest.mark.timeout(30)
def test_ping_names_the_worker_and_carries_a_request_id(api):
    status, headers, body = get(api, "/v1/ping")
    assert status == 200
    assert _json(body) == {"ping": "pong", "pid": __import__("os").getpid()}
    assert {k.lower() for k in headers} >= {"x-openstack-request-id"}


@pytest.mark.timeout(30)
def test_echo_round_trips_json(api):
    document = {"a": [1, 2, {"b": None}]}
    status, _, body = get(api, "/v1/echo", "POST", json.dumps(document))
    assert status == 200 and _json(body) == document


@pytest.mark.timeout(30)
def test_malformed_json_is_a_400_fault(api):
    status, _, body = get(api, "/v1/echo", "POST", b"{nope")
    assert status == 400
    assert _json(body)["badRequest"]["code"] == 400
    assert "Malformed JSON" in _json(body)["badRequest"]["message"]


@pytest.mark.timeout(30)
def test_sleep_is_cooperative_and_validated(api):
    assert _json(get(api, "/v1/sleep?ms=30")[2]) == {"slept_ms": 30}
    status, _, body = get(api, "/v1/sleep?ms=-1")
    assert status == 400 and "badRequest" in _json(body)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "path,method,status,fault",
    [
        ("/v1/nothing", "GET", 404, "itemNotFound"),
        ("/nothing", "GET", 404, "itemNotFound"),
        ("/v1/ping", "DELETE", 405, "badMethod"),
    ],
)
def test_faults_are_json(api, path, method, status, fault):
    got, headers, body = get(api, path, method)
    assert got == status
    assert _json(body)[fault]["code"] == status
    if status == 405:
        assert headers["Allow"] == "GET, HEAD"


@pytest.mark.timeout(30)
def test_body_over_the_limit_is_413_with_content_length(api):
    status, _, body = get(api, "/v1/echo", "POST", b"x" * (MAX_BODY + 1))
    assert status == 413
    assert _json(body)["overLimit"]["code"] == 413


@pytest.mark.timeout(30)
def test_body_over_the_limit_is_413_when_chunked(api):
    chunk = b"x" * 8192
    chunks = iter([chunk] * (MAX_BODY // len(chunk) + 2))
    status, _, body = get(
        api, "/v1/echo", "POST", chunks, headers={"Transfer-Encoding": "chunked"}
    )
    assert status == 413
    assert _json(body)["overLimit"]["code"] == 413


@pytest.mark.timeout(30)
def test_chunked_body_under_the_limit_is_read(api):
    parts = iter([b'{"chun', b'ked": ', b"true}"])
    status, _, body = get(
        api, "/v1/echo", "POST", parts, headers={"Transfer-Encoding": "chunked"}
    )
    assert status == 200 and _json(body) == {"chunked": True}


@pytest.mark.timeout(30)
def test_healthcheck_is_200_while_serving_and_503_once_stopping():
    conf = make_conf(api_paste_config=str(PASTE))
    app = wsgi.Loader(conf).load_app("osapi")
    with running(conf, app) as server:
        assert get(server, "/healthcheck")[0] == 200
        busy = connect(server)
        busy.sendall(b"GET /healthcheck HTTP/1.1\r\n")  # request begun...
        __import__("eventlet").sleep(0.1)
        server.stop()
        busy.sendall(b"Host: x\r\n\r\n")  # ...and finished after stop()
        assert read_response(busy).startswith(b"HTTP/1.1 503")
        busy.close()


@pytest.mark.parametrize(
    "factory",
    [
        "wsgisvc.healthcheck:stopping_filter_factory",
        "wsgisvc.sample.health:filter_factory",
    ],
)
def test_the_stopping_gate_loads_by_its_name_and_its_old_one(tmp_path, factory):
    """``wsgisvc.healthcheck`` has the gate; paste files naming it where it
    was (under sample/) keep working."""
    paste = tmp_path / "paste.ini"
    paste.write_text(
        "[pipeline:main]\npipeline = stopping ok\n"
        f"[filter:stopping]\npaste.filter_factory = {factory}\n"
        "[app:ok]\npaste.app_factory = tests.unit.test_wsgi_sample_api:ok_factory\n"
    )
    app = deploy.loadapp(f"config:{paste}")
    stopping = type("Server", (), {"stopping": True})()
    request = webob.Request.blank("/", environ={"wsgisvc.server": stopping})
    assert request.get_response(app).status_int == 503
    assert webob.Request.blank("/").get_response(app).status_int == 200


def ok_factory(global_conf, **local_conf):
    return webob.Response("ok")


def _boom(environ, start_response):
    raise RuntimeError("database password is hunter2")


@pytest.mark.parametrize("debug", [False, True])
def test_500_logs_the_traceback_and_sends_it_only_in_debug(caplog, debug):
    caplog.set_level(logging.ERROR, logger="wsgisvc.sample.faultwrap")
    request = webob.Request.blank("/v1/x", environ={"wsgisvc.debug": debug})
    response = request.get_response(faultwrap.FaultWrapper(_boom))
    assert response.status_int == 500
    fault = json.loads(response.body)["sampleFault"]
    assert fault["code"] == 500
    assert ("hunter2" in fault["message"]) is debug
    assert "Traceback" in caplog.text and "hunter2" in caplog.text


def test_raised_http_exception_becomes_a_json_fault():
    def forbidden(environ, start_response):
        raise webob.exc.HTTPForbidden(detail="not yours")

    response = webob.Request.blank("/").get_response(faultwrap.FaultWrapper(forbidden))
    assert response.status_int == 403
    assert json.loads(response.body) == {
        "forbidden": {"code": 403, "message": "not yours"}
    }
