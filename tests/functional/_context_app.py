"""A paste app that does what an OpenStack API's context middleware does: make
an oslo.context RequestContext current for the request (its request id from
oslo.middleware's request_id, user and project from the ``X-User-Id`` and
``X-Project-Id`` headers keystonemiddleware sets), then log one line of its
own and answer 200."""

import logging

from oslo_context import context

LOG = logging.getLogger("tests.context_app")


def context_app(environ, start_response):
    context.RequestContext(
        request_id=environ["openstack.request_id"],
        user_id=environ.get("HTTP_X_USER_ID"),
        project_id=environ.get("HTTP_X_PROJECT_ID"),
    )
    LOG.info("the app's own line")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def factory(global_conf, **local_conf):
    return context_app
