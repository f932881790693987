"""A user's model as cases: every convolution it runs, with its names, its depth and its epilogue.

A model reader (a plugin: harness.backends.model_readers) turns a source (a model file, an application name, a
factory) into `ModelLayer`s, one per convolution the model runs, in the order it runs them (`depth`). Each layer's
`ConvSpec` carries what the graph fuses after the convolution as its post-op chain (batchnorm, an activation, a
residual sum), its data types and, for a quantized model, its scales and zero points. A `Model` is the layers of
one source; identical layers are one case with a multiplicity (`LayerGroup.count`, benchdnn's `*N`), so a run
computes each distinct layer once and the model view (harness.reporting.model_view) reports every layer.

A model's layers travel as plain JSON: in run.json's case selection (a resume draws the same cases without reading
the model again) and in the run folder's models.json (MODELS_FILE), which the reports read. A layer is stored as
its canonical descriptor (attributes included, harness.cases.descriptor), its dtype and bias.

`--input-shape NAME=1x3x224x224` fixes an input's shape (`parse_input_shape`); the options a reader gets are
`ReadOptions`.

`--weights`: the model's own weights instead of drawn ones (as benchdnn's --buffer-prefix loads real buffers), to
catch what depends on them (a quantized layer's codes near the top of their range, a saturation). A reader given
`ReadOptions.weights` (a folder) writes each layer's w, b (and a quantized layer's per-channel w_scale) to a .npz
file there with `write_weights` and names it in `ModelLayer.weights`; such a layer is a case of its own (layers with
the same spec have other weights), drawn with the InputStyle `weights:PATH` (harness.cases.inputs): x, dy and the
rest are drawn as usual. A run keeps the files in its folder (weights/), so a resume reads them again.
"""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convparity.harness.cases.descriptor import Case, DescriptorError, check_name, parse_case
from convparity.harness.cases.inputs import UNIFORM, InputStyle
from convparity.harness.cases.spec import ConvSpec
from convparity.harness.errors import ConvparityError
from convparity.harness.files import atomic_write
from convparity.harness.inert_text import abbreviated

MODELS_FILE = "models.json"
WEIGHTS_FOLDER = "weights"  # in a run folder: the layers' own weights (--weights)
MODELS_FORMAT = 1
_SHAPE = re.compile(r"^\s*(\d+)(\s*[x,]\s*\d+)*\s*$")


class ModelError(ConvparityError, ValueError):
    """A model that cannot be read into cases: the message names the source and the field at fault (exit 2)."""


class ModelReadError(ModelError):
    """Raised by a model reader for input it cannot read: a missing file, an unknown name, a symbolic dimension
    without --input-shape, an operator it cannot read. The message names the field at fault; the harness puts
    the source before it."""


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """`NAME=1x3x224x224` as (name, dims); ModelError naming the text otherwise (every dim a whole number >= 1)."""
    name, equals, dims = text.rpartition("=")
    if not equals or not name.strip():
        raise ModelError(f"--input-shape {abbreviated(text)}: write NAME=DIMS, e.g. input=1x3x224x224")
    if not _SHAPE.match(dims):
        raise ModelError(f"--input-shape {abbreviated(text)}: the dims must be whole numbers joined by x, e.g. "
                         "1x3x224x224")
    shape = tuple(int(d) for d in re.split(r"[x,]", dims.replace(" ", "")))
    if any(d < 1 for d in shape):
        raise ModelError(f"--input-shape {abbreviated(text)}: every dim must be at least 1")
    return name.strip(), shape


@dataclass(frozen=True)
class ReadOptions:
    """What a reader is told besides the source. `input_shapes`: (input name, shape) pairs from --input-shape;
    `weights`: the folder to write each layer's weights to (`write_weights`), "" for none (--weights not given)."""

    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    weights: str = ""

    @classmethod
    def of(cls, input_shapes: Mapping[str, tuple[int, ...]] | list[str] | tuple[str, ...] | None = None,
           weights: str | Path | None = None) -> ReadOptions:
        """From {name: shape} or from --input-shape texts, and the weights folder."""
        if input_shapes is None:
            pairs: list[tuple[str, tuple[int, ...]]] = []
        elif isinstance(input_shapes, Mapping):
            pairs = [(str(k), tuple(int(d) for d in v)) for k, v in input_shapes.items()]
        else:
            pairs = [parse_input_shape(text) for text in input_shapes]
        names = [name for name, _ in pairs]
        for name in names:
            if names.count(name) > 1:
                raise ModelError(f"--input-shape gives input {name!r} twice")
        return cls(tuple(pairs), str(Path(weights).resolve()) if weights else "")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.input_shapes)


@dataclass(frozen=True)
class ModelLayer:
    """One convolution the model runs. `names`: the layer's name first, then any folded into it (a zero padding
    layer before it); `depth`: its place in the model's order of execution (0 first); `fixed_dtype`: the model
    fixes its data types (a quantized layer): the run's --dtype does not apply; `note`: what the reader could not
    carry over exactly (said in `convparity cases` and models.json); `weights`: the file of its own weights
    (`write_weights`; "" where they are drawn)."""

    names: tuple[str, ...]
    spec: ConvSpec
    depth: int = 0
    fixed_dtype: bool = False
    note: str = ""
    weights: str = ""

    def __post_init__(self) -> None:
        names = (self.names,) if isinstance(self.names, str) else tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"a model layer needs a name, got {self.names!r}")
        for name in names:
            check_name(name)
        object.__setattr__(self, "names", names)
        if not isinstance(self.spec, ConvSpec):
            raise ValueError(f"layer {names[0]!r}: spec must be a ConvSpec, got {type(self.spec).__name__}")
        if not isinstance(self.depth, int) or isinstance(self.depth, bool) or self.depth < 0:
            raise ValueError(f"layer {names[0]!r}: depth must be an int >= 0, got {self.depth!r}")

    @property
    def name(self) -> str:
        return self.names[0]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"names": list(self.names), "depth": self.depth, "case": self.spec.descriptor,
                                "dtype": self.spec.dtype, "bias": self.spec.bias}
        if self.fixed_dtype:
            data["fixed_dtype"] = True
        if self.note:
            data["note"] = self.note
        if self.weights:
            data["weights"] = self.weights
        return data

    @classmethod
    def from_json(cls, stored: object, where: str) -> ModelLayer:
        if not isinstance(stored, dict):
            raise ModelError(f"{where}: a layer must be a JSON object, got {type(stored).__name__}")
        try:
            spec = parse_case(stored["case"], dtype=stored["dtype"], bias=stored["bias"]).spec
            return cls(tuple(stored["names"]), spec, stored.get("depth", 0), bool(stored.get("fixed_dtype", False)),
                       str(stored.get("note", "")), str(stored.get("weights", "")))
        except KeyError as missing:
            raise ModelError(f"{where}: a layer lacks the field {missing}") from None
        except (DescriptorError, ValueError, TypeError) as error:
            raise ModelError(f"{where}: {error}") from None


@dataclass(frozen=True)
class LayerGroup:
    """Identical layers of one model (the same spec, data types fixed or not): one case, `count` layers."""

    layers: tuple[ModelLayer, ...]

    @property
    def spec(self) -> ConvSpec:
        return self.layers[0].spec

    @property
    def count(self) -> int:
        return len(self.layers)

    @property
    def depth(self) -> int:
        return self.layers[0].depth

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(layer.name for layer in self.layers)

    @property
    def fixed_dtype(self) -> bool:
        return self.layers[0].fixed_dtype

    @property
    def weights(self) -> str:
        return self.layers[0].weights

    @property
    def case(self) -> Case:
        """The case a run computes for these layers, named after the first (with the count when there are more),
        drawn with their own weights where the model gave them."""
        name = self.layers[0].name if self.count == 1 else f"{self.layers[0].name} (x{self.count})"
        inputs = InputStyle("weights", source=self.weights) if self.weights else UNIFORM
        return Case(self.spec, name, fixed_dtype=self.fixed_dtype, inputs=inputs)

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(layer.note for layer in self.layers if layer.note))


@dataclass(frozen=True)
class Model:
    """The convolutions of one model source: `title` names it in reports, `reader` is the reader that read it,
    `notes` what the reader says of the whole model (what it left out, and why)."""

    source: str
    title: str
    reader: str
    layers: tuple[ModelLayer, ...]
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "notes", tuple(self.notes))

    def without_epilogues(self) -> Model:
        """The model with each layer's convolution alone: no post-ops (for backends that compute none); its
        quantization and data types stay. A note says so."""
        layers = tuple(dataclasses.replace(layer, spec=layer.spec.replace(post_ops=())) for layer in self.layers)
        note = "epilogues left out (--no-epilogues): each layer's convolution alone"
        return dataclasses.replace(self, layers=layers, notes=(*self.notes, note) if note not in self.notes else
                                   self.notes)

    def groups(self) -> list[LayerGroup]:
        """The distinct layers, each with every layer like it (the same spec, data types fixed or not, and drawn
        weights: a layer with its own is alone), in the order their first layer runs."""
        found: dict[tuple[ConvSpec, bool, str], list[ModelLayer]] = {}
        for layer in sorted(self.layers, key=lambda layer: layer.depth):
            found.setdefault((layer.spec, layer.fixed_dtype, layer.weights), []).append(layer)
        return [LayerGroup(tuple(layers)) for layers in found.values()]

    def cases(self) -> list[Case]:
        """One case per distinct layer, in the model's order."""
        return [group.case for group in self.groups()]

    def describe(self) -> Iterator[str]:
        """What `convparity cases --model` prints of the model: one line per distinct layer (count, names,
        descriptor), then the totals."""
        groups = self.groups()
        yield f"model {self.title} ({self.source}, read by {self.reader}): {len(self.layers)} convolution layers, " \
              f"{len(groups)} distinct"
        for group in groups:
            names = ", ".join(group.names[:4]) + (f", ... ({group.count - 4} more)" if group.count > 4 else "")
            dtype = f"\t{group.spec.dtype}" if group.fixed_dtype else ""
            weights = "\town weights" if group.weights else ""
            yield f"  x{group.count}\t{names}\t{group.spec.descriptor}{dtype}{weights}"
            for note in group.notes:
                yield f"      note: {note}"
        for note in self.notes:
            yield f"  note: {note}"
        yield f"{self.title}: {sum(g.count for g in groups)} layers in {len(groups)} cases"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "title": self.title, "reader": self.reader,
                "layers": [layer.to_json() for layer in self.layers], "notes": list(self.notes)}

    @classmethod
    def from_json(cls, stored: object, where: str = "model") -> Model:
        if not isinstance(stored, dict):
            raise ModelError(f"{where}: a model must be a JSON object, got {type(stored).__name__}")
        try:
            source, title, reader, layers = stored["source"], stored["title"], stored["reader"], stored["layers"]
        except KeyError as missing:
            raise ModelError(f"{where}: the field {missing} is missing") from None
        if not all(isinstance(v, str) for v in (source, title, reader)) or not isinstance(layers, list):
            raise ModelError(f"{where}: source, title and reader must be text and layers a list")
        where = f"{where} {abbreviated(source)}"
        return cls(source, title, reader,
                   tuple(ModelLayer.from_json(layer, f"{where} layer {i}") for i, layer in enumerate(layers)),
                   tuple(str(note) for note in stored.get("notes", [])))


def write_weights(folder: str, model: str, layer: str, depth: int, **arrays: np.ndarray | None) -> str:
    """Write one layer's weights (w in the canonical layout, (O, C/groups, *k) or transposed (C, O/groups, *k); b;
    a per-channel w_scale) to FOLDER/MODEL/DEPTH-LAYER.npz (written whole or not at all) and return its path: what
    a reader puts in `ModelLayer.weights` when `ReadOptions.weights` is given. Arrays that are None are left out."""
    path = Path(folder) / _file_name(model) / f"{depth:04d}-{_file_name(layer)}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    kept: dict[str, Any] = {name: np.asarray(value) for name, value in arrays.items() if value is not None}
    atomic_write(path, lambda file: np.savez(file, **kept), binary=True)
    return str(path)


def _file_name(text: str) -> str:
    """`text` as a file name: letters, digits, '.', '-' and '_' kept, the rest '_', at most 60 characters."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", plain).strip("._")[:60] or "layer"


def write_models(directory: str | Path, models: tuple[Model, ...] | list[Model]) -> Path:
    """DIR/models.json: every model of a run, its layers with names, depth and case (written whole or not at all)."""
    payload = {"format": MODELS_FORMAT, "models": [model.to_json() for model in models]}
    text = json.dumps(payload, indent=1)
    return atomic_write(Path(directory) / MODELS_FILE, lambda file: file.write(text + "\n"))


def read_models(directory: str | Path) -> list[Model]:
    """The models of DIR/models.json ([] when the run has none); ModelError naming the file when it is damaged."""
    path = Path(directory) / MODELS_FILE
    if not path.is_file():
        return []
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: cannot be read: {error}") from None
    if not isinstance(stored, dict) or not isinstance(stored.get("models"), list):
        raise ModelError(f"{path} is damaged: no list of models")
    return [Model.from_json(model, f"{path} model {i}") for i, model in enumerate(stored["models"])]
