"""Self-contained HTML reports: pages with inline CSS, sections, figures and token heatmaps.

Figures are referenced by relative paths (the PNGs sit beside the page); nothing is fetched from
the network. All text is escaped here, so callers pass plain strings.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from jaxattn.runtime.files import write_atomic

# One hue per importance row of a heatmap: (r, g, b) at full weight.
ROW_COLORS = (
    (214, 39, 40),
    (31, 119, 180),
    (44, 160, 44),
    (148, 103, 189),
    (255, 127, 14),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
)

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
nav a { margin-right: 1.2em; }
nav.toc { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .4em 1em; margin: 1em 0;
          display: inline-block; }
nav.toc ol { margin: .2em 0; padding-left: 1.4em; columns: 2; column-gap: 2.5em; }
nav.toc a { margin-right: 0; }
a.up { font-size: .8em; font-weight: normal; margin-left: .8em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
figure { display: inline-block; margin: .4em .8em .8em 0; vertical-align: top; }
figure img { max-width: 540px; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; max-width: 540px; }
.note { background: #fff8e1; border-left: 4px solid #f0b400; padding: .4em .8em; font-size: .92em; }
.muted { color: #666; font-size: .9em; }
table.heat { border: none; margin: .2em 0 1.2em; }
table.heat td { border: none; padding: .15em .3em; }
table.heat td.name { white-space: nowrap; color: #444; font-size: .85em; width: 9em; }
.tok { display: inline-block; padding: 0 .12em; margin: 1px 0; border-radius: 2px; }
.tok.mark { text-decoration: underline; text-decoration-thickness: 2px; }
.verdict-sentence { font-size: 1.05em; font-weight: 600; }
.verdict-caveat { border-left: 4px solid #c62828; background: #fdecea; padding: 6px 10px; }
table.verdict { width: 100%; }
/* A command or path in a reading (the fourth column) may break anywhere, so the table fits the
   page's width; every other cell breaks between words only. */
table.verdict td:nth-child(4):not([class]) { overflow-wrap: anywhere; }
table.verdict td.v-against { background: #fde0dc; }
table.verdict td.v-consistent { background: #dff3e0; }
table.verdict td.v-mixed, table.verdict td.v-not-needed { background: #fff3cd; }
table.verdict td.v-not-run, table.verdict td.v-incomplete, table.verdict td.v-n-a,
table.verdict td.v-no-reading { color: #666; background: #f6f6f6; }
table.dataset th { text-align: right; font-weight: normal; color: #555; }
"""


def escape(text: object) -> str:
    return html.escape(str(text))


def token_heatmap_html(
    tokens: Sequence[str],
    weights_by_name: Mapping[str, np.ndarray],
    marks: Sequence[bool] | None = None,
) -> str:
    """One row per importance measure, each token shaded by its weight relative to the row's max.

    Args:
      tokens: the instance's real tokens.
      weights_by_name: measure name -> <float>[len(tokens)] non-negative weights (absolute values
        are shown for signed ones); the exact value is in each token's tooltip.
      marks: tokens to underline (e.g. a human / planted rationale).
    """
    rows = []
    for r, (name, weights) in enumerate(weights_by_name.items()):
        w = np.abs(np.asarray(weights, np.float64))[: len(tokens)]
        top = w.max() if len(w) and w.max() > 0 else 1.0
        red, green, blue = ROW_COLORS[r % len(ROW_COLORS)]
        cells = []
        for i, tok in enumerate(tokens):
            alpha = float(w[i] / top) if i < len(w) else 0.0
            cls = "tok mark" if marks is not None and marks[i] else "tok"
            value = f"{w[i]:.4f}" if i < len(w) else ""
            cells.append(
                f'<span class="{cls}" style="background: rgba({red},{green},{blue},{alpha:.3f})" '
                f'title="{escape(name)}: {value}">{escape(tok)}</span>'
            )
        rows.append(f'<tr><td class="name">{escape(name)}</td><td>{" ".join(cells)}</td></tr>')
    return f'<table class="heat">{"".join(rows)}</table>'


def figure_html(src: str, caption: str = "") -> str:
    """An ``<img>`` with a caption; ``src`` is relative to the page."""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{escape(src)}" alt="{escape(caption or src)}">{cap}</figure>'


def slug(title: str) -> str:
    """An anchor made of ``title``'s words: ``Time per stage`` -> ``time-per-stage``."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def section(title: str, body: str, anchor: str | None = None) -> str:
    """An ``<h2>`` section with an anchor (``anchor``, else :func:`slug` of the title), listed
    in the page's table of contents; ``body`` is HTML."""
    ident = escape(anchor or slug(title))
    up = '<a class="up" href="#top">contents</a>'
    return f'<section id="{ident}"><h2>{escape(title)}{up}</h2>{body}</section>'


SECTION_HEAD = re.compile(r'<section id="([^"]+)"><h2>(.*?)<a class="up"')


def contents_html(sections: Sequence[str]) -> str:
    """The table of contents: a link to every :func:`section`'s anchor, in page order."""
    entries = SECTION_HEAD.findall("".join(sections))
    items = "".join(f'<li><a href="#{ident}">{escape(_short(html.unescape(title)))}</a></li>'
                    for ident, title in entries)
    return f'<nav class="toc" aria-label="contents"><strong>Contents</strong><ol>{items}</ol></nav>'


def _short(title: str, limit: int = 64) -> str:
    """A long section title cut at a word before ``limit`` characters, for the contents."""
    return title if len(title) <= limit else title[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + "\u2026"


# Marks the page of ``jaxattn reproduce`` (the top page of a run's reports).
TOP_PAGE_MARK = '<meta name="generator" content="jaxattn reproduce">'


def top_page_href(page_dir: str | Path, levels: int = 4) -> str | None:
    """The relative href of the top page above a report in ``page_dir``: the ``index.html``
    that ``jaxattn reproduce`` wrote beside the run the report belongs to (the first folder
    at or above ``page_dir`` holding a ``metrics.json``), or None when there is none."""
    page_dir = Path(page_dir).resolve()
    for run in [page_dir, *page_dir.parents][:levels]:
        if (run / "metrics.json").exists():
            top = run.parent / "index.html"
            try:
                marked = TOP_PAGE_MARK in top.read_text("utf-8")[:4000]
            except OSError:
                return None
            return Path(os.path.relpath(top, page_dir)).as_posix() if marked else None
    return None


def paragraph(text: str, cls: str | None = None) -> str:
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def page(title: str, sections: Sequence[str], nav: Sequence[tuple[str, str]] = (),
         top: str | None = None, top_page: bool = False) -> str:
    """A complete HTML document: the title, ``nav`` (text, href) links under it, a table of
    contents of the sections (from two on) and the sections.

    Args:
      top: href of the top page (:func:`top_page_href`), the first link under the title.
      top_page: this page is ``jaxattn reproduce``'s top page (marked for :func:`top_page_href`).
    """
    nav = [("\u2191 top page (all reports)", top), *nav] if top else list(nav)
    links = " ".join(link(href, text) for text, href in nav)
    nav_html = f"<nav>{links}</nav>" if links else ""
    toc = contents_html(sections) if len(sections) >= 2 else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"{TOP_PAGE_MARK if top_page else ''}"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f'<body><h1 id="top">{escape(title)}</h1>{nav_html}{toc}{"".join(sections)}</body></html>\n'
    )


def write_page(path: str | Path, document: str) -> Path:
    write_atomic(path, document)
    return Path(path)
