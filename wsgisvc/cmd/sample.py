"""wsgisvc-sample: a tick service under the launchers, to see the process model work.

wsgisvc-sample --workers 4      # then: kill -HUP / -TERM / -INT the parent
"""

import wsgisvc.cmd  # noqa: F401, I001  (backend and monkey patching first)

from oslo_config import cfg

from wsgisvc import config
from wsgisvc.cmd import binary
from wsgisvc.sample.service import TickService

cli_opts = [
    cfg.IntOpt("workers", default=2, min=1, help="Worker processes to fork."),
    cfg.FloatOpt("tick_interval", default=5.0, help="Seconds between ticks."),
]


def main() -> None:
    config.CONF.register_cli_opts(cli_opts)
    binary.run(lambda conf: TickService(conf.tick_interval), workers="workers")
