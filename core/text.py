"""Text typed by people or written by models, made safe to show: direction controls made visible, and Markdown that
cannot turn into a tag, a link or an image. Pure functions: the console, the CLI and the reports share them."""
from __future__ import annotations

import re

# Characters that reorder or hide text (right-to-left overrides, isolates, marks): shown as their code point, so a
# message cannot make "gpj.exe" look like "exe.jpg" or hide what it says.
BIDI_CONTROLS = {c: f"[U+{c:04X}]" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
# What turns a line of a Markdown report into a tag, a link, an image or code (emphasis only restyles, and
# escaping every underscore would make the file hard to read as text).
_REPORT_SPECIALS = re.compile(r"([\\`<>\[\]|])")


def counted(n: int, unit: str) -> str:
    """'1 week', '3 weeks', '1 blocking item': a count with its unit in the right number."""
    return f"{n:,} {unit}" if n == 1 else f"{n:,} {unit}s"


def visible_controls(text: str | None) -> str:
    """TEXT as it is, with its direction controls shown as [U+202E] and the like."""
    return (text or "").translate(BIDI_CONTROLS)


def markdown_line(text: str) -> str:
    """TEXT for one line of a Markdown report: one line, controls visible, no tag, link, image, code or cell break."""
    return " ".join(visible_controls(_REPORT_SPECIALS.sub(r"\\\1", text)).split())
