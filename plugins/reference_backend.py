"""Backend `reference`: the NumPy im2col reference itself, for self-checks of the harness."""

from __future__ import annotations

import numpy as np
from convparity.harness.backends.contract import Outputs
from convparity.harness.backends.hookspecs import hookimpl
from convparity.harness.cases.spec import ConvSpec

from convparity import reference_impl


class ReferenceBackend:
    """Runs reference_impl.conv_forward_backward (conv_transpose_forward_backward for a transposed spec) in
    float64 and returns the results in the spec's dtype."""

    name = "reference"

    def version(self) -> str:
        from convparity import __version__

        return f"convparity {__version__} (numpy {np.__version__})"

    def availability(self) -> str | None:
        return None

    def supports(self, spec: ConvSpec) -> str | None:
        return None

    def run(self, spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None, dy: np.ndarray) -> Outputs:
        if spec.transposed:
            y, dx, dw, db = reference_impl.conv_transpose_forward_backward(
                x, w, b, dy, stride=spec.stride, padding=spec.padding, output_padding=spec.output_padding,
                dilation=spec.dilation, groups=spec.groups,
            )
        else:
            y, dx, dw, db = reference_impl.conv_forward_backward(
                x, w, b, dy, stride=spec.stride, padding=spec.padding, dilation=spec.dilation, groups=spec.groups
            )
        return tuple(None if t is None else t.astype(x.dtype) for t in (y, dx, dw, db))  # type: ignore[return-value]


@hookimpl
def convparity_register_backends(register):
    register(ReferenceBackend())
