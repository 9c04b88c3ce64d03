"""Checking: the NumPy references, graph evaluation, verification and tolerances."""
