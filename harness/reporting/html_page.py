"""Building blocks of a self-contained HTML page: inline CSS, escaped pandas tables, embedded PNG figures.

Pages need no network to view: the style sheet is inline and figures are base64 data URIs. The markup
is also well-formed XML (void elements self-closed), so a strict parser reads it.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from convparity.harness.inert_text import safe
from convparity.harness.reporting.matrix import BANDS

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       margin: 1.5em auto; max-width: 1400px; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2em; margin-top: 1.6em; }
table.dataframe { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
table.dataframe th, table.dataframe td { border: 1px solid #d0d7de; padding: 3px 7px; text-align: left;
                                         vertical-align: top; }
table.dataframe th { background: #f6f8fa; }
table.matrix td { padding: 0; } table.matrix td > div { padding: 4px 9px; min-width: 9em; }
table.matrix td:first-child { max-width: 14em; overflow-wrap: anywhere; padding: 4px 9px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; white-space: nowrap; }
div.line { max-width: 30em; overflow-x: auto; white-space: nowrap; }
table.cases { display: block; max-width: 100%; overflow-x: auto; }
table.cases td { white-space: nowrap; }
.cause-group { margin: .8em 0 1.2em; padding-left: .8em; border-left: 3px solid #d0d7de; }
.cause-head { margin: .2em 0; } .cause { margin: .2em 0; overflow-wrap: anywhere; }
.status { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 600; }
.status-fail, .status-error, .status-crash, .status-timeout { background: #f28b82; }
.status-xfail, .status-xpass { background: #c9b6f2; }
.status-unsupported, .status-reference-error { background: #e4e7eb; }
.hist { display: flex; align-items: flex-end; gap: 1px; height: 38px; }
.hist .bin { display: flex; flex-direction: column; justify-content: flex-end; width: 6px; height: 100%;
             background: #f6f8fa; }
.hist .bin.bound { border-left: 1px dashed #1f2328; }
.seg, .swatch { display: block; width: 100%; } .swatch { display: inline-block; width: 10px; height: 10px; }
.seg.pass, .swatch.pass { background: #3fa55b; } .seg.fail, .swatch.fail { background: #d93025; }
.seg.declared, .swatch.declared { background: #8e6bd6; }
table.histograms td { padding: 4px 6px; }
.ratio { font-weight: 600; } .legend span { display: inline-block; padding: 2px 8px; margin: 2px; }
details > summary { cursor: pointer; font-weight: 600; margin: .5em 0; }
img { max-width: 100%; height: auto; }
"""
BAND_STYLE = "\n".join(f".band-{band.name} {{ background: {band.colour}; }}" for band in BANDS)


_URL = re.compile(r"https?://[^\s()<>\"']+")


def text(value: object) -> str:
    """Escaped, made-safe text of one value; missing values are empty."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    return html.escape(safe(str(value)))


def linked(value: object) -> str:
    """Escaped text with its http(s) URLs as links (for a `table` markup column)."""
    escaped = text(value)
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def table(frame: pd.DataFrame, *, markup_columns: Iterable[str] = (), css_class: str = "") -> str:
    """`frame` as an HTML table (no index); every cell escaped except in `markup_columns` (already HTML)."""
    markup = set(markup_columns)
    escaped = frame.astype(object).copy()
    for column in escaped.columns:
        if column not in markup:
            escaped[column] = escaped[column].map(text)
    escaped.columns = [text(c) for c in escaped.columns]
    return escaped.to_html(index=False, escape=False, na_rep="", border=0, classes=css_class or None)


def code(values: pd.Series) -> pd.Series:
    """Each value escaped inside <code> (for a `table` markup column)."""
    return values.map(lambda v: f"<code>{text(v)}</code>" if text(v) else "")


def details(summary: str, body: str, *, opened: bool = False) -> str:
    """A collapsible section; `summary` is plain text."""
    attribute = ' open="open"' if opened else ""
    return f"<details{attribute}><summary>{text(summary)}</summary>\n{body}\n</details>"


def figure_img(figure: Figure, alt: str, dpi: int = 96) -> str:
    """The figure rendered by Agg to PNG and embedded as a data URI <img/>."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)  # attaches the Agg canvas: no pyplot, no global backend state
    figure.savefig(buffer, format="png", dpi=dpi)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{text(alt)}" src="data:image/png;base64,{data}"/>'


def document(title: str, body: str) -> str:
    """A complete HTML page with the inline style sheet."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        f"<title>{text(title)}</title>\n<style>{STYLE}{BAND_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>{text(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
