"""wsgisvc-sample: a tick service under launch(), to see the process model work.

Importing this module imports wsgisvc.cmd first, which monkey patches.

wsgisvc-sample --workers 4      # then: kill -HUP / -TERM / -INT the parent
"""

import sys

from oslo_config import cfg

from wsgisvc import config, service
from wsgisvc.sample.service import TickService

cli_opts = [
    cfg.IntOpt("workers", default=2, min=1, help="Worker processes to fork."),
    cfg.FloatOpt("tick_interval", default=5.0, help="Seconds between ticks."),
]


def main() -> None:
    config.CONF.register_cli_opts(cli_opts)
    config.parse_args(sys.argv)
    conf = config.CONF
    launcher = service.launch(
        conf, TickService(conf.tick_interval), workers=conf.workers
    )
    sys.exit(launcher.wait())
