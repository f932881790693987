"""Model readers for the harness's own tests, without a framework (CONVPARITY_EXTRA_PLUGINS=<this module>).

`stub:small` is a model of four small layers: conv_a (oc2), conv_b and conv_c (identical, oc3: the faulty test
backends misbehave on those), conv_d (oc4, a relu epilogue), run in that order; --input-shape x=N sets the batch.
`stub:refuse` refuses its input (ModelReadError), `stub:raise` raises a RuntimeError, `stub:abort` kills its worker,
`stub:pid` says in a note which process read it, `stub:empty` has no convolution. With `--weights` (ReadOptions
.weights) each layer of `stub:small` gets weights of its own, small except for one: conv_c's kernel holds an
OUTLIER (trained networks have a few such weights), so a backend that clips its weights is wrong on conv_c alone.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from convparity.plugin import ConvSpec, Model, ModelLayer, ModelReadError, PostOp, hookimpl, write_weights

OUTLIER = 40.0


def small(batch: int = 1) -> tuple[ModelLayer, ...]:
    def spec(out_channels: int, *post_ops: PostOp) -> ConvSpec:
        return ConvSpec(batch=batch, in_channels=2, out_channels=out_channels, input_size=(5, 5), kernel_size=(3, 3),
                        padding=1, post_ops=post_ops)

    return (ModelLayer(("conv_a",), spec(2), 0), ModelLayer(("conv_b", "pad_b"), spec(3), 1),
            ModelLayer(("conv_c",), spec(3), 2), ModelLayer(("conv_d",), spec(4, PostOp("relu")), 3))


class StubReader:
    name = "stub"
    sources = "stub:NAME"

    def claims(self, source):
        return source.startswith("stub:")

    def read(self, source, options):
        kind = source.removeprefix("stub:")
        batch = options.shapes.get("x", (1,))[0]
        if kind == "refuse":
            raise ModelReadError("layer 'conv_x': kernel_size is not known")
        if kind == "raise":
            raise RuntimeError("the stub reader is broken on purpose")
        if kind == "abort":
            os.abort()
        if kind == "empty":
            return Model(source, "Empty", self.name, ())
        if kind not in ("small", "pid"):
            raise ModelReadError(f"unknown stub model {kind!r}")
        notes = (f"read in process {os.getpid()}",) if kind == "pid" else ()
        layers = small(batch)
        if options.weights:
            layers = tuple(with_weights(layer, options.weights) for layer in layers)
        return Model(source, "Small", self.name, layers, notes)


def with_weights(layer: ModelLayer, folder: str) -> ModelLayer:
    """The layer with weights of its own written to `folder` (see the module docstring)."""
    rng = np.random.default_rng(layer.depth)
    w = rng.uniform(-0.3, 0.3, layer.spec.w_shape)
    if layer.name == "conv_c":
        w[0, 0, 1, 1] = OUTLIER
    b = rng.uniform(-0.5, 0.5, layer.spec.out_channels) if layer.spec.bias else None
    return dataclasses.replace(layer, weights=write_weights(folder, "Small", layer.name, layer.depth, w=w, b=b))


@hookimpl
def convparity_register_model_readers(register):
    register(StubReader())
