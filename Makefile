# Two commands: `make demo` (xlt's main job on the embedded default) and `make test`.
# Both install what they need into .venv/ (CPU torch from a pinned wheel; never the CUDA build).
PYTHON ?= python3.11
TORCH ?= torch==2.13.0
VENV := .venv
HF4 := $(VENV)/hf457
PIP_QUIET ?= -q
# Test processes side by side (pytest-xdist): the suite's long tests then overlap on a 2-core machine.
TEST_WORKERS ?= 2
# The two test environments install side by side.
SETUP_JOBS ?= 2

.PHONY: demo test lint install environments clean

# Created once, before either environment installs: both live under .venv/, and two `venv` runs
# racing to create it fail with "File exists".
$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/pyvenv.cfg
	@echo "==> installing xlt into $(VENV) (transformers 5.x)"
	$(VENV)/bin/pip install $(PIP_QUIET) --upgrade pip
	$(VENV)/bin/pip install $(PIP_QUIET) "$(TORCH)"
	$(VENV)/bin/pip install $(PIP_QUIET) -e ".[test,ray,slurm,serve]" "$(TORCH)" "transformers>=5,<6"
	touch $@

# A second environment on transformers 4.57 with AdapterHub (which pins it), used as a test oracle.
$(HF4)/.installed: pyproject.toml | $(VENV)/pyvenv.cfg
	@echo "==> installing the transformers 4.57 + AdapterHub test environment into $(HF4)"
	$(PYTHON) -m venv $(HF4)
	$(HF4)/bin/pip install $(PIP_QUIET) --upgrade pip
	$(HF4)/bin/pip install $(PIP_QUIET) "$(TORCH)"
	$(HF4)/bin/pip install $(PIP_QUIET) -e ".[test]" "$(TORCH)" "transformers==4.57.*" "huggingface_hub<1.0" "adapters==1.3.0"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/xlt demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# The two environments install side by side (pip waits on the network and the disk as much as on a core).
environments:
	$(MAKE) -j$(SETUP_JOBS) -O --no-print-directory $(VENV)/.installed $(HF4)/.installed

test: environments
	$(VENV)/bin/ruff check .
	@echo "==> tests on transformers 5.x"
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15
	@echo "==> tests on transformers 4.57 (with the AdapterHub oracle)"
	$(HF4)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow and not no_model and not orchestration"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
