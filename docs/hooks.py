"""MkDocs hooks: one API reference page per package of ``jaxattn``, found when the site is built.

The package tree is walked at build time, so moving or adding a module changes the reference
without touching ``mkdocs.yml``. Each package (a folder with ``__init__.py``) gets the page
``api/<dotted.name>.md``: the package's own docstring, then every public module directly inside
it; sub-packages get pages of their own. The pages are appended to the nav as "API reference".

Pages link to Markdown files elsewhere in the repository (``../../benchmarks/RESULTS.md``) by
their path in the repository, so the links also work on a repository browser. Such a file is
copied into the site under ``repo/`` (outside the nav) and the link is pointed at the copy; a
link to any other file outside ``docs/pages`` stays broken and fails the strict build.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, InclusionLevel

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "jaxattn"
SECTION = "API reference"
MIRROR = "repo"
# An inline Markdown link or image: ](target) or ](target "title"); group 1 is the target.
# Sphinx cross-reference roles in docstrings (``:class:`Batch```) render as ":class:" before a code
# span; the span alone says it. A reST literal-block marker "::" ends a paragraph as ":".
ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj|const):(<code>)~?")
LITERAL_MARK = re.compile(r"::</p>")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def packages(root: Path = ROOT, package: str = PACKAGE) -> dict[str, list[str]]:
    """Every package under ``root/package``: dotted name -> its public modules' dotted names.

    A folder of modules without ``__init__.py`` is an error: griffe (which reads the docstrings)
    does not look inside such a folder, so its modules would silently go missing.
    """
    found: dict[str, list[str]] = {}
    top = root / package
    for folder in [top, *sorted(p for p in top.rglob("*") if p.is_dir())]:
        parts = folder.relative_to(root).parts
        if any(part.startswith((".", "_")) for part in parts):
            continue
        modules = sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))
        if not (folder / "__init__.py").exists():
            if modules:
                raise PluginError(f"{folder}: Python modules without an __init__.py")
            continue
        name = ".".join(parts)
        found[name] = [f"{name}.{module}" for module in modules]
    return found


def page_uri(name: str) -> str:
    return f"api/{name}.md"


def page_text(name: str, modules: list[str]) -> str:
    """The page of one package: its docstring, then each of its modules in full."""
    lines = [f"# `{name}`", "", f"::: {name}", "    options:", "      members: false",
             "      show_root_heading: false", ""]
    for module in modules:
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def on_config(config):
    nav = config["nav"]
    if nav is not None:
        nav = [item for item in nav if not (isinstance(item, dict) and SECTION in item)]
        nav.append({SECTION: [{name: page_uri(name)} for name in packages()]})
        config["nav"] = nav
    return config


def source_path(uri: str, docs_dir: Path) -> Path:
    """Where the page ``uri`` of the site comes from in the repository."""
    if uri.startswith(MIRROR + "/"):
        return ROOT / uri[len(MIRROR) + 1 :]
    return docs_dir / uri


def outside_markdown(text: str, source: Path, docs_dir: Path) -> dict[str, Path]:
    """Relative link targets in ``text`` (a file at ``source``) that name a Markdown file of the
    repository outside ``docs_dir``: target as written (without its anchor) -> the file."""
    found = {}
    for target in LINK.findall(text):
        path = target.split("#", 1)[0]
        if not path or re.match(r"^[a-z][a-z0-9+.-]*:", path) or path.startswith("/"):
            continue
        resolved = (source.parent / path).resolve()
        if (resolved.suffix == ".md" and resolved.is_file() and resolved.is_relative_to(ROOT)
                and not resolved.is_relative_to(docs_dir)):
            found[path] = resolved
    return found


def on_files(files, config):
    for name, modules in packages().items():
        files.append(File.generated(config, page_uri(name), content=page_text(name, modules)))
    docs_dir = Path(config["docs_dir"]).resolve()
    todo = [f for f in files.documentation_pages() if not f.generated_by]
    mirrored: set[Path] = set()
    while todo:
        page = todo.pop()
        source = source_path(page.src_uri, docs_dir)
        for path in outside_markdown(page.content_string, source, docs_dir).values():
            if path in mirrored:
                continue
            mirrored.add(path)
            copy = File.generated(
                config, f"{MIRROR}/{path.relative_to(ROOT).as_posix()}",
                content=path.read_text(encoding="utf-8"), inclusion=InclusionLevel.NOT_IN_NAV)
            files.append(copy)
            todo.append(copy)
    return files


def on_page_markdown(markdown, page, config, files):
    """Point links to repository Markdown files outside ``docs/pages`` at their copies."""
    docs_dir = Path(config["docs_dir"]).resolve()
    source = source_path(page.file.src_uri, docs_dir)
    targets = outside_markdown(markdown, source, docs_dir)
    if not targets:
        return markdown
    here = posixpath.dirname(page.file.src_uri)

    def repoint(match):
        target = match.group(1)
        path, _, anchor = target.partition("#")
        if path not in targets:
            return match.group(0)
        copy = f"{MIRROR}/{targets[path].relative_to(ROOT).as_posix()}"
        new = posixpath.relpath(copy, here or ".") + (f"#{anchor}" if anchor else "")
        return match.group(0).replace(target, new, 1)

    return LINK.sub(repoint, markdown)


def on_page_content(html, page, config, files):
    """Tidy the reST markup of docstrings on the API pages."""
    if not page.file.src_uri.startswith("api/"):
        return html
    return LITERAL_MARK.sub(":</p>", ROLE.sub(r"\1", html))
