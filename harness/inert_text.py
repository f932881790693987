"""Text from outside (names, versions, messages) made inert before it goes into a page, a Markdown file or a
line.

`safe` replaces the characters that never belong on a page (C0/C1 controls but tab and newline, bidirectional
overrides and isolates, which reorder what a reader sees, and what XML 1.0 forbids) with U+FFFD, visibly;
`one_line` also folds every run of whitespace into one space; `markdown` escapes what Markdown or HTML would
read as markup (`<`, `&`, `|`, `*`, `_`, backticks, `[`, `]`, `#`), so a crafted backend name or version
cannot add a heading, a link or HTML to a report; `abbreviated` quotes a value in at most about 120
characters. This module imports nothing of convparity.
"""

from __future__ import annotations

import html
import re

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufffe\uffff]")
_MARKUP = re.compile(r"([\\`*_\[\]#|])")


def safe(value: str) -> str:
    """`value` with every unsafe character replaced by U+FFFD, so it is visible but inert."""
    return _UNSAFE.sub("\ufffd", value)


def one_line(value: object) -> str:
    """Made safe, on one line: whitespace runs (line breaks included) folded into one space."""
    return " ".join(safe(str(value)).split())


def markdown(value: object) -> str:
    """One line of text that Markdown and HTML show as it is (see the module docstring)."""
    return _MARKUP.sub(r"\\\1", html.escape(one_line(value), quote=False))


def abbreviated(value: object, limit: int = 120) -> str:
    """`repr(value)` of at most about `limit` characters: a longer one keeps its two ends and says how much it left
    out, so an error message quoting a huge input stays one readable line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    keep = (limit - 30) // 2
    return f"{text[:keep]}...[{len(text) - 2 * keep} characters]...{text[-keep:]}"
