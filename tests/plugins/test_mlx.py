"""The mlx backend: contract suite, layouts, probed limits, the float64 deviation, a smoke sweep."""

from __future__ import annotations

import numpy as np
import pytest

from convparity.harness.backends.manager import get_manager
from convparity.harness.cases.inputs import make_inputs
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.verdict import evaluate_case
from convparity.harness.testing.contract_suite import BackendContract
from convparity.plugins.mlx_backend import DEVIATIONS
from tests.plugins.backend_checks import (
    EXTRA_SPECS,
    check_usable_in_own_tox_env,
    disagreements,
    smoke_sweep,
)

pytestmark = pytest.mark.framework("mlx")


class TestMlx(BackendContract):
    backend_name = "mlx"
    # float64 is left out: MLX refuses most float64 specs (limits) and computes the rest in float32
    # (a declared deviation, checked below).
    dtypes = ("float32",)


@pytest.fixture(scope="module")
def mlx_backend():
    return get_manager().backends()["mlx"]


def test_usable_in_its_tox_env(mlx_backend):
    check_usable_in_own_tox_env(mlx_backend, "mlx")


def test_layouts_go_channels_last_and_back(mlx_backend):
    """A 1x1 convolution whose w picks input channel 1 for output 0 and channel 0 for output 1, on x whose every
    element differs: y, dx and dw in the canonical layouts say which channel, batch and position went where."""
    spec = ConvSpec(batch=2, in_channels=3, out_channels=2, input_size=(3, 4), kernel_size=(1, 1), bias=False,
                    dtype="float32")
    x = np.arange(2 * 3 * 3 * 4, dtype=np.float32).reshape(spec.x_shape)
    w = np.zeros(spec.w_shape, np.float32)
    w[0, 1], w[1, 0] = 1, 1
    dy = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(spec.y_shape)
    y, dx, dw, _ = mlx_backend.run(spec, x, w, None, dy)
    np.testing.assert_array_equal(y, x[:, [1, 0]])
    np.testing.assert_array_equal(dx, np.stack([dy[:, 1], dy[:, 0], np.zeros_like(dy[:, 0])], axis=1))
    np.testing.assert_array_equal(dw[:, :, 0, 0], np.einsum("nchw,ndhw->dc", x, dy))


def test_agrees_in_float32_on_negative_and_one_sided_padding_groups_and_dilation(mlx_backend):
    runnable = tuple(s for s in EXTRA_SPECS if mlx_backend.supports(s.replace(dtype="float32")) is None)
    assert len(runnable) == 4  # the grouped 3-D spec is a limit
    assert disagreements(mlx_backend, runnable, "float32") == []


def test_limits_carry_mlxs_own_messages(mlx_backend):
    reasons = {limit.condition: limit.reason for limit in mlx_backend.limits[1:]}
    assert mlx_backend.limits[0].condition == "transposed convolution"
    assert list(reasons) == ["rank 3 with groups > 1", "float64 with stride > 1", "float64 with dilation > 1",
                             "float64 with groups > 1"]
    assert "Can only handle groups != 1 in 1D or 2D convolutions" in reasons["rank 3 with groups > 1"]
    assert all("[Convolution::eval] got unsupported data type." in reasons[c] for c in list(reasons)[1:])


def test_float64_that_runs_is_computed_in_float32_as_declared(mlx_backend):
    """The deviation's predicate picks exactly the float64 specs MLX runs, and y, dx there are float32-accurate."""
    (deviation, _) = DEVIATIONS
    spec = ConvSpec(batch=2, in_channels=3, out_channels=4, input_size=(8, 7), kernel_size=(3, 2),
                    padding=((0, 1), (-1, 2)), dtype="float64")
    assert mlx_backend.supports(spec) is None and deviation.applies(spec)
    inputs = make_inputs(spec, 0)
    y, dx, dw, db = mlx_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)
    assert y.dtype == np.float64
    direct = np.einsum("nchw,ochw->no", inputs.x[:, :, :3, 1:3], inputs.w) + inputs.b  # window (0, 0)
    error = np.abs(y[:, :, 0, 0] - direct).max() / np.abs(direct).max()
    assert 1e-10 < error < 1e-6  # float32 rounding, not float64's ~1e-16
    for other in (spec.replace(stride=(2, 1)), spec.replace(dilation=(1, 2)), spec.replace(in_channels=4, groups=2)):
        assert not deviation.applies(other) and mlx_backend.supports(other)


def test_smoke_sweep_through_the_cli(tmp_path):
    code, results = smoke_sweep("mlx", tmp_path / "run", dtypes=("float32",))
    assert set(results["status"]) == {"pass", "unsupported"}, results[~results["status"].isin(["pass", "unsupported"])]
    unsupported = results[results["status"] == "unsupported"]
    assert ((unsupported["rank"] == 3) & (unsupported["groups"] > 1)).all()
    assert code == 0


def test_float64_rows_that_run_read_xfail_for_y_and_dx_only(mlx_backend):
    spec = EXTRA_SPECS[0].replace(dtype="float64")  # stride 1, dilation 1, one group, a crop on both sides
    _, rows = evaluate_case(mlx_backend, spec, seed=0)
    assert {row.tensor: row.status for row in rows} == {"y": "xfail", "dx": "xfail", "dw": "pass", "db": "pass"}


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_narrow_bias_is_rounded_twice_as_declared(mlx_backend, dtype):
    """With a bias, y is exactly round(round(conv) + b), conv being MLX's own result without the bias."""
    for spec in (s.replace(dtype=dtype, bias=True) for s in EXTRA_SPECS):
        if mlx_backend.supports(spec):
            continue
        inputs = make_inputs(spec, 0)
        y = mlx_backend.run(spec, inputs.x, inputs.w, inputs.b, inputs.dy)[0]
        conv = mlx_backend.run(spec.replace(bias=False), inputs.x, inputs.w, None, inputs.dy)[0]
        narrow = inputs.b.dtype.type
        rounded_twice = conv.astype(narrow) + inputs.b.reshape((1, -1) + (1,) * spec.rank)
        np.testing.assert_array_equal(y, rounded_twice.astype(np.float32))
