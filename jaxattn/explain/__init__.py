"""Explanations and their measures. Computing an importance (gradient, leave-one-out, integrated
gradients, norm-based) and intervening on attention (permutation, adversarial search, erasure)
is kept apart from measuring them (agreement and Kendall tau, ERASER faithfulness,
plausibility)."""
