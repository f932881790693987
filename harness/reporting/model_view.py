"""The model view of a run's reports: every layer of each model (`--model`), per backend, and a verdict per model.

A run of models keeps their layers in models.json (harness.cases.models; run.json's case selection holds the
same, and is read when models.json is missing). For each model this module gives:
- a verdict line per backend and dtype: "ResNet50 on onnxruntime: 53/53 layers agree in float32", counting each
  layer (a distinct layer counts as many times as the model has it), with the layers that do not agree named;
- a table, one row per distinct layer sorted by depth: its names, multiplicity (x N), descriptor, and per backend
  and dtype the layer's status and worst err_ratio.

A layer agrees with the reference on a backend when every row of its case there passes or is unsupported
(a forward-only backend computes no gradients) and at least one passes. Its status is otherwise the most severe
status of its rows (crash, timeout, error, fail, xpass, xfail, harness-error, reference-error), "unsupported"
when nothing was compared, "not run" when the run has no row of it yet.

The report writers call `markdown_section(directory)` and `html_section(directory)` (both "" for a run
without models); the rows are read from results.csv in chunks, keeping only the models' cases.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from convparity.harness import inert_text
from convparity.harness.cases.models import LayerGroup, Model, ModelError, read_models
from convparity.harness.files import RunFolderError
from convparity.harness.reporting import html_page
from convparity.harness.reporting.matrix import format_ratio
from convparity.harness.results import iter_results
from convparity.harness.running.run_folder import read_record
from convparity.harness.vocabulary import DTYPES

CHUNK_ROWS = 50_000
SEVERITY = ("crash", "timeout", "error", "fail", "xpass", "xfail", "harness-error", "reference-error")
NOT_RUN = "not run"


@dataclass
class _Cell:
    """The rows of one case (descriptor, bias) on one backend in one dtype."""

    statuses: set[str] = field(default_factory=set)
    worst: float = math.nan
    compared: set[str] = field(default_factory=set)

    def add(self, status: str, ratio: float, tensor: str) -> None:
        self.statuses.add(status)
        if status != "unsupported":
            self.compared.add(tensor)
        if ratio == ratio and not (self.worst >= ratio):
            self.worst = ratio

    @property
    def status(self) -> str:
        for status in SEVERITY:
            if status in self.statuses:
                return status
        return "pass" if "pass" in self.statuses else "unsupported"


@dataclass
class ModelView:
    """One model and what the run found of its layers: cells[(backend, dtype)][(descriptor, bias, inputs)]."""

    model: Model
    groups: list[LayerGroup]
    cells: dict[tuple[str, str], dict[tuple[str, bool, str], _Cell]]

    def columns(self) -> list[tuple[str, str]]:
        return sorted(self.cells)

    def cell(self, group: LayerGroup, column: tuple[str, str]) -> _Cell | None:
        backend, dtype = column
        if not _counts_in(group, dtype):
            return None
        return self.cells[column].get(_key(group))

    def verdicts(self) -> list[str]:
        """One line per backend and dtype (see the module docstring)."""
        lines = []
        total = sum(group.count for group in self.groups)
        for column in self.columns():
            backend, dtype = column
            agree, compared = 0, set()
            other: dict[str, list[str]] = defaultdict(list)
            counted = 0
            for group in self.groups:
                if not _counts_in(group, dtype):
                    continue
                counted += group.count
                cell = self.cell(group, column)
                status = NOT_RUN if cell is None else cell.status
                if cell is not None:
                    compared |= cell.compared
                if status == "pass":
                    agree += group.count
                else:
                    other[status].extend(group.names)
            if not counted:
                continue
            scope = f" of {total}" if counted != total else ""
            line = f"{self.model.title} on {backend}: {agree}/{counted}{scope} layers agree in {dtype}"
            if compared and compared != {"y", "dx", "dw", "db"}:
                line += f" (compared: {' '.join(t for t in ('y', 'dx', 'dw', 'db') if t in compared)})"
            for status in (*SEVERITY, "unsupported", NOT_RUN):
                if other.get(status):
                    names = other[status]
                    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                    line += f"; {len(names)} {status}: {shown}"
            lines.append(line)
        return lines

    def table(self, *, html: bool = False) -> pd.DataFrame:
        """One row per distinct layer, by depth: depth, layers, count, descriptor, then a column per backend
        and dtype with the layer's status and worst err_ratio."""
        rows = []
        for group in sorted(self.groups, key=lambda g: g.depth):
            names = ", ".join(group.names)
            row = {"depth": group.depth, "layers": names, "count": f"x{group.count}",
                   "descriptor": group.spec.descriptor + (f" ({group.spec.dtype})" if group.fixed_dtype else "")}
            for column in self.columns():
                cell = self.cell(group, column)
                if not _counts_in(group, column[1]):
                    text = "—"
                elif cell is None:
                    text = NOT_RUN
                else:
                    ratio = "" if math.isnan(cell.worst) else f" {format_ratio(cell.worst)}"
                    text = cell.status + ratio
                row[f"{column[0]} {column[1]}"] = text
            rows.append(row)
        frame = pd.DataFrame(rows)
        if html and len(frame):
            frame["descriptor"] = html_page.code(frame["descriptor"])
        return frame


def _counts_in(group: LayerGroup, dtype: str) -> bool:
    """Whether a group's layers are run in `dtype`: a layer whose model fixes its data types in those alone, any other
    in the run's (float) dtypes, not in a quantized layer's data types."""
    return group.spec.dtype == dtype if group.fixed_dtype else dtype in DTYPES


def _key(group: LayerGroup) -> tuple[str, bool, str]:
    """The cells' key of a group's case: its descriptor, bias and how its values are drawn (a layer's weights)."""
    return group.spec.descriptor, group.spec.bias, group.case.inputs_key


def _models(directory: Path) -> list[Model]:
    models = read_models(directory)
    if models:
        return models
    try:
        selection = read_record(directory).selection
    except (RunFolderError, ValueError):
        return []
    return list(selection.models) if selection is not None else []


def model_views(directory: str | Path) -> list[ModelView]:
    """A view per model of the run in DIR ([] when it has none); rows of other cases are not kept."""
    directory = Path(directory)
    try:
        models = _models(directory)
    except ModelError:
        return []
    if not models:
        return []
    grouped = [(model, model.groups()) for model in models]
    wanted = {group.spec.descriptor for _, groups in grouped for group in groups}
    cells: dict[tuple[str, str], dict[tuple[str, bool, str], _Cell]] = defaultdict(lambda: defaultdict(_Cell))
    if (directory / "results.csv").is_file():
        for chunk in iter_results(directory, CHUNK_ROWS):
            rows = chunk[chunk["case"].isin(wanted)]
            for case, bias, dtype, backend, status, ratio, tensor, inputs in zip(
                    rows["case"], rows["bias"], rows["dtype"], rows["backend"], rows["status"], rows["err_ratio"],
                    rows["tensor"], rows["inputs"]):
                cells[(str(backend), str(dtype))][(str(case), bool(bias), str(inputs))].add(
                    str(status), float(ratio), str(tensor))
    views = []
    for model, groups in grouped:
        keys = {_key(g) for g in groups}
        mine = {column: {k: v for k, v in found.items() if k in keys} for column, found in cells.items()}
        views.append(ModelView(model, groups, {column: found for column, found in mine.items() if found}))
    return views


def _markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of `frame`, every cell inert text."""
    cells = [[inert_text.markdown(str(c)) for c in frame.columns]]
    cells += [[inert_text.markdown(str(v)) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join([lines[0], "|" + "|".join("---" for _ in frame.columns) + "|", *lines[1:]])


def markdown_section(directory: str | Path) -> str:
    """The "Models" section of summary.md ("" for a run without models)."""
    views = model_views(directory)
    if not views:
        return ""
    parts = ["## Models\n"]
    for view in views:
        model = view.model
        parts.append(f"### {inert_text.markdown(model.title)} ({inert_text.markdown(model.source)})\n")
        verdicts = view.verdicts() or ["no rows yet"]
        parts.append("\n".join(f"- {inert_text.markdown(line)}" for line in verdicts) + "\n")
        parts.append(_markdown_table(view.table()) + "\n")
        for note in model.notes:
            parts.append(f"Note: {inert_text.markdown(note)}\n")
    return "\n".join(parts) + "\n"


def html_section(directory: str | Path) -> str:
    """The "Models" section of report.html ("" for a run without models)."""
    views = model_views(directory)
    if not views:
        return ""
    parts = ["<h2>Models</h2>"]
    for view in views:
        model = view.model
        verdicts = "".join(f"<li>{html_page.text(line)}</li>" for line in view.verdicts() or ["no rows yet"])
        notes = "".join(f"<p>Note: {html_page.text(note)}</p>" for note in model.notes)
        parts.append(f"<h3>{html_page.text(model.title)} <code>{html_page.text(model.source)}</code></h3>\n"
                     f"<ul>{verdicts}</ul>\n"
                     + html_page.details(f"{len(model.layers)} layers, {len(view.groups)} distinct, by depth",
                                         html_page.table(view.table(html=True), markup_columns=("descriptor",)),
                                         opened=True) + notes)
    return "\n".join(parts)
