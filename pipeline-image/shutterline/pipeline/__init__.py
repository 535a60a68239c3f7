"""Drivers: run the stages of one detector in order, and a visit's detectors side by side.

This is the only place that knows the order of stages and where inputs come from (pre-cache
or the backbone directly) and outputs go (APDB, spool, local repository). The stages know
nothing of how they were launched. The pod and the embedded run call the same functions;
what differs is the `settings.Settings` they are given.
"""
