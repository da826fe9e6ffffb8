"""Run directories: training a model into one (fit), loading it back (run), seed runs."""
