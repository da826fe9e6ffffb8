"""Self-contained HTML reports: pages with inline CSS, sections, figures and token heatmaps.

Figures are referenced by relative paths (the PNGs sit beside the page); nothing is fetched from
the network. All text is escaped here, so callers pass plain strings.
"""

from __future__ import annotations

import html
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


def section(title: str, body: str, anchor: str | None = None) -> str:
    """An ``<h2>`` section; ``body`` is HTML."""
    ident = f' id="{escape(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{escape(title)}</h2>{body}</section>"


def paragraph(text: str, cls: str | None = None) -> str:
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


def link(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def page(title: str, sections: Sequence[str], nav: Sequence[tuple[str, str]] = ()) -> str:
    """A complete HTML document; ``nav`` is (text, href) links shown under the title."""
    links = " ".join(link(href, text) for text, href in nav)
    nav_html = f"<nav>{links}</nav>" if links else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><h1>{escape(title)}</h1>{nav_html}{''.join(sections)}</body></html>\n"
    )


def write_page(path: str | Path, document: str) -> Path:
    write_atomic(path, document)
    return Path(path)
