"""The sample API and services: what wsgisvc's binaries serve out of the box.

``api`` (the v1 app and the version document), ``faultwrap`` (JSON faults),
``health`` (the healthcheck's stopping gate) and ``wsgisvc.urlmap`` (the
composite) are wired together by ``etc/api-paste.ini``; ``urlmap`` here is
the composite's old name, for paste files that still use it.
"""
