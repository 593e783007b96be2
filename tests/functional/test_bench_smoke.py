"""The benchmark runs end to end: real servers, real wrk, a JSON report.

Short runs (1 s of W1, one round) against wsgisvc-api and its peers, so
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

from bench import report, servers, workloads, wrk  # noqa: E402
from tests.helpers import run_in_session  # noqa: E402

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
needs_uwsgi = pytest.mark.skipif(
    servers.SERVERS["uwsgi"].available() is not None,
    reason="uwsgi is not installed (pip install -r bench/requirements.txt)",
)


def _run_bench(tmp_path: Path, *args: str, timeout: float = 60) -> tuple[int, dict]:
    """One round of one second, no warm-up, of what ``args`` name."""
    out = tmp_path / "bench.json"
    quick = ["--rounds", "1", "--duration", "1", "--warmup", "0"]
    # On a timeout, SIGTERM lets the bench stop the servers it started.
    status, output = run_in_session(
        [sys.executable, "-m", "bench", *quick, "--out", str(out), *args],
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
        "wsgisvc-api,gunicorn-gthread",
        "--workloads",
        "W1,S,M",
    )
    assert status == 0, result["failures"]
    medians = result["medians"]
    for server in ("wsgisvc-api", "gunicorn-gthread"):
        assert medians["W1"][server]["rps"] > 0
        assert medians["W1"][server]["errors"] == 0
        assert medians["W1"][server]["non2xx"] == 0
        assert 0 < medians["S"][server]["seconds"] < 30
        assert medians["M"][server]["pss_mib"] > 0
        assert (
            0 < medians["M"][server]["master_pss_mib"] < medians["M"][server]["pss_mib"]
        )
        assert medians["M"][server]["processes"] == 3  # master + 2 workers
    by_name = {t["target"]: t["status"] for t in result["targets"]}
    assert by_name["M PSS wsgisvc-api <= 1.2 x gthread"] in ("PASS", "FAIL")
    assert by_name["S wsgisvc-api <= 0.4 s"] in ("PASS", "FAIL")
    assert by_name["S wsgisvc-api <= 1.3 x gthread [by CPU s]"] in ("PASS", "FAIL")
    assert by_name["W1 p99 wsgisvc-api <= gthread's"] in ("PASS", "FAIL")
    assert by_name["W1 CPU/req wsgisvc-api <= 1.0 x granian [by CPU/req]"] == "N/A"
    assert result["against_uwsgi"] == []  # uWSGI was not run


@needs_wrk
@needs_uwsgi
@pytest.mark.timeout(90)
def test_bench_serves_the_neutral_pipeline_through_uwsgi(tmp_path):
    """uWSGI starts the way bench/servers.py runs it (devstack's options: a
    master and 2 lazily loaded workers), answers W1 without errors, and every
    wsgisvc figure is set beside its own."""
    status, result = _run_bench(
        tmp_path,
        "--paste",
        str(REPO / "bench" / "paste.ini"),
        "--servers",
        "uwsgi,wsgisvc-api-threads",
        "--workloads",
        "W1,M",
    )
    assert status == 0, result["failures"]
    row = result["medians"]["W1"]["uwsgi"]
    assert row["rps"] > 0 and row["errors"] == 0 and row["non2xx"] == 0
    assert result["medians"]["M"]["uwsgi"]["processes"] == 3  # master + 2 workers
    compared = {(r["figure"], r["server"], r["peer"]) for r in result["against_uwsgi"]}
    assert ("W1 req/s", "wsgisvc-api-threads", "uwsgi") in compared
    assert ("M PSS MiB", "wsgisvc-api-threads", "uwsgi") in compared


@needs_wrk
@pytest.mark.timeout(90)
def test_bench_runs_wsgisvc_from_the_python_given_with_the_workers_given(tmp_path):
    """``--python`` picks the bin/ the wsgisvc-api servers run from (a wrapper
    there says it ran), and ``--workers 1`` sets ``osapi_workers = 1``: one
    process serving, no parent."""
    other_bin = tmp_path / "other-venv" / "bin"
    other_bin.mkdir(parents=True)
    (other_bin / "python").symlink_to(sys.executable)
    ran = tmp_path / "ran"
    wrapper = other_bin / "wsgisvc-api"
    wrapper.write_text(
        f'#!/bin/sh\necho "$0" > {ran}\nexec {servers.VENV_BIN / "wsgisvc-api"} "$@"\n'
    )
    wrapper.chmod(0o755)
    status, result = _run_bench(
        tmp_path,
        "--servers",
        "wsgisvc-api-threads",
        "--workloads",
        "W1,M",
        "--workers",
        "1",
        "--python",
        str(other_bin / "python"),
    )
    assert status == 0, result["failures"]
    assert ran.read_text().strip() == str(wrapper)
    assert result["medians"]["M"]["wsgisvc-api-threads"]["processes"] == 1
    assert result["meta"]["workers"] == 1
    assert result["meta"]["versions"]["wsgisvc_python"]


@pytest.mark.parametrize(
    "flags, line",
    [
        (["--workers", "0"], "--workers 0: must be at least 1"),
        (["--python", "/nowhere/python"], "--python /nowhere/python: no wsgisvc-api"),
    ],
)
def test_bench_refuses_a_bad_workers_or_python_in_one_line(flags, line):
    status, output = run_in_session(
        [sys.executable, "-m", "bench", *flags], timeout=30, cwd=REPO
    )
    assert status == 1
    assert output.startswith(line) and output.count("\n") == 1, output


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


def test_targets_take_medians_and_judge_throughput_by_req_s_and_by_cpu():
    threads, gthread = "wsgisvc-api-threads", "gunicorn-gthread"
    samples = []
    # req/s medians 1100 vs 1000 (1.1 x); CPU medians 500 vs 650 (1.3 x)
    for rnd, (ours, theirs) in enumerate([(3000, 1000), (900, 1000), (1100, 1000)]):
        samples += [
            {"round": rnd, "server": threads, "workload": "W1", "rps": ours,
             "cpu_us_per_req": (400, 600, 500)[rnd]},
            {"round": rnd, "server": gthread, "workload": "W1", "rps": theirs,
             "cpu_us_per_req": 650},
            {"round": rnd, "server": threads, "workload": "R", "clean": rnd != 1},
        ]  # fmt: skip
    medians = report.aggregate(samples)
    targets = {t["target"]: t for t in report.evaluate_targets(medians)}
    label = "W1 req/s wsgisvc-api-threads >= 1.2 x gthread"
    assert targets[f"{label} [by req/s]"]["status"] == "FAIL"  # 1100 / 1000
    assert targets[f"{label} [by CPU/req]"]["status"] == "PASS"  # 650 / 500
    assert targets["W1 p99 wsgisvc-api-threads <= gthread's"]["status"] == "N/A"
    assert targets["W3 p99 wsgisvc-api <= granian's"]["status"] == "N/A"
    assert medians["R"][threads]["clean"] is False  # a flag takes the worst round


def test_a_cpu_target_is_judged_by_req_s_upside_down():
    api, granian = "wsgisvc-api", "granian"
    samples = [
        {"round": 0, "server": api, "workload": "W1", "rps": 5000,
         "cpu_us_per_req": 190},
        {"round": 0, "server": granian, "workload": "W1", "rps": 4500,
         "cpu_us_per_req": 200},
    ]  # fmt: skip
    targets = {
        t["target"]: t for t in report.evaluate_targets(report.aggregate(samples))
    }
    label = "W1 CPU/req wsgisvc-api <= 1.0 x granian"
    assert targets[f"{label} [by CPU/req]"]["status"] == "PASS"  # 190 / 200
    assert targets[f"{label} [by req/s]"]["status"] == "PASS"  # 4500 / 5000
    stretch = "W1 CPU/req wsgisvc-api <= 0.8 x granian, stretch"
    assert targets[f"{stretch} [by CPU/req]"]["status"] == "FAIL"
    assert report.against_uwsgi(report.aggregate(samples)) == []


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
        timeout=110,
    )
    assert status == 0, result["failures"]
    for server in ("wsgisvc-api", "wsgisvc-api-threads"):
        row = result["medians"]["SC"][server]
        assert row["slow_opened"] == workloads.SLOW_CLIENTS
        assert row["rps"] > 0 and row["errors"] == 0
    assert "eventlet-wsgi" in result["medians"]["SC"]
    labels = [t["target"] for t in result["targets"]]
    assert "SC wsgisvc-api: 0 errors, p99 < 100 ms" in labels


@pytest.mark.timeout(120)
def test_upload_bench_measures_every_kind_on_every_server():
    """bench/upload.py (issue 24) end to end, tiny: each server starts the way
    it starts them, takes each kind of upload whole (an answer short of the
    data fails the run), and its CPU lands in the table."""
    status, output = run_in_session(
        [sys.executable, "-m", "bench.upload", "--mib", "0.25"]
        + ["--one-byte-mib", "0.01", "--requests-mib", "0.01"],
        100,
        cwd=REPO,
    )
    assert status == 0, output
    rows = [line.split(" | ") for line in output.splitlines() if line.startswith("| ")]
    kinds = ["cl", "random", "crlf", "1-byte", "requests"]
    servers_run = ["wsgisvc-eventlet", "wsgisvc-threads", "gunicorn-gthread"]
    assert [(r[0], r[1]) for r in rows[1:]] == [
        ("| " + server, kind) for server in servers_run for kind in kinds
    ], output
