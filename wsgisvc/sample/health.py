"""The healthcheck's stopping gate under its name before it was public:
:mod:`wsgisvc.healthcheck` has it (``stopping_filter_factory``); paste files
that name ``wsgisvc.sample.health:filter_factory`` keep working."""

from wsgisvc.healthcheck import StoppingGate, stopping_filter_factory

filter_factory = stopping_filter_factory

__all__ = ["StoppingGate", "filter_factory"]
