"""The page: one self-contained HTML file (styles, script, figures and images inline; nothing fetched
when it is viewed). Big runs stay fast: each item's details sit in an inert ``<template>`` that the
browser parses but does not render or load, and a few lines of script move it into view when the item
is opened."""

from __future__ import annotations

import base64
import html
import io
import json
import mimetypes
from pathlib import Path
from typing import Any

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1180px; color: #1d1d1f; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
h3 { font-size: 15px; } code, pre { font: 12px/1.4 ui-monospace, monospace; }
pre { background: #f6f6f6; padding: 6px 8px; white-space: pre-wrap; margin: 2px 0; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #ddd; padding: 3px 7px; vertical-align: top; }
th { background: #f3f3f3; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.chosen td { background: #e7f5e7; } .rank { color: #888; font-size: 11px; }
.warnings { background: #fff4e0; border: 1px solid #f0c36d; padding: 6px 12px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
img.thumb { image-rendering: pixelated; width: 56px; height: 56px; }
img.picture { height: 180px; max-width: 100%; object-fit: contain; image-rendering: pixelated; }
details.item { border-bottom: 1px solid #eee; } details.item > summary { cursor: pointer; padding: 3px 0; }
details.item > summary span { display: inline-block; margin-right: 14px; }
.ok { color: #17803d; } .bad { color: #b42318; } .muted { color: #777; }
"""

# Fill an item's details from its template the first time it is opened.
SCRIPT = """
document.addEventListener('toggle', function (event) {
  var item = event.target;
  if (!item.open || !item.dataset || !item.dataset.template || item.dataset.filled) return;
  var template = document.getElementById(item.dataset.template);
  item.appendChild(template.content.cloneNode(true));
  item.dataset.filled = '1';
}, true);
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e4 or (value and abs(value) < 1e-3) else f"{value:.{digits}f}"
    return esc(value)


def table(header: list[str] | None, rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    """A table from already-escaped cells (no header row when ``header`` is None); a cell that starts with
    ``<td`` is used as written."""
    head = f"<thead><tr>{''.join(f'<th>{h}</th>' for h in header)}</tr></thead>" if header else ""
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def key_values(pairs: dict[str, Any]) -> str:
    rows = [[esc(k), number(v) if isinstance(v, (int, float, bool)) or v is None else esc(short(v))]
            for k, v in pairs.items()]
    return table(None, rows) if rows else ""


def short(value: Any, limit: int = 400) -> str:
    """A value as at most ``limit`` characters of text (JSON for anything but a string), cut with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def data_uri(path: Path, max_side: int | None = None) -> str:
    """A file as a data: URI; with ``max_side``, a picture is first scaled down to a thumbnail (GIFs are kept
    whole, so an episode still plays)."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    raw = path.read_bytes()
    if max_side and mime in ("image/png", "image/jpeg"):
        from PIL import Image

        picture = Image.open(io.BytesIO(raw))
        if max(picture.size) > max_side:
            picture.thumbnail((max_side, max_side))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG", optimize=True)
            raw, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def item_block(index: int, summary_spans: list[str], details: str, open_now: bool = False) -> tuple[str, str]:
    """An item's line and its details: inline when ``open_now``, else as a template filled on opening.
    Returns (the item's HTML, its template's HTML)."""
    spans = "".join(f"<span>{s}</span>" for s in summary_spans)
    if open_now:
        return f'<details class="item" open><summary>{spans}</summary>{details}</details>', ""
    ident = f"item-{index}"
    return (f'<details class="item" data-template="{ident}"><summary>{spans}</summary></details>',
            f'<template id="{ident}">{details}</template>')


def page(title: str, body: str, templates: str = "") -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<link rel="icon" href="data:,"><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{STYLE}</style></head><body>{body}{templates}<script>{SCRIPT}</script></body></html>")


def warnings_block(warnings: list[str]) -> str:
    if not warnings:
        return ""
    shown = "".join(f"<li>{esc(w)}</li>" for w in warnings[:50])
    more = f"<li>… and {len(warnings) - 50} more</li>" if len(warnings) > 50 else ""
    return f'<div class="warnings" id="warnings"><b>Some lines could not be read:</b><ul>{shown}{more}</ul></div>'
