# ganbook: the two commands of README.md are `make book` and `make test`.
# Both create a virtual environment in .venv (if missing), install the CPU build of torch first
# (pinned in constraints.txt, so no CUDA build is ever resolved), then everything else.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
# Extra pip arguments for torch, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
# Set ALLOW_CUDA=1 to accept a CUDA build of torch (for the gpu profile on a CUDA machine).
ALLOW_CUDA ?=

.PHONY: install browser compiler book check-pages test smoke clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "torch==2.13.0" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -c constraints.txt -e ".[book,test]"
	@if [ -z "$(ALLOW_CUDA)" ] && $(BIN)/python -m pip list 2>/dev/null | grep -qiE '^nvidia-|^triton '; then \
		echo "error: a CUDA build of torch or its CUDA packages were installed; see README.md"; exit 1; fi
	$(BIN)/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; print('torch', torch.__version__)"
	touch $@

# Headless Chromium for the page check (Debian's packages; installed when run as root, as in CI).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "warning: Debian's chromium and chromium-driver are missing (sudo apt-get install chromium chromium-driver); the page check cannot run"; fi

# A C++ compiler for torch.compile's CPU backend (EnsembleConfig(compile_losses=True) and its test);
# installed when run as root, as in CI.
compiler:
	@if command -v g++ >/dev/null || command -v c++ >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null; \
	else echo "warning: no C++ compiler (sudo apt-get install g++); the compiled-loss test will be skipped"; fi

book: install
	$(BIN)/ganbook build --profile $(PROFILE)

# Every page of the built site in headless Chromium at a 1280-px window (screenshots: _build/screenshots/).
check-pages: install browser
	$(BIN)/ganbook check-pages _build/html --json _build/check-pages.json

test: install browser compiler
	rm -rf _build/nbval
	$(BIN)/ganbook prepare --profile smoke --out _build/nbval
	$(BIN)/python -m pytest tests _build/nbval --nbval-lax -p no:cacheprovider

clean:
	rm -rf _build runs
