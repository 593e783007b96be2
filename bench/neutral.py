"""The neutral pipeline of ``bench/paste.ini``: three plain WebOb filters (request
id, fault wrapper, body size limit) in front of a ping/sleep/echo app.

The same work oslo.middleware and the sample API do, at a fraction of their
cost, so that the bench's ratios measure the servers rather than the pipeline.
"""

import json
import time
import uuid

import webob
import webob.dec
import webob.exc

MAX_BODY = 1 << 20


class RequestId:
    """Sets ``x-openstack-request-id`` on every response."""

    def __init__(self, app) -> None:
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req: webob.Request):
        rid = "req-" + str(uuid.uuid4())
        req.environ["openstack.request_id"] = rid
        resp = req.get_response(self.app)
        resp.headers["x-openstack-request-id"] = rid
        return resp


class FaultWrapper:
    """Turns an exception into a JSON 500."""

    def __init__(self, app) -> None:
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req: webob.Request):
        try:
            return req.get_response(self.app)
        except Exception:
            return webob.Response(
                status=500, json_body={"error": "internal"}, charset="utf-8"
            )


class SizeLimit:
    """413 for a declared body over MAX_BODY."""

    def __init__(self, app) -> None:
        self.app = app

    @webob.dec.wsgify
    def __call__(self, req: webob.Request):
        if (req.content_length or 0) > MAX_BODY:
            return webob.exc.HTTPRequestEntityTooLarge()
        return req.get_response(self.app)


@webob.dec.wsgify
def ping_app(req: webob.Request):
    path = req.path_info
    if path == "/v1/ping":
        return webob.Response(json_body={"pong": True}, charset="utf-8")
    if path == "/v1/sleep":
        time.sleep(
            int(req.params.get("ms", "0")) / 1000.0
        )  # patched under green servers
        return webob.Response(json_body={"slept": True}, charset="utf-8")
    if path == "/v1/echo" and req.method == "POST":
        return webob.Response(json_body=json.loads(req.body), charset="utf-8")
    return webob.exc.HTTPNotFound()


def request_id_factory(global_conf, **local_conf):
    return RequestId


def faultwrap_factory(global_conf, **local_conf):
    return FaultWrapper


def sizelimit_factory(global_conf, **local_conf):
    return SizeLimit


def app_factory(global_conf, **local_conf):
    return ping_app
