"""Every figure the README and the documentation quote comes from a result file.

    python docs/figures.py                     # check; exit 1 naming each figure with no source
    python docs/figures.py --write-demo runs/demo   # docs/results/demo.json from a finished demo

The result files, each written by the command that measured its figures:

* ``docs/pages/results.md``: the studies' figures, each table with the command that made it;
* ``benchmarks/RESULTS.md``: the speed figures, each with its command;
* ``docs/results/demo.json``: the figures of ``make demo`` (``--write-demo runs/demo`` after it).

The checks (``tests/test_docs_figures.py`` runs them in CI):

1. every number in the prose and tables of ``README.md`` and of ``docs/pages/*.md`` (code blocks,
   inline code and links aside; ``results.md`` is itself a result file and ``protocol.md`` quotes
   the papers) occurs in a result file, or is a setting listed in :data:`SETTINGS`;
2. every row of a README table occurs, cell for cell, as a row of a result file's table;
3. each sentence of :data:`DEMO_QUOTES`, its figures filled in from ``demo.json``, occurs in its
   page as written.

So a figure that moves in a result file fails the check until the pages quoting it follow, and a
figure typed into a page without a measurement behind it fails at once.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ("docs/pages/results.md", "benchmarks/RESULTS.md")
DEMO = "docs/results/demo.json"
QUOTING = ("README.md", "docs/pages/*.md")
NOT_QUOTING = {"docs/pages/results.md", "docs/pages/protocol.md"}

# Numbers that are settings, sizes or counts of things, not measured figures; per page.
SETTINGS: dict[str, set[str]] = {
    "README.md": {  # versions, years, the demo's and the studies' settings, table sizes
        "2", "3.10", "4", "500", "100", "5", "0.05", "0.10", "12", "24", "8", "0.01", "1",
        "1,000", "7", "6", "0", "0.1", "128", "300", "32", "200", "2019", "2020", "50", "60",
        "260",
    },
    "docs/pages/commands.md": {"0.0", "3,072", "2,048"},  # option values, position limits
    "docs/pages/data.md": {  # split sizes and fractions of the data sets (jaxattn data list)
        "3000", "864", "2030", "4137", "8,530", "5869", "844", "1675", "80", "20%", "3,800",
        "380", "984", "9824", "1500", "850", "150", "1600", "199", "0.2",
    },
    "docs/pages/pretrained.md": {"-1"},  # an option value
    "docs/pages/scale.md": {"60"},  # a timeout's default
    "docs/pages/self_attention.md": {  # years, the tests' tolerances, a confidence level
        "2021", "2022", "0.1%", "1%", "95%",
    },
    "docs/pages/shortcuts.md": {"2022", "864", "80%"},  # a year, split sizes, the planted share
    "docs/pages/stages.md": {"60", "0.2"},  # an example's length, a version
    "docs/pages/tokenization.md": {  # code points, and what a tokenizer change did to IMDB
        "2066", "2069", "2060", "0301", "1,067", "143", "304", "3,005", "479", "539", "60",
    },
}
# The demo's sentences: (page, template over demo.json's keys).
DEMO_QUOTES = (
    ("README.md", "learned attention scores {base_f1:.3f} F1, uniform attention {uniform_f1:.3f},"
     " and the diagnostic MLP {diagnostic_learned_f1:.3f} with its own attention,"
     " {diagnostic_imposed_f1:.3f} with the BiLSTM's"),
)
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?%?(?![\w])")


def prose(text: str) -> str:
    """``text`` without fenced code, inline code, link targets and HTML comments."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    return re.sub(r"!\[[^\]]*\]", " ", text)


def numbers(text: str) -> list[str]:
    return [m.group(0).rstrip(",") for m in NUMBER.finditer(prose(text))]


def table_rows(text: str) -> list[tuple[str, ...]]:
    """The data rows of the markdown tables in ``text``, cells stripped."""
    rows = []
    for line in prose(text).splitlines():
        line = line.strip()
        if line.startswith("|") and not re.fullmatch(r"\|[\s:|-]+\|", line):
            rows.append(tuple(c.strip() for c in line.strip("|").split("|")))
    return rows


def quoted_pages(root: Path) -> list[Path]:
    pages = []
    for pattern in QUOTING:
        pages += sorted(root.glob(pattern))
    return [p for p in pages if str(p.relative_to(root)) not in NOT_QUOTING]


def demo_sentences(root: Path) -> list[tuple[str, str]]:
    figures = json.loads((root / DEMO).read_text())
    return [(page, template.format(**figures)) for page, template in DEMO_QUOTES]


def check(root: Path = ROOT) -> list[str]:
    """One line per figure of the checkout ``root`` without a source (empty: every quoted
    figure has one)."""
    record_text = "\n".join((root / p).read_text() for p in RECORDS)
    demo = demo_sentences(root)
    sourced = set(numbers(record_text)) | {n for _, s in demo for n in numbers(s)}
    record_rows = set(table_rows(record_text))
    records = ", ".join((*RECORDS, DEMO))
    problems = []
    for page in quoted_pages(root):
        name = str(page.relative_to(root))
        text = page.read_text()
        allowed = SETTINGS.get(name, set())
        for n in dict.fromkeys(numbers(text)):
            if n not in sourced and n not in allowed:
                problems.append(f"{name}: {n} is in no result file ({records}) and is not a "
                                "listed setting")
        if name == "README.md":
            for row in table_rows(text):
                # Rows without numbers (headers, the package's folders) quote no figure.
                if row not in record_rows and any(numbers(c) for c in row):
                    problems.append(f"{name}: table row {' | '.join(row)} is no row of a result "
                                    "file")
    for page, sentence in demo:
        if sentence not in (root / page).read_text().replace("\n", " "):
            problems.append(f"{page}: should say \"{sentence}\" (docs/results/demo.json)")
    return problems


def write_demo(run: Path, command: str) -> dict:
    """The demo's figures from a finished ``jaxattn reproduce`` folder ``run`` (``runs/demo``),
    made by ``command``."""
    metrics = json.loads((run / "run" / "metrics.json").read_text())
    wp = json.loads((run / "run" / "wp" / "summary.json").read_text())
    diagnostic = wp.get("diagnostic", {})
    figures = {
        "command": command,
        "dataset": metrics["data"]["name"],
        "base_f1": metrics["test"]["f1"],
        "base_accuracy": metrics["test"]["accuracy"],
        "uniform_f1": wp["uniform"]["f1"],
        "uniform_accuracy": wp["uniform"]["accuracy"],
        "seeds_f1": wp.get("seeds", {}).get("f1"),
        **{f"diagnostic_{k}_f1": diagnostic[k]["f1"] for k in ("learned", "uniform", "imposed")
           if k in diagnostic},
    }
    (ROOT / DEMO).parent.mkdir(parents=True, exist_ok=True)
    (ROOT / DEMO).write_text(json.dumps(figures, indent=1) + "\n")
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-demo", type=Path, metavar="RUN",
                        help="write docs/results/demo.json from this finished demo folder")
    parser.add_argument("--command", default="make demo",
                        help="the command that made RUN, recorded beside its figures")
    args = parser.parse_args(argv)
    if args.write_demo:
        print(json.dumps(write_demo(args.write_demo, args.command), indent=1))
    problems = check()
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
