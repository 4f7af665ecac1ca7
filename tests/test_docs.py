"""Docs that cannot go stale: every relative link and anchor resolves, and every measured number
quoted in README.md and docs/ is found in the committed file its block names.

The rules are in docs/testing.md ("Numbers in the docs"). In short: a block (paragraph, list, table, or a
fenced block of command output) that quotes a checked number carries ``<!-- source: PATH [PATH ...] -->``;
each checked number of the block must equal, after rounding to the digits quoted, a number in one of those
files (or folders), as is, ×100 (a fraction quoted in %), or /60 or /3600 (seconds quoted in min or h).
"""

from __future__ import annotations

import bisect
import math
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IDS = [str(p.relative_to(ROOT)) for p in DOCS]

FENCE = re.compile(r"^(```|~~~)")
COMMENT = re.compile(r"<!--(.*?)-->", re.S)
SOURCE = re.compile(r"<!--\s*source:\s*(.*?)\s*-->", re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
# a quoted number: sign, digits (thousands commas allowed), fraction, exponent, then % / a time unit / ×
QUOTED = re.compile(
    r"(?<![\w.\-−])(?P<sign>[−+-]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?(?P<exp>e[−+-]?\d+)?"
    r"(?P<unit>\s?%|\s?(?:ms|s|min|h)\b|×)?(?![\w.]\d)"
)
IN_FILE = re.compile(r"[−+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][−+-]?\d+)?")
FACTORS = {"%": (100.0, 1.0), "min": (1 / 60, 1.0), "h": (1 / 3600, 1.0), "ms": (1000.0, 1.0)}
DEFAULT_FACTORS = (1.0, 100.0, 1 / 60, 1 / 3600)


# ------------------------------------------------------------------------------------------ blocks
def blocks(text: str) -> list[tuple[int, str, bool]]:
    """``(first line number, text, is_fenced)`` of every block: runs of lines between blank lines, with a
    fenced code block kept whole (and joined to a comment line right above it)."""
    out: list[tuple[int, str, bool]] = []
    lines = text.splitlines()
    i, start, cur = 0, 0, []
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line.strip()):
            fence, head = [line], cur if cur and all(COMMENT.fullmatch(c.strip()) for c in cur) else []
            if cur and not head:
                out.append((start + 1, "\n".join(cur), False))
            first = start if head else i
            i += 1
            while i < len(lines) and not FENCE.match(lines[i].strip()):
                fence.append(lines[i])
                i += 1
            fence.append(lines[i] if i < len(lines) else "")
            out.append((first + 1, "\n".join(head + fence), True))
            cur = []
        elif not line.strip():
            if cur:
                out.append((start + 1, "\n".join(cur), False))
            cur = []
        else:
            if not cur:
                start = i
            cur.append(line)
        i += 1
    if cur:
        out.append((start + 1, "\n".join(cur), False))
    return out


# ------------------------------------------------------------------------------------------- links
def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    out = set()
    for _, block, fenced in blocks(path.read_text()):
        if fenced:
            continue
        for line in block.splitlines():
            m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not m:
                continue
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    for m in re.finditer(r"<a\s+(?:name|id)=\"([^\"]+)\"", path.read_text()):
        out.add(m.group(1))
    return frozenset(out)


def link_targets(path: Path) -> list[tuple[int, str]]:
    out = []
    for line_no, block, fenced in blocks(path.read_text()):
        if fenced:
            continue
        text = COMMENT.sub("", INLINE_CODE.sub("``", block))
        out += [(line_no, m.group(1)) for m in LINK.finditer(text)]
    return out


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_relative_link_and_anchor_resolves(doc):
    broken = []
    for line_no, target in link_targets(doc):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists():
            broken.append(f"{doc.name}:{line_no}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{doc.name}:{line_no}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


def test_the_slug_rules_are_githubs(tmp_path):
    assert slug("Classification: converged comparison") == "classification-converged-comparison"
    assert slug("Deep autoencoder: 784-1000-500-250 against PCA") == "deep-autoencoder-784-1000-500-250-against-pca"
    assert slug("The activation experiment (`python -m experiments.activations`)") == (
        "the-activation-experiment-python--m-experimentsactivations"
    )
    assert slug("RBM: one CD-1 epoch") == "rbm-one-cd-1-epoch"
    text = "# A\n\n## A\n\n```\n# not a heading\n```\n"
    path = tmp_path / "probe.md"
    path.write_text(text)
    assert anchors(path) == {"a", "a-1"}


# -------------------------------------------------------------------------------------- provenance
def quoted_numbers(block: str) -> list[tuple[str, float, float, str]]:
    """``(text, |value|, tolerance, unit)`` of every checked number in ``block``: those with a fraction, an
    exponent, a % or a time unit; ratios (``12×``) and bare integers (sizes, counts, years) are not checked.
    Inline code, link targets and HTML comments are skipped."""
    text = COMMENT.sub(" ", block)
    text = INLINE_CODE.sub(" ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    out = []
    for m in QUOTED.finditer(text):
        unit = (m.group("unit") or "").strip()
        if unit == "×" or not (m.group("frac") or m.group("exp") or unit):
            continue
        digits = len(m.group("frac") or ".") - 1
        exp = int(m.group("exp")[1:].replace("−", "-")) if m.group("exp") else 0
        value = float(m.group("int").replace(",", "") + (m.group("frac") or "")) * 10.0**exp
        out.append((m.group(0).strip(), value, 0.5 * 10.0 ** (exp - digits) * (1 + 1e-9), unit))
    return out


@cache
def numbers_in(source: str) -> list[float]:
    """Sorted absolute values of every number written in ``source`` (a file, or every file of a folder)."""
    path = ROOT / source
    if not path.exists():
        raise AssertionError(f"source {source} does not exist")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in {".json", ".md", ".txt"})
    values = []
    for f in files:
        for m in IN_FILE.finditer(f.read_text(errors="replace")):
            try:
                values.append(abs(float(m.group(0).replace(",", "").replace("−", "-"))))
            except ValueError:
                continue
    return sorted(v for v in values if math.isfinite(v))


def found(value: float, tol: float, unit: str, sources: list[str]) -> bool:
    factors = (1.0,) if unit == "s" else FACTORS.get(unit, DEFAULT_FACTORS)
    for source in sources:
        values = numbers_in(source)
        for k in factors:
            lo = bisect.bisect_left(values, (value - tol) / k)
            if lo < len(values) and values[lo] * k <= value + tol:
                return True
    return False


def provenance_problems(doc: Path) -> list[str]:
    problems = []
    for line_no, block, fenced in blocks(doc.read_text()):
        sources = [s for m in SOURCE.finditer(block) for s in m.group(1).split()]
        if fenced and not sources:
            continue  # commands; a fenced block of output names its source like any other block
        numbers = quoted_numbers(block)
        if not numbers:
            continue
        where = f"{doc.relative_to(ROOT)}:{line_no}"
        if not sources:
            problems.append(f"{where}: quotes {', '.join(n[0] for n in numbers[:6])} but names no source")
            continue
        missing = [text for text, value, tol, unit in numbers if not found(value, tol, unit, sources)]
        if missing:
            problems.append(f"{where}: {', '.join(missing)} not found in {', '.join(sources)}")
    return problems


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_every_quoted_number_is_in_its_committed_source(doc):
    problems = provenance_problems(doc)
    assert not problems, "\n".join(problems)


def test_the_number_check_finds_what_it_should(tmp_path, monkeypatch):
    assert [n[0] for n in quoted_numbers("1.78% vs 2.18, 45 s, 12×, 784-500, `--lr 0.1`, [x](a/0.5.md), 3e-7")] == [
        "1.78%",
        "2.18",
        "45 s",
        "3e-7",
    ]
    source = tmp_path / "r.json"
    source.write_text('{"err": 0.01784, "t": 2705.2, "tiny": 2.6e-07}')
    monkeypatch.setattr("tests.test_docs.ROOT", tmp_path)
    numbers_in.cache_clear()
    try:
        for text in ("1.78%", "45.1 min", "0.018", "2.6e-7", "2705 s"):
            ((_, value, tol, unit),) = quoted_numbers(text)
            assert found(value, tol, unit, ["r.json"]), text
        for text in ("1.79%", "2.7e-7", "2.71 s"):
            ((_, value, tol, unit),) = quoted_numbers(text)
            assert not found(value, tol, unit, ["r.json"]), text
    finally:
        numbers_in.cache_clear()
