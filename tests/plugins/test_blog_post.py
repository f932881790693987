"""examples/reproduce_blog_post.py reproduces the PyTorch check of the original post."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.framework("torch")  # the script imports torch: in its fixture, never at collection

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "reproduce_blog_post.py"

# Printed in the post for its PyTorch run (the second one), 6 decimals.
POST_DB = [6.804211, 5.354626, 6.683215, 5.545097]
POST_Y00 = [[0.038209, -0.104653, -0.37583], [-0.101538, -0.192953, -0.152639]]
POST_DW00 = [[3.759475, 4.10321, 3.357347], [3.621035, 3.578632, 3.329442], [3.183582, 4.388502, 2.181801]]
POST_DX00_ROW0 = [-0.040876, 0.002517, -0.160813, -0.109504, -0.154843, -0.022449, -0.304437]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("reproduce_blog_post", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results(script):
    return script.reproduce()


def test_torch_and_reference_agree_to_1e_12(results):
    assert list(results) == ["y[0][0]", "dx[0][0]", "dw[0][0]", "db"]
    for name, (from_torch, from_reference) in results.items():
        assert from_torch.shape == from_reference.shape, name
        np.testing.assert_allclose(from_torch, from_reference, rtol=0, atol=1e-12, err_msg=name)


def test_db_is_the_posts_published_value(results):
    for values in results["db"]:
        np.testing.assert_array_equal(np.round(values, 6), POST_DB)


def test_torch_reproduces_the_posts_published_output(results):
    """y, dx and dw also depend on torch's weight initialisation stream, unchanged since the post."""
    from_torch = {name: pair[0] for name, pair in results.items()}
    np.testing.assert_array_equal(np.round(from_torch["y[0][0]"], 6), POST_Y00)
    np.testing.assert_array_equal(np.round(from_torch["dw[0][0]"], 6), POST_DW00)
    np.testing.assert_array_equal(np.round(from_torch["dx[0][0]"][0], 6), POST_DX00_ROW0)


def test_script_prints_each_tensor_side_by_side(script, capsys):
    script.main()
    out = capsys.readouterr().out
    for name in ("y[0][0]", "dx[0][0]", "dw[0][0]", "db"):
        assert f"{name}: torch  |  reference_impl" in out
    assert "[6.804211 5.354626 6.683215 5.545097]  |  [6.804211 5.354626 6.683215 5.545097]" in out
