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
_MESSAGES = {
    404: "The resource could not be found.",
    405: "The method is not allowed for this resource.",
    413: "The request body is larger than max_request_body_size.",
    500: "The server has either erred or is incapable of performing the "
    "requested operation.",
}


def fault_response(code: int, message: str, headers=None) -> webob.Response:
    """The one place the fault body shape is written."""
    name = FAULT_NAMES.get(code, "computeFault" if code >= 500 else "badRequest")
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
    """WSGI filter: JSON faults for everything below it."""

    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, environ, start_response):
        request = webob.Request(environ)
        try:
            response = request.get_response(self.application)
        except webob.exc.HTTPException as exc:
            response = fault_response(exc.code, exc.detail or default_message(exc.code))
        except Exception:
            response = self._internal_error(request)
        else:
            if (
                response.status_int >= 400
                and response.content_type != "application/json"
            ):
                allow = (
                    [("Allow", response.headers["Allow"])]
                    if "Allow" in response.headers
                    else ()
                )
                response = fault_response(
                    response.status_int, default_message(response.status_int), allow
                )
        return response(environ, start_response)

    @staticmethod
    def _internal_error(request: webob.Request) -> webob.Response:
        LOG.exception("%s %s failed", request.method, request.path_qs)
        message = default_message(500)
        if request.environ.get("wsgisvc.debug"):
            message += "\n" + traceback.format_exc()
        return fault_response(500, message)


def filter_factory(global_conf, **local_conf):
    """paste.filter_factory for ``[filter:faultwrap]``."""
    return FaultWrapper
