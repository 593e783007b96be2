"""Read wsgisvc's Prometheus metrics as a scraper does, for the tests.

``scrape()`` parses a ``/metrics`` exposition (prometheus_client's own
parser); ``read_directory()`` merges a multiprocess directory, or some of its
files, as the parent's collector does. Both give ``Samples`` to query.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families


class Samples:
    def __init__(self, families) -> None:
        self.samples = [sample for family in families for sample in family.samples]

    def select(self, name: str, **labels: str) -> list:
        return [
            s
            for s in self.samples
            if s.name == name
            and all(s.labels.get(key) == value for key, value in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of ``name`` matching ``labels``."""
        return sum(s.value for s in self.select(name, **labels))

    def pids(self, name: str) -> set[str]:
        """The ``pid`` labels of a per-process (liveall) gauge."""
        return {s.labels["pid"] for s in self.select(name)}


def scrape(port: int, timeout: float = 10.0) -> Samples:
    """GET /metrics from a metrics listener and parse it."""
    return Samples(text_string_to_metric_families(scrape_text(port, timeout)))


def scrape_text(port: int, timeout: float = 10.0) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return response.read().decode()


def read_directory(path: Path, pattern: str = "*.db") -> Samples:
    """Merge the multiprocess files of ``path`` matching ``pattern``."""
    files = [str(p) for p in sorted(path.glob(pattern))]
    return Samples(MultiProcessCollector.merge(files, accumulate=True))
