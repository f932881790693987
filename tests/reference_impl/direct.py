"""Direct-summation convolution: the tests' second method, independent of the im2col reference.

It never builds a padded input, a column matrix or tiles. For every kernel offset k it finds the
output positions whose tap at k lands inside the real (unpadded, uncropped) input, and adds

    y[n, o, p]      += sum_c w[o, c, k] * x[n, c, p * s + k * d - before]
    dx[n, c, i]     += sum_o w[o, c, k] * dy[n, o, p]          (i = p * s + k * d - before)
    dw[o, c, k]      = sum_{n, p} dy[n, o, p] * x[n, c, i]

per group. Taps in the zero padding add nothing; a negative `before` makes the first input elements
unreachable and a negative `after` shortens the output, so cropping needs no special case.

Layouts: x (N, C, *in), w (O, C/groups, *kernel), b (O,), y and dy (N, O, *out); everything float64.
`stride`, `dilation`: one int per spatial dim; `padding`: one (before, after) pair per spatial dim.
"""

from __future__ import annotations

import itertools

import numpy as np

Ints = tuple[int, ...]
Pairs = tuple[tuple[int, int], ...]


def output_length(size: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    """Number of window positions along one dim: floor((size + before + after - span) / stride) + 1."""
    span = (kernel - 1) * dilation + 1
    return (size + before + after - span) // stride + 1


def _tap_slices(
    offset: tuple[int, ...],
    input_size: tuple[int, ...],
    output_size: tuple[int, ...],
    stride: Ints,
    dilation: Ints,
    padding: Pairs,
) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """(output slices, input slices) pairing each output position with its input tap at `offset`.

    Only positions whose tap index p * s + k * d - before lies in [0, size) are kept; None if none do.
    """
    out_slices, in_slices = [], []
    for k, size, count, s, d, (before, _) in zip(
        offset, input_size, output_size, stride, dilation, padding, strict=True
    ):
        shift = k * d - before  # input index of output position 0's tap
        first = max(0, -(shift // s))  # smallest p with p * s + shift >= 0
        last = min(count - 1, (size - 1 - shift) // s)  # largest p with p * s + shift <= size - 1
        if last < first:
            return None
        out_slices.append(slice(first, last + 1))
        start = first * s + shift
        in_slices.append(slice(start, start + (last - first) * s + 1, s))
    return tuple(out_slices), tuple(in_slices)


def _geometry(
    x: np.ndarray, w: np.ndarray, stride: Ints, dilation: Ints, padding: Pairs
) -> tuple[tuple[int, ...], list[tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]]]:
    """Output size and, per kernel offset that reaches the input, (offset, output slices, input slices)."""
    output_size = tuple(
        output_length(size, kernel, s, d, before, after)
        for size, kernel, s, d, (before, after) in zip(x.shape[2:], w.shape[2:], stride, dilation, padding, strict=True)
    )
    taps = []
    for offset in itertools.product(*(range(k) for k in w.shape[2:])):
        pairing = _tap_slices(offset, x.shape[2:], output_size, stride, dilation, padding)
        if pairing is not None:
            taps.append((offset, *pairing))
    return output_size, taps


def direct_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *,
    stride: Ints,
    padding: Pairs,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """y (N, O, *out) by summing over kernel offsets; `b` may be None."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    out_channels, group_in = w.shape[:2]
    group_out = out_channels // groups
    output_size, taps = _geometry(x, w, stride, dilation, padding)
    y = np.zeros((x.shape[0], out_channels) + output_size)
    for g in range(groups):
        outs, ins = slice(g * group_out, (g + 1) * group_out), slice(g * group_in, (g + 1) * group_in)
        for offset, out_slices, in_slices in taps:
            tap = x[(slice(None), ins) + in_slices]  # (N, Cg, *reached)
            weight = w[(outs, slice(None)) + offset]  # (Og, Cg)
            y[(slice(None), outs) + out_slices] += np.einsum("oc,nc...->no...", weight, tap)
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, out_channels) + (1,) * len(output_size))
    return y


def direct_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray, *, stride: Ints, padding: Pairs, dilation: Ints, groups: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx (N, C, *in), dw (O, C/groups, *kernel), db (O,) for dy (N, O, *out)."""
    dy, x, w = (np.asarray(a, np.float64) for a in (dy, x, w))
    out_channels, group_in = w.shape[:2]
    group_out = out_channels // groups
    _, taps = _geometry(x, w, stride, dilation, padding)
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for g in range(groups):
        outs, ins = slice(g * group_out, (g + 1) * group_out), slice(g * group_in, (g + 1) * group_in)
        for offset, out_slices, in_slices in taps:
            grad = dy[(slice(None), outs) + out_slices]  # (N, Og, *reached)
            tap = x[(slice(None), ins) + in_slices]  # (N, Cg, *reached)
            weight = w[(outs, slice(None)) + offset]  # (Og, Cg)
            dx[(slice(None), ins) + in_slices] += np.einsum("oc,no...->nc...", weight, grad)
            summed = [0, *range(2, grad.ndim)]  # batch and every spatial dim
            dw[(outs, slice(None)) + offset] = np.tensordot(grad, tap, axes=(summed, summed))
    db = dy.sum(axis=(0,) + tuple(range(2, dy.ndim)))
    return dx, dw, db
