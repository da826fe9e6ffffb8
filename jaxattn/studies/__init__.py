"""Studies built from stages: :mod:`jaxattn.studies.runner` (the one runner) and the studies."""
