# Two commands: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# torch/torchvision first, pinned: on the project's build machines these come from local files.
# TORCH_INDEX_URL picks the build, e.g. the CPU-only wheels (a few hundred MB, not PyPI's CUDA build):
#   make test TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH  ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX_URL ?=
export TORCH_INDEX_URL  # tests/test_wheel.py installs torch into its venv from the same index
TORCH_PIP_ARGS ?= $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
PYTEST_ARGS ?=

.PHONY: demo test install browser clean schemas

$(STAMP): pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel "setuptools>=69,<81"
	$(BIN)/python -m pip install -q $(TORCH_PIP_ARGS) $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev,demo]"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/injury-monitor demo $(ARGS)

# Headless Chromium for the browser tests (Debian packages; never a browser download).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	    (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) ; } || \
	  echo "chromium not available: browser tests will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

schemas: $(STAMP)
	$(BIN)/python -m schemas.generate

clean:
	rm -rf $(VENV) .cache test-artifacts .pytest_cache
