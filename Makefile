# A fresh machine needs two commands: `make serve` and `make test`. Both create .venv and
# install what they need first (torch pinned to the 2.13.0 CPU build).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install serve test lint clean deploy-configs voices quality

# The page test (tests/test_page.py) drives Debian's Chromium with Playwright (never its own
# browser download): installed with apt-get where it is missing and apt-get is there.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	test -x /usr/bin/chromium || { command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || true; }
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# Ray Serve on an embedded local Ray, with every installed voice (deploy/local.yaml), its
# Prometheus metrics on port 9100 (serve_app/launch.py: `serve run` cannot fix that port).
# Serve's HTTP proxy gets 120 s (not 5) to answer its first health check: on a busy laptop a
# slower start is waited for instead of killed and restarted.
serve: $(STAMP)
	$(VENV)/bin/voicestack serve deploy/local.yaml --metrics-port 9100

# The Serve configs in deploy/ are generated from the placements in deploy/placements/.
deploy-configs: $(STAMP)
	$(VENV)/bin/voicestack deploy build --placement deploy/placements/local.yaml -o deploy/local.yaml
	$(VENV)/bin/voicestack deploy build --placement deploy/placements/cluster.yaml --host 0.0.0.0 --no-check-resources -o deploy/cluster.yaml
	$(VENV)/bin/voicestack deploy build --placement deploy/placements/cluster.yaml --host 0.0.0.0 --no-check-resources --kuberay -o deploy/kuberay-rayservice.yaml

test: $(STAMP)
	$(PY) -m pytest

# Rebuild the reference voices from nothing: espeak-ng corpus (into $$VOICESTACK_CACHE/corpus,
# default ~/.cache/voicestack), training, export to addons/voices/, then the quality table.
# Niced and on one torch thread: this machine's two cores are shared.
DURATION_STEPS ?= 6000
ATTENTION_STEPS ?= 2500
voices: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,voices,bench]"
	nice -n 15 $(PY) -m voicestack.addons.recipes.corpus --train 4000 --heldout 250
	nice -n 15 $(PY) -m voicestack.addons.recipes.duration_voice --steps $(DURATION_STEPS)
	nice -n 15 $(PY) -m voicestack.addons.recipes.attention_voice --steps $(ATTENTION_STEPS) --frames-per-batch 4000
	$(MAKE) quality

quality: $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,voices,bench]"
	nice -n 15 $(PY) -m voicestack.addons.recipes.corpus --train 4000 --heldout 250
	mkdir -p out
	nice -n 15 $(PY) bench/quality.py --json out/quality.json

# mypy reads the package as it installs, the top-level folders as voicestack.* (pyproject.toml's
# package mapping), through links in build/typecheck: it cannot follow the editable install.
TYPECHECK := build/typecheck/voicestack
PACKAGES := blocks addons placement runtime serve_app cli
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	mkdir -p $(TYPECHECK)
	ln -sfn ../../../voicestack/__init__.py $(TYPECHECK)/__init__.py
	for d in $(PACKAGES); do ln -sfn ../../../$$d $(TYPECHECK)/$$d; done
	cd build/typecheck && ../../$(VENV)/bin/mypy --config-file ../../pyproject.toml -p voicestack

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
