"""The documentation's sources stay true to the code (CI also builds them with
``sphinx-build -W``, which checks every reference and every public name)."""

import ast
import importlib
import json
import os
import pathlib
import re
import runpy
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import BIN, kill_group, run_in_session, spawn
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


# --- every code block the docs show ------------------------------------------
#
# Each block of README.md and doc/source/**/*.rst is found, named by its page,
# line and language, and handled by its kind below: Python is compiled, and run
# (a binary as a real process, a module as a script) unless the line before
# the block marks it a fragment (``.. fragment: WHY`` in rST,
# ``<!-- fragment: WHY -->`` in Markdown); an ini block is loaded as what it
# is (a paste file, a wsgisvc configuration file, a systemd unit, setup.cfg);
# a console block's commands are each checked by their program. A block of a
# language, or a command of a program, that nothing here handles fails the
# test: no block is skipped without a reason written down.

FRAGMENT = re.compile(r"(?:\.\. fragment: (.+)|<!-- fragment: (.+) -->)$")
#: Languages shown as text only, and why nothing runs them.
TEXT_LANGUAGES = {
    "text": "output, log lines or a layout, shown as written",
    "none": "HAProxy's configuration: no HAProxy on the test machine",
    "nginx": "nginx's configuration: no nginx on the test machine",
}


class Block:
    """One code block: where it is, its language, its text, its marker."""

    def __init__(self, page: str, line: int, language: str, text: str, fragment):
        self.page, self.line, self.language = page, line, language
        self.text, self.fragment = text, fragment

    def __repr__(self) -> str:
        return f"{self.page}:{self.line} ({self.language})"


def _marker(lines: list[str], index: int) -> str | None:
    """The fragment reason on the last non-blank line before ``index``."""
    for line in reversed(lines[:index]):
        if line.strip():
            match = FRAGMENT.match(line.strip())
            return match and (match[1] or match[2])
    return None


def _rst_blocks(page: str, text: str) -> list[Block]:
    lines = text.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        directive = re.match(r"^(\s*)\.\. code-block:: (\S+)\s*$", line)
        literal = not directive and re.search(r"(^|[^:]):: *$", line)
        if not directive and (not literal or line.lstrip().startswith(".. ")):
            continue
        indent = len(directive[1]) if directive else len(line) - len(line.lstrip())
        body, start = [], index + 1
        while start < len(lines) and re.match(r"^\s+:\w+:", lines[start]):
            start += 1  # the directive's options
        for rest in lines[start:]:
            if rest.strip() and len(rest) - len(rest.lstrip()) <= indent:
                break
            body.append(rest)
        code = "\n".join(body).strip("\n")
        if not code:
            continue
        code = textwrap.dedent(code) + "\n"
        language = directive[2] if directive else "::"
        blocks.append(Block(page, index + 1, language, code, _marker(lines, index)))
    return blocks


def _markdown_blocks(page: str, text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, index = [], 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)$", lines[index])
        if fence:
            end = lines.index("```", index + 1)
            code = "\n".join(lines[index + 1 : end]) + "\n"
            marker = _marker(lines, index)
            blocks.append(Block(page, index + 1, fence[1] or "?", code, marker))
            index = end
        index += 1
    return blocks


def doc_blocks() -> list[Block]:
    blocks = _markdown_blocks("README.md", (ROOT / "README.md").read_text())
    for path in sorted(SOURCE.rglob("*.rst")):
        page = str(path.relative_to(ROOT))
        blocks += _rst_blocks(page, path.read_text())
    return blocks


BLOCKS = doc_blocks()


def blocks_of(*languages: str) -> list:
    return [pytest.param(b, id=repr(b)) for b in BLOCKS if b.language in languages]


def test_every_block_has_a_language_something_here_handles():
    handled = {"python", "console", "ini", "yaml", *TEXT_LANGUAGES}
    unknown = [b for b in BLOCKS if b.language not in handled | {"::"}]
    assert not unknown, f"blocks of a language no test handles: {unknown}"


@pytest.mark.parametrize("block", blocks_of("python"))
def test_every_python_block_compiles(block):
    compile(block.text, repr(block), "exec")


def test_literal_blocks_hold_no_code():
    """A ``::`` block is shown as text: commands, Python and ini files go in a
    code block of their language, where the tests below reach them."""
    code = re.compile(r"^(\$ |\[[\w:. -]+\]$|import \w|from [\w.]+ import )", re.M)
    literal = [b for b in BLOCKS if b.language == "::" and code.search(b.text)]
    assert not literal, f"code in literal blocks: {literal}"


def _module_path(block: Block) -> str | None:
    """``myproj/api.py`` for a block whose first line names its file so."""
    match = re.match(r"# (myproj/\w+\.py)\n", block.text)
    return match and match[1]


def write_myproj(directory: pathlib.Path) -> None:
    """Every module the docs show for the example project ``myproj``."""
    (directory / "myproj").mkdir(exist_ok=True)
    (directory / "myproj/__init__.py").write_text("")
    for block in BLOCKS:
        if block.language == "python" and _module_path(block):
            (directory / _module_path(block)).write_text(block.text)


def run_python(directory, *args, timeout=50):
    """``python ARGS`` in ``directory``, with myproj and wsgisvc importable."""
    env = dict(os.environ, PYTHONPATH=f"{directory}:{ROOT}")
    return subprocess.run(
        [sys.executable, *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _is_binary(block: Block) -> bool:
    return "binary.run(" in block.text


PYTHON_RUN = [b for b in BLOCKS if b.language == "python" and not b.fragment]
#: The binaries the docs show, each text once, named by the pages showing it.
BINARIES: dict[str, list[str]] = {}
for _block in PYTHON_RUN:
    if "binary.run(" in _block.text:
        BINARIES.setdefault(_block.text, []).append(repr(_block))


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "block",
    [pytest.param(b, id=repr(b)) for b in PYTHON_RUN if b.text not in BINARIES],
)
def test_python_blocks_run(tmp_path, block):
    """A module or script of the docs runs to its end, status 0."""
    write_myproj(tmp_path)
    script = tmp_path / "snippet.py"
    script.write_text(block.text)
    result = run_python(tmp_path, str(script))
    assert result.returncode == 0, result.stderr


def _broker_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "text", [pytest.param(text, id=pages[0]) for text, pages in BINARIES.items()]
)
def test_binary_blocks_serve_and_stop(tmp_path, text):
    """Each binary the docs show, run as written with a configuration of
    port 0 and two workers: systemd's READY=1 once every worker serves, then
    SIGTERM to its pid and exit status 0."""
    rpc = "service.Service.create(" in text
    if rpc and not _broker_up():
        pytest.skip("RabbitMQ is not up on 127.0.0.1:5672")
    conf = tmp_path / "binary.conf"
    paste = (ROOT / "etc/api-paste.ini").resolve()
    conf.write_text(
        "[DEFAULT]\nosapi_listen = 127.0.0.1\nosapi_listen_port = 0\n"
        f"osapi_workers = 2\nworker_workers = 2\napi_paste_config = {paste}\n"
        f"state_path = {tmp_path}\ngraceful_shutdown_timeout = 30\n"
        "transport_url = rabbit://guest:guest@127.0.0.1:5672/\n"
    )
    script = tmp_path / "mybinary.py"
    script.write_text(text)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(90)
    env = {"PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(tmp_path / "notify")}
    log = tmp_path / "binary.log"
    proc = spawn(
        [sys.executable, str(script), "--config-file", str(conf)], log, env=env
    )
    try:
        assert notify.recv(4096) == b"READY=1", log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        notify.close()
        kill_group(proc)
    assert "Traceback" not in log.read_text()
