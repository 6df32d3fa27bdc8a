# `make demo` and `make test` each create .venv on first use, then run.
# torch is installed first and pinned: here `pip install torch==2.13.0` takes the local CPU wheel,
# elsewhere the usual build; a bare `torch` requirement would pull a multi-GB CUDA build.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
XLMR_DS := $(VENV)/bin/xlmr-ds
MPIEXEC := $(VENV)/bin/mpiexec
DEMO ?= runs/demo
INSTALLED := $(VENV)/.installed
TORCH_VERSION ?= 2.13.0

.PHONY: test demo clean

$(INSTALLED): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(INSTALLED)
	$(XLMR_DS) info --model large --gpus-per-node 8 --nodes 4
	$(XLMR_DS) corpus demo --out $(DEMO)/corpus
	$(XLMR_DS) spm train --input $(DEMO)/corpus --out $(DEMO)/spm/spm --vocab-size 8000 --sample-lines 100000
	$(MPIEXEC) -n 2 $(XLMR_DS) binarize --input $(DEMO)/corpus --spm $(DEMO)/spm/spm.model --out $(DEMO)/data
	$(XLMR_DS) data inspect $(DEMO)/data/hi -n 2
	$(XLMR_DS) smoke --model tiny --steps 8 --batch 4 --seq 128
	@echo "demo outputs: corpus $(DEMO)/corpus, tokenizer $(DEMO)/spm/spm.model, datasets $(DEMO)/data"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
