"""@periodic_task and PeriodicTasks.run_periodic_tasks, in-process."""

import logging
import time

import pytest
from oslo_config import cfg

from wsgisvc import opts, periodic_task
from wsgisvc.periodic_task import PeriodicTasks


@pytest.fixture
def conf():
    c = cfg.ConfigOpts()
    c([], project="wsgisvc-test", default_config_files=[], default_config_dirs=[])
    return c


class Tasks(PeriodicTasks):
    def __init__(self, conf, default_spacing=None):
        super().__init__(conf, default_spacing)
        self.ran = []

    @periodic_task.periodic_task
    def bare(self, context):
        self.ran.append(("bare", context))

    @periodic_task.periodic_task(spacing=0.2, run_immediately=True)
    def quick(self, context):
        self.ran.append(("quick", context))

    @periodic_task.periodic_task(spacing=5, name="renamed")
    def slow(self, context):
        self.ran.append(("renamed", context))

    @periodic_task.periodic_task(enabled=False, run_immediately=True)
    def off(self, context):
        self.ran.append(("off", context))

    @periodic_task.periodic_task(spacing=-1, run_immediately=True)
    def negative(self, context):
        self.ran.append(("negative", context))

    @periodic_task.periodic_task(run_immediately=True, external_process_ok=True)
    def external(self, context):
        self.ran.append(("external", context))


def names(tasks):
    return sorted(name for name, _ctx in tasks.ran)


def test_tasks_are_collected_by_name(conf):
    assert sorted(Tasks(conf).periodic_task_names()) == [
        "bare",
        "external",
        "quick",
        "renamed",
    ]


def test_first_round_runs_only_immediate_tasks_and_passes_context(conf):
    tasks = Tasks(conf, default_spacing=30)
    idle = tasks.run_periodic_tasks("ctx")
    assert names(tasks) == ["external", "quick"]
    assert all(ctx == "ctx" for _name, ctx in tasks.ran)
    # The next due task is 'quick', 0.2 s away.
    assert 0 < idle <= 0.2


def test_idle_time_says_when_the_next_task_is_due(conf):
    tasks = Tasks(conf, default_spacing=30)
    tasks.run_periodic_tasks(None)
    tasks.ran.clear()
    idle = tasks.run_periodic_tasks(None)
    assert tasks.ran == []  # nothing due yet
    time.sleep(idle)
    tasks.run_periodic_tasks(None)
    assert names(tasks) == ["quick"]


def test_spacing_zero_or_none_uses_the_default_spacing(conf):
    tasks = Tasks(conf, default_spacing=0.05)
    tasks.run_periodic_tasks(None)
    time.sleep(0.25)
    tasks.ran.clear()
    tasks.run_periodic_tasks(None)
    assert "bare" in names(tasks)
    assert "renamed" not in names(tasks)  # spacing 5 s is not due


def test_external_tasks_skipped_when_another_process_runs_them(conf):
    conf.register_opts(opts.periodic_task_opts)
    conf.set_override("run_external_periodic_tasks", False)
    tasks = Tasks(conf)
    tasks.run_periodic_tasks(None)
    assert names(tasks) == ["quick"]


class Failing(PeriodicTasks):
    def __init__(self, conf):
        super().__init__(conf)
        self.ran = []

    @periodic_task.periodic_task(run_immediately=True)
    def a_fails(self, context):
        raise RuntimeError("disk on fire")

    @periodic_task.periodic_task(run_immediately=True)
    def b_works(self, context):
        self.ran.append("b_works")


def test_failing_task_is_logged_and_the_others_still_run(conf, caplog):
    tasks = Failing(conf)
    with caplog.at_level(logging.ERROR, logger="wsgisvc.periodic_task"):
        tasks.run_periodic_tasks(None)
    assert tasks.ran == ["b_works"]
    assert "Failing.a_fails failed" in caplog.text
    assert "disk on fire" in caplog.text


def test_raise_on_error_propagates(conf):
    with pytest.raises(RuntimeError, match="disk on fire"):
        Failing(conf).run_periodic_tasks(None, raise_on_error=True)


class Child(Tasks):
    @periodic_task.periodic_task(spacing=1, run_immediately=True)
    def quick(self, context):
        self.ran.append(("child-quick", context))


def test_subclass_overrides_an_inherited_task(conf):
    tasks = Child(conf)
    tasks.run_periodic_tasks(None)
    assert names(tasks) == ["child-quick", "external"]


def test_wall_clock_jump_does_not_make_tasks_due(conf, monkeypatch):
    tasks = Tasks(conf, default_spacing=30)
    tasks.run_periodic_tasks(None)
    tasks.ran.clear()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 86400)
    tasks.run_periodic_tasks(None)
    assert tasks.ran == []
