"""The space the search explores: every field of a convolution, drawn fresh or changed a little.

`SpecSpace.draw(rng)` samples the whole space: convolutions and transposed convolutions (with their
output_padding), spatial rank 1 to 3, batch, channels, groups (depthwise included), kernels (even and
non-square ones), strides, asymmetric and negative (cropping) padding, dilation, bias on and off, every
dtype asked for, and (one draw in POST_OP_SHARE) a post-op chain of one or two steps: an eltwise
function, a sum with a residual, a binary op with a per-channel or whole operand, prelu or batchnorm. A
backend that declares no post-ops answers those cases unsupported (the search learns nothing from them
and moves on). `SpecSpace.mutate(spec, rng)` changes one or two fields of a case, keeping it
valid: the search mutates the cases that failed or came close to the bound, so it looks near them.
Besides single-field changes a mutation may make two sizes equal (out_channels := output_size[-1], ...),
since bugs that hang on a relation between fields (a bias added along the wrong axis when two sizes
coincide) are found no other way.

Growing the op family: a mutation changes a spec with `ConvSpec.replace`, so a field this module does
not know is carried through every mutation and shrink unchanged, and a draw leaves it at its default.
Exploring it means adding a draw for it in `_draw_once`, a mutation to `_operations` and a simplification
to convparity.harness.search.shrink, as the post-op chain has.

Quantized cases: a dtype with 8-bit integer sources (`--dtype uint8:int8:uint8`, `int8`,
`uint8:int8:int32`, ...) draws its scales and zero points from QUANTIZATIONS (power-of-two multipliers with
exact ties, where rounding modes differ; irregular ones; per-channel weight scales), the y zero point moved
into the destination's range, a relu as the only post-op (what integer kernels fuse); a mutation redraws
them, and switching between a float and an integer dtype adds or drops them.

Sizes stay small: each case must run fast on every backend, and a shrunk case is smaller still.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from convparity.harness.cases.attributes import PER_CHANNEL, Quantization
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.vocabulary import check_dtype, data_types, is_integer
from convparity.reference_impl.post_ops import PostOp

LARGEST_INPUT = {1: 20, 2: 12, 3: 6}
LARGEST_KERNEL = {1: 5, 2: 4, 3: 3}
PER_DIM = ("input_size", "kernel_size", "stride", "dilation", "padding", "output_padding")
RELATED_SHARE = 0.2
TRANSPOSED_SHARE = 0.2
POST_OP_SHARE = 0.1
POST_OPS = (PostOp("relu"), PostOp("relu", alpha=0.25), PostOp("tanh"), PostOp("logistic"), PostOp("square"),
            PostOp("clip", alpha=-0.5, beta=0.5), PostOp("gelu_erf"), PostOp("sum"), PostOp("sum", scale=0.5),
            PostOp("binary_add", mask=2), PostOp("binary_mul"), PostOp("binary_max", mask=2), PostOp("prelu", mask=2),
            PostOp("batchnorm", alpha=1e-5))
QUANTIZATIONS = (
    Quantization(x_scale=0.5, w_scale=0.25, y_scale=0.25, x_zero_point=3, y_zero_point=128),
    Quantization(x_scale=0.1, w_scale=0.0371, y_scale=0.00413, y_zero_point=120),
    Quantization(x_scale=0.25, w_scale=PER_CHANNEL, y_scale=0.0625, x_zero_point=1, y_zero_point=65),
    Quantization(x_scale=1.0, w_scale=1.0, y_scale=0.125, y_zero_point=128),
)
QUANTIZED_POST_OPS = (PostOp("relu"),)


def quantized(dtype: str) -> bool:
    return is_integer(data_types(dtype)[0])


def quantization_for(dtype: str, rng: random.Random) -> Quantization:
    """Scales and zero points for a quantized dtype: one of QUANTIZATIONS with its zero points moved into the
    source's and destination's ranges (an int32 or float destination takes no y scale)."""
    source, _, destination = data_types(dtype)
    if destination in ("int32",) or not is_integer(destination):
        return Quantization(x_zero_point=0 if source == "int8" else rng.choice((0, 3)))
    chosen = rng.choice(QUANTIZATIONS)
    return Quantization(x_scale=chosen.x_scale, w_scale=chosen.w_scale, y_scale=chosen.y_scale,
                        x_zero_point=0 if source == "int8" else chosen.x_zero_point,
                        y_zero_point=int(chosen.y_zero_point) - (128 if destination == "int8" else 0))


def build(spec: ConvSpec | None = None, **fields: Any) -> ConvSpec | None:
    """`spec` with `fields` replaced (or a new spec from `fields`), or None when that is not a valid convolution."""
    try:
        return spec.replace(**fields) if spec is not None else ConvSpec(**fields)
    except (ValueError, TypeError):
        return None


def drop_dim(spec: ConvSpec, dim: int) -> ConvSpec | None:
    """`spec` without spatial dim `dim` (None for a rank-1 spec or an invalid result)."""
    if spec.rank == 1:
        return None
    return build(spec, **{name: tuple(v for i, v in enumerate(getattr(spec, name)) if i != dim) for name in PER_DIM})


def with_dim(spec: ConvSpec, dim: int, **values: Any) -> ConvSpec | None:
    """`spec` with the given per-dim fields changed in spatial dim `dim` only."""
    fields = {}
    for name, value in values.items():
        current = list(getattr(spec, name))
        current[dim] = value
        fields[name] = tuple(current)
    return build(spec, **fields)


def with_channels(spec: ConvSpec, groups: int, in_per_group: int, out_per_group: int) -> ConvSpec | None:
    return build(spec, groups=groups, in_channels=groups * in_per_group, out_channels=groups * out_per_group)


@dataclass(frozen=True)
class SpecSpace:
    """The cases the search may visit, in the given dtypes."""

    dtypes: tuple[str, ...] = ("float64", "float32")

    def __post_init__(self) -> None:
        if not self.dtypes:
            raise ValueError("dtypes: give at least one")
        object.__setattr__(self, "dtypes", tuple(check_dtype(d, "dtypes") for d in self.dtypes))

    def draw(self, rng: random.Random) -> ConvSpec:
        """A valid case from the whole space (rejection sampling over independent field draws); one in
        RELATED_SHARE has two of its sizes made equal (see `_relation`)."""
        while True:
            spec = self._draw_once(rng)
            if spec is not None and rng.random() < RELATED_SHARE:
                spec = self._relation(spec, rng) or spec
            if spec is not None:
                return spec

    def _draw_once(self, rng: random.Random) -> ConvSpec | None:
        rank = rng.choices((1, 2, 3), weights=(3, 4, 2))[0]
        if rng.random() < 0.15:
            groups = rng.randint(2, 4)
            in_per_group, out_per_group = 1, rng.choice((1, 1, 2))
        else:
            groups = rng.choice((1, 1, 1, 2, 3))
            in_per_group, out_per_group = rng.randint(1, 4), rng.randint(1, 4)
        sizes = tuple(rng.randint(1, LARGEST_INPUT[rank]) for _ in range(rank))
        kernel = tuple(rng.randint(1, LARGEST_KERNEL[rank]) for _ in range(rank))
        stride = tuple(rng.choice((1, 1, 1, 2, 3)) for _ in range(rank))
        dilation = tuple(rng.choice((1, 1, 1, 2, 3)) for _ in range(rank))
        padding = tuple((self._pad(rng), self._pad(rng)) for _ in range(rank))
        transposed = rng.random() < TRANSPOSED_SHARE
        chain = (tuple(rng.choice(POST_OPS) for _ in range(rng.choice((1, 1, 2)))) if rng.random() < POST_OP_SHARE
                 else ())
        output_padding = (tuple(rng.randrange(max(s, d)) if rng.random() < 0.3 else 0 for s, d in zip(stride, dilation))
                          if transposed else (0,) * rank)
        batch, bias, dtype = rng.randint(1, 3), rng.random() < 0.5, rng.choice(self.dtypes)  # the order of old draws
        quantization = Quantization()
        if quantized(dtype):
            quantization = quantization_for(dtype, rng)
            chain = (rng.choice(QUANTIZED_POST_OPS),) if rng.random() < 2 * POST_OP_SHARE else ()
        return build(batch=batch, in_channels=groups * in_per_group, out_channels=groups * out_per_group,
                     groups=groups, input_size=sizes, kernel_size=kernel, stride=stride, dilation=dilation,
                     padding=padding, bias=bias, dtype=dtype, transposed=transposed,
                     output_padding=output_padding, post_ops=chain, quantization=quantization)

    @staticmethod
    def _pad(rng: random.Random) -> int:
        roll = rng.random()
        return rng.choice((-2, -1)) if roll < 0.1 else 0 if roll < 0.55 else rng.randint(1, 3)

    def mutate(self, spec: ConvSpec, rng: random.Random, changes: int = 0) -> ConvSpec:
        """`spec` with one or two fields changed (`changes` of them when given); never `spec` itself."""
        for _ in range(100):
            mutated: ConvSpec | None = spec
            for _ in range(changes or rng.choice((1, 1, 2))):
                operation = rng.choice(self.operations)
                mutated = operation(self, mutated, rng) if mutated is not None else None
            if mutated is not None and mutated != spec:
                return mutated
        return self.draw(rng)

    # -- mutations: each returns a changed spec or None -------------------------------------------

    def _batch(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        return build(spec, batch=rng.randint(1, 4))

    def _channels(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        g = spec.groups
        if rng.random() < 0.5:
            return build(spec, in_channels=g * rng.randint(1, 4))
        return build(spec, out_channels=g * rng.randint(1, 4))

    def _groups(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        choice = rng.random()
        if choice < 0.3:
            return with_channels(spec, 1, spec.in_channels, spec.out_channels)
        if choice < 0.6:  # depthwise, keeping the channel multiplier
            channels = rng.randint(2, 4)
            return with_channels(spec, channels, 1, rng.choice((1, 1, 2)))
        groups = rng.randint(2, 4)
        return with_channels(spec, groups, rng.randint(1, 3), rng.randint(1, 3))

    def _size(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        dim = rng.randrange(spec.rank)
        field = rng.choice(("input_size", "input_size", "kernel_size"))
        largest = (LARGEST_INPUT if field == "input_size" else LARGEST_KERNEL)[spec.rank]
        return with_dim(spec, dim, **{field: rng.randint(1, largest)})

    def _stride_dilation(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        dim = rng.randrange(spec.rank)
        return with_dim(spec, dim, **{rng.choice(("stride", "dilation")): rng.choice((1, 1, 2, 3))})

    def _padding(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        dim = rng.randrange(spec.rank)
        before, after = spec.padding[dim]
        pair = rng.choice(((self._pad(rng), after), (before, self._pad(rng)), (before, before), (0, 0)))
        return with_dim(spec, dim, padding=pair)

    def _bias_dtype(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        if len(self.dtypes) > 1 and rng.random() < 0.5:
            dtype = rng.choice([d for d in self.dtypes if d != spec.dtype])
            if quantized(dtype) == spec.quantized:
                return build(spec, dtype=dtype)
            return build(spec, dtype=dtype, post_ops=(),
                         quantization=quantization_for(dtype, rng) if quantized(dtype) else Quantization())
        return build(spec, bias=not spec.bias)

    def _quantization(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        """Other scales and zero points for a quantized case."""
        return build(spec, quantization=quantization_for(spec.dtype, rng)) if spec.quantized else None

    def _rank(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        if spec.rank > 1 and (spec.rank == 3 or rng.random() < 0.5):
            return drop_dim(spec, rng.randrange(spec.rank))
        dim = rng.randrange(spec.rank)  # a copy of one dim, inserted beside it
        fields = {name: getattr(spec, name)[:dim] + getattr(spec, name)[dim:dim + 1] + getattr(spec, name)[dim:]
                  for name in PER_DIM}
        return build(spec, **fields)

    def _transposed(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        """A convolution made transposed or back, or (transposed) another output_padding in one dim."""
        if spec.transposed and rng.random() < 0.5:
            dim = rng.randrange(spec.rank)
            return with_dim(spec, dim, output_padding=rng.randrange(max(spec.stride[dim], spec.dilation[dim])))
        return build(spec, transposed=not spec.transposed, output_padding=0)

    def _post_ops(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        """A post-op added at the end of the chain (at most two; a quantized case: one relu), or one left out."""
        if spec.post_ops and (len(spec.post_ops) == 2 or spec.quantized or rng.random() < 0.5):
            index = rng.randrange(len(spec.post_ops))
            return build(spec, post_ops=spec.post_ops[:index] + spec.post_ops[index + 1:])
        return build(spec, post_ops=(*spec.post_ops, rng.choice(QUANTIZED_POST_OPS if spec.quantized else POST_OPS)))

    def _relation(self, spec: ConvSpec, rng: random.Random) -> ConvSpec | None:
        """Make two sizes equal: a channel count and the last output (or input) size, or the two channel counts."""
        last = spec.output_size[-1]
        choice = rng.random()
        if choice < 0.35 and last % spec.groups == 0:
            return build(spec, out_channels=last)
        if choice < 0.6 and last % spec.groups == 0:
            return build(spec, in_channels=last)
        if choice < 0.8:  # the last input size that gives out_channels outputs, if there is one
            stride, effective = spec.stride[-1], (spec.kernel_size[-1] - 1) * spec.dilation[-1] + 1
            before, after = spec.padding[-1]
            size = (spec.out_channels - 1) * stride + effective - before - after
            return with_dim(spec, spec.rank - 1, input_size=size) if size >= 1 else None
        return build(spec, out_channels=spec.in_channels)

    _operations: ClassVar[tuple[Callable[[SpecSpace, ConvSpec, random.Random], ConvSpec | None], ...]] = (
        _batch, _channels, _groups, _size, _size, _stride_dilation, _padding, _bias_dtype, _rank, _relation,
        _transposed, _post_ops)

    @property
    def operations(self) -> tuple[Callable[[SpecSpace, ConvSpec, random.Random], ConvSpec | None], ...]:
        """The mutations: those of every space, and redrawn scales and zero points where a dtype is quantized."""
        return self._operations + ((SpecSpace._quantization,) if any(map(quantized, self.dtypes)) else ())
