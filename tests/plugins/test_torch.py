"""The torch backends: the contract suite for each variant, padding split, limits, channels-last, CUDA,
transposed convolutions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from convparity.harness.backends.manager import get_manager  # noqa: E402
from convparity.harness.cases.inputs import make_inputs  # noqa: E402
from convparity.harness.cases.spec import ConvSpec  # noqa: E402
from convparity.harness.search.search import DEFAULT_BUDGET, search  # noqa: E402
from convparity.harness.testing.contract_suite import BackendContract  # noqa: E402
from convparity.plugins.torch_backend import CHANNELS_LAST_LIMITS, split_padding  # noqa: E402
from tests.harness.search.inline import InlineExecutor  # noqa: E402
from tests.plugins.backend_checks import EXTRA_SPECS, TRANSPOSED_SPECS, disagreements, smoke_sweep  # noqa: E402

ALL_DTYPES = ("float64", "float32", "float16", "bfloat16")


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


@pytest.mark.parametrize(
    ("padding", "conv_padding", "explicit"),
    [
        (((1, 1),), (1,), (0, 0)),
        (((2, 1),), (1,), (1, 0)),
        (((1, 2), (-1, 0)), (1, 0), (-1, 0, 0, 1)),
        (((-2, -1), (0, 3), (2, 2)), (0, 0, 2), (0, 0, 0, 3, -2, -1)),
    ],
)
def test_split_padding_keeps_the_symmetric_part_in_the_conv(padding, conv_padding, explicit):
    assert split_padding(padding) == (conv_padding, explicit)


@pytest.mark.parametrize("name", ["torch", "torch-channels_last"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
def test_agrees_on_negative_and_one_sided_padding_groups_and_dilation(name, dtype):
    assert disagreements(backend(name), EXTRA_SPECS, dtype) == []


def test_float16_forward_agrees():
    """y is within the float32-accumulation bound in float16 (the gradients are not: see TestTorch)."""
    problems = disagreements(backend("torch"), EXTRA_SPECS, "float16")
    assert [p for p in problems if " y: " in p] == []


def test_channels_last_limit_is_torchs_own_message():
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


def test_cuda_variant_says_why_it_is_unavailable_without_a_gpu():
    reason = backend("torch-cuda").availability()
    if torch.cuda.is_available():
        assert reason is None
    else:
        assert "torch.cuda.is_available() is False" in reason


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_runs_ieee_float32_and_deterministic_cudnn():
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transposed_agrees_on_cuda(dtype):
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


def test_transposed_runs_torchs_own_padding_and_output_padding():
    """PyTorch's own form (symmetric pads, output_padding) is one conv_transpose with the bias inside; an asymmetric
    window adds an F.pad of y; a negative pad also moves the bias after it (bias-only positions)."""
    spec_native, spec_asymmetric, spec_negative = TRANSPOSED_SPECS[0], TRANSPOSED_SPECS[1], TRANSPOSED_SPECS[2]
    graphs = {}
    for label, spec in (("native", spec_native), ("asymmetric", spec_asymmetric), ("negative", spec_negative)):
        inputs = make_inputs(spec, 0)
        tensors = [torch.from_numpy(a.copy()).requires_grad_(True) for a in (inputs.x, inputs.w, inputs.b)]
        y = backend("torch")._transposed(spec, *tensors)
        assert tuple(y.shape) == spec.y_shape
        graphs[label] = _graph(y)
    assert graphs["native"] == {"ConvolutionBackward0", "AccumulateGrad"}
    assert "ConstantPadNdBackward0" in graphs["asymmetric"] and "AddBackward0" not in graphs["asymmetric"]
    assert {"ConstantPadNdBackward0", "AddBackward0"} <= graphs["negative"]


def test_a_default_search_finds_nothing_on_torch(tmp_path):
    """torch computes every case right: the default budget of exploration, in float64 and float32, finds nothing."""
    result = search(["torch", "torch-channels_last"], seed=0, out=tmp_path / "hunt", executor=InlineExecutor())
    assert result.findings == [] and result.exit_code() == 0
    assert result.counts.evaluations["explore"] == 2 * DEFAULT_BUDGET
    assert (tmp_path / "hunt" / "findings.csv").read_text().startswith("group,backend,backend_version,")
