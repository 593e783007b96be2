"""The HTTP core's modules import in one direction (issue 26): limits, then
the parser and its guard, then the protocol, then the WSGI adapter, then the
runtimes; no module imports a later layer, and no two import each other,
type-checking imports included (doc/source/architecture.rst, "The HTTP core")."""

from __future__ import annotations

import ast
import pathlib

import wsgisvc.http

HTTP = pathlib.Path(wsgisvc.http.__file__).parent
# Each module's layer; a module imports its own layer or earlier ones only.
LAYERS = {
    "limits": 0,
    "guard": 0,
    "listeners": 0,
    "scheduling": 0,  # the runtime contract: typing only
    "parser": 1,
    "protocol": 2,
    "accesslog": 3,
    "body": 3,
    "response": 3,
    "core": 3,
    "slots": 4,
    "green": 4,
    "threaded": 4,
}


def http_imports(name: str) -> set[str]:
    """The ``wsgisvc.http`` modules ``name`` imports, anywhere in its code."""
    tree = ast.parse((HTTP / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "wsgisvc.http":
                found.update(alias.name for alias in node.names)
            elif node.module.startswith("wsgisvc.http."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("wsgisvc.http."):
                    found.add(alias.name.split(".")[2])
    return found


def test_every_module_has_a_layer():
    modules = {path.stem for path in HTTP.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS)


def test_no_module_imports_a_later_layer():
    wrong = [
        f"{name} (layer {layer}) imports {other} (layer {LAYERS[other]})"
        for name, layer in LAYERS.items()
        for other in sorted(http_imports(name))
        if LAYERS[other] > layer
    ]
    assert not wrong


def test_no_circle():
    graph = {name: http_imports(name) for name in LAYERS}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for other in graph[start]:
            if other == goal or (
                other not in seen and reaches(other, goal, seen | {other})
            ):
                return True
        return False

    circles = [name for name in LAYERS if reaches(name, name, {name})]
    assert not circles
