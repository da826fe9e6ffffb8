"""ERASER movie reviews: ``eraser_movies/{train,val,test}.jsonl`` annotations, ``docs/`` the
reviews; the rationale is the union of the human evidence spans."""

from __future__ import annotations

from pathlib import Path

from jaxattn.data.dataset import Dataset, Example
from jaxattn.data.files import (
    data_file,
    json_lines,
    known_label,
    line_error,
    line_tokens,
    read_data_text,
    source_of,
    text_field,
)

ERASER_LABELS = {"NEG": 0, "POS": 1}


def _evidence_mask(record: dict, docid: str, raw: list[str], path: Path, line: int) -> list[int]:
    mask = [0] * len(raw)
    groups = record.get("evidences") or []
    if not isinstance(groups, list):
        raise line_error(path, line, "'evidences' must be a list of lists")
    for group in groups:
        for ev in group if isinstance(group, list) else [group]:
            if not isinstance(ev, dict) or ev.get("docid") != docid:
                raise line_error(path, line, f"an evidence does not belong to document {docid}")
            start, end = ev.get("start_token"), ev.get("end_token")
            if not (
                isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= len(raw)
            ):
                raise line_error(
                    path,
                    line,
                    f"evidence span [{start}, {end}) outside the {len(raw)} tokens of {docid}",
                )
            if "text" in ev and ev["text"].split() != raw[start:end]:
                raise line_error(
                    path, line, f"evidence text differs from tokens [{start}, {end}) of {docid}"
                )
            mask[start:end] = [1] * (end - start)  # ERASER's test set has a few empty spans
    return mask


def parse_eraser(path: Path, docs_dir: Path) -> list[Example]:
    """ERASER annotations with their documents; rationale = union of the evidence spans.

    Evidence offsets count the whitespace tokens of the whole document. Cleaning lower-cases
    token by token (``clean_tokens(..., pretokenized=True)``), so the token count and the
    offsets are unchanged; a document where they would change is an error.
    """
    out = []
    for n, record in json_lines(path):
        label = known_label(record.get("classification"), ERASER_LABELS, path, n)
        docid = text_field(record, "annotation_id", path, n)
        doc_path = docs_dir / docid
        if not doc_path.is_file():
            raise line_error(path, n, f"document {doc_path} not found")
        text = read_data_text(doc_path)
        raw = text.split()
        tokens = line_tokens(text, doc_path, 1, pretokenized=True)
        if len(tokens) != len(raw):
            raise line_error(
                path, n, f"cleaning {docid} changed its token count, evidence offsets would shift"
            )
        rationale = _evidence_mask(record, docid, raw, path, n)
        out.append(Example(tokens, label, rationale=tuple(rationale), uid=f"eraser_movies/{docid}"))
    return out


def load_eraser_movies(data_dir: Path | None) -> Dataset:
    paths = {
        split: data_file(data_dir, f"eraser_movies/{name}.jsonl", "eraser_movies")
        for split, name in (("train", "train"), ("dev", "val"), ("test", "test"))
    }
    docs_dir = paths["train"].parent / "docs"
    return Dataset(
        name="eraser_movies",
        task="binary",
        label_names=("negative", "positive"),
        splits={split: parse_eraser(path, docs_dir) for split, path in paths.items()},
        source=source_of([*paths.values(), docs_dir]),
        notes=(
            "ERASER movie reviews with their train/val/test split (val used as dev)",
            "rationale = union of the human evidence spans (token offsets kept: cleaning maps "
            "tokens one to one)",
        ),
    )
