# The project's one task runner. `make run` and `make test` do all of their own setup.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_ID ?= yolov3-tiny/coco-416
VIDEO ?= data/media/vtest.avi
DEVICE ?= cpu
WORKFLOW ?=
PYTEST_ARGS ?=
SOAK ?= 600
LOAD_SECONDS ?= 60
OCR_MODELS := data/models/pp-ocr/det-small/model.onnx data/models/pp-ocr/rec-small/model.onnx \
              data/models/pp-ocr/cls-small/model.onnx

.PHONY: setup run test bench lint clean

setup: $(STAMP) data/media/vtest.avi data/media/bikes.mp4 data/models/$(MODEL_ID)/model.onnx data/models/yolov3-tiny/coco-320/model.onnx \
       data/models/demo-colours/1/model.onnx data/models/demo-colours-present/1/model.onnx $(OCR_MODELS)

$(STAMP): pyproject.toml compose/docker/no-deps-requirements.txt tools/install_system_deps.sh
	tools/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[worker,convert,manager,api,flower,dev]'
	$(PY) -m pip install -q --no-deps -r compose/docker/no-deps-requirements.txt
	touch $(STAMP)

# Both sample videos, each checked against its pinned SHA-256 (a wrong one is deleted and fails the build).
data/media/vtest.avi data/media/bikes.mp4 &: | $(STAMP)
	$(PY) -m tools.fetch_media --dest data/media

data/models/$(MODEL_ID)/model.onnx: | $(STAMP)
	$(PY) -m services.worker.models build-default --repository data/models

# A second real model (same weights, 320x320 input) for workflows with two models (consensus, comparison).
data/models/yolov3-tiny/coco-320/model.onnx: | $(STAMP)
	$(PY) -m services.worker.models build-default --repository data/models --size 320

# A small real classification model (dominant colour: red/green/blue) for classification workflows.
data/models/demo-colours/1/model.onnx: | $(STAMP)
	$(PY) -m services.worker.models build-demo-classifier --repository data/models

# Its multi-label sibling (which of red/green/blue are present) for multi-label classification workflows.
data/models/demo-colours-present/1/model.onnx: | $(STAMP)
	$(PY) -m services.worker.models build-demo-multi-label --repository data/models

# The OCR models of pp_ocr / ocr_model (PP-OCRv4 mobile text detection and recognition, PP-OCR's line orientation
# classifier), read out of the rapidocr-onnxruntime wheel from PyPI, every file checked against its pinned SHA-256.
$(OCR_MODELS) &: | $(STAMP)
	$(PY) -m services.worker.models build-ocr --repository data/models --downloads data/downloads

# The source named with VIDEO= (a file anywhere, a camera index, a URL) is allowed for this run's manager only;
# a permanent error (no such file, a refused source) stops the run at once with status 1 (tools/run_stack.py).
run: setup
	$(PY) -m tools.run_stack --video '$(VIDEO)' --model '$(MODEL_ID)' --device '$(DEVICE)' $(if $(WORKFLOW),--workflow '$(WORKFLOW)')

# OpenCV 4 in a virtual environment of its own: its Darknet reader is the converter's oracle (OpenCV 5 has none).
data/opencv4/requirements.txt: tools/opencv4_env.py | $(STAMP)
	$(PY) -m tools.opencv4_env --dest data/opencv4
	touch $@

test: setup data/opencv4/requirements.txt
	$(PY) -m pytest $(PYTEST_ARGS)

bench: setup
	$(PY) -m tests.benchmarks.engine --output docs/benchmarks.md --soak-seconds $(SOAK)
	$(PY) -m tests.benchmarks.workflows --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.block_costs --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.decode --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.streams --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.idle --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.cpu_limit --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.control --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.fleet --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.webrtc --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.faults --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.e2e_timings --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.fuzz --output docs/benchmarks.md
	$(PY) -m tests.benchmarks.load --output docs/benchmarks.md --seconds $(LOAD_SECONDS)
	$(PY) -m tests.benchmarks.tcp_front --output docs/benchmarks.md

lint: setup
	$(VENV)/bin/ruff check services tests tools
	$(VENV)/bin/mypy services

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
