"""The report on demand (SIGUSR2): what this process is doing, in its log.

One report, one log record: every thread's and every greenthread's stack,
the processes below this one, the pool and open connections of each server
in the process, the top-level modules it has loaded (what a worker carries),
and the options in effect (secrets masked).

Built with oslo.reports, the Guru Meditation Report OpenStack operators
know: its generators and text views make every section here. Its
``setup_autorun()`` is not used, for two reasons: it installs its own
SIGUSR2 handler and builds the report inside the handler, where wsgisvc's
launchers only record a signal and act on it in their loop (``signals``);
and it prints to stderr or a file, where this report belongs in the log
with every other line the process writes.

Servers (and anything else worth a section) add themselves with
``add_section()``; they are held weakly, so a section goes with its owner.
oslo.reports is imported only when a report is built.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
import weakref
from collections.abc import Callable
from types import FrameType

from oslo_config import cfg

from wsgisvc import backend

LOG = logging.getLogger(__name__)

# title -> (the pid that added it, a weak reference to a callable returning
# the section's text)
_sections: dict[str, tuple[int, Callable[[], Callable[[], str] | None]]] = {}


def add_section(title: str, describe: Callable[[], str]) -> None:
    """Have this process's reports include ``describe()`` under ``title``.

    A bound method is held weakly (the section goes with its object); a
    plain function is held for the life of the process. A second section of
    the same title replaces the first. A section is this process's only: a
    forked worker does not report its parent's (its ``Workers``, say).
    """
    if hasattr(describe, "__self__"):
        _sections[title] = (os.getpid(), weakref.WeakMethod(describe))
    else:
        _sections[title] = (os.getpid(), lambda: describe)


def build(conf: cfg.ConfigOpts, frame: FrameType | None = None) -> str:
    """The report's text. ``frame``, when given, stands for the current
    thread's stack (the frame a signal interrupted)."""
    # Imported here: a process that is never asked for a report never pays
    # for oslo.reports (and its Jinja2 and psutil) at start.
    from oslo_reports import report as gmr
    from oslo_reports.generators import conf as conf_generator
    from oslo_reports.generators import process as process_generator
    from oslo_reports.generators import threading as thread_generator

    text = gmr.TextReport(f"wsgisvc report: pid {os.getpid()}")
    sections = [("Threads", thread_generator.ThreadReportGenerator(frame))]
    if backend.NAME == "eventlet":
        sections.append(
            ("Green Threads", thread_generator.GreenThreadReportGenerator())
        )
    sections.append(("Processes", process_generator.ProcessReportGenerator()))
    for title, (pid, ref) in list(_sections.items()):
        describe = ref()
        if describe is None or pid != os.getpid():
            del _sections[title]
        else:
            sections.append((title, describe))
    sections.append(("Modules", loaded_modules))
    sections.append(("Configuration", conf_generator.ConfigReportGenerator(conf)))
    for title, describe in sections:
        text.add_section(title, _failsafe(describe))
    return text.run()


def loaded_modules() -> str:
    """The top-level modules in ``sys.modules``, sorted, comma-separated."""
    # A copy (one C call, under the dict's lock without the GIL): another
    # thread importing meanwhile would end the iteration with a RuntimeError.
    modules = list(sys.modules.items())
    names = sorted({name.partition(".")[0] for name, m in modules if m})
    return textwrap.fill(", ".join(names), width=79, break_on_hyphens=False)


def _failsafe(describe: Callable[[], str]) -> Callable[[], str]:
    """A section that fails says so, wsgisvc's and oslo.reports' alike; the
    rest of the report still comes."""

    def section() -> str:
        try:
            return describe()
        except Exception as exc:
            return f"(this section failed: {type(exc).__name__}: {exc})"

    return section


def write(conf: cfg.ConfigOpts, frame: FrameType | None = None) -> None:
    """Build the report and log it as one record.

    At WARNING: an operator who asked for a report gets it whatever the
    log level, as the Guru Meditation Report ignores levels too.
    """
    try:
        text = build(conf, frame)
    except Exception:  # the report is for diagnosis: it never ends the process
        LOG.exception("report requested (SIGUSR2): it could not be built")
        return
    LOG.warning("report requested (SIGUSR2):\n%s", text)
