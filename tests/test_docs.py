"""The documentation's relative links lead somewhere: every linked file exists and every
``#anchor`` names a heading of its page (GitHub's rule for heading anchors), so a renamed section
or a moved file shows up here rather than as a dead link on the project page."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted(ROOT.glob("experiments/*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def heading_anchor(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)  # many links point at the same few long pages
def anchors(page: Path) -> frozenset[str]:
    """Every heading anchor of a Markdown page (repeats get -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        heading = None if in_code else re.match(r"#{1,6}\s+(.*)", line)
        if heading:
            anchor = heading_anchor(heading.group(1))
            n = seen.get(anchor, 0)
            seen[anchor] = n + 1
            found.add(anchor if n == 0 else f"{anchor}-{n}")
    return frozenset(found)


def test_heading_anchor_follows_github():
    assert heading_anchor("21. A recursive temporal filter (session 25; on by default)") == (
        "21-a-recursive-temporal-filter-session-25-on-by-default"
    )
    assert heading_anchor("Quality: `stpr_default` (v8)") == "quality-stpr_default-v8"
    assert heading_anchor("640×360 → 1080p") == "640360--1080p"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, broken
