# The README's two commands: `make demo` and `make test`. Both create .venv and install everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_INDEX ?= .ondata/demo

export UNSTRUCTURED_DISABLE_NOTICE := 1
export SCARF_NO_ANALYTICS := true
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test bench clean azurite chromium constraints

$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	# The versions of constraints.txt: a fresh machine and CI get the releases the tests last passed on.
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Re-pin constraints.txt: the newest releases pyproject.toml allows, resolved in a scratch venv.
PIN_VENV := .venv-pin
constraints:
	rm -rf $(PIN_VENV) && $(PYTHON) -m venv $(PIN_VENV)
	$(PIN_VENV)/bin/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PIN_VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; $(PIN_VENV)/bin/pip freeze --exclude-editable | grep -v '^#'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf $(PIN_VENV)
	git diff --stat constraints.txt || true

node_modules/.bin/azurite-blob: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

azurite: node_modules/.bin/azurite-blob

# Debian's Chromium for the browser tests (the chat page, the HTML eval report and comparison; Playwright
# drives it through executable_path). Installed when missing and run as root; otherwise they skip and say why.
chromium:
	@if ! [ -x /usr/bin/chromium ] && ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the browser test will skip"; \
	  else echo "chromium is missing (apt-get install chromium as root): the browser test will skip"; fi; \
	fi

demo: install
	$(BIN)/ondata ingest data/samples/docs --index $(DEMO_INDEX)
	$(BIN)/ondata index stats --index $(DEMO_INDEX)
	$(BIN)/ondata ask --index $(DEMO_INDEX) "How many days a year can I work from another country?"
	$(BIN)/ondata ask --index $(DEMO_INDEX) "What does a replacement 48V battery pack for the Cargo K2 cost?"
	$(BIN)/ondata ask --index $(DEMO_INDEX) "What was Larkspur's net profit in 2023?"
	@echo
	@echo "Chat page over this index (Ctrl-C stops it):"
	@echo "  $(BIN)/ondata serve --index $(DEMO_INDEX) --documents data/samples/docs"
	@echo "  then open http://127.0.0.1:8765/"

test: install azurite chromium
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval.py

clean:
	rm -rf .ondata .pytest_cache .hypothesis
