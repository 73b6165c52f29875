"""Measures of a `SimulationResult`, per seed, and their ensemble summaries.

Each measure takes a result with S seeds and returns arrays with a leading seed axis;
some compare against a reference solution from `.._references` (which never imports
from here). The public names are re-exported by `dynsim.analysis`.
"""
