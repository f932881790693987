"""Post-op chains for the backends that compute them (paddle, mlx, tinygrad): what the `epilogues` grid leaves out,
and chains that reach every post-op kind in a few cases for a backend that compiles each case (tinygrad).

The `epilogues` grid runs each kind once with benchdnn's or PyTorch's parameters; EXTRA_CHAINS add the kinds and
parameters it has no case for (pow, binary_div, clip with other bounds than relu6's, swish and soft_relu with
alpha other than 1, prelu and binary operands over the whole tensor). EVERY_KIND chains every kind convparity
has into eleven cases. All run on one small 1-D convolution (`chain_case`).
"""

from __future__ import annotations

from convparity.harness.cases.attributes import parse_post_ops
from convparity.harness.cases.descriptor import Case
from convparity.harness.cases.spec import ConvSpec
from convparity.reference_impl.post_ops import ELTWISE, OPERAND_KINDS

# The `epilogues` grid's 1-D shape: x (2, 3, 10), w (4, 3, 3), padding 1, a bias.
SHAPE = ConvSpec(batch=2, in_channels=3, out_channels=4, input_size=(10,), kernel_size=(3,), padding=1)

EXTRA_CHAINS = (
    "pow:0.5:3", "square+pow:2:0.5", "div:f32:per_oc", "div:f32:per_tensor", "clip:-0.5:0.5", "swish:2",
    "soft_relu:2", "relu:-0.5", "prelu:per_tensor", "add:f32:per_tensor+prelu:per_oc", "sum:0.5:1",
)

EVERY_KIND = (
    "batchnorm+prelu:per_oc+sum:0.5+relu:0.1",
    "min:f32:per_tensor+add:f32:per_oc+mul:f32:per_tensor+max:f32:per_oc+sub:f32:per_oc+div:f32:per_oc",
    "gelu_erf",
    "linear:2:-1+gelu_tanh+clip:-0.5:0.5+relu",
    "swish:1+mish+soft_relu:1",
    "swish:2+soft_relu:2+tanh",
    "hardswish:0.16666667:0.5+elu:1+logistic",
    "clip:0:6+hardsigmoid:0.16666667:0.5+linear:0.5:0.25",
    "abs+sqrt+pow:0.5:3+exp+log",
    "square+pow:2:0.5",
    "round",
)


def chain_case(chain: str, dtype: str) -> Case:
    """SHAPE with `chain` (benchdnn's --attr-post-ops text) in `dtype`, named after the chain."""
    return Case(SHAPE.replace(post_ops=parse_post_ops(chain, SHAPE.rank), dtype=dtype), chain)


def kinds(chains: tuple[str, ...]) -> set[str]:
    """The post-op kinds (benchdnn's aliases resolved) that `chains` reach."""
    return {op.function for chain in chains for op in parse_post_ops(chain, SHAPE.rank)}


ALL_KINDS = set(ELTWISE) | set(OPERAND_KINDS)
