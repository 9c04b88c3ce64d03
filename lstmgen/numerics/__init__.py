"""Numerics at the bottom: graph evaluation, the float64 reference, the float bound, affine arithmetic, tables."""
