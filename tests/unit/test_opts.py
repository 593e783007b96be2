"""Options: listed for oslo-config-generator, and the checked-in sample is current."""

import pathlib
import subprocess

import pytest
from oslo_config import cfg, generator

from tests.helpers import BIN

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMESPACES = [
    "wsgisvc.service",
    "wsgisvc.wsgi",
    "wsgisvc.sslutils",
    "wsgisvc.periodic_task",
    "wsgisvc.registry",
    "wsgisvc.metrics",
]


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_every_namespace_lists_documented_options(namespace):
    listed = generator._list_opts([namespace])
    opts = [
        opt for _, groups in listed for _, group_opts in groups for opt in group_opts
    ]
    assert opts, namespace
    assert all(opt.help for opt in opts), [o.name for o in opts if not o.help]


def test_launcher_options_are_there():
    conf = cfg.ConfigOpts()
    from wsgisvc import config

    config.register_opts(conf)
    conf([])
    assert conf.graceful_shutdown_timeout == 60
    assert conf.log_options is True


@pytest.mark.timeout(60)
def test_sample_config_is_current(tmp_path):
    """Regenerate with: oslo-config-generator --config-file
    etc/oslo-config-generator/wsgisvc.conf"""
    fresh = tmp_path / "wsgisvc.conf.sample"
    subprocess.run(
        [
            f"{BIN}/oslo-config-generator",
            "--config-file",
            str(ROOT / "etc/oslo-config-generator/wsgisvc.conf"),
            "--output-file",
            str(fresh),
        ],
        check=True,
        cwd=ROOT,
    )
    checked_in = (ROOT / "etc/wsgisvc.conf.sample").read_text()
    assert fresh.read_text() == checked_in, (
        "etc/wsgisvc.conf.sample is stale: regenerate it with "
        "oslo-config-generator --config-file etc/oslo-config-generator/wsgisvc.conf"
    )
