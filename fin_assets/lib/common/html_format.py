"""HTML and number formatting shared by every report the platform writes.

The validation pack (its sections, SVG charts and Markdown card), the auditor's bundle and the
data-quality report all write numbers the same way (rounded, a dash for "not available"), escape
every text they did not write themselves, and produce one self-contained page (no network), so one
module holds those rules.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def e(value: Any) -> str:
    """Any value as escaped HTML text: identity fields and segment values come from callers."""
    return html.escape(str(value), quote=True)


def finite(value: Any) -> float | None:
    """A finite float or None, so a chart skips missing points instead of drawing them at 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def num(value: Any, digits: int = 4) -> str:
    """A cell's text: floats rounded, None as a dash, containers as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        return f"{value:.{digits}f}" if abs(value) >= 10**-digits or value == 0 else f"{value:.3g}"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def cell(value: Any) -> str:
    """A table cell; numbers are right-aligned so their digits line up."""
    css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<td{css}>{e(num(value))}</td>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    row_classes: Sequence[str] | None = None,
) -> str:
    """An HTML table; ``row_classes`` mark rows to highlight (failed gates, small groups)."""
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        css = f' class="{e(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css}>" + "".join(cell(v) for v in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv(mapping: Mapping[str, Any] | None, skip: Iterable[str] = ()) -> str:
    """A key/value table; nested mappings become nested tables, lists of dicts tables."""
    if not mapping:
        return '<p class="note">—</p>'
    excluded = set(skip)
    rows = []
    for key, value in mapping.items():
        if key in excluded:
            continue
        if isinstance(value, Mapping) and value:
            inner = kv(value)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            headers = list(value[0].keys())
            inner = table(headers, [[v.get(h) for h in headers] for v in value])
        elif isinstance(value, list):
            inner = e(", ".join(num(v) for v in value)) if value else "—"
        else:
            inner = e(num(value))
        rows.append(f"<tr><th>{e(key)}</th><td>{inner}</td></tr>")
    return f"<table><tbody>{''.join(rows)}</tbody></table>"


def note(text: str) -> str:
    """A muted paragraph for the rules and reasons a reader needs beside the numbers."""
    return f'<p class="note">{e(text)}</p>'


def items(items: Sequence[Mapping[str, Any]] | None) -> str:
    """A list of topic/text items (limitations, assumptions); says so when there are none."""
    if not items:
        return note("None recorded.")
    lines = "".join(
        f"<li><strong>{e(i.get('topic', ''))}</strong>: {e(i.get('text', ''))}</li>" for i in items
    )
    return f"<ul>{lines}</ul>"


def html_page(title: str, css: str, body: str) -> str:
    """A self-contained HTML page: inline style, no script, nothing fetched from the network."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)}</title><style>{css}</style></head><body>"
        f"{body}</body></html>\n"
    )
