"""Backends `torch-quantized-ENGINE`: PyTorch's integer convolutions (torch.ops.quantized), one per quantized engine.

One backend per engine this build of torch offers (torch.backends.quantized.supported_engines: `x86`,
`fbgemm`, `onednn`, `qnnpack` on Linux x86-64), so that reports show the engines side by side. All run one
program, `torch_quantized_conv`: x and w become quantized tensors from their integer codes
(torch._make_per_tensor_quantized_tensor / _make_per_channel_quantized_tensor, exact), then
torch.ops.quantized.conv{1,2,3}d_prepack(w, bias, stride, padding, dilation, groups) and
torch.ops.quantized.conv{1,2,3}d (conv{1,2,3}d_relu with a fused relu) under the engine, and y's codes
(int_repr). The convolution is torch's whole quantized path: the integer accumulation, the bias and the
requantization to y's scale and zero point, inside the engine's kernel.

What torch's quantized convolution takes, and so what these backends declare:
- x quint8, w qint8, y quint8 only: data_types "uint8:int8:uint8". (fbgemm and qnnpack refuse qint8
  activations with "Expected activation data type QUInt8 but got QInt8", onednn with "data type of input
  should be QUint8"; the op has no output dtype: y is always quint8.) The core refuses the other dtypes.
- x per tensor (one scale and zero point; a per-channel x fails "Expected quantizer->qscheme() ==
  kPerTensorAffine"), y per tensor (the op takes one output scale and zero point); w per tensor or per
  output channel; onednn only a weight zero point of 0 (its own message, a limit).
- the bias is float32 in real units: an int32 bias (in accumulator steps) goes in as b * sx * sw[o] computed in
  float64, then float32 (exact while |b| * 2**-k fits 24 bits, as the grids' small biases do); a float64 bias
  is a limit.
- padding: symmetric and non-negative only ("Specify front/top/left padding only"); the rest of each
  (before, after) pair is an F.pad of x's integer codes with x's zero point (a crop where negative): exact, as
  a padded position holds the zero point.
- post-ops: relu (slope 0) only, through the engine's fused conv-relu kernel (fbgemm: relu in its
  requantization; qnnpack: the output clamp; onednn: an eltwise post-op of its primitive). No other kind is
  fused by torch.ops.quantized.
- transposed convolutions are not adapted (CONVOLUTION_ONLY); float specs are the torch backend's.

torch 2.13 warns once per process that quantized tensors (quint8, qint8) "are deprecated and will be removed in a
future PyTorch release" (https://github.com/pytorch/pytorch/issues/184982, in the warning's own words); these
backends then become unavailable, saying so.

Rounding (measured at exact ties, power-of-two multipliers; tests/plugins/test_torch_quantized.py): fbgemm and
qnnpack round real / sy half to even and then add zp_y (`half_even_before_zero_point`); onednn adds zp_y
first (`half_even`, the spec's default). The x86 engine hands a convolution to oneDNN when the CPU has
AVX512-VNNI, the weights are symmetric (zero point 0), groups <= 100 and there is no output padding
(ATen's onednn_utils::should_use_onednn_quant), else to FBGEMM: its declared rounding is the one its
common path (symmetric weights) takes on this CPU, and the FBGEMM-routed specs on a VNNI CPU are a declared
deviation at ties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from convparity.plugin import (
    CONVOLUTION_ONLY,
    BackendCost,
    ConvSpec,
    Deviation,
    Extras,
    Framework,
    Limit,
    Outputs,
    Platform,
    Program,
    cpu_with,
    cpu_without,
    first_limit,
    hookimpl,
    program_arguments,
)

TORCH = Framework("torch", "torch")
QUANTIZED = "uint8:int8:uint8"
ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")
# Engines that round real / sy half to even before adding y's zero point (FBGEMM's and QNNPACK's requantization).
ROUNDS_BEFORE_ZERO_POINT = ("fbgemm", "qnnpack")
ONEDNN_WEIGHT_ZERO_POINT = ("quantized::qconv_prepack: ONEDNN only supports symmetric quantization of weight, whose "
                            "zero point must be 0.")


def torch_quantized_conv(*, stride, padding, dilation, groups, dtype, bias, engine, post_ops=(), quantization=()):
    """torch.ops.quantized.conv{1,2,3}d_prepack + conv{1,2,3}d (conv{1,2,3}d_relu with a relu post-op) under
    torch.backends.quantized.engine = `engine`.

    step(x, w, b, dy, operands=(), quantization=...) -> (y, None, None, None): x uint8 codes (N, C, *in), w int8
    codes (O, C/groups, *k), b int32 (accumulator steps) or float32 (real units) or None; `quantization` the
    values of x_scale, x_zero_point, w_scale (a number or one per output channel), w_zero_point, y_scale,
    y_zero_point. y: uint8 codes (N, O, *out). padding is (before, after) per dim: the symmetric non-negative
    part goes to the op, the rest is an F.pad of x's codes with x's zero point (negative: a crop).
    """
    import numpy as np
    import torch

    rank = len(stride)
    kinds = [dict(op)["kind"] for op in post_ops]
    if kinds not in ([], ["relu"]):
        raise ValueError(f"torch.ops.quantized fuses no post-op chain {kinds!r} (relu alone only)")
    quantized = torch.ops.quantized
    prepack = getattr(quantized, f"conv{rank}d_prepack")
    conv = getattr(quantized, f"conv{rank}d_relu" if kinds else f"conv{rank}d")
    # e.g. ((1, 2), (-1, 0)) -> op padding (1, 0), F.pad amounts (-1, 0, 0, 1) (last dim first)
    symmetric = tuple(max(min(before, after), 0) for before, after in padding)
    explicit = tuple(amount for (before, after), s in reversed(list(zip(padding, symmetric)))
                     for amount in (before - s, after - s))

    def step(x, w, b, dy=None, operands=(), quantization=None):
        q = dict(quantization)
        torch.backends.quantized.engine = engine  # process-wide: set before each prepack, which picks the kernel
        x_scale, x_zero_point = float(q["x_scale"]), int(q["x_zero_point"])
        codes = torch.from_numpy(np.ascontiguousarray(x))
        if any(explicit):  # the padding torch cannot take, in x's codes: the zero point adds nothing
            codes = torch.nn.functional.pad(codes, explicit, value=x_zero_point)
        qx = torch._make_per_tensor_quantized_tensor(codes, x_scale, x_zero_point)
        w_codes = torch.from_numpy(np.ascontiguousarray(w))
        w_scale = np.asarray(q["w_scale"], dtype=np.float64)
        if w_scale.ndim:  # one scale per output channel (axis 0)
            zero_points = torch.full((w.shape[0],), int(q["w_zero_point"]), dtype=torch.int64)
            qw = torch._make_per_channel_quantized_tensor(w_codes, torch.from_numpy(w_scale), zero_points, 0)
        else:
            qw = torch._make_per_tensor_quantized_tensor(w_codes, float(w_scale), int(q["w_zero_point"]))
        b_real = None
        if b is not None:  # torch takes the bias in real units, float32: an int32 bias counts sx * sw[o] steps
            b64 = np.asarray(b, dtype=np.float64)
            if np.asarray(b).dtype.kind in "iu":
                b64 = b64 * x_scale * np.broadcast_to(w_scale, b64.shape)
            b_real = torch.from_numpy(b64.astype(np.float32))
        packed = prepack(qw, b_real, list(stride), list(symmetric), list(dilation), groups)
        y = conv(qx, packed, float(q["y_scale"]), int(q["y_zero_point"]))
        return y.int_repr().numpy(), None, None, None

    return step


@lru_cache(maxsize=1024)
def built_step(backend: TorchQuantizedBackend, spec: ConvSpec) -> Callable:
    return backend.program(spec).build()


def _common(value: object) -> bool:
    return value != "per_channel"


LIMITS = (
    Limit("float dtypes", "torch.ops.quantized convolves 8-bit integer codes (quint8 x, qint8 w); float "
          "convolutions are the torch backends'", lambda spec: not spec.quantized),
    CONVOLUTION_ONLY,
    Limit("x scale or zero point per channel", "torch's quantized convolution takes a per-tensor x (RuntimeError: "
          "Expected quantizer->qscheme() == kPerTensorAffine to be true, but got false.)",
          lambda spec: not (_common(spec.quantization.x_scale) and _common(spec.quantization.x_zero_point))),
    Limit("y scale or zero point per channel", "torch.ops.quantized.conv{1,2,3}d(qx, packed, output_scale: float, "
          "output_zero_point: int) takes one y scale and zero point",
          lambda spec: not (_common(spec.quantization.y_scale) and _common(spec.quantization.y_zero_point))),
    Limit("float64 bias", "torch's quantized convolution takes a float32 bias",
          lambda spec: spec.bias_dtype == "float64"),
    Limit("relu with a negative slope", "torch.ops.quantized fuses relu only (conv{1,2,3}d_relu): a leaky relu "
          "has no fused quantized convolution", lambda spec: any(op.alpha != 0 for op in spec.post_ops)),
    Limit("a chain of more than one post-op", "torch.ops.quantized fuses one relu at most",
          lambda spec: len(spec.post_ops) > 1),
)
ONEDNN_LIMITS = (
    Limit("weight zero point", ONEDNN_WEIGHT_ZERO_POINT, lambda spec: spec.quantization.w_zero_point != 0),
)


def has_avx512_vnni() -> bool:
    """Whether this CPU is known to have AVX512-VNNI, the x86 engine's condition for oneDNN (convparity's platform
    detection: Linux's CPU flags; unknown elsewhere, where the x86 engine uses FBGEMM alone anyway)."""
    return Platform.here().has("avx512_vnni")


def routed_to_fbgemm(spec: ConvSpec) -> bool:
    """Specs the x86 engine gives FBGEMM even on a VNNI CPU (onednn_utils::should_use_onednn_quant)."""
    return spec.quantization.w_zero_point != 0 or spec.groups > 100


X86_FBGEMM_ROUTE = Deviation(
    "x86 engine, weight zero point or groups > 100", "the x86 engine hands these to FBGEMM, which rounds real / sy "
    "half to even before adding zp_y: one step off the declared half_even at exact ties with an odd zp_y",
    upstream="https://github.com/pytorch/pytorch/blob/v2.13.0/aten/src/ATen/native/quantized/cpu/OnednnUtils.h "
             "(should_use_onednn_quant)",
    applies=routed_to_fbgemm, tensors=("y",), strict=False, platform=cpu_with("avx512_vnni"))


def _depthwise(spec: ConvSpec) -> bool:
    return spec.groups > 1 and spec.groups == spec.in_channels


# Found by the int8-saturation grid (saturating inputs: x codes 224-255, w +-112 to +-127) on an AVX512-VNNI CPU:
# the depthwise case (32 groups, 3x3) read 1262 of 2304 elements off, up to 100 steps (113 for 13); the engine's
# dense convolutions passed. Non-strict: on benchdnn's small ranges (the int8 grid) nothing saturates.
FBGEMM_DEPTHWISE_SATURATION = " ".join((
    "FBGEMM's depthwise kernels add pairs of uint8 x int8 products in a saturating int16 (vpmaddubsw) even on CPUs",
    "with AVX512-VNNI: where x and w sit near the top of their types y is many steps off (pytorch#44939's",
    "saturation). Repro: torch.backends.quantized.engine = 'fbgemm'; x codes 224-255 (1, 32, 6, 6), w +-112 to",
    "+-127 (32, 1, 3, 3), conv2d_prepack(qw, None, [1, 1], [1, 1], [1, 1], 32); quantized.conv2d(qx, packed,",
    "512.0, 128) against the int64 convolution: 646 of 1152 elements off by more than one step, up to 107",
))
SATURATION_WITHOUT_VNNI = " ".join((
    "without AVX512-VNNI, FBGEMM's and oneDNN's int8 kernels add pairs of uint8 x int8 products in a saturating",
    "int16 (vpmaddubsw) in every convolution: y is many steps off where x and w sit near the top of their types",
    "(tests/plugins/test_torch_quantized.py holds the kernels to AVX2 and measures it; qnnpack sums in int32)",
))
SATURATION_ISSUE = "https://github.com/pytorch/pytorch/issues/44939"


def saturation_deviations(engine: str) -> tuple[Deviation, ...]:
    """The int16 saturation of the engines' kernels: FBGEMM's depthwise kernel everywhere (fbgemm, and x86 where it
    routes a depthwise spec to FBGEMM), and every kernel but qnnpack's on a CPU without AVX512-VNNI."""
    if engine == "qnnpack":
        return ()
    without_vnni = Deviation("any convolution, on a CPU without AVX512-VNNI", SATURATION_WITHOUT_VNNI,
                             upstream=SATURATION_ISSUE, tensors=("y",), strict=False,
                             platform=cpu_without("avx512_vnni"))
    if engine == "onednn":
        return (without_vnni,)
    depthwise = _depthwise if engine == "fbgemm" else (lambda spec: _depthwise(spec) and routed_to_fbgemm(spec))
    return (Deviation("depthwise convolution (FBGEMM's depthwise kernel)", FBGEMM_DEPTHWISE_SATURATION,
                      upstream=SATURATION_ISSUE, applies=depthwise, tensors=("y",), strict=False), without_vnni)


@dataclass(frozen=True)
class TorchQuantizedBackend:
    """torch.ops.quantized under one quantized engine."""

    name: str
    engine: str
    # Measured (2026-12, torch 2.13.0, a 2-core machine shared with other jobs, load 11-15): the median `seconds`
    # per case of the int8 grid's 14 uint8:int8:uint8 cases, prepack included: fbgemm 0.6 ms, onednn 1.0 ms, x86
    # 1.3 ms, qnnpack 2.0 ms; per_gflop: 20 GOP/s, as torch's float kernels on one core.
    cost: BackendCost = BackendCost(0.002, 0.05)
    post_ops: tuple[str, ...] = ("relu",)
    data_types: tuple[str, ...] = (QUANTIZED,)

    @property
    def limits(self) -> tuple[Limit, ...]:
        return LIMITS + (ONEDNN_LIMITS if self.engine == "onednn" else ())

    @property
    def rounding(self) -> dict[str, str]:
        if self.engine in ROUNDS_BEFORE_ZERO_POINT or (self.engine == "x86" and not has_avx512_vnni()):
            return {QUANTIZED: "half_even_before_zero_point"}
        return {QUANTIZED: "half_even"}

    @property
    def deviations(self) -> tuple[Deviation, ...]:
        return ((X86_FBGEMM_ROUTE,) if self.engine == "x86" else ()) + saturation_deviations(self.engine)

    def supports(self, spec: ConvSpec) -> str | None:
        return first_limit(self.limits, spec)

    def availability(self) -> str | None:
        missing = TORCH.missing()
        if missing:
            return missing
        torch = TORCH.load()
        try:
            torch.ops.quantized.conv2d_prepack  # noqa: B018 - looked up: a build without quantized ops raises
        except (AttributeError, RuntimeError) as error:
            return f"this build of torch has no quantized convolution (torch.ops.quantized.conv2d_prepack: {error})"
        engines = torch.backends.quantized.supported_engines
        if self.engine not in engines:
            return f"this build of torch has no quantized engine {self.engine} (it has {', '.join(engines)})"
        return None

    def version(self) -> str:
        torch = TORCH.load()
        return f"{torch.__version__} (quantized engine {self.engine}, CPU {torch.backends.cpu.get_cpu_capability()})"

    def program(self, spec: ConvSpec) -> Program:
        return Program(torch_quantized_conv, program_arguments(spec, engine=self.engine))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray | None,
            extras: Extras | None = None) -> Outputs:
        """x uint8, w int8, b int32 or float (O,) or None -> (y uint8 codes, None, None, None)."""
        assert extras is not None, "a quantized spec always comes with its scales and zero points"
        return built_step(self, spec)(x, w, b, dy, operands=extras.operands, quantization=extras.quantization)


BACKENDS = tuple(TorchQuantizedBackend(f"torch-quantized-{engine}", engine) for engine in ENGINES)


@hookimpl
def convparity_register_backends(register):
    for backend in BACKENDS:
        register(backend)
