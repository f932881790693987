"""A small NumPy convolution, forward and backward: the stand-in that your framework's call replaces.

It makes the generated backend correct from the start, so the contract suite passes before you
change anything; `backend.py` calls it from `run`. Replace that call with your framework's and
delete this module when you no longer need it.

Shapes, for a spatial rank r of 1 to 3 (letters as in the convparity docs):
    x (N, C, *in), w (O, C/G, *k), b (O,) or None, dy (N, O, *out)
    y (N, O, *out), dx (N, C, *in), dw (O, C/G, *k), db (O,) or None
with, per spatial dim, out = (in + before + after - ((k - 1) * dilation + 1)) // stride + 1.
`padding` holds one (before, after) pair per dim; a negative pad crops the input.

Everything is computed in float64 from the inputs as given; the caller chooses the output dtype.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

OUT_LETTERS = "pqr"  # einsum letters of the output positions, one per spatial dim
TAP_LETTERS = "ijk"  # einsum letters of the kernel taps, one per spatial dim


def conv_forward_backward(x, w, b, dy, *, stride, padding, dilation, groups):
    """(y, dx, dw, db) in float64 for the shapes in the module docstring; db is None when b is None."""
    x, w, dy = (np.asarray(a, dtype=np.float64) for a in (x, w, dy))
    n, c, *_ = x.shape
    o, _, *kernel = w.shape
    rank = len(kernel)
    out, taps = OUT_LETTERS[:rank], TAP_LETTERS[:rank]

    padded = pad(x, padding)                                        # (N, C, *padded)
    windows = sliding_windows(padded, kernel, stride, dilation)     # (N, C, *out, *k)
    out_size = windows.shape[2:2 + rank]
    cols = windows.reshape(n, groups, c // groups, *out_size, *kernel)  # (N, G, C/G, *out, *k)
    wg = w.reshape(groups, o // groups, c // groups, *kernel)           # (G, O/G, C/G, *k)
    dyg = dy.reshape(n, groups, o // groups, *out_size)                 # (N, G, O/G, *out)

    y = np.einsum(f"ngc{out}{taps},goc{taps}->ngo{out}", cols, wg, optimize=True)  # (N, G, O/G, *out)
    y = y.reshape(n, o, *out_size)                                                 # (N, O, *out)
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64).reshape(o, *[1] * rank)
    dw = np.einsum(f"ngc{out}{taps},ngo{out}->goc{taps}", cols, dyg, optimize=True)  # (G, O/G, C/G, *k)
    dcols = np.einsum(f"ngo{out},goc{taps}->ngc{out}{taps}", dyg, wg, optimize=True)  # (N, G, C/G, *out, *k)
    dpadded = scatter_windows(dcols.reshape(n, c, *out_size, *kernel), padded.shape, stride, dilation)
    dx = unpad(dpadded, x.shape, padding)                            # (N, C, *in)
    db = None if b is None else dy.sum(axis=(0, *range(2, 2 + rank)))  # (O,)
    return y, dx, dw.reshape(w.shape), db


def crop_slices(size, padding):
    """Per spatial dim, the part of the input that a negative pad leaves."""
    return tuple(slice(max(-before, 0), n - max(-after, 0)) for n, (before, after) in zip(size, padding))


def pad(x, padding):
    """x (N, C, *in) cropped where a pad is negative and zero-padded where it is positive."""
    kept = x[(slice(None), slice(None), *crop_slices(x.shape[2:], padding))]
    return np.pad(kept, [(0, 0), (0, 0)] + [(max(before, 0), max(after, 0)) for before, after in padding])


def unpad(dpadded, shape, padding):
    """The adjoint of `pad`: dx of `shape` (N, C, *in) from the gradient of the padded input."""
    dx = np.zeros(shape)
    inner = tuple(slice(max(before, 0), size - max(after, 0))
                  for size, (before, after) in zip(dpadded.shape[2:], padding))
    dx[(slice(None), slice(None), *crop_slices(shape[2:], padding))] = dpadded[(slice(None), slice(None), *inner)]
    return dx


def sliding_windows(padded, kernel, stride, dilation):
    """The strided, dilated windows of padded (N, C, *padded) as a view (N, C, *out, *k)."""
    rank = len(kernel)
    reach = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    view = sliding_window_view(padded, reach, axis=tuple(range(2, 2 + rank)))  # (N, C, *positions, *reach)
    every = tuple(slice(None, None, s) for s in stride) + tuple(slice(None, None, d) for d in dilation)
    return view[(slice(None), slice(None), *every)]


def scatter_windows(dwindows, shape, stride, dilation):
    """The adjoint of `sliding_windows`: sums dwindows (N, C, *out, *k) into an array of `shape` (N, C, *padded)."""
    rank = len(stride)
    out_size, kernel = dwindows.shape[2:2 + rank], dwindows.shape[2 + rank:]
    dpadded = np.zeros(shape)
    for tap in np.ndindex(*kernel):
        reached = tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                        for t, d, n, s in zip(tap, dilation, out_size, stride))
        dpadded[(slice(None), slice(None), *reached)] += dwindows[(..., *tap)]
    return dpadded
