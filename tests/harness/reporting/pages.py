"""Reading generated HTML back: a strict XML parse, tables as lists of cell texts, embedded images."""

from __future__ import annotations

import base64
import struct
import xml.etree.ElementTree as ET


def parse_page(text: str) -> ET.Element:
    """The page's root element; raises if the markup is not well-formed."""
    return ET.fromstring(text)


def cell_text(cell: ET.Element) -> str:
    """All text inside a cell, pieces joined by single spaces."""
    return " ".join(" ".join(cell.itertext()).split())


def table_rows(table: ET.Element) -> list[list[str]]:
    """Body rows of a pandas-written table as lists of cell texts."""
    return [[cell_text(td) for td in tr.findall("td")] for tr in table.iter("tr") if tr.findall("td")]


def header(table: ET.Element) -> list[str]:
    return [cell_text(th) for th in table.iter("th")]


def find_table(root: ET.Element, first_header: str) -> ET.Element:
    """The first table whose first column header is `first_header`."""
    for table in root.iter("table"):
        if header(table)[:1] == [first_header]:
            return table
    raise AssertionError(f"no table headed {first_header!r}")


def png_size(src: str) -> tuple[int, int]:
    """(width, height) of a data:image/png;base64 URI, read from the PNG's IHDR chunk."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])
