"""How long reading a ResNet-50-sized PyTorch model takes (`--model torch:package.module:factory`; target < 5 s).

    python benchmarks/model_import.py                 # best and median of 3 of each measure
    python benchmarks/model_import.py --repeat 5 --input-shape 8x3x224x224

The model is this file's `resnet50`: a plain-nn ResNet-50 (bottleneck blocks 3, 4, 6, 3; 53 convolutions; 25.6 M
parameters), written here so that nothing but torch is needed. Measured:
- `read in a worker`: what `convparity cases --model torch:model_import:resnet50` waits for:
  convparity.cases_from_model, a fresh worker process started, torch imported there, the model built on the meta
  device and run once;
- `in-process read`: read_torch alone, torch already imported (build on meta + the recorded forward);
- `torch import`: `import torch` in a fresh interpreter;
- `CPU build`: the same factory with real parameters on the CPU, for comparison (what the meta device saves).
Wall time depends on what else the machine runs (the load average is printed); CPU time (user + system of
this process and the workers it started) much less so.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def resnet50():
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, inputs: int, width: int, stride: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(inputs, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or inputs != width * 4:
                self.downsample = nn.Sequential(nn.Conv2d(inputs, width * 4, 1, stride, bias=False),
                                                nn.BatchNorm2d(width * 4))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + (x if self.downsample is None else self.downsample(x)))

    layers, inputs = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                      nn.MaxPool2d(3, 2, 1)], 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for block in range(blocks):
            layers.append(Bottleneck(inputs, width, stride if block == 0 else 1))
            inputs = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def timed(function, repeat: int) -> tuple[list[float], list[float]]:
    """Wall seconds of each call, and CPU seconds (user + system) of this process and the children it reaped."""
    seconds, cpu = [], []
    for _ in range(repeat):
        before = _cpu()
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
        cpu.append(_cpu() - before)
    return seconds, cpu


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def line(name: str, measured: tuple[list[float], list[float]]) -> str:
    seconds, cpu = measured
    return (f"{name:18} wall best {min(seconds):6.2f} s, median {statistics.median(seconds):6.2f} s; "
            f"CPU median {statistics.median(cpu):6.2f} s ({len(seconds)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--input-shape", default="1x3x224x224")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # the worker finds this module on the import path it inherits
    import convparity

    source = "torch:model_import:resnet50"
    shape = f"x={args.input_shape}"
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    model = convparity.cases_from_model(source, input_shapes=[shape])
    print(f"{model.title}: {len(model.layers)} convolutions, {len(model.groups())} distinct")
    print(line("read in a worker", timed(lambda: convparity.cases_from_model(source, input_shapes=[shape]),
                                         args.repeat)))
    import torch

    from convparity.plugin import ReadOptions
    from convparity.plugins.torch_models import read_torch

    print(line("in-process read", timed(lambda: read_torch(source, ReadOptions.of([shape])), args.repeat)))
    print(line("torch import", timed(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True),
                                     args.repeat)))
    print(line("CPU build", timed(lambda: resnet50(), args.repeat)) + f"; torch {torch.__version__}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
