"""The four binaries as real processes: ``--version`` prints the package's
version, and every option their ``--help`` shows is in the CLI reference."""

import pathlib
import re
from importlib import metadata

import pytest

import wsgisvc
from tests.helpers import BIN, run_in_session
from tests.unit.test_distribution import declared

ROOT = pathlib.Path(__file__).resolve().parents[2]
CLI_REFERENCE = ROOT / "doc/source/reference/cli.rst"
VERSION = declared()[1]  # setup.cfg's
BINARIES = ["wsgisvc-api", "wsgisvc-worker", "wsgisvc-manage", "wsgisvc-sample"]
MANAGE_COMMANDS = [
    ["db", "sync"],
    ["db", "version"],
    ["service", "list"],
    ["service", "disable"],
    ["service", "enable"],
    ["service", "force-down"],
    ["service", "delete"],
]


def run(*args: str) -> tuple[int, str]:
    return run_in_session([f"{BIN}/{args[0]}", *args[1:]], timeout=60, cwd=ROOT)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("binary", BINARIES)
def test_version_is_the_package_version(binary):
    """Found in the installed metadata by the distribution's name, which is
    not the package's (wsgisvc-server)."""
    status, output = run(binary, "--version")
    assert status == 0, output
    assert output.strip() == metadata.version(wsgisvc.DISTRIBUTION) == VERSION


def options_in(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", help_text))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("binary", BINARIES)
def test_every_option_is_in_the_cli_reference(binary):
    status, output = run(binary, "--help")
    assert status == 0, output
    reference = CLI_REFERENCE.read_text()
    assert f"\n{binary}\n====" in reference, f"no section for {binary}"
    missing = {opt for opt in options_in(output) if f"``{opt}" not in reference}
    assert not missing, f"{binary} options missing from {CLI_REFERENCE.name}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("command", MANAGE_COMMANDS, ids=" ".join)
def test_every_manage_command_is_in_the_cli_reference(command):
    status, output = run("wsgisvc-manage", *command, "--help")
    assert status == 0, output
    reference = CLI_REFERENCE.read_text()
    assert f"wsgisvc-manage [common options] {' '.join(command)}" in reference
    missing = {opt for opt in options_in(output) if opt not in reference}
    assert not missing, f"wsgisvc-manage {' '.join(command)}: {missing}"
