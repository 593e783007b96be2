"""Options: listed for oslo-config-generator, the generator configuration covers
every option a binary reads, and the checked-in sample is current."""

import configparser
import pathlib
import re
import shlex

import pytest
from oslo_config import cfg, generator

from tests.helpers import BIN, run_in_session
from wsgisvc import opts
from wsgisvc.errors import ConfigValueError

ROOT = pathlib.Path(__file__).resolve().parents[2]
GENERATOR_CONFIG = ROOT / "etc/oslo-config-generator/wsgisvc.conf"
SAMPLE = ROOT / "etc/wsgisvc.conf.sample"
REGENERATE = (
    "regenerate it with: .venv/bin/oslo-config-generator --config-file "
    "etc/oslo-config-generator/wsgisvc.conf"
)


def generator_namespaces() -> list[str]:
    """The namespaces the generator configuration lists (``namespace`` repeats,
    which configparser does not allow, hence the regular expression)."""
    text = GENERATOR_CONFIG.read_text()
    return re.findall(r"^namespace\s*=\s*(\S+)$", text, re.MULTILINE)


def own_namespaces() -> list[str]:
    """The oslo.config.opts entry points setup.cfg declares."""
    setup = configparser.ConfigParser(interpolation=None)
    setup.read(ROOT / "setup.cfg")
    entries = setup["options.entry_points"]["oslo.config.opts"].strip().splitlines()
    return [entry.split("=", 1)[0].strip() for entry in entries]


def test_generator_config_lists_every_namespace_of_ours():
    assert set(own_namespaces()) <= set(generator_namespaces())


@pytest.mark.parametrize("namespace", own_namespaces())
def test_every_namespace_lists_documented_options(namespace):
    listed = generator._list_opts([namespace])
    opts = [
        opt for _, groups in listed for _, group_opts in groups for opt in group_opts
    ]
    assert opts, namespace
    assert all(opt.help for opt in opts), [o.name for o in opts if not o.help]


def author_namespaces() -> list[str]:
    """The namespaces the author's generator configuration in
    doc/source/api-binary.rst lists."""
    page = (ROOT / "doc/source/api-binary.rst").read_text()
    match = re.search(
        r"   # etc/oslo-config-generator/myproj\.conf\n((?:   .*\n)+)", page
    )
    assert match, "api-binary.rst shows no generator configuration for myproj"
    return re.findall(r"^   namespace = (\S+)$", match[1], re.MULTILINE)


def test_an_author_lists_every_namespace_of_wsgisvc_but_the_sample():
    wsgisvc = [name for name in generator_namespaces() if name != "wsgisvc.sample"]
    assert author_namespaces() == ["myproj", *wsgisvc]


def test_an_author_generates_none_of_the_sample_binaries_options():
    """The sample's osapi_* and worker_* are wsgisvc.sample's only: an author
    who lists wsgisvc's other namespaces gets none of them in a sample file."""
    listed = generator._list_opts([n for n in author_namespaces() if n != "myproj"])
    names = {opt.name for _, groups in listed for _, group in groups for opt in group}
    assert names, "the author's namespaces list no option"
    assert sorted(n for n in names if n.startswith(("osapi_", "worker_"))) == []
    sample = generator._list_opts(["wsgisvc.sample"])
    shown = {opt.name for _, groups in sample for _, group in groups for opt in group}
    assert {"osapi_listen", "worker_workers", "worker_manager"} <= shown


def test_launcher_options_are_there():
    conf = cfg.ConfigOpts()
    from wsgisvc import config

    config.register_opts(conf)
    conf([])
    assert conf.graceful_shutdown_timeout == 60
    assert conf.log_options is True


def sample_chunks(text: str) -> dict[tuple[str, str], str]:
    """The sample split into (section, namespace) -> that namespace's options
    in that section, as oslo-config-generator writes them."""
    chunks: dict[tuple[str, str], str] = {}
    section = namespace = None
    for line in text.splitlines(keepends=True):
        if match := re.fullmatch(r"\[(.+)\]\n", line):
            section, namespace = match[1], None
        elif match := re.fullmatch(r"# From (\S+)\n", line):
            namespace = match[1]
        elif namespace is not None:
            key = (section, namespace)
            chunks[key] = chunks.get(key, "") + line
    return chunks


@pytest.mark.timeout(60)
def test_sample_config_is_current(tmp_path):
    """wsgisvc's own options must match exactly. The libraries' options follow
    whatever versions are installed, so for them the sample only has to show
    every namespace: a new oslo.messaging release must not fail CI."""
    fresh = tmp_path / "wsgisvc.conf.sample"
    status, output = run_in_session(
        [f"{BIN}/oslo-config-generator", "--config-file", str(GENERATOR_CONFIG),
         "--output-file", str(fresh)],
        timeout=50, cwd=ROOT,
    )  # fmt: skip
    assert status == 0, output
    checked_in = sample_chunks(SAMPLE.read_text())
    own = set(own_namespaces())
    ours = {k: text for k, text in sample_chunks(fresh.read_text()).items()
            if k[1] in own}  # fmt: skip
    assert ours, "the generator wrote none of wsgisvc's options"
    stale = {k for k in ours if checked_in.get(k) != ours[k]}
    stale |= {k for k in checked_in if k[1] in own and k not in ours}
    assert not stale, f"{SAMPLE.name} is stale in {sorted(stale)}: {REGENERATE}"
    shown = {namespace for _, namespace in checked_in}
    missing = set(generator_namespaces()) - shown
    assert not missing, f"{SAMPLE.name} lacks namespaces {missing}: {REGENERATE}"


def readme_rpc_config() -> str:
    """The configuration file the README's RPC example writes with printf."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^printf (.+) > /tmp/rpc\.conf$", readme, re.MULTILINE)
    assert match, "README.md no longer writes /tmp/rpc.conf with printf"
    (fmt,) = shlex.split(match[1])
    return fmt.replace("\\n", "\n")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["README rpc.conf", "etc/wsgisvc.conf"])
def test_validator_accepts_the_shipped_configurations(tmp_path, name):
    if name == "etc/wsgisvc.conf":
        config_file = ROOT / name
    else:
        config_file = tmp_path / "rpc.conf"
        config_file.write_text(readme_rpc_config())
    status, output = run_in_session(
        [f"{BIN}/oslo-config-validator", "--config-file", str(GENERATOR_CONFIG),
         "--input-file", str(config_file), "--fatal-warnings"],
        timeout=50, cwd=ROOT,
    )  # fmt: skip
    assert status == 0, output


@pytest.mark.timeout(60)
def test_validator_rejects_an_unknown_option(tmp_path):
    """The validator test above can fail: an option no namespace lists is an error."""
    config_file = tmp_path / "typo.conf"
    config_file.write_text("[DEFAULT]\ntransport_uri = rabbit://127.0.0.1/\n")
    status, output = run_in_session(
        [f"{BIN}/oslo-config-validator", "--config-file", str(GENERATOR_CONFIG),
         "--input-file", str(config_file)],
        timeout=50, cwd=ROOT,
    )  # fmt: skip
    assert status != 0 and "transport_uri" in output, output


def test_a_shared_name_of_another_kind_is_one_line_naming_it():
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.ListOpt("report_interval", default=["a"]))
    with pytest.raises(ConfigValueError, match=r"option report_interval .* int"):
        opts.register(conf, opts.service_opts)


def test_a_later_definition_of_another_kind_is_refused_by_oslo_config():
    conf = cfg.ConfigOpts()
    opts.register(conf, opts.service_opts)
    conf.register_opt(cfg.StrOpt("host", help="the service's own"))  # a string
    with pytest.raises(cfg.DuplicateOptError):
        conf.register_opt(cfg.IntOpt("host"))  # wsgisvc reads a string


def test_an_int_serves_where_wsgisvc_reads_a_float():
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.IntOpt("wsgi_keepalive_timeout", default=7))
    opts.register(conf, opts.wsgi_opts)
    conf([])
    assert conf.wsgi_keepalive_timeout == 7
