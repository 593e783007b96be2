"""JSON faults: every error the API returns is ``{"<faultName>": {...}}``.

The filter sits outside the application and the oslo.middleware filters, so it
turns three kinds of failure into one shape: an exception from below (500; the
traceback is logged, never sent unless ``wsgi_server_debug`` is on), a raised
``webob.exc.HTTPException``, and a non-JSON error response that a filter
produced (oslo.middleware answers 413 with webob's plain text page).
"""

import json
import logging
import traceback

import webob
import webob.exc

LOG = logging.getLogger(__name__)

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
# The fault name of any other 5xx. nova says computeFault; a service built on
# this sample names its own.
SERVER_FAULT = "sampleFault"
_MESSAGES = {
    404: "The resource could not be found.",
    405: "The method is not allowed for this resource.",
    413: "The request body is larger than max_request_body_size.",
    500: "The server has either erred or is incapable of performing the "
    "requested operation.",
}


def fault_response(code: int, message: str, headers=None) -> webob.Response:
    """The one place the fault body shape is written."""
    name = FAULT_NAMES.get(code, SERVER_FAULT if code >= 500 else "badRequest")
    body = json.dumps({name: {"code": code, "message": message}}).encode()
    response = webob.Response(
        body=body, status=code, content_type="application/json", charset=None
    )
    for key, value in headers or ():
        response.headers[key] = value
    return response


def default_message(code: int) -> str:
    return (
        _MESSAGES.get(code) or webob.exc.status_map.get(code, webob.exc.HTTPError).title
    )


class FaultWrapper:
    """WSGI filter: JSON faults for everything below it.

    Plain WSGI rather than webob on the way through: a successful response
    passes untouched, and only an error costs a webob object.
    """

    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, environ, start_response):
        captured = []

        def capture(status, headers, exc_info=None):
            captured[:] = [status, headers]
            return _no_write

        try:
            body = b"".join(self.application(environ, capture))
        except webob.exc.HTTPException as exc:
            fault = fault_response(exc.code, exc.detail or default_message(exc.code))
            return fault(environ, start_response)
        except Exception:
            return _internal_error(environ)(environ, start_response)
        status, headers = captured
        if status[0] in "45" and not _is_json(headers):
            return _replace_error(status, headers)(environ, start_response)
        start_response(status, headers)
        return [body]


def _no_write(data: bytes) -> None:
    raise RuntimeError("faultwrap does not support the WSGI write() callable")


def _is_json(headers) -> bool:
    for name, value in headers:
        if name.lower() == "content-type":
            return value.startswith("application/json")
    return False


def _replace_error(status: str, headers) -> webob.Response:
    """A non-JSON error from a filter (e.g. sizelimit's 413) as a JSON fault."""
    code = int(status.split(" ", 1)[0])
    allow = [(k, v) for k, v in headers if k.lower() == "allow"]
    return fault_response(code, default_message(code), allow)


def _internal_error(environ) -> webob.Response:
    LOG.exception(
        "%s %s failed", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
    )
    message = default_message(500)
    if environ.get("wsgisvc.debug"):
        message += "\n" + traceback.format_exc()
    return fault_response(500, message)


def filter_factory(global_conf, **local_conf):
    """paste.filter_factory for ``[filter:faultwrap]``."""
    return FaultWrapper
