# Everything a fresh machine needs: `make demo` and `make test` set themselves up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA ?= ../shared/data

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py ros_vendor/build_tf2_msgs.sh ros_vendor/tf2_msgs/CMakeLists.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -e . 2>&1 | grep -v "^WARNING: Location" || true
	ros_vendor/build_tf2_msgs.sh $(VENV)  # tf2_msgs is not on PyPI: /tf on the pip path (skipped, said, without cmake/cc)
	$(PY) -c "import torch, cv2, onnxruntime, rclpy, rosbags; print('set-up ok: torch', torch.__version__)"
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q test

demo: setup
	$(VENV)/bin/silk-vo demo --data $(DATA)

bench: setup
	$(VENV)/bin/silk-vo bench features --json runs/bench/features.json
	$(VENV)/bin/silk-vo bench homography --json runs/bench/homography.json
	$(VENV)/bin/silk-vo bench pose-pairs --json runs/bench/pose_pairs.json
	$(VENV)/bin/silk-vo bench matchers --repeats 5 --threads 2 --json runs/bench/matchers.json
	$(VENV)/bin/silk-vo bench vo --features silk,silk+attention,orb --starts 10,20 --json runs/bench/vo.json
	$(VENV)/bin/silk-vo bench node --json runs/bench/node.json

lint: setup
	$(VENV)/bin/ruff check silk_ros training test

clean:
	rm -rf $(VENV) runs build install log
