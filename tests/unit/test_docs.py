"""The documentation's sources stay true to the code (CI also builds them with
``sphinx-build -W``, which checks every reference and every public name)."""

import ast
import configparser
import dataclasses
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
from importlib import metadata

import pytest
import yaml

import wsgisvc
from tests.helpers import BIN, kill_group, run_in_session, spawn, wait_for
from tests.unit.test_opts import generator_namespaces
from wsgisvc import opts as wsgisvc_opts

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "doc/source"
PUBLIC_MODULES = runpy.run_path(str(SOURCE / "conf.py"))["PUBLIC_MODULES"]
# Imported here, as a binary would, not inside a test (where pytest's own
# warning filters would show eventlet's import-time deprecation warning).
# wsgisvc.cmd's modules are looked at in a process of their own: importing
# wsgisvc.cmd monkey patches.
MODULES = {
    name: importlib.import_module(name)
    for name in PUBLIC_MODULES
    if not name.startswith("wsgisvc.cmd.")
}
# Commands a reader types from the clone; each must run as written there.
VENV_COMMANDS = (
    "wsgisvc-", "gunicorn", "pytest", "pip", "oslo-config-", "sphinx-build", "reno",
)  # fmt: skip


def test_config_reference_shows_every_generator_namespace():
    text = (SOURCE / "reference/config.rst").read_text()
    shown = re.findall(r"show-options::(?: (\S+))?\n((?:\n   \S+)*)", text)
    namespaces = [name for one, more in shown for name in [one, *more.split()] if name]
    assert sorted(namespaces) == sorted(generator_namespaces())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("modname", PUBLIC_MODULES)
def test_every_public_module_has_a_page_and_an_all(modname):
    page = SOURCE / f"reference/api/{modname.removeprefix('wsgisvc.')}.rst"
    assert f".. automodule:: {modname}\n" in page.read_text()
    check = (
        f"import {modname} as module\n"
        "assert module.__all__\n"
        "assert all(hasattr(module, name) for name in module.__all__)\n"
    )
    if modname in MODULES:
        exec(check, {})
    else:
        result = subprocess.run(
            [sys.executable, "-c", check], capture_output=True, timeout=50
        )
        assert result.returncode == 0, result.stderr


# The pages whose unit file an operator copies: the generic one, and the one
# for wsgisvc-serve in place of uWSGI.
UNIT_PAGES = ("systemd.rst", "uwsgi.rst")


def systemd_units(page: str) -> dict[str, str]:
    """The unit files of ``page`` by file name, as an operator would copy them."""
    text = (SOURCE / page).read_text()
    unit = r"\.\. code-block:: ini\n\n(   # /etc/systemd/system/(\S+)\n(?:   .*\n|\n)+)"
    units = {}
    for match in re.finditer(unit, text):
        lines = match[1].rstrip().splitlines()
        units[match[2]] = "\n".join(line.removeprefix("   ") for line in lines) + "\n"
    assert units, f"{page} has no unit file"
    return units


def systemd_unit(page: str) -> str:
    """The service unit of ``page``."""
    [unit] = [u for name, u in systemd_units(page).items() if name.endswith(".service")]
    return unit


def test_every_unit_block_is_a_unit_the_tests_verify():
    shown = {
        block.text.splitlines()[0].rpartition("/")[2]
        for block in BLOCKS
        if block.language == "ini" and ini_kind(block) == "systemd"
    }
    verified = {name for page in UNIT_PAGES for name in systemd_units(page)}
    assert shown == verified


@pytest.mark.parametrize("page", UNIT_PAGES)
def test_systemd_unit_stops_reloads_and_notifies_as_documented(page):
    unit = systemd_unit(page)
    for line in ("Type=notify", "KillMode=mixed", "ExecReload=kill -HUP $MAINPID"):
        assert f"\n{line}\n" in unit, line


@pytest.mark.timeout(60)
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
@pytest.mark.parametrize("page", UNIT_PAGES)
def test_systemd_units_are_valid(tmp_path, page):
    """systemd-analyze names every unknown key or bad value (and still exits 0);
    a socket unit is verified with the service it names beside it."""
    paths = []
    for name, unit in systemd_units(page).items():
        binary = f"ExecStart={BIN}/wsgisvc-api"
        paths.append(tmp_path / name)
        paths[-1].write_text(re.sub(r"ExecStart=\S+", binary, unit))
    status, output = run_in_session(
        ["systemd-analyze", "verify", *map(str, paths)], timeout=50
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
    "::": "a literal block: output or log lines (test_literal_blocks_hold_no_code)",
}


@dataclasses.dataclass(frozen=True, repr=False)
class Block:
    """One code block: where it is, its language, its text, and the reason
    it is a fragment, when the line before it gives one."""

    page: str
    line: int
    language: str
    text: str
    fragment: str | None

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
    unknown = [b for b in BLOCKS if b.language not in handled]
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
    match = re.match(r"# (myproj/[\w/]+\.py)\n", block.text)
    return match and match[1]


def write_myproj(directory: pathlib.Path) -> None:
    """Every module the docs show for the example project ``myproj`` (a
    later block of the same file replaces an earlier one)."""
    for block in BLOCKS:
        if block.language == "python" and _module_path(block):
            path = directory / _module_path(block)
            for package in [path.parent, *path.parent.parents]:
                if package == directory:
                    break
                package.mkdir(exist_ok=True)
                (package / "__init__.py").touch()
            path.write_text(block.text)


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


def _ready(notify: socket.socket, proc: subprocess.Popen) -> bytes | None:
    """What the binary told systemd first; ``b"exited"`` if it exited."""
    try:
        return notify.recv(4096)
    except TimeoutError:
        return b"exited" if proc.poll() is not None else None


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["eventlet", "threading"])
@pytest.mark.parametrize(
    "text", [pytest.param(text, id=pages[0]) for text, pages in BINARIES.items()]
)
def test_binary_blocks_serve_and_stop(tmp_path, text, backend):
    """Each binary the docs show, run as written with a configuration of
    port 0 and two workers: systemd's READY=1 once every worker serves, then
    SIGTERM to its pid and exit status 0."""
    rpc = "service.Service.create(" in text
    if rpc and not _broker_up():
        pytest.skip("RabbitMQ is not up on 127.0.0.1:5672")
    conf = tmp_path / "binary.conf"
    # the app it names is the sample's, under that name
    name = (re.findall(r'WSGIService\("(\w+)"', text) or ["osapi"])[0]
    paste = tmp_path / "api-paste.ini"
    sample = (ROOT / "etc/api-paste.ini").read_text()
    paste.write_text(sample.replace("[composite:osapi]", f"[composite:{name}]"))
    write_myproj(tmp_path)
    conf.write_text(
        f"[DEFAULT]\n{name}_listen = 127.0.0.1\n{name}_listen_port = 0\n"
        f"{name}_workers = 2\nworker_workers = 2\napi_paste_config = {paste}\n"
        f"state_path = {tmp_path}\ngraceful_shutdown_timeout = 30\n"
        "transport_url = rabbit://guest:guest@127.0.0.1:5672/\n"
        # the broker is shared: an exchange of its own keeps other tests'
        # workers and this one out of each other's fanout
        f"control_exchange = wsgisvc-docs-{os.getpid()}-{tmp_path.name}\n"
    )
    script = tmp_path / "mybinary.py"
    # a module whose main() is a console script's entry point runs as one
    script.write_text(text + ("\nmain()\n" if "\ndef main(" in text else ""))
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(0.2)
    env = {
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WSGISVC_BACKEND": backend,
    }
    log = tmp_path / "binary.log"
    proc = spawn(
        [sys.executable, str(script), "--config-file", str(conf)], log, env=env
    )
    try:
        ready = wait_for(lambda: _ready(notify, proc), timeout=90, what="READY=1")
        assert ready == b"READY=1", log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        notify.close()
        kill_group(proc)
    assert "Traceback" not in log.read_text()


def ini_kind(block: Block) -> str:
    """What an ini block is: a systemd unit, setup.cfg, a paste file, or a
    file of oslo.config options."""
    first = block.text.splitlines()[0]
    if first.startswith("# /etc/systemd/"):
        return "systemd"
    if first == "# setup.cfg":
        return "setup.cfg"
    if first.startswith("# etc/oslo-config-generator/"):
        return "generator"
    if re.search(r"^\[(app|pipeline|composite|filter):", block.text, re.M):
        return "paste"
    return "options"


def parse_ini(block: Block) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str
    parser.read_string(block.text, source=repr(block))
    return parser


def known_options() -> dict[tuple[str, str], object]:
    """Every option of the generator's namespaces, by (group, name): the
    entry points oslo-config-generator itself calls."""
    points = {ep.name: ep for ep in metadata.entry_points(group="oslo.config.opts")}
    known = {}
    for namespace in generator_namespaces():
        for group, options in points[namespace].load()():
            group = getattr(group, "name", group) or "DEFAULT"
            known.update({(group, opt.dest): opt for opt in options})
    return known


def option(known: dict, group: str, key: str):
    """The option ``key`` of ``group``: one of wsgisvc's, a library's, or one
    of the options named after an API (``myapi_listen``...)."""
    if (group, key) in known:
        return known[(group, key)]
    if group == "DEFAULT":
        for opt in wsgisvc_opts.wsgi_service_opts("NAME"):
            suffix = opt.dest.removeprefix("NAME")
            if key.endswith(suffix) and key != suffix:
                name = key.removesuffix(suffix)
                return {o.dest: o for o in wsgisvc_opts.wsgi_service_opts(name)}[key]
    return None


@pytest.mark.parametrize(
    "block", [p for p in blocks_of("ini") if ini_kind(p.values[0]) != "generator"]
)
def test_ini_blocks_parse(block):
    parse_ini(block)


@pytest.mark.parametrize(
    "block", [p for p in blocks_of("ini") if ini_kind(p.values[0]) == "generator"]
)
def test_generator_blocks_name_namespaces_that_exist(block):
    """A generator configuration (``namespace`` repeats there, as
    oslo-config-generator reads it) names installed namespaces, and the
    service's own, ``myproj``."""
    namespaces = re.findall(r"^namespace = (\S+)$", block.text, re.M)
    installed = {ep.name for ep in metadata.entry_points(group="oslo.config.opts")}
    assert namespaces and "myproj" in namespaces
    assert set(namespaces) - {"myproj"} <= installed


@pytest.mark.parametrize(
    "block",
    [p for p in blocks_of("ini") if ini_kind(p.values[0]) == "options"],
)
def test_option_files_name_real_options_with_valid_values(block):
    """Every option a configuration block sets exists, in its section, and
    takes the value shown (an example ``...`` value excepted)."""
    if block.fragment:
        pytest.skip(f"not wsgisvc's options: {block.fragment}")
    known = known_options()
    wrong = []
    parser = parse_ini(block)
    for group in ["DEFAULT", *parser.sections()]:
        keys = parser.defaults() if group == "DEFAULT" else parser[group]
        for key, value in keys.items():
            if group != "DEFAULT" and key in parser.defaults():
                continue
            opt = option(known, group, key)
            if opt is None:
                wrong.append(f"[{group}] {key}: no such option")
                continue
            try:
                opt.type(value)
            except ValueError as error:
                wrong.append(f"[{group}] {key} = {value}: {error}")
    assert not wrong, wrong


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "block",
    [p for p in blocks_of("ini") if ini_kind(p.values[0]) == "paste"],
)
def test_paste_blocks_load_and_answer(tmp_path, block):
    """A paste file loads with PasteDeploy, with the modules the docs show for
    myproj, and its first app answers a request. A block that says it is
    added to etc/api-paste.ini is, and the sample's ``osapi`` answers."""
    write_myproj(tmp_path)
    paste = tmp_path / "api-paste.ini"
    parser = parse_ini(block)
    if block.text.startswith("# added to etc/api-paste.ini\n"):
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read(ROOT / "etc/api-paste.ini")
        parser.read_string(block.text)
        name, path = "osapi", "/v1/ping"
    else:
        name, path = parser.sections()[0].partition(":")[2], "/v1/x"
    with paste.open("w") as out:
        parser.write(out)
    check = (
        "import webob\n"
        "from paste.deploy import loadapp\n"
        f"app = loadapp('config:{paste}', name={name!r})\n"
        f"response = webob.Request.blank({path!r}).get_response(app)\n"
        "assert response.status_int == 200, response\n"
        "print(response.headers)\n"
    )
    result = run_python(tmp_path, "-c", check)
    assert result.returncode == 0, result.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "block",
    [p for p in blocks_of("ini") if ini_kind(p.values[0]) == "setup.cfg"],
)
def test_setup_cfg_blocks_name_entry_points_the_docs_show(tmp_path, block):
    """An ``oslo.config.opts`` entry point resolves to a function of the
    modules the docs show, which lists options."""
    write_myproj(tmp_path)
    parser = parse_ini(block)
    requires = parser.get("options", "install_requires", fallback="").split()
    assert not requires or requires[0].startswith(f"{wsgisvc.DISTRIBUTION}>="), block
    points = {}
    if parser.has_section("options.entry_points"):
        points = parser["options.entry_points"]
    for group, lines in points.items():
        for line in lines.strip().splitlines():
            target = line.partition("=")[2].strip()
            module, _, function = target.partition(":")
            call = f"{module}.{function}"
            if group == "oslo.config.opts":  # lists options
                call = f"len({call}()[0][1])"
            else:  # console_scripts: a function
                call = f"int(callable({call}))"
            check = f"import {module}\nprint({call})\n"
            result = run_python(tmp_path, "-c", check)
            assert result.returncode == 0, result.stderr
            assert int(result.stdout) > 0, target


@pytest.mark.parametrize("block", blocks_of("yaml"))
def test_yaml_blocks_load(block):
    assert isinstance(yaml.safe_load(block.text), dict), block


# --- console blocks: every command, by its program ---------------------------


def typed_commands(block: Block) -> list[str]:
    """The command lines of a console block: ``$ `` lines in rST (``\\``
    continues one), every line in Markdown, where no output is shown."""
    text = re.sub(r"\\\n\s*", " ", block.text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if block.page.endswith(".rst"):
        return [line.removeprefix("$ ") for line in lines if line.startswith("$ ")]
    return lines


def simple_commands(line: str) -> list[list[str]]:
    """``line`` split at ``&&``, ``;``, ``|`` and ``&`` into commands (their
    words, comments and leading ``VAR=value`` assignments left out)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""  # a comment starts a word, as in the shell, not FILE#NAME
    commands, words = [], []
    for token in lexer:
        if token.startswith("#"):
            break
        if token in (";", "&", "&&", "|", "||"):
            commands.append(words)
            words = []
        elif words or not re.match(r"^\w+=", token):
            words.append(token)
    return [words for words in commands + [words] if words]


CONSOLE = [
    (block, words)
    for block in BLOCKS
    if block.language == "console"
    for line in typed_commands(block)
    for words in simple_commands(line)
]
#: Programs a test cannot run as the docs show them, and why.
NOT_RUN = {
    "python3": "makes the virtualenv the other commands run from",
    "python3.13t": "a free-threaded build made by hand (bench/README.md); "
    "makes the virtualenv the other commands run from",
    "pip": "installs packages: .ci/run does, on a clean clone",
    "pytest": "the whole suite: .ci/run runs it",
    "sphinx-build": "the documentation build: .ci/run runs it",
    "reno": "writes a new release note",
    "curl": "a request to a server started by the commands before it; "
    "tests/functional makes each",
    "kill": "a signal to a running server; tests/functional sends each",
    "printf": "writes the configuration file the next commands read",
    "systemctl": "asks systemd: the unit files are verified instead",
    "journalctl": "reads systemd's journal",
}
#: Programs whose flags are checked against their own --help, with the
#: subcommand words (lower case) before the first flag or placeholder.
HELP_CHECKED = (
    "wsgisvc-api", "wsgisvc-worker", "wsgisvc-manage", "wsgisvc-sample",
    "gunicorn", "oslo-config-generator", "oslo-config-validator",
)  # fmt: skip


def _program(words: list[str]) -> str:
    name = pathlib.Path(words[0]).name
    if name == "python" and words[1:2] == ["-m"]:
        return f"python -m {words[2]}"
    return name


def test_every_console_command_is_checked_or_says_why_not():
    unknown = [
        (repr(block), words[0])
        for block, words in CONSOLE
        if _program(words) not in NOT_RUN
        and _program(words) not in HELP_CHECKED
        and _program(words) != "wsgisvc-serve"
        and not _program(words).startswith("python -m bench")
    ]
    assert not unknown, f"commands no test checks: {unknown}"


def test_commands_run_from_the_clone():
    """Every binary the docs have a reader run is the clone's .venv/bin/ one."""
    bare = [
        (repr(block), words[0])
        for block, words in CONSOLE
        if words[0].startswith(VENV_COMMANDS)
        or (words[0] == "python" and "bench" in " ".join(words))
    ]
    assert not bare, f"binaries not called as .venv/bin/NAME: {bare}"


def _help_argv(words: list[str]) -> list[str]:
    """The program and its subcommand words, then ``--help``."""
    argv = [str(pathlib.Path(BIN) / pathlib.Path(words[0]).name)]
    if argv[0].endswith("/python"):
        return [sys.executable, "-m", words[2], "--help"]
    for word in words[1:]:
        if not re.match(r"^[a-z][a-z-]*$", word):
            break
        argv.append(word)
    return [*argv, "--help"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "block, words",
    [
        pytest.param(block, words, id=f"{block!r} {' '.join(words)[:60]}")
        for block, words in CONSOLE
        if _program(words) in HELP_CHECKED
        or _program(words).startswith("python -m")
        and _program(words) != "python -m venv"
    ],
)
def test_command_flags_are_the_programs_own(block, words):
    """Each ``--flag`` of a documented command is one its program lists in its
    ``--help`` (a subcommand's, for wsgisvc-manage), spelled in full."""
    result = subprocess.run(
        _help_argv(words), cwd=ROOT, capture_output=True, text=True, timeout=100
    )
    assert result.returncode == 0, result.stderr
    flags = set(re.findall(r"--[a-z][\w-]*", result.stdout))
    used = {word.partition("=")[0] for word in words if word.startswith("--")}
    assert used <= flags, sorted(used - flags)


@pytest.mark.timeout(60)
def test_version_commands_print_what_they_show():
    shown = [
        block
        for block in BLOCKS
        if block.language == "console" and "--version\n" in block.text
    ]
    assert shown
    for block in shown:
        lines = block.text.splitlines()
        [typed] = [line for line in lines if line.endswith("--version")]
        output = lines[lines.index(typed) + 1]
        command = shlex.split(typed.removeprefix("$ "))
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=50
        )
        assert result.stdout.strip() == output == metadata.version(wsgisvc.DISTRIBUTION)


@pytest.mark.timeout(60)
def test_serve_commands_are_what_wsgisvc_serve_parses():
    """Each documented command, and each unit's ``ExecStart=``, is parsed by
    wsgisvc-serve's own parser, every flag spelled in full (argparse would take
    a prefix), in a process of its own: importing it picks a backend and
    monkey patches."""
    units = [
        shlex.split(line)
        for page in UNIT_PAGES
        for line in re.findall(r"^ExecStart=(.*)$", systemd_unit(page), re.M)
    ]
    commands = [
        words[1:]
        for words in [words for _, words in CONSOLE] + units
        if words[0].endswith("wsgisvc-serve")
    ]
    assert len(commands) >= 10, commands  # every API's, and the unit's
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


# --- the options named after an API -------------------------------------------


def _shown_default(opt) -> str:
    if opt.default is None:
        return "CPU count" if opt.dest.endswith("_workers") else "unset"
    return (
        str(opt.default).lower() if isinstance(opt.default, bool) else str(opt.default)
    )


def _expected(name: str) -> dict[str, str]:
    return {
        opt.dest: _shown_default(opt) for opt in wsgisvc_opts.wsgi_service_opts(name)
    }


def test_the_readme_lists_every_option_named_after_an_api():
    """The README's table is exactly ``wsgi_service_opts("myapi")``, defaults
    included: an option added there fails here until the table has it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The options of your own API", 1)[1].split("\n## ")[0]
    rows = re.findall(r"^\| `(myapi_\w+)` \| `?([^`|]+?)`? \|", section, re.M)
    assert dict(rows) == _expected("myapi")


def test_the_api_binary_page_lists_every_option_named_after_an_api():
    page = (SOURCE / "api-binary.rst").read_text()
    rows = re.findall(
        r"^``(<name>_\w+)``\s+(?:``(\S+)``|(CPU count|unset))", page, re.M
    )
    assert {option: a or b for option, a, b in rows} == _expected("<name>")


def test_included_files_are_the_repository_s_own():
    """A ``literalinclude`` shows a file of the repository (or one the build
    generates), so its own tests run it: nothing to copy out of the page."""
    included = [
        (path, target)
        for path in SOURCE.rglob("*.rst")
        for target in re.findall(
            r"^\.\. literalinclude:: (\S+)$", path.read_text(), re.M
        )
    ]
    assert included
    generated = SOURCE / "_static/wsgisvc.conf.sample"  # oslo_config.sphinxconfiggen
    for path, target in included:
        file = (path.parent / target).resolve()
        if file != generated:
            assert file.is_file() and file.is_relative_to(ROOT), (path, target)
