"""What every layer of the lab stands on: spawning processes, errors with hints, paths, network namespaces
and the lab network, the registry of running labs and its locks, the settings table.

It imports nothing of the project (tests/test_boundaries.py checks it); everything of the lab may import it.
"""
