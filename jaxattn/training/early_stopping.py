"""Early stopping on the selection metric (``train.patience``).

Decided from what the checkpoint already holds (the epochs run and each member's best epoch),
so a resumed run stops exactly where an uninterrupted one would, and no new state is saved.
"""

from __future__ import annotations

import numpy as np


def patience_limit(patience: int) -> float:
    """``train.patience`` as a number of epochs: 0 (off) is no limit, so more patience ranks higher."""
    return float("inf") if patience <= 0 else float(patience)


def patience_ran_out(epochs_run: int, best_epoch, patience: int) -> bool:
    """Whether training stops before the next epoch.

    Args:
      epochs_run: epochs finished so far.
      best_epoch: <int>[M] each member's best epoch so far (1-based; 0 before any).
      patience: epochs without a better selection score after which training stops; 0 is off.
    Returns:
      True when every member of the stack has gone ``patience`` epochs without improving.
    """
    if epochs_run == 0:
        return False
    return bool(np.all(epochs_run - np.asarray(best_epoch) >= patience_limit(patience)))
