"""Central finite differences, shared by the convolution's and the transposed convolution's gradient tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STEP = 1e-3
"""Finite-difference step; rounding error of the difference is about eps * |L| / STEP."""


def central_difference(loss: Callable[[], float], array: np.ndarray) -> np.ndarray:
    """d loss / d array, element by element: (loss(a + h e_i) - loss(a - h e_i)) / 2h (array restored)."""
    gradient = np.empty_like(array)
    for index in np.ndindex(*array.shape):
        original = array[index]
        array[index] = original + STEP
        plus = loss()
        array[index] = original - STEP
        minus = loss()
        array[index] = original
        gradient[index] = (plus - minus) / (2 * STEP)
    return gradient
