"""The report as one self-contained HTML file: styles inline, plots as data: URIs, nothing fetched."""

from __future__ import annotations

import base64
import html
import re

from .document import Block, Bullets, Figure, Heading, Table, Text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.n { white-space: nowrap; }
td:last-child { min-width: 18em; overflow-wrap: anywhere; }
div.wide { overflow-x: auto; }
th { background: #f0f0f0; }
td.fail { background: #fdd; font-weight: bold; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


# The little Markdown the document writes: `code`, backslash escapes (document.md), **bold**.
_INLINE = re.compile(r"`([^`]+)`|\\([!-/:-@\[-`{-~])|\*\*(.+?)\*\*", re.S)


def _inline(text: str) -> str:
    out, position = [], 0
    for match in _INLINE.finditer(text):
        out.append(html.escape(text[position:match.start()]))
        code, escaped, bold = match.groups()
        if code is not None:
            out.append(f"<code>{html.escape(code)}</code>")
        elif escaped is not None:
            out.append(html.escape(escaped))
        else:
            out.append(f"<strong>{_inline(bold)}</strong>")
        position = match.end()
    out.append(html.escape(text[position:]))
    return "".join(out)


# Numbers, intervals and run labels stay on one line; names and messages wrap, so a wide table fits the page.
_UNBROKEN = re.compile(r"-?[\d.]+%?|\[-?[\d.]+, -?[\d.]+\]|\d{4}-\d\d-\d\d \d\d:\d\d.*|-")


def _cell(text: str) -> str:
    classes = (["fail"] if text == "FAIL" else []) + (["n"] if _UNBROKEN.fullmatch(text) else [])
    return f'<td class="{" ".join(classes)}">{_inline(text)}</td>' if classes else f"<td>{_inline(text)}</td>"


def _table(block: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in block.rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def render(blocks: list[Block], title: str) -> str:
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            parts.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            parts.append(_table(block))
        elif isinstance(block, Figure):
            png = block.draw(block.kind)
            if png is not None:  # nothing to draw (e.g. no FPS in an accuracy-only run): no empty frame
                data = base64.b64encode(png).decode("ascii")
                parts.append(f'<figure><img alt="{html.escape(block.title)}" src="data:image/png;base64,{data}">'
                             f"<figcaption>{html.escape(block.title)}</figcaption></figure>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
