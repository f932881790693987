"""nn.Module factories the torch model reader's tests read (`torch:tests.plugins.torch_zoo:NAME`); torch is imported
inside each factory, so collecting the tests imports no framework."""

from __future__ import annotations


def mixed():
    """Every kind of layer the reader folds or follows: conv + batchnorm + relu, depthwise + dilated + relu6, an
    asymmetric F.pad, padding="same" with an even kernel, swish and a residual add, a functional conv with a
    parameter of the module, a transposed layer, 1-D and 3-D layers."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(16, eps=1e-3)
            self.dw = nn.Conv2d(16, 16, 3, padding=2, dilation=2, groups=16)
            self.asym = nn.Conv2d(16, 16, (3, 2))
            self.same = nn.Conv2d(16, 16, 4, padding="same", groups=4, bias=False)
            self.pw = nn.Conv2d(16, 16, 1)
            self.w_fn = nn.Parameter(torch.randn(8, 16, 3, 3) * 0.1)
            self.up = nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1, output_padding=1, groups=2)
            self.c1 = nn.Conv1d(6, 4, 5, stride=3)
            self.c3 = nn.Conv3d(1, 2, (1, 3, 3), padding=(0, 1, 1))

        def forward(self, x):
            x = F.relu(self.bn(self.stem(x)))
            x = F.relu6(self.dw(x))
            x = self.asym(F.pad(x, (1, 1, 0, 3)))
            skip = self.same(x)
            x = F.silu(self.pw(skip)) + skip
            x = F.gelu(F.conv2d(x, self.w_fn, padding=(0, 1)))
            x = self.up(x)
            y = torch.sigmoid(self.c1(x.flatten(2)))
            return self.c3(y.unsqueeze(1).unsqueeze(1))

    return Mixed()


def huge():
    """Fifty 4096-channel 7x7 layers: 41 G parameters (164 GB in float32), which only the meta device can hold."""
    from torch import nn

    return nn.Sequential(*[nn.Conv2d(4096, 4096, 7, padding=3) for _ in range(50)])


def reads_values():
    """A factory that needs a real value while it builds (as timm's drop-path rates do)."""
    import torch
    from torch import nn

    rate = torch.linspace(0, 0.2, 4)[1].item()
    layers = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Dropout(rate), nn.Conv2d(8, 8, 3))
    return layers


def not_a_module():
    return 42
