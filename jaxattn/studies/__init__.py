"""Studies built from stages: :mod:`jaxattn.studies.stage` (what a stage is),
:mod:`jaxattn.studies.runner` (the one runner), :mod:`jaxattn.studies.stage_cache` (its results
kept) and the studies."""
