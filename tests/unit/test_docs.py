"""The documentation's sources stay true to the code (CI also builds them with
``sphinx-build -W``, which checks every reference and every public name)."""

import importlib
import pathlib
import re
import runpy

import pytest

from tests.unit.test_opts import generator_namespaces

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "doc/source"
PUBLIC_MODULES = runpy.run_path(str(SOURCE / "conf.py"))["PUBLIC_MODULES"]
# Imported here, as a binary would, not inside a test (where pytest's own
# warning filters would show eventlet's import-time deprecation warning).
MODULES = {name: importlib.import_module(name) for name in PUBLIC_MODULES}
# Commands a reader types from the clone; each must run as written there.
VENV_COMMANDS = (
    "wsgisvc-", "gunicorn", "pytest", "pip", "oslo-config-", "sphinx-build", "reno",
)  # fmt: skip


def test_config_reference_shows_every_generator_namespace():
    text = (SOURCE / "reference/config.rst").read_text()
    shown = re.findall(r"show-options::(?: (\S+))?\n((?:\n   \S+)*)", text)
    namespaces = [name for one, more in shown for name in [one, *more.split()] if name]
    assert sorted(namespaces) == sorted(generator_namespaces())


@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_every_public_module_has_a_page_and_an_all(modname):
    page = SOURCE / f"reference/api/{modname.removeprefix('wsgisvc.')}.rst"
    assert f".. automodule:: {modname}\n" in page.read_text()
    module = MODULES[modname]
    assert module.__all__, modname
    assert all(hasattr(module, name) for name in module.__all__)


def console_commands(markdown: str) -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", markdown, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line]


def test_readme_commands_run_from_the_clone():
    """Every binary the README has a reader run is the clone's .venv/bin/ one."""
    commands = console_commands((ROOT / "README.md").read_text())
    assert commands
    bare = [
        line for line in commands for word in re.split(r"[\s;&|()]+", line)
        if word.startswith(VENV_COMMANDS)
    ]  # fmt: skip
    assert not bare, f"README.md: binaries not called as .venv/bin/NAME: {bare}"
