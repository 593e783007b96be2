"""Tests. Importing wsgisvc first installs its filters for eventlet's own
deprecation warnings (see doc/source/eventlet.rst), as binaries do."""

import wsgisvc  # noqa: F401
