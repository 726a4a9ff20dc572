"""Thin Ray wrappers around the simulation core: meters, the clock and the aggregator."""

AGGREGATOR_NAME = "aggregator"  # Ray actor names, in the simulation's namespace
CLOCK_NAME = "clock"
