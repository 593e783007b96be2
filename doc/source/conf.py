"""Sphinx configuration for the wsgisvc documentation.

Build: ``.venv/bin/sphinx-build -W --keep-going -b html doc/source doc/build/html``
after ``.venv/bin/pip install -e '.[docs]'``. The version comes from the installed
package's metadata, whose one source is ``setup.cfg``.
"""

import importlib
from importlib import metadata

import wsgisvc  # first: filters eventlet's own deprecation warnings

project = "wsgisvc"
copyright = "wsgisvc contributors"
release = metadata.version(wsgisvc.DISTRIBUTION)  # wsgisvc-server
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "oslo_config.sphinxext",
    "oslo_config.sphinxconfiggen",
    "reno.sphinxext",
]

# The sample configuration file is generated at build time from the same
# generator configuration as etc/wsgisvc.conf.sample, into _static/.
config_generator_config_file = "../../etc/oslo-config-generator/wsgisvc.conf"
sample_config_basename = "_static/wsgisvc"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_static_path = ["_static"]
html_theme_options = {
    "description": "OpenStack-style API and RPC worker services",
    "fixed_sidebar": True,
}

# The modules of the API reference (one page each under reference/api/).
PUBLIC_MODULES = [
    "wsgisvc.cmd.binary",
    "wsgisvc.config",
    "wsgisvc.opts",
    "wsgisvc.backend",
    "wsgisvc.service",
    "wsgisvc.wsgi",
    "wsgisvc.launcher",
    "wsgisvc.process_launcher",
    "wsgisvc.rpc",
    "wsgisvc.manager",
    "wsgisvc.periodic_task",
    "wsgisvc.loopingcall",
    "wsgisvc.registry",
    "wsgisvc.gunicorn",
    "wsgisvc.errors",
    "wsgisvc.urlmap",
    "wsgisvc.healthcheck",
    "wsgisvc.testing",
]


def check_public_names(app, env) -> None:
    """Warn (an error under -W) when a public module's ``__all__`` and what the
    reference documents differ: a name without a docstring or doc comment is
    silently left out by autodoc, and a module without ``__all__`` would
    publish every name that happens to have a docstring."""
    from sphinx.util import logging

    log = logging.getLogger(__name__)
    documented = env.get_domain("py").objects
    for modname in PUBLIC_MODULES:
        module = importlib.import_module(modname)
        if modname not in documented:
            log.warning("public module %s has no page in the API reference", modname)
        if not hasattr(module, "__all__"):
            log.warning("public module %s has no __all__", modname)
            continue
        for name in module.__all__:
            home = getattr(getattr(module, name), "__module__", modname)
            if f"{modname}.{name}" not in documented and (
                f"{home}.{name}" not in documented
            ):
                log.warning("%s.%s is in __all__ but not documented", modname, name)


def setup(app):
    app.connect("env-check-consistency", check_public_names)
