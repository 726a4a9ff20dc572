"""Pure numpy simulation core: no Ray, no sockets, no clock reads.

Every function takes simulated time as UTC epoch seconds and returns arrays; the same code steps one
meter or 100,000. Randomness is counter-based (a hash of seed, stream, key and time knot), so any
process that knows the seed computes the same weather and the same meter noise without talking to
anyone, and a fleet split into groups steps exactly like the whole fleet.
"""
