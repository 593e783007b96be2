"""An oslo.middleware healthcheck backend: 503 while this process drains.

A load balancer, or a Kubernetes readiness probe, takes an instance out of
rotation when its healthcheck fails; it must see that before the listening
socket closes, or the connections it still sends are refused. With
``graceful_drain_delay`` a SIGTERM leaves the process serving for that long
(see ``wsgisvc.launcher``); this backend reports it unavailable meanwhile,
and oslo.middleware's healthcheck answers 503. Enable it by its entry point
name in the healthcheck app's ``backends`` (etc/api-paste.ini does)::

    [app:healthcheckapp]
    paste.app_factory = oslo_middleware:Healthcheck.app_factory
    backends = wsgisvc_draining

oslo.middleware finds backends through the ``oslo.middleware.healthcheck``
entry point group and hands them only the server's port: the drain is a state
of the whole process, so that is all it needs.
"""

from oslo_middleware.healthcheck import pluginbase

from wsgisvc import launcher


class DrainingHealthcheck(pluginbase.HealthcheckBaseExtension):
    """Unavailable from the moment a stop with graceful_drain_delay began."""

    def healthcheck(self, server_port: int) -> pluginbase.HealthcheckResult:
        if launcher.draining():
            return pluginbase.HealthcheckResult(
                available=False, reason="draining: this process is stopping"
            )
        return pluginbase.HealthcheckResult(available=True, reason="OK")
