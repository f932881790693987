"""Reproduce the PyTorch check of BrightLamp's 2019 post on im2col convolution, with reference_impl.

The post ("Python 实现 TensorFlow 和 PyTorch 验证卷积 convolution 函数矩阵化计算及反向传播") seeds
NumPy and torch with 123, draws x (2, 3, 5, 7), builds torch.nn.Conv2d(3, 4, (3, 3), stride=2) in
float64, runs it forward, then draws dy of y's shape, runs backward and prints y[0][0], dx[0][0],
dw[0][0] and db next to its own NumPy im2col results. Here reference_impl takes the NumPy side.

Run: python examples/reproduce_blog_post.py   (needs torch)
"""

from __future__ import annotations

import numpy as np
import torch

from convparity import reference_impl


def reproduce() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"y[0][0]" | "dx[0][0]" | "dw[0][0]" | "db": (torch's values, reference_impl's values)}, float64."""
    np.random.seed(123)
    torch.manual_seed(123)
    x = np.random.random((2, 3, 5, 7))
    x_torch = torch.tensor(x, requires_grad=True)
    conv = torch.nn.Conv2d(3, 4, (3, 3), stride=2).double()
    y_torch = conv(x_torch)
    dy = np.random.random(y_torch.shape)  # drawn after the forward pass, as in the post
    y_torch.backward(torch.tensor(dy))

    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    y, dx, dw, db = reference_impl.conv_forward_backward(x, w, b, dy, stride=2)
    from_torch = (y_torch.detach().numpy(), x_torch.grad.numpy(), conv.weight.grad.numpy(), conv.bias.grad.numpy())
    return {
        "y[0][0]": (from_torch[0][0][0], y[0][0]),
        "dx[0][0]": (from_torch[1][0][0], dx[0][0]),
        "dw[0][0]": (from_torch[2][0][0], dw[0][0]),
        "db": (from_torch[3], db),
    }


def side_by_side(left: np.ndarray, right: np.ndarray) -> str:
    """Two arrays of one shape printed row by row, `left | right`, 6 decimals."""
    rows = zip(np.atleast_2d(left), np.atleast_2d(right), strict=True)
    return "\n".join(f"{np.array2string(a, precision=6, suppress_small=True, floatmode='fixed')}  |  "
                     f"{np.array2string(b, precision=6, suppress_small=True, floatmode='fixed')}" for a, b in rows)


def main() -> None:
    for name, (from_torch, from_reference) in reproduce().items():
        difference = float(np.max(np.abs(from_torch - from_reference)))
        print(f"{name}: torch  |  reference_impl   (max |difference| {difference:.1e})")
        print(side_by_side(from_torch, from_reference))
        print()


if __name__ == "__main__":
    main()
