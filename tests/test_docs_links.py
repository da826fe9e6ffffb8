"""The README and the documentation link only to files of the repository and to papers/packages.

Every Markdown link (inline, image, reference definition, autolink) and every bare URL in
``README.md`` and ``docs/**/*.md`` either names a file that exists in the repository (relative to
the Markdown file; an anchor may follow) or a URL on a paper or package host. Code blocks and code
spans are not links and are skipped. The README stays a front page: at most 260 lines.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 260
# Hosts of papers and packages; a subdomain (www.) counts as its host.
ALLOWED_HOSTS = (
    "aclanthology.org", "aclweb.org", "arxiv.org", "doi.org", "pypi.org", "openreview.net",
    "papers.nips.cc", "proceedings.neurips.cc", "proceedings.mlr.press", "jmlr.org",
    "dl.acm.org", "ojs.aaai.org",
)

FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,}).*?^\1\2[`~]*[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.S)
INLINE = re.compile(r"\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*<?(\S+?)>?(?:[ \t]+.*)?$", re.M)
AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>")
BARE_URL = re.compile(r"(?<!\w)(https?://[^\s)<>\]]+)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def strip_code(text: str) -> str:
    """``text`` without fenced code blocks and code spans (line count kept)."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    return CODE_SPAN.sub("", text)


def links(text: str) -> list[str]:
    """Every link target in Markdown ``text``, in order of appearance (duplicates kept)."""
    prose = strip_code(text)
    found = INLINE.findall(prose) + REFERENCE.findall(prose) + AUTOLINK.findall(prose)
    rest = AUTOLINK.sub("", REFERENCE.sub("", INLINE.sub("", prose)))
    return found + [url.rstrip(".,;:") for url in BARE_URL.findall(rest)]


def link_problem(target: str, source: Path, root: Path = ROOT) -> str | None:
    """Why ``target`` (a link in the file ``source``) is not allowed, or None when it is."""
    if not target:
        return "empty link"
    if target.startswith("#"):
        return None
    if target.startswith("//") or SCHEME.match(target):
        parts = urlsplit(target if not target.startswith("//") else "https:" + target)
        host = (parts.hostname or "").lower()
        if parts.scheme in ("http", "https") and any(
            host == allowed or host.endswith("." + allowed) for allowed in ALLOWED_HOSTS
        ):
            return None
        return f"{target}: outside the repository and not a paper or package host"
    path = target.split("#", 1)[0].split("?", 1)[0]
    resolved = (root / path.lstrip("/")) if path.startswith("/") else (source.parent / path)
    resolved = resolved.resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"{target}: outside the repository"
    if not resolved.exists():
        return f"{target}: no such file"
    return None


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_is_a_repository_file_or_a_paper(path):
    problems = [
        problem
        for target in links(path.read_text(encoding="utf-8"))
        if (problem := link_problem(target, path)) is not None
    ]
    assert not problems, f"{path.relative_to(ROOT)}: " + "; ".join(problems)


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_the_checker_finds_each_kind_of_link_and_skips_code(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("x")
    page = tmp_path / "README.md"
    text = (
        "See [a](docs/a.md#top) and ![img](docs/missing.png 'title').\n"
        "[ref]: https://www.aclanthology.org/N19-1357/\n"
        "<https://example.com/x> and https://pypi.org/project/mkdocs/.\n"
        "`[not](a-link.md)` and\n```\n[neither](code.md) https://example.org\n```\n"
        "[up](../outside.md) [blog](https://example.net/post) [anchor](#here)\n"
    )
    found = links(text)
    assert found == [
        "docs/a.md#top", "docs/missing.png", "../outside.md", "https://example.net/post",
        "#here", "https://www.aclanthology.org/N19-1357/", "https://example.com/x",
        "https://pypi.org/project/mkdocs/",
    ]
    verdicts = {target: link_problem(target, page, root=tmp_path) for target in found}
    assert verdicts["docs/a.md#top"] is None and verdicts["#here"] is None
    assert verdicts["https://www.aclanthology.org/N19-1357/"] is None
    assert verdicts["https://pypi.org/project/mkdocs/"] is None
    assert "no such file" in verdicts["docs/missing.png"]
    assert "outside the repository" in verdicts["../outside.md"]
    assert "not a paper or package host" in verdicts["https://example.net/post"]
    assert "not a paper or package host" in verdicts["https://example.com/x"]


def test_api_reference_has_a_page_for_every_module():
    """The build-time hook finds every public module of the package (none silently skipped)."""
    pytest.importorskip("mkdocs")
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    listed = {module for modules in hooks.packages().values() for module in modules}
    on_disk = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "jaxattn").rglob("*.py")
        if not any(part.startswith("_") for part in path.relative_to(ROOT).parts)
    }
    assert on_disk and listed == on_disk
