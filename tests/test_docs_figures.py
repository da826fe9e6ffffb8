"""Every figure the README and docs/pages quote occurs in a result file (``docs/figures.py``)."""

import importlib.util
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("figures", ROOT / "docs" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def test_every_quoted_figure_has_a_result_file():
    assert figures.check() == []


def _copy(tmp_path: Path) -> Path:
    for name in ("README.md", *figures.RECORDS, figures.DEMO):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "docs" / "pages", tmp_path / "docs" / "pages", dirs_exist_ok=True)
    return tmp_path


def test_a_figure_that_moves_in_its_result_file_fails(tmp_path):
    root = _copy(tmp_path)
    results = root / "docs" / "pages" / "results.md"
    # The SST-2 W&P base F1 the README quotes in its table moves in the result file.
    text = results.read_text()
    assert "| base (learned attention) | 0.812 |" in text
    results.write_text(text.replace("| base (learned attention) | 0.812 |",
                                    "| base (learned attention) | 0.813 |"))
    problems = figures.check(root)
    assert any("base (learned attention) | 0.812" in p for p in problems), problems


def test_a_typed_in_figure_and_a_moved_demo_figure_fail(tmp_path):
    root = _copy(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text() + "\nThe model reaches 0.123456 on everything.\n")
    demo = root / figures.DEMO
    data = json.loads(demo.read_text())
    data["uniform_f1"] = round(data["uniform_f1"] + 0.1, 6)
    demo.write_text(json.dumps(data))
    problems = figures.check(root)
    assert any("0.123456" in p for p in problems), problems
    assert any("demo.json" in p and "should say" in p for p in problems), problems
