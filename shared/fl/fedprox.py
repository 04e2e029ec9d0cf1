"""FedProx (Li et al. 2020, arXiv 1812.06127): the client adds (μ/2)·‖w − w_global‖² to its local loss."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def proximal_term(weights: npt.ArrayLike, global_weights: npt.ArrayLike, mu: float) -> float:
    """(μ/2)·‖w − w_global‖²: keeps heterogeneous clients' local models near the global one."""
    d = np.asarray(weights, dtype=np.float64) - np.asarray(global_weights, dtype=np.float64)
    return 0.5 * mu * float(np.dot(d.ravel(), d.ravel()))


def proximal_gradient(weights: npt.ArrayLike, global_weights: npt.ArrayLike, mu: float) -> FloatArray:
    """∇ of the proximal term, μ·(w − w_global), added to the loss gradient at each local step."""
    return mu * (np.asarray(weights, dtype=np.float64) - np.asarray(global_weights, dtype=np.float64))
