# The two commands a newcomer types:
#   make demo   # set up .venv if missing, generate the demo data, train + evaluate YOLOv3
#               # (make demo MODEL=retinanet|ssd|fcos|atss: the other demo detectors)
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
DEMO_MODELS := yolov3 retinanet ssd fcos atss
MODEL ?= yolov3
DEMO_CONFIG ?= configs/demo/$(MODEL)_mobilenetv2-half_128_shapes.py
DEMO_DATA ?= data/demo
ifeq ($(MODEL),yolov3)
DEMO_WORK_DIR ?= work_dirs/demo
else
DEMO_WORK_DIR ?= work_dirs/demo-$(MODEL)
endif
# An unknown MODEL stops make before any target runs (nothing is created or written).
ifneq ($(filter demo,$(MAKECMDGOALS)),)
ifneq ($(words $(MODEL)) $(words $(filter $(MODEL),$(DEMO_MODELS))),1 1)
$(error MODEL=$(MODEL) is not a demo model. Choose one of: $(DEMO_MODELS), e.g. make demo MODEL=retinanet)
endif
endif
DEVICE ?= auto
PYTEST_ARGS ?=
# Test workers (pytest-xdist): one per core, each test file on one worker (its module
# fixtures are built once). PYTEST_WORKERS=0 runs the suite in this process.
PYTEST_WORKERS ?= auto

.PHONY: env demo test lint clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml tools/constraints.txt tools/setup_env.sh
	TORCH=$(TORCH) VENV=$(VENV) PYTHON=$(PYTHON) bash tools/setup_env.sh

demo: env
	VENV=$(VENV) DEVICE=$(DEVICE) bash tools/demo.sh $(DEMO_CONFIG) $(DEMO_DATA) $(DEMO_WORK_DIR)

lint: env
	$(VENV)/bin/ruff check mmdet_hpu tests tools configs

test: lint
	$(VENV)/bin/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(DEMO_WORK_DIR) $(DEMO_DATA)
