"""The torch backends: the contract suite for each variant, padding split, limits, channels-last, CUDA,
transposed convolutions, the program and the declared cost."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import sys
from collections.abc import Callable

import pytest

from convparity.harness.backends.contract import environment_of, optional_members
from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.attributes import parse_post_ops
from convparity.harness.cases.builtin_grids import CHAINS, EPILOGUES
from convparity.harness.cases.descriptor import Case, parse_case
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.search.search import DEFAULT_BUDGET, search
from convparity.harness.testing.checks import check_program
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugin import POST_OP_KINDS, BackendCost, post_op_arguments, program_arguments
from convparity.plugins.torch_backend import CHANNELS_LAST_LIMITS, TORCH_POST_OPS, torch_conv
from convparity.reference_impl.post_ops import ELTWISE_ALIASES
from tests.harness.search.inline import InlineExecutor
from tests.plugins.backend_checks import EXTRA_SPECS, SEED, TRANSPOSED_SPECS, disagreements, smoke_sweep
from tests.plugins.conftest import framework_module

pytestmark = pytest.mark.framework("torch")

ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")
EPILOGUE_CHAINS = EPILOGUES + CHAINS


class TestTorch(BackendContract):
    backend_name = "torch"
    # float16 is left out: on CPUs without native float16 convolutions torch's fallback rounds
    # partial sums of dx and dw to float16, beyond the float32-accumulation bound.
    dtypes = ("float64", "float32", "bfloat16")


class TestTorchChannelsLast(BackendContract):
    backend_name = "torch-channels_last"
    dtypes = ("float64", "float32", "bfloat16")


class TestTorchCuda(BackendContract):
    """Skipped (but for registration) without a CUDA device; on one, every dtype must agree."""

    backend_name = "torch-cuda"
    dtypes = ALL_DTYPES


def backend(name: str):
    return get_manager().backends()[name]


@pytest.fixture
def torch():
    return framework_module("torch")


@pytest.mark.parametrize(
    ("padding", "conv_padding", "explicit"),
    [
        (((1, 1),), (1,), (0, 0)),
        (((2, 1),), (1,), (1, 0)),
        (((1, 2), (-1, 0)), (1, 0), (-1, 0, 0, 1)),
        (((-2, -1), (0, 3), (2, 2)), (0, 0, 2), (0, 0, 0, 3, -2, -1)),
    ],
)
def test_split_padding_keeps_the_symmetric_part_in_the_conv(padding, conv_padding, explicit, torch, monkeypatch):
    """The program gives the conv the symmetric non-negative part of each pad and F.pad the rest, last dim
    first (no F.pad when nothing is left)."""
    functional, rank, calls = torch.nn.functional, len(padding), {}
    real_pad, real_conv = functional.pad, getattr(functional, f"conv{len(padding)}d")

    def pad(x, amounts, *args, **kwargs):
        calls["pad"] = tuple(amounts)
        return real_pad(x, amounts, *args, **kwargs)

    def conv(*args, **kwargs):
        calls["conv"] = tuple(kwargs["padding"])
        return real_conv(*args, **kwargs)

    monkeypatch.setattr(functional, "pad", pad)
    monkeypatch.setattr(functional, f"conv{rank}d", conv)
    spec = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(6,) * rank, kernel_size=(1,) * rank,
                    padding=padding)
    inputs = make_inputs(spec, 0)
    backend("torch").program(spec).build()(inputs.x, inputs.w, inputs.b, inputs.dy)
    assert calls["conv"] == conv_padding
    assert calls.get("pad", (0,) * 2 * rank) == explicit


@pytest.mark.parametrize("name", ["torch", "torch-channels_last"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(name, dtype):
    assert disagreements(backend(name), EXTRA_SPECS, dtype) == []


def test_float16_forward_agrees():
    """y is within the float32-accumulation bound in float16 (the gradients are not: see TestTorch)."""
    problems = disagreements(backend("torch"), EXTRA_SPECS, "float16")
    assert [p for p in problems if " y: " in p] == []


def test_channels_last_limit_is_torchs_own_message(torch):
    (limit,) = CHANNELS_LAST_LIMITS
    with pytest.raises(RuntimeError) as raised:
        torch.zeros(2, 3, 5).contiguous(memory_format=torch.channels_last)
    assert str(raised.value) in limit.reason
    spec_1d = ConvSpec(batch=1, in_channels=2, out_channels=2, input_size=(5,), kernel_size=(3,))
    assert backend("torch-channels_last").supports(spec_1d) == f"{limit.condition}: {limit.reason}"
    assert backend("torch").supports(spec_1d) is None


@pytest.mark.parametrize(("name", "channels_last"), [("torch", False), ("torch-channels_last", True)])
@pytest.mark.parametrize("input_size", [(6, 7), (4, 6, 5)])
def test_memory_format_reaches_the_convolution(name, channels_last, input_size):
    """The conv's output keeps the format it ran in: channels innermost (stride 1) only for channels_last."""
    kernel = (3,) * len(input_size)
    spec = ConvSpec(batch=2, in_channels=3, out_channels=5, input_size=input_size, kernel_size=kernel,
                    padding=((0, 1),) * len(input_size), dtype="float32")
    inputs = make_inputs(spec, 0)
    y, dx, dw, _ = backend(name).run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    for array in (y, dx, dw):
        assert (array.strides[1] == array.itemsize) == channels_last, array.strides


def test_cuda_variant_says_why_it_is_unavailable_without_a_gpu(torch):
    reason = backend("torch-cuda").availability()
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert "torch.cuda.is_available() is False" in reason


def test_cuda_runs_ieee_float32_and_deterministic_cudnn(torch):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    spec = ConvSpec(batch=2, in_channels=16, out_channels=16, input_size=(12, 12), kernel_size=(3, 3), padding=1)
    inputs = make_inputs(spec, 0)
    backend("torch-cuda").run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert not torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction


@pytest.mark.parametrize("name", ["torch", "torch-channels_last"])
def test_smoke_sweep_through_the_cli(name, tmp_path):
    code, results = smoke_sweep(name, tmp_path / "run")
    assert set(results["status"]) <= {"pass", "unsupported"}, results[~results["status"].isin(["pass"])]
    assert code == 0
    unsupported = results[results["status"] == "unsupported"]
    assert (unsupported["rank"] == 1).all() and unsupported["message"].str.contains("channels_last").all()
    assert (len(unsupported) > 0) == (name == "torch-channels_last")


@pytest.mark.parametrize("name", ["torch", "torch-channels_last"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transposed_agrees(name, dtype):
    assert disagreements(backend(name), TRANSPOSED_SPECS, dtype) == []


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transposed_agrees_on_cuda(dtype, torch):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    assert disagreements(backend("torch-cuda"), TRANSPOSED_SPECS, dtype) == []


def _graph(tensor) -> set[str]:
    """The names of the autograd nodes that produced `tensor`."""
    names, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None:
            names.add(type(node).__name__)
            stack += [next_node for next_node, _ in node.next_functions]
    return names


def test_transposed_runs_torchs_own_padding_and_output_padding(torch, monkeypatch):
    """PyTorch's own form (symmetric pads, output_padding) is one conv_transpose with the bias inside; an asymmetric
    window adds an F.pad of y; a negative pad also moves the bias after it (bias-only positions)."""
    spec_native, spec_asymmetric, spec_negative = TRANSPOSED_SPECS[0], TRANSPOSED_SPECS[1], TRANSPOSED_SPECS[2]
    graphs, shapes, real_grad = {}, {}, torch.autograd.grad

    def grad(y, *args, **kwargs):  # the program differentiates y: see its graph
        graphs[label], shapes[label] = _graph(y), tuple(y.shape)
        return real_grad(y, *args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", grad)
    for label, spec in (("native", spec_native), ("asymmetric", spec_asymmetric), ("negative", spec_negative)):
        inputs = make_inputs(spec, 0)
        backend("torch").program(spec).build()(inputs.x, inputs.w, inputs.b, inputs.dy)
        assert shapes[label] == spec.y_shape
    assert graphs["native"] == {"ConvolutionBackward0", "AccumulateGrad"}
    assert "ConstantPadNdBackward0" in graphs["asymmetric"] and "AddBackward0" not in graphs["asymmetric"]
    assert {"ConstantPadNdBackward0", "AddBackward0"} <= graphs["negative"]


def test_a_default_search_finds_nothing_on_torch(tmp_path):
    """torch computes every case right: the default budget of exploration, in float64 and float32, finds nothing."""
    result = search(["torch", "torch-channels_last"], seed=0, out=tmp_path / "hunt", executor=InlineExecutor())
    assert result.findings == [] and result.exit_code() == 0
    assert result.counts.evaluations["explore"] == 2 * DEFAULT_BUDGET
    assert (tmp_path / "hunt" / "findings.csv").read_text().startswith("group,status,backend,backend_version,")


def test_program_is_torch_conv_with_the_backends_device_and_memory_format():
    spec = EXTRA_SPECS[1]
    for name, device, channels_last in (("torch", "cpu", False), ("torch-channels_last", "cpu", True),
                                        ("torch-cuda", "cuda", False)):
        program = backend(name).program(spec)
        assert program.function is torch_conv
        assert program.arguments == {**program_arguments(spec), "device": device, "channels_last": channels_last}
    transposed = backend("torch").program(TRANSPOSED_SPECS[0])
    assert transposed.arguments["output_padding"] == TRANSPOSED_SPECS[0].output_padding


def test_cuda_program_sets_ieee_float32_and_deterministic_cudnn_when_built():
    """Without a GPU too: building torch-cuda's step sets torch's flags (in a process of its own: they are
    process-wide), so the program a repro script prints computes as the backend does."""
    script = (
        "import torch\n"
        "from convparity.harness.backends.manager import get_manager\n"
        "from convparity.harness.cases.spec import ConvSpec\n"
        "spec = ConvSpec(batch=1, in_channels=1, out_channels=1, input_size=(4, 4), kernel_size=(2, 2))\n"
        "get_manager().backends()['torch-cuda'].program(spec).build()\n"
        "cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul\n"
        "print(cudnn.deterministic, cudnn.benchmark, cudnn.conv.fp32_precision, matmul.fp32_precision,\n"
        "      matmul.allow_fp16_reduced_precision_reduction, matmul.allow_bf16_reduced_precision_reduction)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["True", "False", "ieee", "ieee", "False", "False"]


def test_declared_costs_and_no_variables_of_their_own():
    """The costs of the core's former table; torch reads only the thread variables every worker gets, and
    compiles nothing to cache."""
    costs = {name: optional_members(backend(name)).cost for name in ("torch", "torch-channels_last", "torch-cuda")}
    assert costs == {"torch": BackendCost(0.004, 0.05), "torch-channels_last": BackendCost(0.002, 0.05),
                     "torch-cuda": BackendCost(0.004, 0.001)}
    for name in costs:
        assert environment_of(backend(name), "thread_environment", 1) == {}
        assert environment_of(backend(name), "cache_environment", None, {}) == {}


# -- post-op chains (issue 24) ---------------------------------------------------------------------------------

# Every chain of the epilogues grid on its grouped, strided, asymmetrically padded 2-D shape (the whole grid, three
# shapes, runs from the CLI: see the report), and chains the grid lacks: leaky relu, a clip that is not relu6,
# swish and hardswish with parameters of their own, pow, prelu along a spatial dim, sum with a zero point.
CHAIN_SHAPE = "g2mb2ic4ih9iw9oc6oh4ow5kh3kw3sh2sw2ph1pw0"
OTHER_CHAINS = ("relu:0.25+clip:-0.5:0.75", "swish:2+hardswish:0.25:0.375+hardsigmoid:0.3:0.4",
                "abs+pow:0.5:1.5", "prelu:8+sum:0.25:2", "elu:0.5+soft_relu:2+linear:-1:0.5+min:f32:per_oc")


def _chain_specs(dtype: str, shape: str = CHAIN_SHAPE, chains=EPILOGUE_CHAINS + OTHER_CHAINS) -> tuple[ConvSpec, ...]:
    return tuple(parse_case(f"--attr-post-ops={chain} {shape}", dtype=dtype).spec for chain in chains)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_chain_agrees_forward_and_backward(dtype):
    """y, dx, dw, db and the gradients of a sum's residual, a binary's src1 and prelu's slopes (dpost)."""
    assert disagreements(backend("torch"), _chain_specs(dtype), dtype) == []


@pytest.mark.parametrize("name", ["torch", "torch-channels_last"])
def test_chains_after_transposed_and_3d_convolutions(name):
    """The chain follows conv_transpose (F.pad'ed y and a bias after it included) and 3-D convolutions, in the
    channels-last memory format too."""
    chains = ("sum:0.5+relu", "batchnorm+prelu:per_oc", "add:f32:per_oc+clip:0:6", "mul:f32:per_tensor+gelu_erf")
    transposed = tuple(spec.replace(post_ops=parse_post_ops(chains[k % len(chains)], spec.rank))
                       for k, spec in enumerate(TRANSPOSED_SPECS))
    three_d = _chain_specs("float32", "mb2ic3id4ih5iw4oc4od4oh5ow4kd3kh3kw3pd1ph1pw1", chains)
    for dtype in ("float64", "float32"):
        specs = tuple(s for s in transposed + three_d if name == "torch" or s.rank > 1)
        assert disagreements(backend(name), specs, dtype) == []


def test_eager_runs_each_step_as_its_own_torch_op(torch):
    """torch (eager) computes a chain as the torch.nn.functional ops after the convolution, one ATen op each."""
    spec = parse_case(f"--attr-post-ops=batchnorm+sum+relu {CHAIN_SHAPE}", dtype="float32").spec
    inputs = make_inputs(spec, 0)
    step = backend("torch").program(spec).build()
    with torch.profiler.profile() as profile:
        step(inputs.x, inputs.w, inputs.b, inputs.dy, operands=inputs.operands)
    names = [event.name for event in profile.events()]
    for op in ("aten::convolution", "aten::batch_norm", "aten::add", "aten::relu", "ConvolutionBackward0",
               "NativeBatchNormBackward0", "ReluBackward0"):
        assert any(name == op or name.endswith(op) for name in names), op


def test_program_carries_the_chain_and_hardswish_is_pytorchs_only_in_its_dtype():
    """The chain travels as plain data in the program's arguments; benchdnn's hardswish:0.16666667:0.5 is
    F.hardswish in float32 (where 0.16666667 is 1/6) and the general formula in float64 (where it is not)."""
    for dtype, pytorchs in (("float32", True), ("float64", False)):
        spec = parse_case(f"--attr-post-ops=hardswish:0.16666667:0.5 {CHAIN_SHAPE}", dtype=dtype).spec
        program = backend("torch").program(spec)
        assert program.arguments["post_ops"] == post_op_arguments(spec)
        calls = []
        with _spy("hardswish", calls):
            inputs = make_inputs(spec, 0)
            program.build()(inputs.x, inputs.w, inputs.b, inputs.dy, operands=inputs.operands)
        assert bool(calls) == pytorchs


@contextlib.contextmanager
def _spy(name: str, calls: list):
    functional = framework_module("torch").nn.functional
    real = getattr(functional, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    setattr(functional, name, spy)
    try:
        yield
    finally:
        setattr(functional, name, real)


@pytest.mark.parametrize("name", ["torch", "torch-channels_last"])
def test_program_with_a_chain_is_self_contained(name):
    """The contract suite's check on chains: the program's source alone gives run()'s bits, dpost included."""
    check_program(name, [Case(spec, "") for spec in _chain_specs("float32")])


def test_declares_every_kind_of_the_chains():
    kinds = {op for op in POST_OP_KINDS if op not in ELTWISE_ALIASES}
    for name in ("torch", "torch-channels_last", "torch-cuda"):
        assert set(optional_members(backend(name)).post_ops) == kinds


# -- planted chain bugs: each fails, where torch itself passes -------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PlantedChain:
    """torch_conv built from a chain with one mistake (`mistake(spec) -> the spec it really computes`), or with
    the gradient of step 0's operand scaled by `operand_gradient`."""

    name: str
    mistake: Callable[[ConvSpec], ConvSpec] = lambda spec: spec
    operand_gradient: float = 1.0
    post_ops: tuple[str, ...] = TORCH_POST_OPS

    def version(self):
        return backend("torch").version()

    def availability(self):
        return None

    def supports(self, spec):
        return None

    def run(self, spec, x, w, b, dy, extras=None):
        step = torch_conv(**program_arguments(self.mistake(spec)))
        y, dx, dw, db, *operands = step(x, w, b, dy, operands=extras.operands)
        return (y, dx, dw, db, *({k: g * self.operand_gradient for k, g in gradients.items()}
                                 for gradients in operands))


def _rechained(text: str) -> Callable[[ConvSpec], ConvSpec]:
    return lambda spec: spec.replace(post_ops=parse_post_ops(text, spec.rank))


PLANTED_CHAINS = (
    # relu6 capped at 5, after a scale that takes outputs past 5 (the grid's outputs stay below 2: its clip:0:6
    # never reaches the cap)
    ("linear:8+clip:0:6", PlantedChain("relu6-at-5", _rechained("linear:8+clip:0:5")), {"y", "dx", "dw", "db"}),
    # GELU's tanh approximation where the exact one is asked for (F.gelu's approximate flag wrong)
    ("gelu_erf", PlantedChain("gelu-tanh-for-erf", _rechained("gelu_tanh")), {"y"}),
    # batchnorm with torch's default eps 1e-5 instead of the model's 1e-3
    ("batchnorm:0.001", PlantedChain("batchnorm-default-eps", _rechained("batchnorm:0.00001")), {"y"}),
    # a leaky relu's slope lost (plain relu)
    ("relu:0.1", PlantedChain("leaky-slope-lost", _rechained("relu")), {"y", "dx", "dw", "db"}),
    # the residual's gradient without the sum's scale
    ("sum:0.5", PlantedChain("sum-gradient-unscaled", operand_gradient=2.0), {"dpost0"}),
)


@pytest.mark.parametrize(("chain", "planted", "wrong"), PLANTED_CHAINS, ids=[p[1].name for p in PLANTED_CHAINS])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_planted_chain_bug_fails(chain, planted, wrong, dtype):
    spec = parse_case(f"--attr-post-ops={chain} {CHAIN_SHAPE}", dtype=dtype).spec
    _, honest = evaluate_case(backend("torch"), spec, seed=SEED)
    assert {row.status for row in honest} == {"pass"}, [(row.tensor, row.message) for row in honest]
    _, rows = evaluate_case(planted, spec, seed=SEED)
    failing = {row.tensor for row in rows if row.status == "fail"}
    assert wrong <= failing and failing <= set(spec.tensors), failing


def test_a_straight_through_relu_fails_its_gradients_only(monkeypatch, torch):
    """relu whose backward passes the gradient through (v + (relu(v) - v).detach(), a straight-through estimator):
    y is relu's to the bit and passes; dx, dw and db fail."""
    spec = parse_case(f"--attr-post-ops=relu {CHAIN_SHAPE}", dtype="float32").spec
    real = torch.nn.functional.relu
    monkeypatch.setattr(torch.nn.functional, "relu", lambda v: v + (real(v) - v).detach())
    _, rows = evaluate_case(PlantedChain("straight-through-relu"), spec, seed=SEED)
    assert {row.tensor: row.status for row in rows} == {"y": "pass", "dx": "fail", "dw": "fail", "db": "fail"}
