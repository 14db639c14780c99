# The two commands a newcomer types:
#   make demo   # set up .venv if missing, generate the demo data, train + evaluate YOLOv3
#   make test   # set up .venv if missing, lint, run the test suite
# The torch stack (tools/constraints.txt lists them); each non-default stack
# gets its own venv: make test TORCH=2.7.1 uses .venv-torch2.7.1.
TORCH ?= 2.9.1
ifeq ($(TORCH),2.9.1)
VENV ?= .venv
else
VENV ?= .venv-torch$(TORCH)
endif
PYTHON ?= python3.11
DEMO_CONFIG ?= configs/demo/yolov3_mobilenetv2-half_128_shapes.py
DEMO_DATA ?= data/demo
DEMO_WORK_DIR ?= work_dirs/demo
DEVICE ?= auto
PYTEST_ARGS ?=

.PHONY: env demo test lint clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tools/constraints.txt tools/setup_env.sh
	TORCH=$(TORCH) VENV=$(VENV) PYTHON=$(PYTHON) bash tools/setup_env.sh

demo: env
	VENV=$(VENV) DEVICE=$(DEVICE) bash tools/demo.sh $(DEMO_CONFIG) $(DEMO_DATA) $(DEMO_WORK_DIR)

lint: env
	$(VENV)/bin/ruff check mmdet_hpu tests tools configs

test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO_WORK_DIR) $(DEMO_DATA)
