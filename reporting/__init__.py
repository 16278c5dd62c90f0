"""A run's verdicts: the pytest plugin that records them, the model, and `python -m reporting` that merges
and compares them."""
