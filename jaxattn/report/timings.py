"""The "time per stage" table of a report: wall time split into compiling and computing."""

from __future__ import annotations


def stage_time_rows(metas: dict[str, dict], n: int) -> list[dict]:
    """One row per stage of its wall seconds, compile / compute seconds and programs.

    Args:
      metas: stage name -> the metadata its stage file holds (:func:`jaxattn.studies.runner.
        compute_stage` timings); results written before compile counts were recorded give None.
      n: instances analysed (for the end-to-end rate).
    """
    rows = []
    for name, meta in metas.items():
        seconds = meta.get("seconds")
        rows.append({
            "stage": name,
            "seconds": seconds,
            "compile s": meta.get("compile_seconds"),
            "compute s": meta.get("compute_seconds"),
            "programs compiled": meta.get("compiled"),
            "from cache": meta.get("cache_hits"),
            "instances/s": n / seconds if seconds else None,
        })
    return rows


def compile_summary(metas: dict[str, dict]) -> dict[str, dict]:
    """stage -> its compile counts and seconds, for ``summary.json`` (stages that recorded them)."""
    keys = ("compile_seconds", "compute_seconds", "programs", "compiled", "cache_hits",
            "programs_per_bucket")
    return {name: {k: meta[k] for k in keys if k in meta}
            for name, meta in metas.items() if "programs" in meta}
