"""Model reader for Keras 3 (`--model keras:ResNet50`, `--model my_model.keras`): every convolution layer call of a
functional or sequential model, nested models included.

`keras:NAME` builds `keras.applications.NAME(weights=None)` (nothing is downloaded; `--input-shape` NAME=HxWxC
or =NxHxWxC gives another input shape, a batch of 1 otherwise); a `.keras` file is loaded without compiling.
Layers read: Conv1D/2D/3D (with groups), DepthwiseConv1D/2D, SeparableConv1D/2D (two layers: the depthwise part,
then the pointwise part with the epilogue), Conv1D/2D/3DTranspose. Shapes are the graph's (channels_last or
channels_first, as each layer says); padding "same" is TensorFlow's rule (the odd pad at the end), "causal" pads
the beginning, and a ZeroPadding layer right before a convolution is folded into its padding and named with it.

The epilogue: the layer's own `activation`, then, while its output has one consumer, BatchNormalization
(inference), Activation, ReLU (with max_value or negative_slope), LeakyReLU, ELU, PReLU and an Add of a tensor
of the output's shape (a residual: sum).

Weights (`--weights`): a .keras file's kernels and biases, in convparity's layout (a kernel (*k, C/groups, O) as
(O, C/groups, *k); a depthwise kernel (*k, C, M) as (C*M, 1, *k); a transposed one (*k, O, C) as (C, O, *k)), are
written with `write_weights`; an application built with weights=None has none of its own (its layers keep drawn
ones).
"""

from __future__ import annotations

import os

from convparity.plugin import ConvSpec, Model, ModelLayer, ModelReadError, PostOp, ReadOptions, hookimpl, write_weights

PREFIX = "keras:"
# Keras' activation functions by name, as post-ops: name -> (kind, alpha, beta)
ACTIVATIONS = {
    "relu": ("relu", 0.0, 0.0), "relu6": ("clip", 0.0, 6.0), "sigmoid": ("logistic", 0.0, 0.0),
    "tanh": ("tanh", 0.0, 0.0), "elu": ("elu", 1.0, 0.0), "silu": ("swish", 1.0, 0.0), "swish": ("swish", 1.0, 0.0),
    "gelu": ("gelu_erf", 0.0, 0.0), "softplus": ("soft_relu", 1.0, 0.0), "mish": ("mish", 0.0, 0.0),
    "hard_sigmoid": ("hardsigmoid", 1 / 6, 0.5), "hard_silu": ("hardswish", 1 / 6, 0.5),
    "hard_swish": ("hardswish", 1 / 6, 0.5), "leaky_relu": ("relu", 0.2, 0.0), "exponential": ("exp", 0.0, 0.0),
}


def _activation(function) -> PostOp | None | bool:
    """The post-op of a Keras activation: None for linear, False for one no post-op computes."""
    name = getattr(function, "__name__", str(function))
    if name == "linear":
        return None
    if name == "gelu":
        import inspect

        approximate = inspect.signature(function).parameters.get("approximate")
        if approximate is not None and approximate.default is True:
            return PostOp("gelu_tanh")
    if name not in ACTIVATIONS:
        return False
    kind, alpha, beta = ACTIVATIONS[name]
    return PostOp(kind, alpha=alpha, beta=beta)


def _per_dim(value, rank: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def _split(shape, data_format: str) -> tuple[int, int, tuple[int, ...]]:
    """(batch, channels, spatial sizes) of a shape in `data_format`."""
    shape = tuple(shape)
    if data_format == "channels_first":
        return shape[0], shape[1], shape[2:]
    return shape[0], shape[-1], shape[1:-1]


def _producer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history[0]


class _Graph:
    """A model's layers (nested models included), the graph's nodes, and the consumers of every tensor."""

    def __init__(self, keras, model) -> None:
        self.keras = keras
        self.layers: list[tuple[str, object]] = []
        self.nodes: set[str] = set()
        self.consumers: dict[int, list] = {}
        self._walk(model, "")
        self.outputs = {id(t) for t in (getattr(model, "outputs", None) or [])}

    def _walk(self, model, prefix: str) -> None:
        functional = getattr(model, "_functional", None) or model
        # A layer's _inbound_nodes may hold calls that are not part of the graph (a nested model rebuilt while a
        # .keras file loads calls its layers once more): only the graph's own nodes count.
        self.nodes |= set(getattr(functional, "_nodes", ()) or ())
        for layer in model.layers:
            self.layers.append((prefix, layer))
            for node in getattr(layer, "_inbound_nodes", []):
                for tensor in node.input_tensors:
                    self.consumers.setdefault(id(tensor), []).append((layer, node))
            if isinstance(layer, self.keras.Model):
                self._walk(layer, f"{prefix}{layer.name}/")

    def calls(self, layer) -> list:
        """The layer's calls that are nodes of the graph."""
        return [node for index, node in enumerate(layer._inbound_nodes)
                if not self.nodes or f"{id(layer)}_ib-{index}" in self.nodes]


def _plain_layout(kernel):
    """A Keras kernel (*k, C/groups, O) (transposed: (*k, O, C)) in convparity's layout (O, C/groups, *k) ((C, O,
    *k))."""
    rank = kernel.ndim - 2
    return kernel.transpose(rank + 1, rank, *range(rank))


def _depthwise_layout(kernel):
    """A depthwise kernel (*k, C, M) as (C*M, 1, *k): output channel c*M + m is input channel c's m-th filter."""
    rank = kernel.ndim - 2
    return kernel.reshape(*kernel.shape[:rank], -1).transpose(rank, *range(rank))[:, None]


class _Reader:
    def __init__(self, keras, model, batch: int | None, title: str = "", weights: str = "") -> None:
        self.keras = keras
        self.graph = _Graph(keras, model)
        self.batch = batch
        self.title, self.folder = title, weights
        layers = keras.layers
        self.transposed = (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)
        self.depthwise = (layers.DepthwiseConv1D, layers.DepthwiseConv2D)
        self.separable = (layers.SeparableConv1D, layers.SeparableConv2D)
        self.plain = (layers.Conv1D, layers.Conv2D, layers.Conv3D)
        self.zero_padding = (layers.ZeroPadding1D, layers.ZeroPadding2D, layers.ZeroPadding3D)

    def shape(self, tensor, name: str) -> tuple[int, ...]:
        shape = tuple(tensor.shape)
        if shape and shape[0] is None:
            shape = (self.batch or 1, *shape[1:])
        if any(d is None for d in shape):
            raise ModelReadError(f"layer {name!r}: its input shape {tuple(tensor.shape)} has unknown dims: give the "
                                 "model's input shape with --input-shape input=HxWxC")
        return shape

    def layers(self) -> list[ModelLayer]:
        found: list[tuple[int, list[tuple[tuple[str, ...], ConvSpec]], object]] = []
        kinds = self.plain + self.depthwise + self.separable + self.transposed
        for order, (prefix, layer) in enumerate(self.graph.layers):
            if not isinstance(layer, kinds):
                continue
            calls = self.graph.calls(layer)
            for number, node in enumerate(calls):
                name = prefix + layer.name + (f"#{number}" if len(calls) > 1 else "")
                found.append((order, self.read_call(layer, node, name), layer))
        layers, depth = [], 0
        for _, parts, layer in sorted(found, key=lambda item: item[0]):
            for (names, spec), arrays in zip(parts, self.weights(layer) if self.folder else [{}] * len(parts)):
                file = write_weights(self.folder, self.title, names[0], depth, **arrays) if arrays else ""
                layers.append(ModelLayer(names, spec, depth, weights=file))
                depth += 1
        return layers

    def weights(self, layer) -> list[dict]:
        """The layer's own weights in convparity's layout, one set per layer read from it (a separable layer's
        depthwise part, then its pointwise part with the bias)."""
        bias = layer.bias.numpy() if layer.use_bias else None
        if isinstance(layer, self.separable):
            return [{"w": _depthwise_layout(layer.depthwise_kernel.numpy())},
                    {"w": _plain_layout(layer.pointwise_kernel.numpy()), "b": bias}]
        kernel = layer.kernel.numpy()
        return [{"w": _depthwise_layout(kernel) if isinstance(layer, self.depthwise) else _plain_layout(kernel),
                 "b": bias}]

    def read_call(self, layer, node, name: str) -> list[tuple[tuple[str, ...], ConvSpec]]:
        data_format = getattr(layer, "data_format", "channels_last")
        x, y = node.input_tensors[0], node.output_tensors[0]
        names = [name]
        folded = None
        if not isinstance(layer, self.transposed):  # ZeroPadding layers right before: part of the padding
            while isinstance(pad := _producer(x), self.zero_padding) and pad.data_format == data_format \
                    and len(self.graph.consumers.get(id(x), [])) == 1:
                pairs = tuple(tuple(p) for p in pad.padding)
                folded = pairs if folded is None else tuple((a + c, b + d) for (a, b), (c, d) in zip(folded, pairs))
                names.append(pad.name)
                x = pad._inbound_nodes[0].input_tensors[0]
        batch, channels, size = _split(self.shape(x, name), data_format)
        _, out_channels, out_size = _split(self.shape(y, name), data_format)
        rank = len(size)
        kernel = _per_dim(layer.kernel_size, rank)
        stride = _per_dim(layer.strides, rank)
        dilation = _per_dim(layer.dilation_rate, rank)
        chain = self.epilogue(layer, y)
        dtype = layer.compute_dtype
        common = dict(batch=batch, kernel_size=kernel, stride=stride, dilation=dilation, dtype=dtype)
        try:
            if isinstance(layer, self.transposed):
                padding, extra = self.transposed_padding(layer, size, out_size, kernel, stride, dilation)
                return [(tuple(names), ConvSpec(in_channels=channels, out_channels=out_channels, input_size=size,
                                                padding=padding, output_padding=extra, transposed=True,
                                                bias=layer.use_bias, post_ops=chain, **common))]
            padding = self.padding(layer.padding, size, kernel, stride, dilation, folded)
            if isinstance(layer, self.separable):
                middle = channels * layer.depth_multiplier
                depthwise = ConvSpec(in_channels=channels, out_channels=middle, input_size=size, padding=padding,
                                     groups=channels, bias=False, **common)
                pointwise = ConvSpec(batch=batch, in_channels=middle, out_channels=out_channels,
                                     input_size=depthwise.output_size, kernel_size=(1,) * rank, bias=layer.use_bias,
                                     dtype=dtype, post_ops=chain)
                return [((f"{name}/depthwise", *names[1:]), depthwise), ((f"{name}/pointwise",), pointwise)]
            groups = channels if isinstance(layer, self.depthwise) else getattr(layer, "groups", 1)
            spec = ConvSpec(in_channels=channels, out_channels=out_channels, input_size=size, padding=padding,
                            groups=groups, bias=layer.use_bias, post_ops=chain, **common)
        except ValueError as error:
            raise ModelReadError(f"layer {name!r}: {error}") from None
        if spec.output_size != tuple(out_size):
            raise ModelReadError(f"layer {name!r}: its padding gives an output of {spec.output_size}, Keras says "
                                 f"{tuple(out_size)}")
        return [(tuple(names), spec)]

    @staticmethod
    def padding(mode: str, size, kernel, stride, dilation, folded):
        """Explicit (before, after) pairs: "same" by TensorFlow's rule, "causal" all before, plus folded pads."""
        pairs = []
        for dim, (i, k, s, d) in enumerate(zip(size, kernel, stride, dilation)):
            effective = (k - 1) * d + 1
            if mode == "same":
                total = max((-(-i // s) - 1) * s + effective - i, 0)
                pair = (total // 2, total - total // 2)
            elif mode == "causal":
                pair = (effective - 1, 0)
            else:
                pair = (0, 0)
            if folded is not None:
                pair = (pair[0] + folded[dim][0], pair[1] + folded[dim][1])
            pairs.append(pair)
        if folded is not None and mode != "valid":
            # "same" and "causal" are computed from the padded size the layer itself sees
            padded = [i + lo + hi for i, (lo, hi) in zip(size, folded)]
            own = _Reader.padding(mode, padded, kernel, stride, dilation, None)
            pairs = [(a + lo, b + hi) for (a, b), (lo, hi) in zip(own, folded)]
        return tuple(pairs)

    @staticmethod
    def transposed_padding(layer, size, out_size, kernel, stride, dilation):
        """(pairs, output_padding) of a transposed layer given the output size Keras computes: TensorFlow's
        conv_transpose crops the forward "same" padding of an output-sized input at the beginning (none for
        "valid") and ends where the output ends; what lies past the full result is output padding."""
        pairs, extra = [], []
        for i, o, k, s, d in zip(size, out_size, kernel, stride, dilation):
            effective = (k - 1) * d + 1
            before = max((-(-o // s) - 1) * s + effective - o, 0) // 2 if layer.padding == "same" else 0
            after = (i - 1) * s + effective - before - o
            pairs.append((before, max(after, 0)))
            extra.append(max(-after, 0))
        return tuple(pairs), tuple(extra)

    def epilogue(self, layer, y) -> tuple[PostOp, ...]:
        layers = self.keras.layers
        chain: list[PostOp] = []
        own = _activation(getattr(layer, "activation", None))
        if own is False:
            return ()
        if own is not None:
            chain.append(own)  # type: ignore[arg-type]
        current = y
        while id(current) not in self.graph.outputs and len(chain) < 16:
            consumers = self.graph.consumers.get(id(current), [])
            if len(consumers) != 1:
                break
            after, node = consumers[0]
            step: PostOp | None | bool = None
            if isinstance(after, layers.BatchNormalization):
                step = PostOp("batchnorm", alpha=float(after.epsilon))
            elif isinstance(after, layers.Activation):
                step = _activation(after.activation)
            elif isinstance(after, layers.ReLU):
                slope, top, threshold = float(after.negative_slope), after.max_value, float(after.threshold)
                if threshold != 0 or (top is not None and slope != 0):
                    step = False
                else:
                    step = PostOp("relu", alpha=slope) if top is None else PostOp("clip", alpha=0.0, beta=float(top))
            elif isinstance(after, layers.LeakyReLU):
                step = PostOp("relu", alpha=float(getattr(after, "negative_slope", getattr(after, "alpha", 0.3))))
            elif isinstance(after, layers.ELU):
                step = PostOp("elu", alpha=float(after.alpha))
            elif isinstance(after, layers.Add) and len(node.input_tensors) == 2:
                other = [t for t in node.input_tensors if t is not current]
                step = PostOp("sum") if len(other) == 1 and tuple(other[0].shape) == tuple(current.shape) else False
            if not isinstance(step, PostOp):
                break
            chain.append(step)
            current = node.output_tensors[0]
        return tuple(chain)


def _batch(options: ReadOptions) -> tuple[int | None, tuple[int, ...] | None]:
    """(batch, input shape without the batch) from --input-shape: HxWxC (batch 1) or NxHxWxC, under any name."""
    shapes = list(options.shapes.values())
    if not shapes:
        return None, None
    if len(shapes) > 1:
        raise ModelReadError("--input-shape: a Keras application has one input; give one shape")
    shape = shapes[0]
    return (shape[0], shape[1:]) if len(shape) == 4 else (None, shape)


def read_keras(source: str, options: ReadOptions) -> Model:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    batch, shape = _batch(options)
    if source.startswith(PREFIX):
        name = source[len(PREFIX):]
        factory = getattr(keras.applications, name, None)
        if not name or not callable(factory) or name[0].islower():
            known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
            raise ModelReadError(f"unknown Keras application {name!r} (keras.applications has {', '.join(known)})")
        try:
            model = factory(weights=None, **({"input_shape": shape} if shape else {}))
        except ValueError as error:
            raise ModelReadError(f"keras.applications.{name}: {' '.join(str(error).split())[:300]}") from None
        title = name
    else:
        if not os.path.isfile(source):
            raise ModelReadError(f"no such file: {source}")
        try:
            model = keras.saving.load_model(source, compile=False)
        except Exception as error:  # noqa: BLE001 - a damaged file, or a custom object Keras cannot rebuild
            raise ModelReadError(f"Keras cannot load it: {' '.join(str(error).split())[:300]}") from None
        title = os.path.splitext(os.path.basename(source))[0]
        if shape:
            raise ModelReadError("--input-shape: a saved .keras model has its own input shape (save it with another)")
    if not getattr(model, "inputs", None):
        raise ModelReadError("a subclassed Keras model has no graph to read: save a functional or sequential one")
    own = "" if source.startswith(PREFIX) else options.weights  # an application built with weights=None has none
    return Model(source, title, "keras", tuple(_Reader(keras, model, batch, title, own).layers()))


class KerasModelReader:
    name = "keras"
    sources = "keras:APPLICATION (keras.applications, built without weights), FILE.keras"

    def claims(self, source: str) -> bool:
        return source.startswith(PREFIX) or source.lower().endswith(".keras")

    def read(self, source: str, options: ReadOptions) -> Model:
        return read_keras(source, options)


@hookimpl
def convparity_register_model_readers(register):
    register(KerasModelReader())
