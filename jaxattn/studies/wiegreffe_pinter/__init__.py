"""The Wiegreffe & Pinter (2019) suite: :mod:`.suite` (the stages) and :mod:`.report`."""
