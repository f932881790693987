"""The model reader contract: what a plugin registers with `convparity_register_model_readers`.

A model reader is an object with:
- `name`: a short name ("onnx"); its reading runs in worker processes of the pool `reader:<name>`;
- `sources`: how its sources are written, for help and error messages ("FILE.onnx");
- `claims(source) -> bool`: whether the source is one of its kind. Called in the process that starts a run,
  so it must not import the reader's framework (look at a prefix or a file suffix);
- `read(source, options) -> Model`: every convolution the model runs, as a `Model` of `ModelLayer`s
  (harness.cases.models), `options` a `ReadOptions` (--input-shape, --weights). Called in a worker of the
  reader's own: it imports the framework there, never beside another reader's or backend's. Input it cannot read
  (a missing file, an unknown name, a symbolic dimension without --input-shape, an operator it cannot read) is a
  `ModelReadError` whose message names the field at fault; the harness prefixes the source.

Where a graph fuses what follows a convolution (batchnorm, an activation, a residual add), the layer's spec carries
it as its post-op chain; where the model is quantized, its data types and its scales and zero points.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from convparity.harness.cases.models import Model, ReadOptions
from convparity.harness.errors import ConvparityError


class ModelReaderContractError(ConvparityError, TypeError):
    """A registered model reader that lacks a member of the contract (named)."""


@runtime_checkable
class ModelReader(Protocol):
    name: str
    sources: str

    def claims(self, source: str) -> bool: ...

    def read(self, source: str, options: ReadOptions) -> Model: ...


def check_model_reader(reader: object) -> None:
    """ModelReaderContractError naming the first member `reader` lacks or gets wrong."""
    label = repr(getattr(reader, "name", reader))
    for member in ("name", "sources"):
        value = getattr(reader, member, None)
        if not isinstance(value, str) or not value:
            raise ModelReaderContractError(f"model reader {label}: `{member}` must be a non-empty string")
    for member in ("claims", "read"):
        if not callable(getattr(reader, member, None)):
            raise ModelReaderContractError(f"model reader {label}: `{member}` must be a method")
