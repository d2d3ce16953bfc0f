"""Typed results and what is read from them: the Report, intervals, comparisons, plots.

Imports the core (and the progress bars); it never ranks anything itself. The public
objects are re-exported from :mod:`ccr_metrics`.
"""
