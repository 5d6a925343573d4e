# Everything a fresh machine needs: `make demo` and `make test` set themselves up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
ORB_VOCABULARY := runs/bench/orb_vocabulary.txt
DATA ?= ../shared/data

.PHONY: setup test test-avx2 demo bench lint clean

setup: $(STAMP)

$(STAMP): requirements.txt setup.py ros_vendor/build_tf2_msgs.sh ros_vendor/tf2_msgs/CMakeLists.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -m pip install -q -e . 2>&1 | grep -v "^WARNING: Location" || true
	ros_vendor/build_tf2_msgs.sh $(VENV)  # tf2_msgs is not on PyPI: /tf on the pip path (skipped, said, without cmake/cc)
	$(PY) -c "import torch, cv2, onnxruntime, rclpy, rosbags; print('set-up ok: torch', torch.__version__)"
	touch $(STAMP)

# Benchmark-only peers (Open3D, ORB-SLAM3, GTSAM): `make bench` installs them, `make test` never needs them.
$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install -q -r requirements-bench.txt 2>&1 | grep -v "^WARNING: Location" || true
	$(PY) -c "import open3d, pyorbslam3, gtsam; print('bench peers ok: open3d', open3d.__version__)"
	touch $(BENCH_STAMP)

# ORB-SLAM3's vocabulary, trained on the training photos only (never on a benchmark sequence).
$(ORB_VOCABULARY): training/orb_vocabulary.py | $(STAMP)
	$(PY) -m training.orb_vocabulary --images $(DATA)/train --out $@

test: setup
	$(PY) -m pytest -q test

# The suite with torch, oneDNN, OpenBLAS, NumPy and OpenCV held to their AVX2 kernels (test/avx2_only.env).
test-avx2: setup
	env $$(grep -v '^#' test/avx2_only.env) $(PY) -m pytest -q test

demo: setup
	$(VENV)/bin/silk-vo demo --data $(DATA)

bench: setup $(BENCH_STAMP) $(ORB_VOCABULARY)
	$(VENV)/bin/silk-vo bench features --json runs/bench/features.json
	$(VENV)/bin/silk-vo bench homography --json runs/bench/homography.json
	$(VENV)/bin/silk-vo bench pose-pairs --json runs/bench/pose_pairs.json
	$(VENV)/bin/silk-vo bench matchers --repeats 5 --threads 2 --json runs/bench/matchers.json
	$(VENV)/bin/silk-vo bench vo --features silk,silk+attention,orb,open3d-rgbd,orbslam3 --starts 10,20 --orb-vocabulary $(ORB_VOCABULARY) --json runs/bench/vo.json
	$(VENV)/bin/silk-vo bench bundle --json runs/bench/bundle.json
	$(VENV)/bin/silk-vo bench node --json runs/bench/node.json

lint: setup
	$(VENV)/bin/ruff check silk_ros training test

clean:
	rm -rf $(VENV) runs build install log
