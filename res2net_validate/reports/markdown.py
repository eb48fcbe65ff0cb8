"""The report as GitHub-flavoured Markdown (fit for a CI job summary); needs nothing beyond the stdlib."""

from __future__ import annotations

from .document import Block, Bullets, Figure, Heading, Table, Text


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(blocks: list[Block]) -> str:
    out: list[str] = []
    for index, block in enumerate(blocks):
        if isinstance(block, Heading) and index + 1 < len(blocks) and isinstance(blocks[index + 1], Figure):
            out.append("Plots: in report.html.")  # a heading over figures alone would head nothing here
        elif isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(map(_cell, block.headers)) + " |",
                     "|" + "|".join("---" for _ in block.headers) + "|"]
            lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in block.rows]
            out.append("\n".join(lines))
        elif isinstance(block, Figure):
            continue  # the plots live in report.html
    return "\n\n".join(out) + "\n"
