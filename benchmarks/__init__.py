"""Benchmarks that print per-phase figures (`./xenlab bench`): never assertions on time."""
