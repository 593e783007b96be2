"""The atheris fuzzer over the HTTP core's request path (tests/fuzz/README.md).

    python -m tests.fuzz.fuzz_http [libFuzzer flags] [CORPUS_DIR ...]
    python -m tests.fuzz.fuzz_http --replay CORPUS_DIR ...

The seeds (tests/fuzz/seeds.py) are written into the first corpus directory
(a temporary one when none is given), so every run starts from the hostile
vectors the tests hold. A :class:`~tests.fuzz.harness.Finding` is a crash to
libFuzzer: it writes the input to ``crash-*`` and exits non-zero. ``--replay``
runs every file of the directories through the same check without atheris
(for coverage.py, or to re-check a crash file).
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import os
import pathlib
import sys
import tempfile

# The core is the same under both backends; threading imports no eventlet.
os.environ.setdefault("WSGISVC_BACKEND", "threading")


def _write_seeds(directory: pathlib.Path) -> None:
    from tests.fuzz.seeds import seeds

    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds():
        path = directory / ("seed-" + hashlib.sha1(seed).hexdigest())
        if not path.exists():
            path.write_bytes(seed)


def _replay(directories: list[str]) -> int:
    from tests.fuzz import harness

    harness.quiet_logs()
    found = 0
    files = sorted(p for d in directories for p in pathlib.Path(d).rglob("*"))
    for path in files:
        if not path.is_file():
            continue
        try:
            harness.check(path.read_bytes())
        except harness.Known:
            pass
        except harness.Finding as exc:
            found += 1
            print(f"{path}: {exc}", file=sys.stderr)
    print(f"replayed {len(files)} inputs, {found} findings")
    return 1 if found else 0


def _print_known(known: collections.Counter) -> None:
    for defect, count in known.most_common():
        print(f"known defect hit by {count} inputs: {defect}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if argv[1:2] == ["--replay"]:
        return _replay(argv[2:])
    import atheris

    with atheris.instrument_imports(include=["wsgisvc"]):
        from tests.fuzz import harness

    harness.quiet_logs()
    known: collections.Counter[str] = collections.Counter()
    atexit.register(_print_known, known)

    def test_one_input(data: bytes) -> None:
        try:
            harness.check(data)
        except harness.Known as exc:
            known[str(exc)] += 1

    dirs = [a for a in argv[1:] if not a.startswith("-")]
    if not dirs:
        dirs = [tempfile.mkdtemp(prefix="wsgisvc-fuzz-")]
        argv = [*argv, dirs[0]]
    _write_seeds(pathlib.Path(dirs[0]))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
