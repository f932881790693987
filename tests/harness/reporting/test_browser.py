"""report.html in a real headless browser (Chromium): laid out as a reader sees it, not only parsed.

The page of a run shaped like the main job's (tests/harness/reporting/main_job.py) is opened in headless
Chromium twice: once with a small script appended that opens every <details>, measures the layout and
writes the measurements into the page, which `--dump-dom` returns; once for a screenshot. Checked: the
text a reader looks for is there; non-passing rows are grouped by cause (the 26 xfail rows of Keras and
MLX in two groups, each reason said once); descriptor and repro cells never wrap (every case line one
line high); no block of the page overlaps the next; the page needs no sideways scrolling; every heatmap
is shown at its full size; the screenshot has the size asked for and is not blank. (Inside the
heatmap images, titles, labels and the legend are checked not to overlap by tests/harness/reporting/
test_heatmap.py, from matplotlib's own text extents.)

CONVPARITY_BROWSER_RUN=DIR also lays out the reports of real runs (DIR itself when it is a run folder, else the
three newest run folders under it: the main job's three runs when `tox -e parity` sets it to its `reports`):
the checks that hold for any report (no wrapped descriptor or repro, no overlap, no sideways scroll,
heatmaps at full size, a screenshot) run on each of them too.

No browser installs itself here: the test skips, saying so, when none is found (CONVPARITY_BROWSER names one;
else chromium, chromium-browser, google-chrome). `tox -e browser` installs Debian's chromium first
(.ci/ensure-chromium.sh) and sets CONVPARITY_REQUIRE_BROWSER=1, which turns the skip into a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from convparity.harness.reporting.summaries import write_reports
from tests.harness.reporting.main_job import write_main_job_like_run
from tests.harness.reporting.pages import png_size

WINDOW = (1400, 1000)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MEASURE = """
<script>
document.querySelectorAll("details").forEach(d => { d.open = true; });
const box = e => e.getBoundingClientRect();
const lines = [...document.querySelectorAll(".cause-group table.cases tbody tr")];
const codes = [...document.querySelectorAll(".cause-group table.cases div.line code")];
const allCodes = [...document.querySelectorAll("div.line code")];
const oneLine = parseFloat(getComputedStyle(document.body).lineHeight) || 20;
const blocks = [...document.body.children].filter(e => e.tagName !== "SCRIPT" && box(e).height > 0);
const overlaps = [];
for (let i = 0; i + 1 < blocks.length; i++) {
  if (box(blocks[i]).bottom > box(blocks[i + 1]).top + 0.5) {
    overlaps.push(blocks[i].tagName + " / " + blocks[i + 1].tagName);
  }
}
const measured = {
  caseLines: lines.length,
  tallestCaseLine: Math.max(0, ...lines.map(r => box(r).height)),
  wrappedCodes: allCodes.filter(c => c.getClientRects().length > 1).length,
  codes: codes.length,
  oneLine: oneLine,
  overlaps: overlaps,
  pageWidth: document.documentElement.scrollWidth,
  images: [...document.images].map(i => [i.alt, i.naturalWidth, box(i).width]),
  causeHeads: [...document.querySelectorAll(".cause-head")].map(p => p.innerText),
  causes: [...document.querySelectorAll("p.cause")].map(p => p.innerText),
  headings: [...document.querySelectorAll("h2")].map(h => h.innerText),
};
const out = document.createElement("pre");
out.id = "measured";
out.textContent = JSON.stringify(measured);
document.body.appendChild(out);
</script>
"""


def browser() -> str | None:
    named = os.environ.get("CONVPARITY_BROWSER")
    if named:
        return shutil.which(named) or named
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


@pytest.fixture(scope="module")
def chromium() -> str:
    found = browser()
    if found is None:
        message = (f"no headless browser found ({', '.join(CANDIDATES)}; or set CONVPARITY_BROWSER): "
                   "tox -e browser installs Debian's chromium (.ci/ensure-chromium.sh)")
        if os.environ.get("CONVPARITY_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run(chromium: str, *arguments: str) -> subprocess.CompletedProcess:
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    return subprocess.run([chromium, *flags, *arguments], capture_output=True, text=True, timeout=180, check=True)


def real_runs() -> list[Path]:
    """The run folders CONVPARITY_BROWSER_RUN names (see the module docstring); none when it is unset."""
    named = os.environ.get("CONVPARITY_BROWSER_RUN")
    if not named:
        return []
    folder = Path(named)
    if (folder / "run.json").is_file():
        return [folder]
    runs = sorted((p.parent for p in folder.glob("*/run.json")), key=lambda p: (p / "run.json").stat().st_mtime)
    return runs[-3:] or [folder / "(no run folder here)"]


PAGES = ["main-job-like", *map(str, real_runs())]


@pytest.fixture(scope="module", params=PAGES)
def report(request, tmp_path_factory) -> Path:
    if request.param != "main-job-like":
        source = Path(request.param)
        assert (source / "run.json").is_file(), f"CONVPARITY_BROWSER_RUN: {source} is no run folder"
        directory = tmp_path_factory.mktemp("browser") / source.name
        shutil.copytree(source, directory, ignore=shutil.ignore_patterns("*.log"))
    else:
        directory = write_main_job_like_run(tmp_path_factory.mktemp("browser") / "main-job")
    write_reports(directory)
    return directory / "report.html"


@pytest.fixture(scope="module")
def measured(chromium, report) -> dict:
    page = report.with_name("measured.html")
    page.write_text(report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _run(chromium, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()).stdout
    found = re.search(r'<pre id="measured">(.*?)</pre>', dom, flags=re.DOTALL)
    assert found, dom[-2000:]
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def _main_job_like(report: Path) -> None:
    if report.parent.name != "main-job":
        pytest.skip("these numbers are those of the main-job-shaped run")


def test_the_page_says_what_a_reader_looks_for(measured):
    headings = measured["headings"]  # a run with a backend and its -unfused twin has "Fused and unfused" between
    assert headings[0] == "Parity matrix" and "Where errors grow" in headings[1:3]
    assert "How close to the bound" in measured["headings"] and "Non-passing rows, by cause" in measured["headings"]


def test_deviations_are_grouped_by_cause_with_the_reason_once(measured, report):
    _main_job_like(report)
    xfail = [head for head in measured["causeHeads"] if head.startswith("xfail")]
    assert xfail == ["xfail keras · 16 rows in 8 cases · float64, float32 · tensors y db · worst err_ratio 899",
                     "xfail mlx · 10 rows in 5 cases · float64 · tensors y dx · worst err_ratio 8.1e+08"]
    reasons = [c for c in measured["causes"] if "conv_dtype" in c]
    assert len(reasons) == 1  # MLX's ~600-character reason, with its inline repro, once for its 10 rows
    fail = [head for head in measured["causeHeads"] if head.startswith("fail")]
    assert fail == ["fail tinygrad · 38 rows in 38 cases · float32 · tensors dw · worst err_ratio 2e+17"]


def test_descriptor_and_repro_cells_do_not_wrap(measured, report):
    assert measured["codes"] == 2 * measured["caseLines"]
    if report.parent.name == "main-job":
        assert measured["caseLines"] > 300
    assert measured["wrappedCodes"] == 0
    # one line, plus the sideways scrollbar of a repro longer than its cell (rows were ~130 px before)
    assert measured["tallestCaseLine"] < 2.5 * measured["oneLine"], measured


def test_nothing_overlaps_and_nothing_scrolls_sideways(measured):
    assert measured["overlaps"] == []
    assert measured["pageWidth"] <= WINDOW[0]


def test_heatmaps_are_shown_at_their_full_size(measured, report):
    heatmaps = [image for image in measured["images"] if image[0].endswith("heatmaps")]
    if report.parent.name == "main-job":
        assert len(heatmaps) == 11  # every backend with compared rows (torch-cuda is unavailable)
    for alt, natural, shown in heatmaps:
        assert natural > 400 and shown >= 0.99 * natural, (alt, natural, shown)


def test_screenshot(chromium, report, tmp_path):
    shot = tmp_path / "report.png"
    _run(chromium, f"--screenshot={shot}", report.as_uri())
    assert png_size("data:image/png;base64," + base64.b64encode(shot.read_bytes()).decode()) == WINDOW
    assert shot.stat().st_size > 50_000  # the matrix's colours and text, not a blank page
