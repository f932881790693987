"""Spec features: the yes/no facts about a case that rules are made of.

A feature is a named predicate over a `ConvSpec` (dtype and bias included): structure ("groups > 1",
"any dilation > 1"), padding shape ("padding asymmetric"), and relations between fields
("output_size[-1] == out_channels", the Keras channels_first bias bug). A *literal* is a feature or
its negation; a rule (convparity.harness.search.rules) is a conjunction of literals.

"any" features hold when some spatial dim has the property (dilation only where the kernel is > 1,
the only dims it changes anything in). Relations between sizes require them > 1: sizes of 1
broadcast, so a mix-up of two axes of size 1 changes nothing. `FEATURES` is in order of preference:
when the seen cases cannot tell two equally simple rules apart, the one whose features come first
is tried first (structure before relations before dtypes).

Every feature is written once, over a `SpecTable` (the fields of many specs as NumPy columns, spatial
dims padded to 3 and masked), so a grouping of 50,000 cases computes its feature matrix in a few
vectorised passes; `feature_matrix` keeps each spec's row, so a spec is featurised once per process.
A field of ConvSpec that no feature reads changes nothing here; the op families beyond the convolution are
read coarsely ("post-ops": a chain is there; "quantized": integer sources or scales and zero points; a
data type per tensor holds no "dtype ==" feature), so that their cases group with the others.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import DTYPES

MAX_RANK = 3
CACHED_ROWS = 400_000  # spec rows kept (about 16 MB); past that the cache starts again


@dataclass(frozen=True)
class SpecTable:
    """The fields of `n` specs as arrays: scalars (n,), per-dim fields (n, MAX_RANK) with `dims` marking the
    spec's own dims (the rest hold neutral values: sizes 1, pads 0)."""

    rank: np.ndarray
    post_ops: np.ndarray  # how many post-ops
    quantized: np.ndarray
    batch: np.ndarray
    in_channels: np.ndarray
    out_channels: np.ndarray
    groups: np.ndarray
    bias: np.ndarray
    transposed: np.ndarray
    dtype: np.ndarray  # index into DTYPES
    dims: np.ndarray
    input_size: np.ndarray
    kernel_size: np.ndarray
    stride: np.ndarray
    dilation: np.ndarray
    pad_before: np.ndarray
    pad_after: np.ndarray
    output_padding: np.ndarray
    output_size: np.ndarray

    @classmethod
    def of(cls, specs: Sequence[ConvSpec]) -> SpecTable:
        dtype_index: dict[str, int] = {name: i for i, name in enumerate(DTYPES)}
        scalars, per_dim = [], []
        for spec in specs:
            rank = spec.rank
            pad = (MAX_RANK - rank,)
            ones, zeros = (1,) * pad[0], (0,) * pad[0]
            scalars.append((rank, spec.batch, spec.in_channels, spec.out_channels, spec.groups, spec.bias,
                            spec.transposed, dtype_index.get(spec.dtype, -1), len(spec.post_ops),
                            not spec.quantization.is_identity or spec.quantized))
            per_dim.append((spec.input_size + ones, spec.kernel_size + ones, spec.stride + ones, spec.dilation + ones,
                            tuple(lo for lo, _ in spec.padding) + zeros, tuple(hi for _, hi in spec.padding) + zeros,
                            spec.output_padding + zeros))
        columns = np.array(scalars, dtype=np.int64).reshape(len(specs), 10).T  # (10, n)
        dims = np.array(per_dim, dtype=np.int64).reshape(len(specs), 7, MAX_RANK).transpose(1, 0, 2)  # (7, n, 3)
        rank, transposed = columns[0], columns[6].astype(bool)
        size, kernel, stride, dilation, before, after, extra = dims
        effective = (kernel - 1) * dilation + 1  # (n, 3)
        output = np.where(transposed[:, None], (size - 1) * stride - before - after + effective + extra,
                          (size + before + after - effective) // stride + 1)  # ConvSpec.output_size, every dim
        dims_mask = np.arange(MAX_RANK)[None, :] < rank[:, None]
        return cls(rank=rank, post_ops=columns[8], quantized=columns[9].astype(bool), batch=columns[1],
                   in_channels=columns[2], out_channels=columns[3], groups=columns[4],
                   bias=columns[5].astype(bool), transposed=transposed, dtype=columns[7], dims=dims_mask,
                   input_size=size, kernel_size=kernel, stride=stride, dilation=dilation, pad_before=before,
                   pad_after=after, output_padding=extra, output_size=np.where(dims_mask, output, 1))

    def any(self, condition: np.ndarray) -> np.ndarray:
        """(n,) whether `condition` (n, MAX_RANK) holds in some dim of the spec."""
        return (condition & self.dims).any(axis=1)

    def all(self, condition: np.ndarray) -> np.ndarray:
        return (condition | ~self.dims).all(axis=1)

    def last(self, values: np.ndarray) -> np.ndarray:
        """(n,) the value in each spec's last dim."""
        return values[np.arange(len(self.rank)), self.rank - 1]


@dataclass(frozen=True)
class Feature:
    """`text` holds on the specs of a table where `test_all(table)` is true; `negation` is how its opposite reads."""

    text: str
    negation: str
    test_all: Callable[[SpecTable], np.ndarray]

    def test(self, spec: ConvSpec) -> bool:
        return bool(self.test_all(SpecTable.of([spec]))[0])


def _non_square(t: SpecTable) -> np.ndarray:
    own = np.where(t.dims, t.kernel_size, 0)
    return own.max(axis=1) != np.where(t.dims, t.kernel_size, 1 << 30).min(axis=1)


def _dtype(name: str) -> Callable[[SpecTable], np.ndarray]:
    index = DTYPES.index(name)
    return lambda t: t.dtype == index


FEATURES: tuple[Feature, ...] = (
    Feature("transposed", "a convolution", lambda t: t.transposed),
    Feature("bias", "no bias", lambda t: t.bias),
    Feature("groups > 1", "groups == 1", lambda t: t.groups > 1),
    Feature("depthwise (groups == in_channels > 1)", "not depthwise",
            lambda t: (t.groups == t.in_channels) & (t.groups > 1)),
    Feature("any stride > 1", "stride 1", lambda t: t.any(t.stride > 1)),
    # dilation > 1 in a dim whose kernel is > 1: elsewhere it changes nothing
    Feature("any dilation > 1", "dilation 1", lambda t: t.any((t.dilation > 1) & (t.kernel_size > 1))),
    Feature("any padding before > 0", "no padding before", lambda t: t.any(t.pad_before > 0)),
    Feature("any padding after > 0", "no padding after", lambda t: t.any(t.pad_after > 0)),
    Feature("padding asymmetric", "padding symmetric", lambda t: t.any(t.pad_before != t.pad_after)),
    Feature("negative padding (a crop)", "no negative padding",
            lambda t: t.any(np.minimum(t.pad_before, t.pad_after) < 0)),
    Feature("any output_padding > 0", "no output_padding", lambda t: t.any(t.output_padding > 0)),
    Feature("any kernel size even", "kernel sizes odd", lambda t: t.any(t.kernel_size % 2 == 0)),
    Feature("kernel non-square", "kernel square", _non_square),
    Feature("kernel_size == 1", "kernel_size > 1", lambda t: t.all(t.kernel_size == 1)),
    Feature("rank == 1", "rank != 1", lambda t: t.rank == 1),
    Feature("rank == 2", "rank != 2", lambda t: t.rank == 2),
    Feature("rank == 3", "rank != 3", lambda t: t.rank == 3),
    Feature("batch > 1", "batch == 1", lambda t: t.batch > 1),
    Feature("in_channels > 1", "in_channels == 1", lambda t: t.in_channels > 1),
    Feature("out_channels > 1", "out_channels == 1", lambda t: t.out_channels > 1),
    Feature("output_size[-1] == out_channels > 1", "output_size[-1] != out_channels or out_channels == 1",
            lambda t: (t.last(t.output_size) == t.out_channels) & (t.out_channels > 1)),
    Feature("output_size[-1] == in_channels > 1", "output_size[-1] != in_channels or in_channels == 1",
            lambda t: (t.last(t.output_size) == t.in_channels) & (t.in_channels > 1)),
    Feature("output_size[-1] == batch > 1", "output_size[-1] != batch or batch == 1",
            lambda t: (t.last(t.output_size) == t.batch) & (t.batch > 1)),
    Feature("output_size == 1", "output_size > 1", lambda t: t.all(t.output_size == 1)),
    Feature("input_size == kernel_size", "input_size != kernel_size", lambda t: t.all(t.input_size == t.kernel_size)),
    Feature("in_channels == out_channels > 1", "in_channels != out_channels or out_channels == 1",
            lambda t: (t.in_channels == t.out_channels) & (t.out_channels > 1)),
    *(Feature(f"dtype == {name}", f"dtype != {name}", _dtype(name)) for name in DTYPES),
    Feature("post-ops", "no post-ops", lambda t: t.post_ops > 0),
    Feature("quantized", "not quantized", lambda t: t.quantized),
)


@dataclass(frozen=True)
class Literal:
    """Feature number `feature` of FEATURES, or its negation when not `positive`."""

    feature: int
    positive: bool = True

    @property
    def text(self) -> str:
        feature = FEATURES[self.feature]
        return feature.text if self.positive else feature.negation

    @property
    def column(self) -> int:
        """Its column in `literal_matrix`."""
        return self.feature + (0 if self.positive else len(FEATURES))

    def holds(self, spec: ConvSpec) -> bool:
        return bool(feature_matrix([spec])[0, self.feature]) == self.positive


_rows: dict[ConvSpec, np.ndarray] = {}


def feature_matrix(specs: Sequence[ConvSpec]) -> np.ndarray:
    """(len(specs), len(FEATURES)) booleans: which features each spec has (each spec computed once)."""
    missing = list(dict.fromkeys(spec for spec in specs if spec not in _rows))
    if missing:
        if len(_rows) + len(missing) > CACHED_ROWS:
            _rows.clear()
            missing = list(dict.fromkeys(specs))
        table = SpecTable.of(missing)
        computed = np.stack([np.asarray(feature.test_all(table), dtype=bool) for feature in FEATURES], axis=1)
        _rows.update(zip(missing, computed))
    if not specs:
        return np.zeros((0, len(FEATURES)), dtype=bool)
    return np.stack([_rows[spec] for spec in specs])


def literal_matrix(features: np.ndarray) -> np.ndarray:
    """(cases, 2 * len(FEATURES)) booleans: every feature's literal, then every negation's."""
    return np.concatenate([features, ~features], axis=1)


def literal(index: int) -> Literal:
    """The literal of column `index` of `literal_matrix`."""
    count = len(FEATURES)
    return Literal(index % count, positive=index < count)
