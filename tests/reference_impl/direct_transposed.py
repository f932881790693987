"""Scatter-loop transposed convolution: the tests' second method, independent of reference_impl.

It never builds a convolution, a column matrix or tiles. Along each dim, input element j with kernel
tap t lands on output element m = j * s + t * d - before; for every kernel offset t it finds the
input elements whose m lies inside the output, and per group adds

    y[n, o, m]      += sum_c x[n, c, j] * w[c, o, t]
    dx[n, c, j]     += sum_o w[c, o, t] * dy[n, o, m]
    dw[c, o, t]      = sum_{n, j} x[n, c, j] * dy[n, o, m]

Output elements no (j, t) reaches (negative pads, output_padding) get nothing but the bias.
`products` enumerates the same pairs one product at a time, for counting reduction lengths.

Layouts: x (N, C_in, *in), w (C_in, C_out/groups, *kernel), b (C_out,), y and dy (N, C_out, *out);
`stride`, `dilation`, `output_padding`: one int per spatial dim; `padding`: one (before, after) pair per dim.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from tests.reference_impl.direct import Ints, Pairs


def transposed_output_length(
    size: int, kernel: int, stride: int, dilation: int, before: int, after: int, output_padding: int
) -> int:
    """(size - 1) * stride - before - after + (kernel - 1) * dilation + output_padding + 1."""
    return (size - 1) * stride - before - after + (kernel - 1) * dilation + output_padding + 1


Tap = tuple[tuple[int, ...], tuple[slice, ...], tuple[slice, ...]]


def _output_size(
    x: np.ndarray, w: np.ndarray, stride: Ints, padding: Pairs, output_padding: Ints, dilation: Ints
) -> tuple[int, ...]:
    return tuple(
        transposed_output_length(size, kernel, s, d, before, after, extra)
        for size, kernel, s, d, (before, after), extra in zip(
            x.shape[2:], w.shape[2:], stride, dilation, padding, output_padding, strict=True
        )
    )


def _scatter_slices(
    offset: tuple[int, ...], input_size: Ints, output_size: Ints, stride: Ints, dilation: Ints, padding: Pairs
) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """(input slices, output slices) pairing each input element with where tap `offset` puts it; None if nowhere.

    Along a dim, input j goes to m = j * s + t * d - before; kept are the j with 0 <= m < out.
    """
    in_slices, out_slices = [], []
    for t, size, count, s, d, (before, _) in zip(offset, input_size, output_size, stride, dilation, padding):
        first_m = t * d - before  # where input element 0 lands
        j0 = max(0, -(first_m // s))  # smallest j with j * s + first_m >= 0
        j1 = min(size - 1, (count - 1 - first_m) // s)  # largest j with j * s + first_m <= count - 1
        if j1 < j0:
            return None
        in_slices.append(slice(j0, j1 + 1))
        start = j0 * s + first_m
        out_slices.append(slice(start, start + (j1 - j0) * s + 1, s))
    return tuple(in_slices), tuple(out_slices)


def _taps(
    x: np.ndarray, w: np.ndarray, stride: Ints, padding: Pairs, output_padding: Ints, dilation: Ints
) -> tuple[tuple[int, ...], list[Tap]]:
    """Output size and, per kernel offset that reaches the output, (offset, input slices, output slices)."""
    output_size = _output_size(x, w, stride, padding, output_padding, dilation)
    taps = []
    for offset in itertools.product(*(range(k) for k in w.shape[2:])):
        pairing = _scatter_slices(offset, x.shape[2:], output_size, stride, dilation, padding)
        if pairing is not None:
            taps.append((offset, *pairing))
    return output_size, taps


def scatter_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    *,
    stride: Ints,
    padding: Pairs,
    output_padding: Ints,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """y (N, C_out, *out) by scattering every input element through every kernel tap; `b` may be None."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    group_in, group_out = x.shape[1] // groups, w.shape[1]
    output_size, taps = _taps(x, w, stride, padding, output_padding, dilation)
    y = np.zeros((x.shape[0], groups * group_out) + output_size)
    for g in range(groups):
        ins, outs = slice(g * group_in, (g + 1) * group_in), slice(g * group_out, (g + 1) * group_out)
        for offset, in_slices, out_slices in taps:
            source = x[(slice(None), ins) + in_slices]  # (N, Cg, *reached)
            weight = w[(ins, slice(None)) + offset]  # (Cg, Og)
            y[(slice(None), outs) + out_slices] += np.einsum("co,nc...->no...", weight, source)
    if b is not None:
        y += np.asarray(b, np.float64).reshape((1, -1) + (1,) * len(output_size))
    return y


def scatter_backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Ints,
    padding: Pairs,
    output_padding: Ints,
    dilation: Ints,
    groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx (N, C_in, *in), dw (C_in, C_out/groups, *kernel), db (C_out,) for dy (N, C_out, *out)."""
    dy, x, w = (np.asarray(a, np.float64) for a in (dy, x, w))
    group_in, group_out = x.shape[1] // groups, w.shape[1]
    _, taps = _taps(x, w, stride, padding, output_padding, dilation)
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for g in range(groups):
        ins, outs = slice(g * group_in, (g + 1) * group_in), slice(g * group_out, (g + 1) * group_out)
        for offset, in_slices, out_slices in taps:
            grad = dy[(slice(None), outs) + out_slices]  # (N, Og, *reached)
            source = x[(slice(None), ins) + in_slices]  # (N, Cg, *reached)
            weight = w[(ins, slice(None)) + offset]  # (Cg, Og)
            dx[(slice(None), ins) + in_slices] += np.einsum("co,no...->nc...", weight, grad)
            summed = [0, *range(2, grad.ndim)]  # batch and every spatial dim
            dw[(ins, slice(None)) + offset] = np.tensordot(source, grad, axes=(summed, summed))
    db = dy.sum(axis=(0,) + tuple(range(2, dy.ndim)))
    return dx, dw, db


Index = tuple[int, ...]


def products(
    x_shape: Index,
    w_shape: Index,
    *,
    stride: Ints,
    padding: Pairs,
    output_padding: Ints,
    dilation: Ints,
    groups: int,
) -> Iterator[tuple[Index, Index, Index]]:
    """Every product x[ix] * w[iw] that lands on y[iy], one at a time, as (ix, iw, iy): plain loops, no slicing.

    The same triples make dx[ix] (from w[iw] * dy[iy]) and dw[iw] (from x[ix] * dy[iy]).
    """
    batch, channels, *input_size = x_shape
    _, group_out, *kernel_size = w_shape
    group_in = channels // groups
    output_size = [
        transposed_output_length(*dims, before, after, extra)
        for *dims, (before, after), extra in zip(input_size, kernel_size, stride, dilation, padding, output_padding)
    ]
    for n, c, o in itertools.product(range(batch), range(channels), range(group_out)):
        out_channel = c // group_in * group_out + o
        for j in itertools.product(*(range(i) for i in input_size)):
            for t in itertools.product(*(range(k) for k in kernel_size)):
                m = tuple(
                    jj * s + tt * d - before for jj, tt, s, d, (before, _) in zip(j, t, stride, dilation, padding)
                )
                if all(0 <= mm < count for mm, count in zip(m, output_size)):
                    yield (n, c, *j), (c, o, *t), (n, out_channel, *m)
