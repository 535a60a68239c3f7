"""Scoring against the simulator's truth: completeness, false sources, astrometry.

Reads the truth table the simulator writes; never used by the pipeline itself, only by the
demo summary and the benchmark scripts.
"""
