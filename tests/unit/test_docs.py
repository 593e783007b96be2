"""The documentation's sources stay true to the code (CI also builds them with
``sphinx-build -W``, which checks every reference and every public name)."""

import ast
import importlib
import json
import pathlib
import re
import runpy
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.helpers import BIN, run_in_session
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


# The pages whose unit file an operator copies: the generic one, and the one
# for wsgisvc-serve in place of uWSGI.
UNIT_PAGES = ("systemd.rst", "uwsgi.rst")
# The pages that show wsgisvc-serve commands to type or put in a unit.
SERVE_PAGES = ("openstack.rst", "uwsgi.rst")


def systemd_unit(page: str) -> str:
    """The unit file of ``page``, as an operator would copy it."""
    text = (SOURCE / page).read_text()
    unit = r"\.\. code-block:: ini\n\n(   # /etc/systemd/.*\n(?:   .*\n|\n)+)"
    match = re.search(unit, text)
    assert match, f"{page} has no unit file"
    lines = match[1].rstrip().splitlines()
    return "\n".join(line.removeprefix("   ") for line in lines) + "\n"


@pytest.mark.parametrize("page", UNIT_PAGES)
def test_systemd_unit_stops_reloads_and_notifies_as_documented(page):
    unit = systemd_unit(page)
    for line in ("Type=notify", "KillMode=mixed", "ExecReload=kill -HUP $MAINPID"):
        assert f"\n{line}\n" in unit, line


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
@pytest.mark.parametrize("page", UNIT_PAGES)
def test_systemd_unit_is_valid(tmp_path, page):
    """systemd-analyze names every unknown key or bad value (and still exits 0)."""
    unit = re.sub(r"ExecStart=\S+", f"ExecStart={BIN}/wsgisvc-api", systemd_unit(page))
    path = tmp_path / "myproj-api.service"
    path.write_text(unit)
    status, output = run_in_session(
        ["systemd-analyze", "verify", str(path)], timeout=50
    )
    assert status == 0 and not output.strip(), output


def import_arrows() -> dict[str, set[str]]:
    """Which of wsgisvc's modules each imports, anywhere in its code; a
    package (http, backend, registry, cmd, sample) counts as one module."""
    package = ROOT / "wsgisvc"
    arrows: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        relative = path.relative_to(package).with_suffix("")
        parts = [part for part in relative.parts if part != "__init__"]
        unit = parts[0] if parts else "wsgisvc"
        importer = ".".join(["wsgisvc", *parts[: len(relative.parts) - 1]])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package
                    up = importer.split(".")[
                        : len(importer.split(".")) - node.level + 1
                    ]
                    base = ".".join(up + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("wsgisvc."):
                    target = name.split(".")[1]
                    if (package / target).exists() or (
                        package / f"{target}.py"
                    ).exists():
                        if target != unit:
                            arrows.setdefault(unit, set()).add(target)
    return arrows


def test_the_architecture_lists_every_module_and_its_imports():
    text = (SOURCE / "architecture.rst").read_text()
    listed = set(re.findall(r"^   (\S+\.py)\s{2,}\S", text, re.MULTILINE))
    package = ROOT / "wsgisvc"
    modules = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
    }
    assert sorted(modules - listed) == [], "modules missing from architecture.rst"
    assert sorted(listed - modules) == [], "architecture.rst lists modules not there"
    drawn = {
        unit: set(targets.split(", "))
        for unit, targets in re.findall(r"^   (\w+) -> (.+)$", text, re.MULTILINE)
    }
    assert drawn == import_arrows(), "architecture.rst's arrows are not the imports"


def serve_commands(page: str) -> list[list[str]]:
    """Every wsgisvc-serve command line of ``page``: typed at a ``$`` prompt in
    a console block (``\\`` continues a line), or a unit's ``ExecStart=``."""
    text = (SOURCE / page).read_text()
    blocks = re.findall(r"\.\. code-block:: console\n\n((?:   .*\n|\n)+)", text)
    lines = [
        line.strip()
        for block in blocks
        for line in re.sub(r"\\\n", " ", block).splitlines()
    ]
    typed = [line.removeprefix("$ ") for line in lines if line.startswith("$ ")]
    units = re.findall(r"^   ExecStart=(.*)$", text, re.MULTILINE)
    commands = [shlex.split(line) for line in typed + units]
    return [words[1:] for words in commands if words[0].endswith("/wsgisvc-serve")]


@pytest.mark.timeout(60)
def test_serve_commands_are_what_wsgisvc_serve_parses():
    """Each documented command is parsed by wsgisvc-serve's own parser, every
    flag spelled in full (argparse would take a prefix), in a process of its
    own: importing it picks a backend and monkey patches."""
    commands = [argv for page in SERVE_PAGES for argv in serve_commands(page)]
    assert len(commands) >= 9, commands  # every API's, and the unit's
    check = (
        "import json, re, sys\n"
        "from wsgisvc.cmd import serve\n"
        "flags = set(re.findall(r'--[a-z][a-z-]*', serve.parser().format_help()))\n"
        "for argv in json.load(sys.stdin):\n"
        "    args = serve.parse(argv)\n"
        "    ours = argv[: argv.index('--')] if '--' in argv else argv\n"
        "    spelled = {word.partition('=')[0] for word in ours}\n"
        "    assert {w for w in spelled if w.startswith('--')} <= flags, argv\n"
        "    assert ':' in (args.app or ':'), argv\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        input=json.dumps(commands),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr
