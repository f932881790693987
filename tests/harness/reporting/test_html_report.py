"""report.html: one self-contained, well-formed page with the matrix, heatmaps, failures and metadata."""

from __future__ import annotations

import pandas as pd
import pytest

from convparity.harness.reporting.html_report import causes
from convparity.harness.reporting.summaries import write_reports
from convparity.harness.results import read_results
from convparity.harness.vocabulary import TENSORS
from tests.harness.reporting.mixed import MATRIX, ROWS, UNAVAILABLE, VERSIONS
from tests.harness.reporting.pages import cell_text, find_table, parse_page, png_size, table_rows
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
    # delta is unavailable: nothing compared, nothing drawn
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


def test_causes_in_order_of_severity(mixed_run):
    groups = causes(read_results(mixed_run).query("status != 'pass'"))
    columns = ["status", "backend", "dtypes", "tensors", "rows", "cases"]
    got = [tuple(r) for r in groups[columns].itertuples(index=False)]
    assert got == [
        ("timeout", "beta", "float16", "y dx dw", 3, 1),
        ("error", "alpha", "float16", "y dx dw db", 4, 1),
        ("fail", "alpha", "float32", "y", 1, 1),
        ("fail", "beta", "float32", "dw", 1, 1),
        ("fail", "beta", "float32", "db", 1, 1),
        ("xpass", "gamma", "float32", "dw", 1, 1),
        ("xfail", "gamma", "float32", "y", 1, 1),
        ("reference-error", "gamma", "float32", "db", 1, 1),
        ("unsupported", "beta", "float32", "y dx dw", 3, 1),
        ("unsupported", "alpha", "float32", "dw", 1, 1),
    ]


def test_rows_of_one_cause_on_many_cases_are_one_group():
    rows = pd.DataFrame({
        "case": ["a", "a", "b", "c"], "name": ["", "", "", ""], "bias": [True] * 4, "dtype": ["float16"] * 4,
        "backend": ["torch"] * 4, "tensor": ["dx", "dw", "dx", "dx"], "status": ["fail"] * 4,
        "err_ratio": [162.6, 3.0, 40.0, 2.0], "deviation": [""] * 4, "repro": ["r a", "r a", "r b", "r c"],
        "message": ["23 of 24 elements exceed the bound", "2 of 24 elements exceed the bound",
                    "7 of 8 elements exceed the bound", "1 of 8 elements exceed the bound"],
    })
    (group,) = causes(rows).itertuples(index=False)
    assert (group.cause, group.rows, group.cases, group.tensors, group.err_ratio) == (
        "# of # elements exceed the bound", 4, 3, "dx dw", 162.6)
    assert group.lines[["case", "tensors", "detail"]].values.tolist() == [
        ["a", "dx dw", "dx: 23 of 24 elements exceed the bound; dw: 2 of 24 elements exceed the bound"],
        ["b", "dx", "7 of 8 elements exceed the bound"], ["c", "dx", "1 of 8 elements exceed the bound"]]


def _cause_groups(page) -> dict[str, list]:
    """Per kind heading (its text up to the counts), the cause groups under it: (head, cause, case lines)."""
    body = page.find("body")
    groups: dict[str, list] = {}
    kind = None
    for element in body:
        if element.tag == "h2":
            kind = None
        if element.tag == "h3" and element.text and " rows in " in element.text or (
                element.tag == "h3" and element.text and " row in " in element.text):
            kind = element.text
            groups[kind] = []
        elif kind and element.get("class") == "cause-group":
            head, cause = element.findall("p")
            groups[kind].append((cell_text(head), cell_text(cause), table_rows(element.find("details/table")),
                                 element.find("details")))
    return groups


def test_non_passing_rows_grouped_by_cause_with_the_reason_once(page):
    groups = _cause_groups(page)
    assert list(groups) == [
        "failures (10 rows in 5 cases, 5 causes)",
        "known deviations (xfail) (1 row in 1 case, 1 cause)",
        "stale declarations (xpass): the declared deviation did not happen (1 row in 1 case, 1 cause)",
        "the harness's own failures (the reference, drawing the inputs: not the backend's) (1 row in 1 case, 1 cause)",
        "unsupported (4 rows in 2 cases, 2 causes)",
    ]
    failures = groups["failures (10 rows in 5 cases, 5 causes)"]
    assert [head for head, *_ in failures] == [
        "timeout beta · 3 rows in 1 case · float16 · tensors y dx dw",
        "error alpha · 4 rows in 1 case · float16 · tensors y dx dw db",
        "fail alpha · 1 row in 1 case · float32 · tensors y · worst err_ratio 3.5",
        "fail beta · 1 row in 1 case · float32 · tensors dw · worst err_ratio inf",
        "fail beta · 1 row in 1 case · float32 · tensors db · worst err_ratio 1",
    ]
    # one message for all of a group's rows is said as it is; the cases sit collapsed under their cause
    error_head, error_cause, (error_line,), details = failures[1]
    assert error_cause == 'RuntimeError: <no kernel> for "half" & co'  # escaped in the file, intact once parsed
    assert details.get("open") is None and details.find("summary").text == "the 1 case"
    assert error_line == ["c1", "name-c1", "float16", "on", "y dx dw db", "–", "",  # said once, in the cause
                          "convparity explain c1 -b alpha --dtype float16 --bias on"]
    assert failures[2][2] == [["c2", "name-c2", "float32", "off", "y", "3.5", "123 of 512 elements exceed the bound",
                               "convparity explain c2 -b alpha --dtype float32 --bias off"]]
    (known,) = groups["known deviations (xfail) (1 row in 1 case, 1 cause)"]
    head, cause, (line,), details = known
    assert cause == "declared reason ( https://example.org/issue/1 )"
    assert line[4:7] == ["y", "4", "9 of 512 elements exceed the bound"]  # the reason is not repeated per case
    assert "declared reason" not in " ".join(line)
    kinds = page.findall(".//div[@class='cause-group']/p[@class='cause']/a")
    assert {a.get("href") for a in kinds} == {"https://example.org/issue/1"}


def test_descriptors_and_repros_are_monospace_lines_that_do_not_wrap(page):
    style = page.find("head/style").text
    assert "white-space: nowrap" in style.split("code {", 1)[1].split("}", 1)[0]
    lines = page.findall(".//table[@class='dataframe cases']//div[@class='line']/code")
    assert len(lines) >= 2 * 10  # a descriptor and a repro per case line
    assert "break-all" not in style


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
