"""The benchmark runs end to end: real servers, real wrk, a JSON report.

A short run (1 s of W1, one round) against wsgisvc-api and gunicorn sync, so
that a broken harness (a server that no longer starts the way bench/servers.py
starts it, wrk output that no longer parses, a target that cannot be evaluated)
shows up in the test suite rather than at the next benchmark session. It checks
that figures were produced, not what they are: the machine is shared.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # bench/ is a top-level directory, not installed
    sys.path.insert(0, str(REPO))

from bench import report, workloads, wrk  # noqa: E402
from tests.helpers import run_in_session  # noqa: E402

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)


def _run_bench(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[int, dict]:
    out = tmp_path / "bench.json"
    # On a timeout, SIGTERM lets the bench stop the servers it started.
    status, output = run_in_session(
        [sys.executable, "-m", "bench", "--rounds", "1", "--out", str(out), *args],
        timeout,
        cwd=REPO,
    )
    assert out.exists(), output
    return status, json.loads(out.read_text())


@needs_wrk
@pytest.mark.timeout(90)
def test_bench_measures_wsgisvc_api_and_a_peer(tmp_path):
    status, result = _run_bench(
        tmp_path,
        "--servers",
        "wsgisvc-api,gunicorn-sync",
        "--workloads",
        "W1,S,M",
        "--duration",
        "1",
        "--warmup",
        "0",
    )
    assert status == 0, result["failures"]
    medians = result["medians"]
    for server in ("wsgisvc-api", "gunicorn-sync"):
        assert medians["W1"][server]["rps"] > 0
        assert medians["W1"][server]["errors"] == 0
        assert medians["W1"][server]["non2xx"] == 0
        assert 0 < medians["S"][server]["seconds"] < 30
        assert medians["M"][server]["pss_mib"] > 0
        assert medians["M"][server]["processes"] == 3  # master + 2 workers
    by_name = {t["target"]: t["status"] for t in result["targets"]}
    assert by_name["M PSS <= 1.2 x sync"] in ("PASS", "FAIL")
    assert by_name["S <= 0.5 s"] in ("PASS", "FAIL")
    assert by_name["W1 req/s >= 1.5 x gthread"] == "N/A"  # gthread was not run


@needs_wrk
@pytest.mark.timeout(60)
def test_bench_exits_nonzero_and_reports_a_server_that_cannot_start(tmp_path):
    broken = tmp_path / "broken-paste.ini"
    broken.write_text("[app:other]\nuse = call:nowhere:factory\n")
    status, result = _run_bench(
        tmp_path,
        "--servers",
        "gunicorn-sync",
        "--workloads",
        "W1",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--paste",
        str(broken),
    )
    assert status == 1
    assert result["samples"] == []
    assert [f["server"] for f in result["failures"]] == ["gunicorn-sync"]


def test_wrk_summary_turns_microseconds_and_counters_into_figures():
    raw = {
        "requests": 5000, "duration_us": 2_000_000, "bytes": 1, "connect": 1,
        "read": 2, "write": 0, "status": 7, "timeout": 3, "p50_us": 1500,
        "p90_us": 2000, "p99_us": 25_000, "max_us": 40_000, "mean_us": 1600.0,
    }  # fmt: skip
    figures = wrk.summarize(raw)
    assert figures["rps"] == 2500
    assert figures["p50_ms"] == 1.5 and figures["p99_ms"] == 25
    assert figures["errors"] == 6 and figures["non2xx"] == 7


def test_targets_take_medians_for_ratios_and_the_worst_round_for_flags():
    api, gthread = "wsgisvc-api", "gunicorn-gthread"
    samples = []
    for rnd, (ours, theirs) in enumerate([(3000, 1000), (900, 1000), (2000, 1000)]):
        samples += [
            {"round": rnd, "server": api, "workload": "W1", "rps": ours},
            {"round": rnd, "server": gthread, "workload": "W1", "rps": theirs},
            {"round": rnd, "server": api, "workload": "R", "clean": rnd != 1},
        ]
    targets = {
        t["target"]: t for t in report.evaluate_targets(report.aggregate(samples))
    }
    assert targets["W1 req/s >= 1.5 x gthread"]["status"] == "PASS"  # median 2000
    assert targets["R: zero failed requests on SIGHUP"]["status"] == "FAIL"  # round 1
    assert targets["W3 req/s >= 8 x gthread"]["status"] == "N/A"


def test_echo_body_is_16_kib_of_json(tmp_path):
    body = workloads.write_echo_body(tmp_path / "body.json")
    assert body.stat().st_size == 16384
    assert len(json.loads(body.read_text())["items"]) > 100


@needs_wrk
@pytest.mark.timeout(120)
def test_slow_client_workload_on_the_neutral_pipeline(tmp_path):
    """SC on bench/paste.ini: the trickling connections are open beside W1 on
    both backends, and the classic eventlet.wsgi peer starts the way
    bench/servers.py runs it."""
    status, result = _run_bench(
        tmp_path,
        "--paste",
        str(REPO / "bench" / "paste.ini"),
        "--servers",
        "wsgisvc-api,wsgisvc-api-threads,eventlet-wsgi",
        "--workloads",
        "SC",
        "--duration",
        "1",
        "--warmup",
        "0",
        timeout=110,
    )
    assert status == 0, result["failures"]
    for server in ("wsgisvc-api", "wsgisvc-api-threads"):
        row = result["medians"]["SC"][server]
        assert row["slow_opened"] == workloads.SLOW_CLIENTS
        assert row["rps"] > 0 and row["errors"] == 0
    assert "eventlet-wsgi" in result["medians"]["SC"]
    labels = [t["target"] for t in result["targets"]]
    assert "SC wsgisvc-api: no errors, p99 < 100 ms" in labels
