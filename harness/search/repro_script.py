"""Standalone reproduction scripts: one short Python file per finding, to paste into an upstream issue.

A script imports only NumPy and the framework. It draws the case's inputs (the same generator and
seed as convparity), casts them to the dtype in the framework, runs the framework's forward and
backward the way the convparity plugin does, and computes what they should be with plain float64
loops written out in the script. It prints both and their difference for every tensor and checks
the tensors the finding is about under convparity's rounding-error bound
(|out - ref| <= gamma(K, u_acc) * mag + u_out * |ref| + eta): exit status 1 while they disagree,
0 once the framework is fixed.

Templates exist for the built-in backends torch (and torch-channels_last, torch-cuda), tensorflow,
keras, jax and onnxruntime. Any other backend gets a script that runs it through convparity's
plugin manager (not standalone; it says so in its first lines).
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from pathlib import Path

from convparity.harness.backends.manager import PluginSelection
from convparity.harness.cases.inputs import case_seed
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.evaluation.bound import UNDERFLOW
from convparity.harness.vocabulary import UNIT_ROUNDOFF

HEADER = '''\
#!/usr/bin/env python3
"""$title

$backend ($version) $problem in $dtype
(case $descriptor, bias $bias_word).
Cases seen failing this way: $rule.
Expected values come from plain float64 loops below; a tensor passes when every element is within the
rounding-error bound |out - ref| <= gamma(K, u_acc) * mag + u_out * |ref| + eta (err_ratio <= 1), where mag
is the same computation on absolute values and K the number of products per element.
Exit status 1 while $wrong, 0 once $right.
$note"""
import itertools
import math
${os}import sys

$imports

N, C, OC, G = $batch, $in_channels, $out_channels, $groups  # batch, in/out channels, groups
IN, K, S, D = $input_size, $kernel_size, $stride, $dilation  # input, kernel, stride, dilation per dim
PAD = $padding  # (before, after) per dim; negative crops
DTYPE, BIAS, CHECK = "$dtype", $bias, $check
U_ACC, U_OUT, ETA = $u_acc, $u_out, $eta  # unit roundoffs of the accumulation and output, half the subnormal
OUT = tuple((i + lo + hi - (k - 1) * d - 1) // s + 1 for i, k, s, d, (lo, hi) in zip(IN, K, S, D, PAD))
'''

INPUTS = '''
# convparity's inputs for this case: uniform(-1, 1), w scaled by 1 / sqrt(fan-in)
rng = np.random.default_rng($seed)
x = rng.uniform(-1.0, 1.0, (N, C, *IN))
w = rng.uniform(-1.0, 1.0, (OC, C // G, *K)) / math.sqrt(C // G * math.prod(K))
b = rng.uniform(-1.0, 1.0, (OC,)) if BIAS else None
dy = rng.uniform(-1.0, 1.0, (N, OC, *OUT))


def loops(x, w, b, dy):
    """y (N, OC, *OUT), dx (N, C, *IN), dw (OC, C/G, *K), db (OC,) by plain loops in float64."""
    y, dx, dw = np.zeros((N, OC, *OUT)), np.zeros(x.shape), np.zeros(w.shape)
    per_group_in, per_group_out = C // G, OC // G
    for n, o in itertools.product(range(N), range(OC)):
        first = o // per_group_out * per_group_in  # the group's first input channel
        for p in itertools.product(*map(range, OUT)):
            total = 0.0 if b is None else b[o]
            for c, q in itertools.product(range(per_group_in), itertools.product(*map(range, K))):
                i = tuple(pj * sj + qj * dj - lo for pj, qj, sj, dj, (lo, _) in zip(p, q, S, D, PAD))
                if all(0 <= ij < size for ij, size in zip(i, IN)):
                    total += w[(o, c, *q)] * x[(n, first + c, *i)]
                    dx[(n, first + c, *i)] += w[(o, c, *q)] * dy[(n, o, *p)]
                    dw[(o, c, *q)] += x[(n, first + c, *i)] * dy[(n, o, *p)]
            y[(n, o, *p)] = total
    db = None if b is None else np.array([sum(dy[n, o][p] for n in range(N) for p in np.ndindex(*OUT))
                                          for o in range(OC)])
    return {"y": y, "dx": dx, "dw": dw, "db": db}
'''

CHECK = '''

def check(name, out, ref, mag, k):
    """True when every element is within the bound; prints the err_ratio, and the values when wrong or in CHECK."""
    gamma = k * U_ACC / (1 - k * U_ACC)
    bound = gamma * mag + U_OUT * np.abs(ref) + ETA
    err = np.abs(out - ref)
    ratio = float(np.max(np.where(err == 0, 0.0, err / bound), initial=0.0))
    ok = bool(np.all(np.isfinite(out)) and ratio <= 1)
    print(f"{name}: err_ratio {ratio:.3g} ({'ok' if ok else 'WRONG'}), max |difference| {float(err.max()):.3g}")
    if name in CHECK or not ok:
        with np.printoptions(precision=6, suppress=True, linewidth=110, threshold=60):
            print(f"  {framework_name}:\\n{out}\\n  expected:\\n{ref}\\n  difference:\\n{out - ref}")
    return ok


framework_name = $framework_name
used, outputs = run(x, w, b, dy)
expected = loops(*used)
magnitude = loops(*(None if a is None else np.abs(a) for a in used))
reductions = {"y": C // G * math.prod(K) + BIAS, "dx": OC // G * math.prod(K), "dw": N * math.prod(OUT),
              "db": N * math.prod(OUT)}
wrong = []
for name in ("y", "dx", "dw", "db"):
    compared = outputs.get(name) is not None and expected[name] is not None
    if compared and not check(name, outputs[name], expected[name], magnitude[name], reductions[name]):
        wrong += [name] if name in CHECK else []
print("still wrong: " + " ".join(wrong) if wrong else "fixed: " + " ".join(CHECK) + " agree")
sys.exit(1 if wrong else 0)
'''

TORCH = (("import torch",), "", '''
DEVICE, CHANNELS_LAST = "$device", $channels_last


def run(x, w, b, dy):
    """The plugin's way: symmetric padding in the conv, the rest (asymmetric, crops) by F.pad; autograd."""
    functional = torch.nn.functional
    if DEVICE == "cuda":  # IEEE float32, deterministic kernels
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False

    def tensor(a):
        source = np.asarray(a, dtype=np.float32 if DTYPE == "bfloat16" else DTYPE)  # NumPy rounds, as convparity
        t = torch.from_numpy(source).to(DEVICE, getattr(torch, DTYPE))
        if CHANNELS_LAST and t.dim() == len(IN) + 2:
            t = t.contiguous(memory_format=torch.channels_last_3d if len(IN) == 3 else torch.channels_last)
        return t

    xt, wt, dyt = tensor(x), tensor(w), tensor(dy)
    bt = None if b is None else tensor(b)
    leaves = [t.requires_grad_() for t in (xt, wt, bt) if t is not None]
    symmetric = [max(min(lo, hi), 0) for lo, hi in PAD]
    extra = [a for (lo, hi), s in zip(reversed(PAD), reversed(symmetric)) for a in (lo - s, hi - s)]
    conv = (functional.conv1d, functional.conv2d, functional.conv3d)[len(IN) - 1]
    y = conv(functional.pad(xt, extra) if any(extra) else xt, wt, bt, stride=S, padding=symmetric, dilation=D,
             groups=G)
    grads = torch.autograd.grad(y, leaves, dyt)
    as64 = [t.detach().cpu().double().numpy() for t in (xt, wt, bt, dyt) if t is not None]
    used = (as64[0], as64[1], as64[2] if b is not None else None, as64[-1])
    names = ("y", "dx", "dw", "db")
    return used, {n: t.detach().cpu().double().numpy() for n, t in zip(names, (y, *grads))}
''')

TENSORFLOW = ((), '''os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
import tensorflow as tf  # noqa: E402''', '''

def run(x, w, b, dy):
    """The plugin's way: channels-last tf.nn.conv2d/conv3d (rank 1 as rank 2 with a height-1 dim), bias_add,
    tf.GradientTape; eager, or XLA-compiled where the eager CPU kernels refuse the case."""
    as_rank2 = len(IN) == 1
    pads = ((0, 0),) * as_rank2 + PAD
    strides, dilations = (1,) * as_rank2 + S, (1,) * as_rank2 + D
    crop = (slice(None), *(slice(max(-lo, 0), hi if hi < 0 else None) for lo, hi in pads), slice(None))
    positive = [[0, 0], *([max(lo, 0), max(hi, 0)] for lo, hi in pads), [0, 0]]

    def cast(a):
        return tf.cast(tf.constant(a, tf.float64), DTYPE).numpy()

    def lift(a):  # rank 1 as rank 2: a height-1 dim after the channels
        return a.reshape(a.shape[:2] + (1,) * as_rank2 + a.shape[2:])

    xc, wc, dyc = cast(x), cast(w), cast(dy)
    bc = None if b is None else cast(b)
    xt, dyt = np.moveaxis(lift(xc), 1, -1), np.moveaxis(lift(dyc), 1, -1)  # (N, *in, C), (N, *out, OC)
    wt = np.transpose(lift(wc), (*range(2, 2 + len(pads)), 1, 0))  # (*k, C/G, OC)

    def step(x, w, dy, b):
        sources = [x, w] + ([] if b is None else [b])
        with tf.GradientTape() as tape:
            tape.watch(sources)
            if len(pads) == 3:
                y = tf.nn.conv3d(tf.pad(x[crop], positive), w, [1, *strides, 1], "VALID", dilations=[1, *dilations, 1])
            else:
                y = tf.nn.conv2d(x[crop], w, strides, positive, dilations=dilations)
            y = y if b is None else tf.nn.bias_add(y, b)
        return [y, *tape.gradient(y, sources, output_gradients=dy)]

    arrays = (xt, wt, dyt, bc)
    with tf.device("/CPU:0"):
        try:
            results = step(*(None if a is None else tf.constant(a) for a in arrays))
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            results = tf.function(step, jit_compile=True, autograph=False)(*arrays)
    y, dx, dw, *db = [np.asarray(t, dtype=np.float64) for t in results]
    rank = len(pads)
    used = tuple(None if a is None else a.astype(np.float64) for a in (xc, wc, bc, dyc))
    return used, {"y": np.moveaxis(y, -1, 1).reshape(N, OC, *OUT), "dx": np.moveaxis(dx, -1, 1).reshape(N, C, *IN),
                  "dw": np.transpose(dw, (rank + 1, rank, *range(rank))).reshape(OC, C // G, *K),
                  "db": db[0] if db else None}
''')

KERAS = ((), '''os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # errors only
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402''', '''

def run(x, w, b, dy):
    """The plugin's way: a Keras Conv{1,2,3}D layer, data_format="channels_first", weights set with set_weights,
    the input cropped and padded with keras.ops (or the layer's own "same"), gradients by tf.GradientTape in a
    tf.function (XLA-compiled where TensorFlow's CPU kernels refuse the graph)."""
    is_same = $same  # PAD is TensorFlow's "same" padding: the layer's own padding="same"
    layer = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)[len(IN) - 1](
        filters=OC, kernel_size=K, strides=S, padding="same" if is_same else "valid", data_format="channels_first",
        dilation_rate=D, groups=G, use_bias=BIAS, dtype=DTYPE)
    padded = IN if is_same else tuple(i + lo + hi for i, (lo, hi) in zip(IN, PAD))
    layer.build((N, C, *padded))

    def cast(a):
        return tf.cast(tf.constant(a, tf.float64), DTYPE).numpy()

    xc, wc, dyc = cast(x), cast(w), cast(dy)
    bc = None if b is None else cast(b)
    layer.set_weights([np.transpose(wc, (*range(2, wc.ndim), 1, 0))] + ([] if bc is None else [bc]))
    crop = (slice(None), slice(None), *(slice(max(-lo, 0), hi if hi < 0 else None) for lo, hi in PAD))
    pads = [[0, 0], [0, 0], *([max(lo, 0), max(hi, 0)] for lo, hi in PAD)]

    def step(x, dy):
        weights = [layer.kernel.value] + ([layer.bias.value] if BIAS else [])
        with tf.GradientTape() as tape:
            tape.watch([x, *weights])
            y = layer(x if is_same else keras.ops.pad(x[crop], pads))
        return [y, *tape.gradient(y, [x, *weights], output_gradients=dy)]

    with tf.device("/CPU:0"):
        try:
            results = tf.function(step, autograph=False)(tf.constant(xc), tf.constant(dyc))
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            results = tf.function(step, jit_compile=True, autograph=False)(xc, dyc)
    y, dx, dk, *db = [np.asarray(t, dtype=np.float64) for t in results]
    used = tuple(None if a is None else a.astype(np.float64) for a in (xc, wc, bc, dyc))
    dw = np.transpose(dk, (dk.ndim - 1, dk.ndim - 2, *range(dk.ndim - 2)))
    return used, {"y": y, "dx": dx, "dw": dw, "db": db[0] if db else None}
''')

JAX = (("import jax",), 'jax.config.update("jax_enable_x64", True)', '''

def run(x, w, b, dy):
    """The plugin's way: lax.conv_general_dilated at Precision.HIGHEST (NCHW, OIHW) plus b, jax.vjp, jitted."""
    lax, jnp = jax.lax, jax.numpy
    spatial = "DHW"[-len(IN):]
    cast = [None if a is None else jnp.asarray(a, jnp.float64).astype(DTYPE) for a in (x, w, b, dy)]

    def forward(x, w, b):
        y = lax.conv_general_dilated(x, w, window_strides=S, padding=PAD, rhs_dilation=D, feature_group_count=G,
                                     dimension_numbers=("NC" + spatial, "OI" + spatial, "NC" + spatial),
                                     precision=lax.Precision.HIGHEST)
        return y if b is None else y + b.reshape((1, -1) + (1,) * len(IN))

    @jax.jit
    def forward_backward(x, w, b, dy):
        y, pullback = jax.vjp(forward, x, w, b)
        return (y, *pullback(dy))

    results = forward_backward(*cast)
    used = tuple(None if a is None else np.asarray(a, dtype=np.float64) for a in cast)
    return used, {n: None if t is None else np.asarray(t, dtype=np.float64)
                  for n, t in zip(("y", "dx", "dw", "db"), results)}
''')

ONNXRUNTIME = (("import onnx", "import onnxruntime", "from onnx import helper"), "", '''

def run(x, w, b, dy):
    """The plugin's way: one ONNX Conv node (opset 22) on the CPU execution provider; forward only."""
    element = {"float64": onnx.TensorProto.DOUBLE, "float32": onnx.TensorProto.FLOAT,
               "float16": onnx.TensorProto.FLOAT16, "bfloat16": onnx.TensorProto.BFLOAT16}[DTYPE]
    names = ["x", "w", "b"] if BIAS else ["x", "w"]
    shapes = {"x": (N, C, *IN), "w": (OC, C // G, *K), "b": (OC,)}
    node = helper.make_node("Conv", names, ["y"], kernel_shape=list(K), strides=list(S), dilations=list(D),
                            pads=[lo for lo, _ in PAD] + [hi for _, hi in PAD], group=G)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info(n, element, shapes[n]) for n in names],
                              [helper.make_tensor_value_info("y", element, [N, OC, *OUT])])
    opsets = [helper.make_opsetid("", 22)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets))
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    if DTYPE == "bfloat16":
        import ml_dtypes  # onnxruntime takes NumPy arrays of ml_dtypes.bfloat16

        numpy_dtype = ml_dtypes.bfloat16
    else:
        numpy_dtype = np.dtype(DTYPE)
    cast = {"x": x.astype(numpy_dtype), "w": w.astype(numpy_dtype), "b": None if b is None else b.astype(numpy_dtype)}
    (y,) = session.run(["y"], {n: cast[n] for n in names})
    used = tuple(None if a is None else np.asarray(a, dtype=np.float64) for a in (cast["x"], cast["w"], cast["b"], dy))
    return used, {"y": np.asarray(y, dtype=np.float64), "dx": None, "dw": None, "db": None}
''')

THROUGH_CONVPARITY = ((), '''sys.path.insert(0, $root)  # the convparity checkout that found this
os.environ.setdefault("CONVPARITY_PLUGINS", $only)
os.environ.setdefault("CONVPARITY_EXTRA_PLUGINS", $extra)
from convparity.harness.backends.manager import get_manager  # noqa: E402
from convparity.harness.cases.spec import ConvSpec  # noqa: E402
from convparity.harness.vocabulary import numpy_dtype  # noqa: E402''', '''
BACKEND = $backend_name



def run(x, w, b, dy):
    """The backend as convparity runs it: its plugin's run(spec, x, w, b, dy) on inputs cast to the dtype."""
    spec = ConvSpec(batch=N, in_channels=C, out_channels=OC, input_size=IN, kernel_size=K, stride=S, padding=PAD,
                    dilation=D, groups=G, bias=BIAS, dtype=DTYPE)
    cast = [None if a is None else a.astype(numpy_dtype(DTYPE)) for a in (x, w, b, dy)]
    results = get_manager().backends()[BACKEND].run(spec, *cast)
    used = tuple(None if a is None else a.astype(np.float64) for a in cast)
    return used, {n: None if t is None else np.asarray(t, dtype=np.float64)
                  for n, t in zip(("y", "dx", "dw", "db"), results)}
''')

TEMPLATES = {
    "torch": (TORCH, "torch", {"device": "cpu", "channels_last": "False"}),
    "torch-channels_last": (TORCH, "torch", {"device": "cpu", "channels_last": "True"}),
    "torch-cuda": (TORCH, "torch", {"device": "cuda", "channels_last": "False"}),
    "tensorflow": (TENSORFLOW, "tensorflow", {}),
    "keras": (KERAS, "keras", {}),  # "same" is filled in per case
    "jax": (JAX, "jax", {}),
    "onnxruntime": (ONNXRUNTIME, "onnxruntime", {}),
}


def is_standalone(backend: str) -> bool:
    """Whether `backend` has a template that needs only NumPy and its framework."""
    return backend in TEMPLATES


def _fill(template: str, values: Mapping[str, object]) -> str:
    return string.Template(template).substitute({k: str(v) for k, v in values.items()})


def script_text(spec: ConvSpec, *, backend: str, version: str, tensors: tuple[str, ...], seed: int, rule: str,
                accumulation: str = "", plugins: PluginSelection | None = None) -> str:
    """The whole script for one case on one backend; `tensors` are the ones whose disagreement it reports.

    accumulation: the precision the bound assumes (the backend's declaration; default float64 for
    float64 inputs, float32 otherwise); plugins: the selection a script without a template loads.
    """
    accumulation = accumulation or ("float64" if spec.dtype == "float64" else "float32")
    if is_standalone(backend):
        (imports, setup, run), framework, values = TEMPLATES[backend]
        if backend == "keras":
            values = {"same": str(spec.padding == spec.replace(padding="same").padding)}
        note = ""
    else:
        (imports, setup, run), framework = THROUGH_CONVPARITY, backend
        plugins = plugins or PluginSelection.from_environment()
        values = {"root": repr(str(Path(__file__).resolve().parents[2])), "backend_name": repr(backend),
                  "only": repr(",".join(plugins.only) if plugins.only is not None else ""),
                  "extra": repr(",".join(plugins.extra))}
        note = f"\nNo standalone template for backend {backend!r}: this script runs it through convparity's plugins.\n"
    if tensors:
        listed = " and ".join(tensors)
        verb = "disagrees" if len(tensors) == 1 else "disagree"
        title = f"{framework}: {listed} of a convolution {verb} with a float64 reference"
        problem, wrong, right = f"computes a convolution's {listed} wrong", f"{listed} {verb}", "they agree"
    else:  # an error or a crash
        title = f"{framework}: a convolution fails to run"
        problem, wrong, right = "fails to run a convolution", "it fails", "it runs (and agrees)"
    header = _fill(HEADER, {
        "title": title, "backend": backend, "version": version, "problem": problem, "wrong": wrong, "right": right,
        "dtype": spec.dtype, "descriptor": spec.descriptor, "bias_word": "on" if spec.bias else "off", "rule": rule,
        "note": note, "imports": _imports(imports, _fill(setup, values)),
        "os": "import os\n" if "os." in setup else "", "batch": spec.batch, "in_channels": spec.in_channels,
        "out_channels": spec.out_channels, "groups": spec.groups, "input_size": spec.input_size,
        "kernel_size": spec.kernel_size, "stride": spec.stride, "dilation": spec.dilation, "padding": spec.padding,
        "bias": spec.bias, "check": tuple(map(str, tensors)), "u_acc": _power_of_two(UNIT_ROUNDOFF[accumulation]),
        "u_out": _power_of_two(UNIT_ROUNDOFF[spec.dtype]), "eta": _power_of_two(UNDERFLOW[spec.dtype]),
    })
    parts = [header, _fill(run, values), _fill(INPUTS, {"seed": case_seed(spec, seed)}),
             _fill(CHECK, {"framework_name": repr(backend)})]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"


def _imports(lines: tuple[str, ...], setup: str) -> str:
    """NumPy's and the framework's imports in isort's order, then any setup lines."""
    ordered = sorted(("import numpy as np", *lines), key=lambda line: (line.startswith("from"), line.split()[1]))
    return "\n".join(ordered) + (f"\n\n{setup}" if setup else "")


def _power_of_two(value: float) -> str:
    """2.0**-24 rather than 5.96e-08 (0.0 for what underflows: half of float64's smallest subnormal)."""
    if value == 0:
        return "0.0"
    exponent = math.log2(value)
    return f"2.0**{int(exponent)}" if exponent == int(exponent) else repr(value)


def write_script(path: Path, text: str) -> Path:
    """Write the script (executable by its owner) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path

