"""report.html: one self-contained, well-formed page with the matrix, heatmaps, failures and metadata."""

from __future__ import annotations

import pytest

from convparity.harness.reporting.html_report import non_passing_cases
from convparity.harness.reporting.summaries import write_reports
from convparity.harness.results import read_results
from convparity.harness.vocabulary import TENSORS
from tests.harness.reporting.mixed import MATRIX, ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.pages import find_table, parse_page, png_size, table_rows
from tests.harness.reporting.runs import write_run


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    directory = write_run(tmp_path_factory.mktemp("runs") / "mixed", ROWS, VERSIONS, unavailable=UNAVAILABLE)
    write_reports(directory)
    return directory


@pytest.fixture(scope="module")
def page(mixed_run):
    return parse_page((mixed_run / "report.html").read_text(encoding="utf-8"))


def test_one_file_and_nothing_fetched(mixed_run, page):
    assert sorted(p.name for p in mixed_run.iterdir()) == [
        "report.html", "results.csv", "run.json", "summary.csv", "summary.md"]
    assert not list(page.iter("link")) and not list(page.iter("script"))
    assert page.find("head/style") is not None and page.find("head/style").text.count("{") > 10
    for element in page.iter():
        target = element.get("src", "data:").lower()  # links (<a href>) to upstream reports are not fetched
        assert not target.startswith(("http", "//", "file")), element.attrib


def test_a_heatmap_figure_per_backend_with_compared_rows(page):
    images = list(page.iter("img"))
    headings = [h.text for h in page.iter("h3")]
    assert headings == ["alpha", "beta", "gamma"]  # delta is unavailable: nothing compared, nothing drawn
    assert [img.get("alt") for img in images] == ["alpha heatmaps", "beta heatmaps", "gamma heatmaps"]
    for img in images:
        width, height = png_size(img.get("src"))
        assert width > 300 and height > 100


def test_matrix_cells_are_coloured_by_band(page):
    table = find_table(page, "backend")
    rows = {(tr.findall("td")[0].text, tr.findall("td")[1].text): tr.findall("td")[2:]
            for tr in table.iter("tr") if tr.findall("td")}
    assert list(rows) == list(MATRIX)
    for key, cells in MATRIX.items():
        for tensor, td, expected in zip(TENSORS, rows[key], cells, strict=True):
            div = td.find("div")
            if expected is None:
                assert div.get("class") == "band-none" and "".join(div.itertext()) == "—"
            else:
                counts, ratio, band = expected
                assert div.get("class") == f"band-{band}", (key, tensor)
                assert [div.text, div.find("span").text] == [counts, ratio], (key, tensor)


def test_non_passing_cases_grouped_and_ordered(mixed_run):
    cases = non_passing_cases(read_results(mixed_run))
    got = [tuple(r) for r in cases[["status", "backend", "dtype", "case", "tensors"]].itertuples(index=False)]
    assert got == [
        ("timeout", "beta", "float16", "c2", "y dx dw"),
        ("error", "alpha", "float16", "c1", "y dx dw db"),
        ("fail", "alpha", "float32", "c2", "y"),
        ("fail", "beta", "float32", "c1", "dw"),
        ("fail", "beta", "float32", "c1", "db"),
        ("xpass", "gamma", "float32", "c1", "dw"),
        ("xfail", "gamma", "float32", "c1", "y"),
        ("reference-error", "gamma", "float32", "c1", "db"),
        ("unsupported", "alpha", "float32", "c2", "dw"),
        ("unsupported", "beta", "float32", "c4", "y dx dw"),
    ]


def test_failure_table_carries_message_and_repro(page):
    details = {d.find("summary").text: d for d in page.iter("details")}
    known = "known deviations (xfail) (1 cases)"
    stale = "stale declarations (xpass): the declared deviation did not happen (1 cases)"
    reference = "the harness's own failures (the reference, drawing the inputs: not the backend's) (1 cases)"
    assert list(details) == ["failures (5 cases)", known, stale, reference, "unsupported (2 cases)"]
    assert details["failures (5 cases)"].get("open") == "open"
    assert details["unsupported (2 cases)"].get("open") is None
    rows = table_rows(details["failures (5 cases)"].find("table"))
    error = rows[1]
    assert error[:7] == ["alpha", "float16", "on", "c1", "name-c1", "error", "y dx dw db"]
    assert error[8] == 'RuntimeError: <no kernel> for "half" & co'  # escaped in the file, intact once parsed
    assert error[10] == "convparity explain c1 -b alpha --dtype float16 --bias on"
    assert rows[2][7:] == ["3.5", "123 of 512 elements exceed the bound", "",
                           "convparity explain c2 -b alpha --dtype float32 --bias off"]
    assert rows[3][7] == "inf"
    (xfail,) = table_rows(details[known].find("table"))
    assert xfail[5:8] == ["xfail", "y", "4"]
    assert xfail[9].split() == ["declared", "reason", "(", "https://example.org/issue/1", ")"]
    link = details[known].find(".//a")
    assert link.get("href") == "https://example.org/issue/1"


def test_run_metadata(page):
    items = dict(table_rows(find_table(page, "item")))
    assert items["harness version"] == "9.8.7"
    assert items["seed"] == "7" and items["grids"] == "smoke" and items["duration (s)"] == "12.5"
    assert (items["started"], items["finished"]) == ("2026-01-02T03:04:05+00:00", "2026-01-02T03:04:17+00:00")
    assert [items[f"backend {b}"] for b in ("alpha", "beta", "gamma")] == ["1.0", "2.5", "3.0"]
    assert items["backend delta"] == "unavailable: No module named 'delta'"
    assert "Linux-test" in items["platform"] and "python 3.11.7" in items["platform"]


def test_status_totals(page):
    # pass: alpha float32 c1 x4, c2 dx, c3 x4; alpha float16 c2 x3; beta float32 c1 y, dx; gamma dx -> 15.
    totals = "32 rows: 15 pass, 3 fail, 1 xfail, 1 xpass, 4 unsupported, 4 error, 3 timeout, 1 reference-error."
    first, second = page.findall("body/p")[:2]
    assert first.text == totals
    assert second.text == "Unavailable, so not run: delta (No module named 'delta')."


def test_empty_run_still_reports(tmp_path):
    directory = write_run(tmp_path / "empty", "", {"alpha": "1.0"})
    summary = write_reports(directory)
    assert summary.empty
    page = parse_page((directory / "report.html").read_text(encoding="utf-8"))
    texts = [p.text for p in page.iter("p")]
    assert texts[0] == "0 rows: none."
    assert {"No rows yet.", "No compared rows: nothing to draw.", "No non-passing rows."} <= set(texts)
    assert (directory / "summary.md").read_text().startswith("# convparity parity matrix: empty\n")
