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
# The versions tested together (constraints.txt says how it is made); `make test CONSTRAINTS=` takes the newest.
CONSTRAINTS ?= constraints.txt

.PHONY: test demo ablation adapt clean constraints

$(INSTALLED): setup.py $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),--constraint $(CONSTRAINTS)) -e '.[dev]'
	$(PY) -m xlmr_ds.accelerator
	touch $@

test: $(INSTALLED)
	$(PY) -m pytest $(PYTEST_ARGS)

# Rewrites constraints.txt from .venv, keeping its comment lines: run it in a .venv that `make` made (`make test
# CONSTRAINTS=` on a fresh clone takes the newest releases) once its tests pass.
constraints: $(INSTALLED)
	{ grep '^#' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^torch=='; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

# The demo: raw crawl shards (the demo corpus shuffled into mixed-language JSON lines with repeated paragraphs) ->
# corpus build (dedup, LID, filters) -> SentencePiece -> MPI binarize -> DeepSpeed ZeRO-2 training on 2 CPU processes with
# evaluation and checkpoints -> a resumed continuation -> export to Hugging Face -> fill-mask, and what word order is
# worth to the model (validation loss with the tokens shuffled) -> zero-shot
# cross-lingual fine-tuning and retrieval -> report.
# The sizes can be made smaller (the CI test does): make demo DEMO=/tmp/d DEMO_SCALE=0.1 DEMO_STEPS=6 ...
# The first training run stops at DEMO_FIRST_STEPS, as a time-limited job would; the second resumes it.
DEMO_SCALE ?= 1.0
# Languages that lid.176 finds in only a few documents (its confusions: Marathi for Hindi, Cantonese for Chinese)
# are left out of the built corpus.
DEMO_MIN_LANGUAGE_DOCUMENTS ?= 20
DEMO_VOCAB ?= 8000
# The demo pretrains the tiny model's shape without dropout (model_configs/tiny_no_dropout.json; the vocabulary
# becomes the tokenizer's) on 32-token blocks: on 2 CPU cores that is what gets it past masked-LM training's first
# plateau within minutes (4,500 steps: word order worth 0.59 nats, against 0.008 after 600 steps of 128-token
# blocks with dropout; benchmarks/NOTES.md). The ablation and adaptation targets keep the tiny preset on 128-token blocks.
DEMO_MODEL ?= --model-config model_configs/tiny_no_dropout.json
DEMO_BLOCK ?= 32
DEMO_STEPS ?= 4500
DEMO_FIRST_STEPS ?= 3600
DEMO_EVERY ?= 900
# The cross-lingual step: a CLDR task fine-tuned on English and tested on every task language, and retrieval
# of parallel country names (xlmr_ds/prep/demo/task.py says what they are and their licence).
DEMO_TASK_LANGS ?= en de fr es it nl ru
DEMO_FT_EPOCHS ?= 8
DEMO_FT_LR ?= 1e-3
FINETUNE_TESTS = $(foreach l,$(DEMO_TASK_LANGS),$(l)=$(DEMO)/task/names/test.$(l).tsv)
RETRIEVAL_PAIRS = $(foreach l,$(filter-out en,$(DEMO_TASK_LANGS)),$(l)=$(DEMO)/task/parallel/en-$(l).en:$(DEMO)/task/parallel/en-$(l).$(l))
# The held-out fill-mask probes of the report: one whole word masked in a held-out block of each language.
DEMO_PROBE_LANGS ?= en ru de zh
FILL_MASK = "The weather is <mask> today." "Сегодня <mask> погода." "Das ist ein <mask> Haus." "今天天气很<mask>。"
# DeepSpeed's launcher prints its own INFO lines and, for a one-node job, a missing-hostfile warning: noise
# here. XLMR_DS_VERBOSE=1 brings them back, with the libraries' warnings inside the ranks (xlmr_ds/logs.py).
LAUNCHER_LOG_LEVEL = $(if $(filter-out 0,$(XLMR_DS_VERBOSE)),info,error)
DEMO_TRAIN = DS_ACCELERATOR=cpu PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/deepspeed --log_level $(LAUNCHER_LOG_LEVEL) --num_gpus 2 \
	--module xlmr_ds.train --deepspeed_config ds_configs/demo_cpu_zero2.json --data $(DEMO)/data $(DEMO_MODEL) \
	--block-size $(DEMO_BLOCK) --save $(DEMO)/ckpt --save-every $(DEMO_EVERY) --eval-every $(DEMO_EVERY) \
	--keep 2 --valid-fraction 0.05 --eval-samples 256 --probe-languages $(DEMO_PROBE_LANGS)

demo: $(INSTALLED)
	$(XLMR_DS) info --model large --gpus-per-node 8 --nodes 4
	$(XLMR_DS) corpus demo --out $(DEMO)/source --scale $(DEMO_SCALE)
	$(XLMR_DS) corpus demo-crawl --from $(DEMO)/source --out $(DEMO)/raw --shards 4
	$(MPIEXEC) -n 2 $(XLMR_DS) corpus build --input $(DEMO)/raw --out $(DEMO)/corpus --known-language-field language \
		--min-language-documents $(DEMO_MIN_LANGUAGE_DOCUMENTS)
	$(XLMR_DS) spm train --input $(DEMO)/corpus --out $(DEMO)/spm/spm --vocab-size $(DEMO_VOCAB) --sample-lines 100000
	$(MPIEXEC) -n 2 $(XLMR_DS) binarize --input $(DEMO)/corpus --spm $(DEMO)/spm/spm.model --out $(DEMO)/data
	$(XLMR_DS) data inspect $(DEMO)/data/hi -n 2
	rm -rf $(DEMO)/ckpt
	$(DEMO_TRAIN) --steps $(DEMO_STEPS) --exit-at-step $(DEMO_FIRST_STEPS)
	$(DEMO_TRAIN) --steps $(DEMO_STEPS) --resume auto
	$(XLMR_DS) ckpt list $(DEMO)/ckpt
	$(XLMR_DS) export --ckpt $(DEMO)/ckpt --out $(DEMO)/hf
	$(XLMR_DS) fill-mask --model $(DEMO)/hf $(FILL_MASK)
	$(XLMR_DS) eval --ckpt $(DEMO)/ckpt --data $(DEMO)/data --shuffled-order --json $(DEMO)/eval.json
	$(XLMR_DS) task demo --out $(DEMO)/task --languages $(DEMO_TASK_LANGS)
	$(XLMR_DS) finetune --task sequence-classification --model $(DEMO)/hf --train $(DEMO)/task/names/train.en.tsv \
		--valid en=$(DEMO)/task/names/dev.en.tsv --test $(FINETUNE_TESTS) --out $(DEMO)/finetune \
		--epochs $(DEMO_FT_EPOCHS) --batch-size 16 --lr $(DEMO_FT_LR)
	$(XLMR_DS) eval retrieval --model $(DEMO)/hf --pairs $(RETRIEVAL_PAIRS) --out $(DEMO)/retrieval
	$(XLMR_DS) report --run $(DEMO)/ckpt --out $(DEMO)/report.md --hf $(DEMO)/hf --fill-mask $(FILL_MASK) \
		--finetune $(DEMO)/finetune --retrieval $(DEMO)/retrieval --corpus $(DEMO)/corpus --word-order $(DEMO)/eval.json \
		--title "xlmr-ds demo: tiny XLM-R on the 21-language demo corpus, 2 CPU processes, ZeRO-2"
	@echo "demo outputs: raw crawl $(DEMO)/raw, built corpus $(DEMO)/corpus (stats.json, stats.png), tokenizer $(DEMO)/spm/spm.model, datasets $(DEMO)/data,"
	@echo "  checkpoints and metrics $(DEMO)/ckpt, Hugging Face model $(DEMO)/hf, cross-lingual task $(DEMO)/task,"
	@echo "  fine-tuned classifier $(DEMO)/finetune, retrieval $(DEMO)/retrieval, report $(DEMO)/report.md"

# The paper's alpha study on the demo corpus: the tiny model trained three times, each with a one-phase recipe of
# another alpha (the same corpus, tokenizer, seed and steps), then `xlmr-ds compare` answers from the measured
# validation perplexities whether low-resource languages gain and high-resource ones lose as alpha falls.
ABLATION ?= runs/ablation
ABLATION_ALPHAS ?= 0.3 0.7 1.0
ABLATION_STEPS ?= 500
ABLATION_EVERY ?= 100
ABLATION_BLOCK ?= 128
ABLATION_TRAIN = DS_ACCELERATOR=cpu PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/deepspeed --log_level $(LAUNCHER_LOG_LEVEL) --num_gpus 2 \
	--module xlmr_ds.train --deepspeed_config ds_configs/demo_cpu_zero2.json --data $(ABLATION)/data --model tiny \
	--block-size $(ABLATION_BLOCK) --eval-every $(ABLATION_EVERY) --valid-fraction 0.02 --resume none

ablation: $(INSTALLED)
	$(XLMR_DS) corpus demo --out $(ABLATION)/corpus --scale $(DEMO_SCALE)
	$(XLMR_DS) spm train --input $(ABLATION)/corpus --out $(ABLATION)/spm/spm --vocab-size $(DEMO_VOCAB) --sample-lines 100000
	$(MPIEXEC) -n 2 $(XLMR_DS) binarize --input $(ABLATION)/corpus --spm $(ABLATION)/spm/spm.model --out $(ABLATION)/data
	for alpha in $(ABLATION_ALPHAS); do \
		printf '{"description": "XLM-R with alpha %s", "phases": [{"name": "alpha-%s", "steps": %s, "alpha": %s}]}\n' \
			$$alpha $$alpha $(ABLATION_STEPS) $$alpha > $(ABLATION)/alpha_$$alpha.json; \
		rm -rf $(ABLATION)/alpha_$$alpha; \
		$(ABLATION_TRAIN) --recipe $(ABLATION)/alpha_$$alpha.json --save $(ABLATION)/alpha_$$alpha || exit 1; \
	done
	$(XLMR_DS) compare $(foreach a,$(ABLATION_ALPHAS),$(ABLATION)/alpha_$(a)) --out $(ABLATION)/report.md \
		--title "alpha 0.3 / 0.7 / 1.0: the tiny model on the demo corpus, $(ABLATION_STEPS) steps each"

# Adapting a pretrained model to a language its tokenizer lacks (the Glot500 / OFA / FOCUS path): a base tokenizer
# and model without ADAPT_LANGUAGE, its tokenizer extended with that language's pieces, the model grown to it with
# mean and with random initialization of the new embeddings, continued pretraining of both on the whole corpus, and
# `xlmr-ds compare --reach` telling how many steps each needs to reach random init's final loss on the language.
ADAPT ?= runs/adapt
ADAPT_LANGUAGE ?= sv
ADAPT_ADD ?= 2000
ADAPT_BASE_STEPS ?= 400
ADAPT_STEPS ?= 200
ADAPT_EVERY ?= 20
ADAPT_BLOCK ?= 128
ADAPT_TRAIN = DS_ACCELERATOR=cpu PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/deepspeed --log_level $(LAUNCHER_LOG_LEVEL) --num_gpus 2 \
	--module xlmr_ds.train --deepspeed_config ds_configs/demo_cpu_zero2.json --model tiny --block-size $(ADAPT_BLOCK) \
	--valid-fraction 0.02 --resume none

adapt: $(INSTALLED)
	$(XLMR_DS) corpus demo --out $(ADAPT)/corpus --scale $(DEMO_SCALE)
	rm -rf $(ADAPT)/base_corpus && mkdir -p $(ADAPT)/base_corpus && cp $(ADAPT)/corpus/*.txt $(ADAPT)/base_corpus/ \
		&& rm $(ADAPT)/base_corpus/$(ADAPT_LANGUAGE).txt
	$(XLMR_DS) spm train --input $(ADAPT)/base_corpus --out $(ADAPT)/base_spm/spm --vocab-size $(DEMO_VOCAB) --sample-lines 100000
	$(MPIEXEC) -n 2 $(XLMR_DS) binarize --input $(ADAPT)/base_corpus --spm $(ADAPT)/base_spm/spm.model --out $(ADAPT)/base_data
	rm -rf $(ADAPT)/base && $(ADAPT_TRAIN) --data $(ADAPT)/base_data --steps $(ADAPT_BASE_STEPS) --save $(ADAPT)/base
	$(XLMR_DS) spm extend --base $(ADAPT)/base_spm/spm.model --input $(ADAPT)/corpus --new-languages $(ADAPT_LANGUAGE) \
		--add $(ADAPT_ADD) --out $(ADAPT)/spm/spm
	$(XLMR_DS) info --model large --spm $(ADAPT)/spm/spm.model --gpus-per-node 8 --nodes 1
	$(MPIEXEC) -n 2 $(XLMR_DS) binarize --input $(ADAPT)/corpus --spm $(ADAPT)/spm/spm.model --out $(ADAPT)/data
	for init in mean random; do \
		rm -rf $(ADAPT)/$$init $(ADAPT)/hf_$$init; \
		$(XLMR_DS) model extend-vocab --model $(ADAPT)/base --spm $(ADAPT)/spm/spm.model --init $$init \
			--out $(ADAPT)/hf_$$init || exit 1; \
		$(ADAPT_TRAIN) --data $(ADAPT)/data --init-from $(ADAPT)/hf_$$init --steps $(ADAPT_STEPS) \
			--eval-every $(ADAPT_EVERY) --save $(ADAPT)/$$init || exit 1; \
	done
	$(XLMR_DS) compare $(ADAPT)/mean $(ADAPT)/random --reach $(ADAPT_LANGUAGE) --out $(ADAPT)/report.md \
		--title "new embeddings for $(ADAPT_LANGUAGE): mean against random initialization, $(ADAPT_STEPS) steps each"
	$(XLMR_DS) export --ckpt $(ADAPT)/mean --out $(ADAPT)/hf
	$(XLMR_DS) fill-mask --model $(ADAPT)/hf "Det är en <mask> dag."

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
