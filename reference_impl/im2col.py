"""im2col / col2im convolution in float64: forward and backward, N-d, memory-bounded.

The column matrix of one tile holds, for every input channel c and kernel offset k, the input
values each output position of the tile sees through that offset, every image of the tile side by
side so that one GEMM per group covers them all:

    cols (G, Cg * K, nb * P)    G groups, Cg = C / G channels per group, K = prod(kernel), nb images
                                of the tile, P output positions per image in the tile

and, with y and dy of the tile in the same group-major order (G, Og, nb * P), Og = O / G:

    y_g   (Og, nb*P)    = w_g (Og, Cg*K) @ cols_g
    dw_g  (Og, Cg*K)   += dy_g (Og, nb*P) @ cols_g.T
    dcols_g              = w_g.T @ dy_g                -> scattered back into dx (col2im)

For one image that order is y's and dy's own (a view, written and read in place); several images are
staged through one scratch array (G, Og, nb, P). One GEMM per tile instead of one per image matters
when P is small (late encoder and early decoder layers): each GEMM packs the whole of w first.

`convolve` computes any subset of y, dx, dw in one pass; bias is added (`add_bias`) and db summed
(`bias_gradient`) by the callers. The data gradient alone, which is a transposed convolution's output
(convparity.reference_impl.transposed), gathers no columns: the buffer only holds dcols. A 1x1, stride-1,
unpadded convolution uses x itself as its columns, image by image, and dx as their gradient.

Tiles are runs of whole images when one image's columns and staged y (or dy) fit the memory budget,
else runs of output rows (first spatial dim) of one image, split as evenly as possible, so the
column buffer and the staging together never exceed max(budget, one output row's columns). The
gradient of the columns reuses the column buffer; the only other per-tile scratch is one dw-sized
GEMM result.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np

from convparity.reference_impl.geometry import ConvGeometry

DEFAULT_MEMORY_BUDGET = 16 * 2**20
"""Bytes for the column buffer (float64). See the budget sweep of benchmarks/reference_speed.py."""


@dataclass(frozen=True)
class Tile:
    """Images n0:n1 and output rows r0:r1 (along the first spatial dim) of one GEMM pass."""

    n0: int
    n1: int
    r0: int
    r1: int


def tiles(geometry: ConvGeometry, memory_budget: int) -> Iterator[Tile]:
    """Split the output into tiles whose scratch fits `memory_budget` bytes (at least one output row each).

    A tile of several whole images needs their columns and their y or dy staged in group-major
    order, 8 * (C * K + O) bytes per output position; a tile of one image's rows needs its columns.
    """
    if memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget}")
    rows, *rest = geometry.output_size
    row_bytes = 8 * geometry.in_channels * geometry.kernel_volume * math.prod(rest)
    image_bytes = 8 * (geometry.in_channels * geometry.kernel_volume + geometry.out_channels) * math.prod(rest) * rows
    if image_bytes <= memory_budget:
        for n0, n1 in _even_runs(geometry.batch, memory_budget // image_bytes):
            yield Tile(n0, n1, 0, rows)
        return
    for n in range(geometry.batch):
        for r0, r1 in _even_runs(rows, max(1, memory_budget // row_bytes)):
            yield Tile(n, n + 1, r0, r1)


def _even_runs(count: int, longest: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of the fewest runs of at most `longest` covering range(count), lengths within 1."""
    runs = -(-count // longest)
    for i in range(runs):
        yield count * i // runs, count * (i + 1) // runs


def _window_slices(geometry: ConvGeometry, tile: Tile, offset: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices of the padded input that kernel offset `offset` sees for every output position of `tile`."""
    slices = []
    for dim, (k, d, s, o) in enumerate(
        zip(offset, geometry.dilation, geometry.stride, geometry.output_size)
    ):
        first, count = (tile.r0, tile.r1 - tile.r0) if dim == 0 else (0, o)
        start = first * s + k * d
        slices.append(slice(start, start + (count - 1) * s + 1, s))
    return tuple(slices)


def pad(x: np.ndarray, padding: tuple[tuple[int, int], ...]) -> np.ndarray:
    """x (N, C, *spatial) in float64, cropped by negative and zero-padded by positive pads."""
    crop = tuple(slice(max(0, -lo), size - max(0, -hi)) for (lo, hi), size in zip(padding, x.shape[2:]))
    x = x[(slice(None), slice(None)) + crop]
    if all(lo <= 0 and hi <= 0 for lo, hi in padding):
        return np.asarray(x, dtype=np.float64)
    grow = [(max(0, lo), max(0, hi)) for lo, hi in padding]
    padded = np.zeros(x.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], grow)))
    inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], grow))
    padded[(slice(None), slice(None)) + inner] = x
    return padded


def unpad(dx_padded: np.ndarray, padding: tuple[tuple[int, int], ...], input_size: tuple[int, ...]) -> np.ndarray:
    """Inverse of `pad` for gradients: crop positive pads off, put cropped input rows back as zeros."""
    if all(lo == 0 and hi == 0 for lo, hi in padding):
        return dx_padded
    dx = np.zeros(dx_padded.shape[:2] + input_size)
    src, dst = [], []
    for (lo, hi), size, padded in zip(padding, input_size, dx_padded.shape[2:]):
        src.append(slice(max(0, lo), padded - max(0, hi)))
        dst.append(slice(max(0, -lo), size - max(0, -hi)))
    dx[(slice(None), slice(None)) + tuple(dst)] = dx_padded[(slice(None), slice(None)) + tuple(src)]
    return dx


def _view(block: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A tile of C-contiguous y or dy reshaped without a copy (tiles cut only the first spatial dim)."""
    view = block.view()
    view.shape = shape  # raises rather than copy
    return view


TENSORS = ("y", "dx", "dw")
"""What `convolve` can compute: the output (without bias), the data gradient, the weight gradient."""


def convolve(
    geometry: ConvGeometry,
    x: np.ndarray | None,
    w: np.ndarray,
    dy: np.ndarray | None,
    *,
    outputs: Collection[str],
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """One pass over the tiles computing the `outputs` named (a subset of TENSORS): y, dx, dw; None for the rest.

    x (N, C, *in), needed for y and dw; w (O, C/G, *kernel); dy (N, O, *out), needed for dx and dw.
    Results are float64: y (N, O, *out) without bias, dx (N, C, *in), dw (O, C/G, *kernel). The data
    gradient alone (a transposed convolution's output) needs no x and gathers no columns.
    """
    unknown = set(outputs) - set(TENSORS)
    assert not unknown and outputs, f"outputs must name some of {TENSORS}, got {outputs}"
    forward, data_grad, weight_grad = (name in outputs for name in TENSORS)
    assert x is not None or not (forward or weight_grad), "y and dw need x"
    assert dy is not None or not (data_grad or weight_grad), "dx and dw need dy"
    g = geometry
    groups, cin, cout = g.groups, g.in_channels, g.out_channels
    group_rows, group_out = cin // groups * g.kernel_volume, cout // groups
    offsets = list(np.ndindex(*g.kernel_size))
    out_size = g.output_size

    x_padded = pad(x, g.padding) if x is not None and (forward or weight_grad) else None  # None: no columns
    w_groups = np.asarray(w, dtype=np.float64).reshape(groups, group_out, group_rows)  # (G, Og, Cg*K)
    w_groups_t = w_groups.transpose(0, 2, 1)  # (G, Cg*K, Og)
    y = np.empty((g.batch, cout) + out_size if forward else (0,))
    if dy is not None:
        dy = np.ascontiguousarray(dy, dtype=np.float64)
    dx_padded = np.zeros((g.batch, cin) + g.padded_size if data_grad else (0,))
    dw_groups = np.zeros_like(w_groups) if weight_grad else np.empty(0)
    # With one output channel per group (depthwise) each group's product w.T @ dy is an outer product
    # (inner dimension 1), which a broadcast multiply does ~5x faster.
    column_gradient = np.multiply if cout == groups else np.matmul

    all_tiles = list(tiles(g, memory_budget))
    # A 1x1 kernel with stride 1 and no padding needs no columns: each image is its own column
    # matrix (Cg rows per group), and its column gradient is dx itself.
    pointwise = (
        g.kernel_volume == 1
        and set(g.stride) == {1}
        and all(p == (0, 0) for p in g.padding)
        and (x_padded is None or x_padded.flags.c_contiguous)
    )
    gathered = [t for t in all_tiles if not (pointwise and t.r1 - t.r0 == out_size[0])]
    biggest = max(((t.n1 - t.n0) * (t.r1 - t.r0) for t in gathered), default=0)
    buffer = np.empty(cin * g.kernel_volume * biggest * math.prod(out_size[1:]))
    several = max((t.n1 - t.n0 for t in gathered if t.n1 > t.n0 + 1), default=0)
    staging = np.empty(cout * several * math.prod(out_size))
    for tile in all_tiles:
        images, rows = tile.n1 - tile.n0, tile.r1 - tile.r0
        tile_out = (rows,) + out_size[1:]
        positions = math.prod(tile_out)
        out_index = (slice(tile.n0, tile.n1), slice(None), slice(tile.r0, tile.r1))
        by_image = (images, groups, group_out, positions)  # (nb, G, Og, P): a view of y or dy

        if pointwise and rows == out_size[0]:  # per image: x is the column matrix and dx its gradient
            image_cols = (images, groups, group_rows, positions)  # (nb, G, Cg, P)
            x_images = None if x_padded is None else x_padded[tile.n0 : tile.n1].reshape(image_cols)
            if forward:
                assert x_images is not None
                np.matmul(w_groups, x_images, out=_view(y[out_index], by_image))
            if dy is None:
                continue
            dy_images = _view(dy[out_index], by_image)
            if weight_grad:
                assert x_images is not None
                for image in range(images):
                    dw_groups += np.matmul(dy_images[image], x_images[image].transpose(0, 2, 1))
            if data_grad:
                column_gradient(w_groups_t, dy_images, out=dx_padded[tile.n0 : tile.n1].reshape(image_cols))
            continue

        # cols (C, K, nb, *tile_out): per group one (Cg*K, nb*P) matrix covering every image of the tile
        flat = buffer[: images * cin * g.kernel_volume * positions]
        cols = flat.reshape(groups, group_rows, images * positions)  # (G, Cg*K, nb*P)
        cols_by_offset = flat.reshape((cin, g.kernel_volume, images) + tile_out)  # (C, K, nb, *tile_out)
        if x_padded is not None:
            for k, offset in enumerate(offsets):
                window = _window_slices(g, tile, offset)
                cols_by_offset[:, k] = x_padded[(slice(tile.n0, tile.n1), slice(None)) + window].swapaxes(0, 1)
        # y and dy in group-major order (G, Og, nb*P): views for one image, else staged (G, Og, nb, P)
        group_major = (groups, group_out, images * positions)
        staged_shape = (groups, group_out, images, positions)
        if forward:
            if images == 1:
                np.matmul(w_groups, cols, out=_view(y[out_index], group_major))
            else:
                staged = staging[: cout * images * positions].reshape(staged_shape)
                np.matmul(w_groups, cols, out=staged.reshape(group_major))
                _view(y[out_index], by_image)[...] = staged.transpose(2, 0, 1, 3)
        if dy is None:
            continue
        if images == 1:
            dy_groups = _view(dy[out_index], group_major)
        else:
            staged = staging[: cout * images * positions].reshape(staged_shape)
            staged[...] = _view(dy[out_index], by_image).transpose(1, 2, 0, 3)
            dy_groups = staged.reshape(group_major)
        if weight_grad:
            dw_groups += np.matmul(dy_groups, cols.transpose(0, 2, 1))
        if data_grad:  # dcols, reusing the buffer, scattered back into dx (col2im)
            column_gradient(w_groups_t, dy_groups, out=cols)
            for k, offset in enumerate(offsets):
                target = (slice(tile.n0, tile.n1), slice(None)) + _window_slices(g, tile, offset)
                dx_padded[target] += cols_by_offset[:, k].swapaxes(0, 1)

    y_out = y if forward else None
    dx = unpad(dx_padded, g.padding, g.input_size) if data_grad else None
    dw = dw_groups.reshape(w.shape) if weight_grad else None
    return y_out, dx, dw


def add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y (N, O, *spatial) float64 plus b (O,) broadcast over batch and space, in place; y itself when b is None."""
    if b is not None:
        y += np.asarray(b, dtype=np.float64).reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def bias_gradient(dy: np.ndarray) -> np.ndarray:
    """db (O,) float64: dy (N, O, *spatial) summed over batch and space."""
    return np.asarray(dy, dtype=np.float64).sum(axis=(0,) + tuple(range(2, dy.ndim)))
