"""Backend `reference`: convparity's own NumPy im2col reference, for self-checks of the harness.

Its program runs reference_impl.conv_forward_backward (conv_transpose_forward_backward for a transposed
spec) in float64 and returns the results in the inputs' dtype.
"""

from __future__ import annotations

import numpy as np

from convparity.plugin import BackendCost, ConvSpec, Outputs, Program, hookimpl, installed_version, program_arguments


def reference_conv(*, stride, padding, dilation, groups, dtype, bias, output_padding=None):
    """convparity's float64 reference; step(x, w, b, dy) -> (y, dx, dw, db) in the inputs' dtype."""
    from convparity import reference_impl

    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def step(x, w, b, dy):
        if output_padding is None:
            outputs = reference_impl.conv_forward_backward(x, w, b, dy, **options)
        else:
            outputs = reference_impl.conv_transpose_forward_backward(x, w, b, dy, output_padding=output_padding,
                                                                      **options)
        return tuple(None if t is None else t.astype(x.dtype) for t in outputs)

    return step


class ReferenceBackend:
    """The reference as a backend: supports every spec."""

    name = "reference"
    cost = BackendCost(0.0003, 0.1)  # NumPy on one core, its magnitude pass included: ~10 GFLOP/s

    def version(self) -> str:
        return f"convparity {installed_version('convparity')} (numpy {np.__version__})"

    def availability(self) -> str | None:
        return None

    def supports(self, spec: ConvSpec) -> str | None:
        return None

    def program(self, spec: ConvSpec) -> Program:
        return Program(reference_conv, program_arguments(spec))

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        return self.program(spec).build()(x, w, b, dy)


@hookimpl
def convparity_register_backends(register):
    register(ReferenceBackend())
