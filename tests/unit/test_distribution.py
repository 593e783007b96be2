"""The distribution's name: ``wsgisvc-server`` on the package index, where
``wsgisvc`` is an unrelated project. The package, ``setup.cfg`` and every
install line of the documentation agree on it, and the installed metadata is
found by it (``--version``)."""

import configparser
import pathlib
import re
import shlex
from importlib import metadata

import wsgisvc

ROOT = pathlib.Path(__file__).resolve().parents[2]
# What an author or an operator reads: the README, the pages, the READMEs of
# interop/ and bench/.
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "doc/source").rglob("*.rst")),
    *sorted(ROOT.glob("*/README.md")),
]


def declared() -> tuple[str, str]:
    """(name, version) of ``setup.cfg``'s ``[metadata]``."""
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / "setup.cfg")
    return setup["metadata"]["name"], setup["metadata"]["version"]


def normalized(name: str) -> str:
    """A project name as the package index compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str | None:
    """The project a requirement names (``x[extra]>=1`` -> ``x``); None for a
    path, a URL or an option."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*(?=[\[<>=!~;\s]|$)", spec)
    return normalized(match[0]) if match else None


def installed_by_pip(text: str) -> list[str]:
    """The projects ``pip install`` lines of ``text`` name, by name."""
    names = []
    for line in re.findall(r"pip install ([^\n`]*)", text):
        words = shlex.split(line, comments=True)
        for word, before in zip(words, [None, *words[:-1]], strict=True):
            if word.startswith("-") or before in ("-r", "-e", "-c"):
                continue
            if (name := requirement_name(word)) is not None:
                names.append(name)
    return names


def required(text: str) -> list[str]:
    """The projects in ``install_requires =`` lists of ``text``."""
    blocks = re.findall(r"install_requires\s*=[ \t]*(.*(?:\n[ \t]+\S.*)*)", text)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [requirement_name(line) for line in lines if line and line[0] != "#"]


def test_the_package_names_the_distribution_setup_cfg_declares():
    name, _ = declared()
    assert wsgisvc.DISTRIBUTION == name
    assert normalized(name) != "wsgisvc", "the index's wsgisvc is another project"


def test_the_installed_metadata_is_found_by_that_name():
    name, version = declared()
    assert metadata.version(name) == version
    assert "wsgisvc" in (metadata.distribution(name).read_text("top_level.txt") or "")


def test_the_docs_install_and_require_the_distribution_by_its_name():
    """Every ``pip install`` or ``install_requires`` of the docs that names a
    wsgisvc project names the distribution; and the docs do say it, both ways."""
    distribution = normalized(declared()[0])
    named = {
        (path.relative_to(ROOT).as_posix(), how, name)
        for path in DOCS
        for how, names in (
            ("pip install", installed_by_pip(path.read_text())),
            ("install_requires", required(path.read_text())),
        )
        for name in names
        if name and name.startswith("wsgisvc")
    }
    wrong = sorted(entry for entry in named if entry[2] != distribution)
    assert not wrong, f"not the distribution {distribution}: {wrong}"
    assert {how for _, how, _ in named} == {"pip install", "install_requires"}
