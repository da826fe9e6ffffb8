"""The Jain & Wallace (2019) study: :mod:`.stages` and :mod:`.battery` (the stages), :mod:`.analyze`
(running them), :mod:`.summary`, :mod:`.tables` and :mod:`.report` (the report)."""
