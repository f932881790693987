"""Model reader for PyTorch (`--model torch:package.module:factory`, `torchvision:resnet50`, `timm:NAME`): every
convolution the model runs on an input of --input-shape, recorded on the meta device.

The factory (any callable returning an nn.Module; a module-level nn.Module instance also works) is called under
`torch.device("meta")`, so parameters take no memory and nothing is initialised; a factory that needs real values
while it builds (`.item()` of a tensor) is built again with only its parameters and buffers moved to the meta
device. The model runs once, in eval mode and without gradients, on a meta tensor, inside a TorchDispatchMode that
records every aten.convolution (nn.Conv*d, nn.ConvTranspose*d, F.conv*d alike) with the qualified name of the
module that ran it; a zero constant pad right before a convolution (F.pad, nn.ZeroPad2d, padding="same" with an
even kernel) is folded into its padding. `--input-shape` gives the input (any name: x=1x3x224x224); torchvision
and timm models default to 1x3x224x224.

The epilogue: while the convolution's output has one consumer, batch norm (eval), relu, leaky_relu, hardtanh
(relu6), clamp, silu, gelu, sigmoid, tanh, elu, hardswish, hardsigmoid, mish, softplus, and an add of a tensor of
the output's shape (a residual: sum); x * sigmoid(x) written out is swish.

torchvision and timm names need those packages to import with the installed torch: the torchvision wheel on the
package index does not load with this CPU build of torch, so `torchvision:` (and timm, which imports it) say so
and `torch:` factories are the way to read such models here.
"""

from __future__ import annotations

import importlib
import math

from convparity.plugin import ConvSpec, Model, ModelLayer, ModelReadError, PostOp, ReadOptions, hookimpl

PREFIXES = ("torch:", "torchvision:", "timm:")
DEFAULT_INPUT = (1, 3, 224, 224)
# aten ops after a convolution that are post-ops: name -> (kind, alpha, beta) or a function of the call's args
ELTWISE = {"relu": ("relu", 0.0, 0.0), "silu": ("swish", 1.0, 0.0), "sigmoid": ("logistic", 0.0, 0.0),
           "tanh": ("tanh", 0.0, 0.0), "mish": ("mish", 0.0, 0.0), "hardswish": ("hardswish", 1 / 6, 0.5),
           "hardsigmoid": ("hardsigmoid", 1 / 6, 0.5), "exp": ("exp", 0.0, 0.0), "abs": ("abs", 0.0, 0.0)}
BATCH_NORMS = ("_native_batch_norm_legit_no_training", "native_batch_norm", "batch_norm",
               "_native_batch_norm_legit", "cudnn_batch_norm")
DTYPES = {"float32": "float32", "float64": "float64", "float16": "float16", "bfloat16": "bfloat16"}


def _factory(source: str):
    """(the callable that builds the model, its title, the default input shape or None)."""
    prefix, _, rest = source.partition(":")
    if prefix == "torch":
        module_name, colon, attribute = rest.partition(":")
        if not module_name or not colon or not attribute:
            raise ModelReadError("write the factory as torch:package.module:function")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:  # noqa: BLE001 - any import failure of the user's module
            raise ModelReadError(f"module {module_name!r} does not import: {type(error).__name__}: "
                                 f"{' '.join(str(error).split())[:200]}") from None
        found = getattr(module, attribute, None)
        if found is None:
            raise ModelReadError(f"module {module_name!r} has no {attribute!r}")
        return found, attribute, None
    library = {"torchvision": "torchvision.models", "timm": "timm"}[prefix]
    try:
        package = importlib.import_module(library)
    except Exception as error:  # noqa: BLE001 - e.g. torchvision's compiled ops built for another torch
        raise ModelReadError(f"{prefix} does not import here ({type(error).__name__}: "
                             f"{' '.join(str(error).split())[:160]}); read the model through a factory of your "
                             "own instead: torch:package.module:function") from None
    if prefix == "torchvision":
        if rest not in package.list_models():
            raise ModelReadError(f"unknown torchvision model {rest!r}")
        return (lambda: package.get_model(rest, weights=None)), rest, DEFAULT_INPUT
    if not package.is_model(rest):
        raise ModelReadError(f"unknown timm model {rest!r}")
    return (lambda: package.create_model(rest, pretrained=False)), rest, DEFAULT_INPUT


def _build(torch, factory):
    """The model on the meta device (see the module docstring)."""
    from torch import nn

    if isinstance(factory, nn.Module):
        return factory.to("meta")
    if not callable(factory):
        raise ModelReadError(f"{factory!r} is neither an nn.Module nor a callable returning one")
    try:
        with torch.device("meta"):
            model = factory()
    except Exception:  # noqa: BLE001 - needs real values while it builds: move only what it registers
        register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

        def parameter(self, name, value):
            register_parameter(self, name, value)
            if value is not None:
                self._parameters[name] = nn.Parameter(value.to("meta"), requires_grad=value.requires_grad)

        def buffer(self, name, value, persistent=True):
            register_buffer(self, name, None if value is None else value.to("meta"), persistent)

        nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
        try:
            model = factory()
        except Exception as error:  # noqa: BLE001 - the factory's own failure, named
            raise ModelReadError(f"the factory raised {type(error).__name__}: "
                                 f"{' '.join(str(error).split())[:200]}") from None
        finally:
            nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer
    if not isinstance(model, nn.Module):
        raise ModelReadError(f"the factory returned {type(model).__name__}, not an nn.Module")
    return model


def _recorder(torch, model):
    """A TorchDispatchMode that records every aten call (inputs, outputs, the module running) for the reading."""
    from torch import nn
    from torch.utils._python_dispatch import TorchDispatchMode

    names = {id(module): name for name, module in model.named_modules()}

    class Recorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.events: list[dict] = []
            self.stack: list[str] = []
            self.version: dict[int, int] = {}
            self.producer: dict[tuple[int, int], int] = {}
            self.consumers: dict[tuple[int, int], list[int]] = {}
            self.alive: list = []  # every tensor seen stays alive, so that no id is reused

        def key(self, tensor) -> tuple[int, int]:
            return id(tensor), self.version.get(id(tensor), 0)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            inputs = [a for a in _flat(list(args) + list(kwargs.values())) if isinstance(a, torch.Tensor)]
            outputs = [o for o in _flat([out]) if isinstance(o, torch.Tensor)]
            index = len(self.events)
            keys = [self.key(t) for t in inputs]
            for key in dict.fromkeys(keys):
                self.consumers.setdefault(key, []).append(index)
            if func._schema.is_mutable:
                for tensor in outputs:
                    self.version[id(tensor)] = self.version.get(id(tensor), 0) + 1
            out_keys = [self.key(t) for t in outputs]
            for key in out_keys:
                self.producer[key] = index
            self.alive += inputs + outputs
            self.events.append({"op": func.overloadpacket.__name__, "args": args, "kwargs": kwargs, "in": keys,
                                "out": out_keys, "module": self.stack[-1] if self.stack else ""})
            return out

    recorder = Recorder()

    def entered(module, args):
        recorder.stack.append(names.get(id(module), type(module).__name__))

    def left(module, args, output):
        if recorder.stack:
            recorder.stack.pop()

    hooks = (nn.modules.module.register_module_forward_pre_hook(entered),
             nn.modules.module.register_module_forward_hook(left))
    return recorder, hooks


def _flat(values) -> list:
    found = []
    for value in values:
        if isinstance(value, (list, tuple)):
            found += _flat(value)
        else:
            found.append(value)
    return found


def _step(event, current, rec) -> PostOp | None:
    """The post-op of `event` applied to the chain's tensor `current`, or None where the chain stops."""
    op, args, kwargs = event["op"], event["args"], event["kwargs"]
    base = op.rstrip("_")
    if op in BATCH_NORMS and event["in"][0] == current:
        if op == "_native_batch_norm_legit_no_training":
            eps = args[6] if len(args) > 6 else kwargs.get("eps", 1e-5)
        elif op in ("native_batch_norm", "batch_norm", "cudnn_batch_norm"):
            training = args[5] if len(args) > 5 else kwargs.get("training", False)
            if training:
                return None
            eps = args[7] if len(args) > 7 else kwargs.get("eps", 1e-5)
        else:
            return None
        return PostOp("batchnorm", alpha=float(eps))
    if base in ELTWISE:
        kind, alpha, beta = ELTWISE[base]
        return PostOp(kind, alpha=alpha, beta=beta)
    if base == "leaky_relu":
        return PostOp("relu", alpha=float(args[1] if len(args) > 1 else kwargs.get("negative_slope", 0.01)))
    if base == "elu":
        alpha, scale, input_scale = (list(args[1:4]) + [1.0, 1.0, 1.0])[:3]
        return PostOp("elu", alpha=float(alpha)) if scale == 1 and input_scale == 1 else None
    if base == "gelu":
        return PostOp("gelu_tanh" if kwargs.get("approximate", "none") == "tanh" else "gelu_erf")
    if base == "softplus":
        beta, threshold = (list(args[1:3]) + [1.0, 20.0])[:2]
        return PostOp("soft_relu", alpha=float(beta)) if beta == 1 else None
    if base in ("hardtanh", "clamp"):
        low = args[1] if len(args) > 1 else kwargs.get("min_val", kwargs.get("min"))
        high = args[2] if len(args) > 2 else kwargs.get("max_val", kwargs.get("max"))
        if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
            return PostOp("relu") if low == 0 and high is None else None
        return PostOp("clip", alpha=float(low), beta=float(high))
    if base == "add" and len(event["in"]) == 2 and current in event["in"]:
        other = event["in"][1] if event["in"][0] == current else event["in"][0]
        scale = kwargs.get("alpha", 1)
        tensors = [a for a in args if hasattr(a, "shape")]
        if other == current or len(tensors) != 2 or tuple(tensors[0].shape) != tuple(tensors[1].shape):
            return None
        if event["in"][1] == current and scale != 1:
            return None  # other + alpha * chain: not a sum post-op
        return PostOp("sum", scale=float(scale))
    return None


def _epilogue(rec, output) -> tuple[PostOp, ...]:
    chain: list[PostOp] = []
    current = output
    while len(chain) < 16:
        consumers = rec.consumers.get(current, [])
        if len(consumers) == 2:  # x * sigmoid(x)
            events = {rec.events[i]["op"]: rec.events[i] for i in consumers}
            gate, multiply = events.get("sigmoid"), events.get("mul")
            if gate is not None and multiply is not None and gate["out"][0] in multiply["in"]:
                chain.append(PostOp("swish", alpha=1.0))
                current = multiply["out"][0]
                continue
        if len(consumers) != 1:
            break
        event = rec.events[consumers[0]]
        step = _step(event, current, rec)
        if step is None:
            break
        chain.append(step)
        current = event["out"][0]
    return tuple(chain)


def _layer(rec, index: int, depth: int) -> ModelLayer:
    event = rec.events[index]
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = event["args"][:9]
    rank = x.dim() - 2
    name = event["module"] or "<model>"
    names = [name]
    pairs = tuple((p, p) for p in padding)
    size = tuple(x.shape[2:])
    key = event["in"][0]
    while not transposed and (producer := rec.producer.get(key)) is not None \
            and rec.events[producer]["op"] == "constant_pad_nd" and len(rec.consumers.get(key, [])) == 1:
        pad_event = rec.events[producer]
        pads = list(pad_event["args"][1])
        fill = pad_event["args"][2] if len(pad_event["args"]) > 2 else pad_event["kwargs"].get("value", 0)
        if fill != 0 or len(pads) > 2 * rank or any(p < 0 for p in pads):
            break
        pads += [0] * (2 * rank - len(pads))
        # constant_pad_nd lists the last dim first: (last_before, last_after, previous_before, ...)
        extra = [(pads[2 * (rank - 1 - d)], pads[2 * (rank - 1 - d) + 1]) for d in range(rank)]
        pairs = tuple((a + c, b + d) for (a, b), (c, d) in zip(pairs, extra))
        size = tuple(pad_event["args"][0].shape[2:])
        names.append(f"{pad_event['module'] or '<model>'}:pad")
        key = pad_event["in"][0]
    dtype = DTYPES.get(str(x.dtype).removeprefix("torch."))
    if dtype is None:
        raise ModelReadError(f"layer {name!r}: input dtype {x.dtype} is not one convparity computes")
    if transposed:
        in_channels, out_channels = w.shape[0], w.shape[1] * groups
    else:
        in_channels, out_channels = w.shape[1] * groups, w.shape[0]
    try:
        spec = ConvSpec(batch=x.shape[0], in_channels=in_channels, out_channels=out_channels, input_size=size,
                        kernel_size=tuple(w.shape[2:]), stride=tuple(stride), padding=pairs, dilation=tuple(dilation),
                        groups=groups, bias=bias is not None, dtype=dtype, transposed=bool(transposed),
                        output_padding=tuple(output_padding) if transposed else (0,) * rank,
                        post_ops=_epilogue(rec, event["out"][0]))
    except ValueError as error:
        raise ModelReadError(f"layer {name!r}: {error}") from None
    return ModelLayer(tuple(names), spec, depth)


def read_torch(source: str, options: ReadOptions) -> Model:
    import torch

    factory, title, default_shape = _factory(source)
    shapes = list(options.shapes.values())
    if len(shapes) > 1:
        raise ModelReadError("--input-shape: give the one input the model's forward takes")
    shape = shapes[0] if shapes else default_shape
    if shape is None:
        raise ModelReadError("give the model's input shape with --input-shape x=DIMS, e.g. x=1x3x224x224")
    model = _build(torch, factory)
    model.eval()
    recorder, hooks = _recorder(torch, model)
    try:
        with torch.no_grad(), recorder:
            model(torch.empty(shape, device="meta"))
    except Exception as error:  # noqa: BLE001 - the model's forward on the meta device: named
        raise ModelReadError(f"the model's forward on a meta tensor of shape {'x'.join(map(str, shape))} raised "
                             f"{type(error).__name__}: {' '.join(str(error).split())[:200]}") from None
    finally:
        for hook in hooks:
            hook.remove()
    convolutions = [i for i, event in enumerate(recorder.events) if event["op"] == "convolution"]
    return Model(source, title, "torch", tuple(_layer(recorder, index, depth)
                                                for depth, index in enumerate(convolutions)))


class TorchModelReader:
    name = "torch"
    sources = "torch:PACKAGE.MODULE:FACTORY, torchvision:NAME, timm:NAME (built on the meta device)"

    def claims(self, source: str) -> bool:
        return source.startswith(PREFIXES)

    def read(self, source: str, options: ReadOptions) -> Model:
        return read_torch(source, options)


@hookimpl
def convparity_register_model_readers(register):
    register(TorchModelReader())
