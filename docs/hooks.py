"""MkDocs hooks: one API reference page per package of ``jaxattn``, found when the site is built.

The package tree is walked at build time, so moving or adding a module changes the reference
without touching ``mkdocs.yml``. Each package (a folder with ``__init__.py``) gets the page
``api/<dotted.name>.md``: the package's own docstring, then every public module directly inside
it; sub-packages get pages of their own. The pages are appended to the nav as "API reference".
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "jaxattn"
SECTION = "API reference"


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


def on_files(files, config):
    for name, modules in packages().items():
        files.append(File.generated(config, page_uri(name), content=page_text(name, modules)))
    return files
