"""Thin Ray wrappers around the simulation core: meters, the clock and the aggregator."""
