# Two commands on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
EXTRAS ?= all,test
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

export ORT_DISABLE_TELEMETRY := 1
export OPENVINO_TELEMETRY := 0

.PHONY: venv demo test test-all test-arm bench clean train-embedded

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: a bare `torch` would pull a multi-GB CUDA build here
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	# the benchmark's peer: rtmlib without its deps (it pins opencv-python, which would shadow the headless build)
	$(PIP) install -q --no-deps rtmlib==0.0.16
	touch $@

# The main job: accuracy vs latency of every installed runtime and precision on the same crops,
# plus drawings on the bundled photos. --threads 1 keeps the timings stable on a shared 2-core box.
demo: venv
	$(BIN)/dwpose-edge bench --quick --threads 1 --out out/bench
	$(BIN)/dwpose-edge demo --out out/demo

# pytest-benchmark suite, then the same report from its JSON
bench: venv
	mkdir -p out/bench
	$(BIN)/python -m pytest bench/benchmarks/ --benchmark-json out/bench/pytest.json
	$(BIN)/dwpose-edge bench --from-pytest-benchmark out/bench/pytest.json --out out/bench/pytest

test: venv
	$(BIN)/python -m pytest -q tests

test-all: venv
	$(BIN)/python -m pytest -q -m "" tests

# The ARM lane (tests/arm): exports made here, re-checked on emulated arm64 cores (cortex-a72, neoverse-n1) in a
# cached arm64 rootfs under qemu-user, torch-free. Needs root; builds what it needs on first use.
test-arm: venv
	$(BIN)/python tests/arm/arm_rootfs.py
	$(BIN)/python -m pytest -q -m arm tests/arm

# The embedded model's training chain (docs/MODEL_CARD.md): generated data; DWPose-s teacher and DWPose-t
# control, each first on the body + feet keypoints only (phase A) then on all 133; TPD stage 1 (from the
# control's phase A) + stage 2; then the AP of all four on the held-out set. Hours on a CPU;
# resumable: rerun `make -j2 train-embedded` and every run continues from its latest.pth. Two runs share the
# two cores at one thread each; once the chain is down to one run at a time (TPD stage 1 onwards), use
# `make train-embedded TRAIN_THREADS=2`.
TRAIN_THREADS ?= 1
TRAIN = OMP_NUM_THREADS=$(TRAIN_THREADS) $(BIN)/dwpose-edge train
resume = $(if $(wildcard runs/$(1)/latest.pth),--resume runs/$(1)/latest.pth)
EVAL = OMP_NUM_THREADS=$(TRAIN_THREADS) $(BIN)/dwpose-edge eval --ann runs/synth_val/annotations.json --images runs/synth_val/images

EVALS = runs/eval_teacher_s.json runs/eval_control_t.json runs/eval_tpd_t_stage1.json runs/eval_tpd_t_stage2.json
train-embedded: runs/ap_table.md

runs/ap_table.md: $(EVALS)
	$(BIN)/python -m dwpose_edge.train.compare $^ --baseline control_t | tee $@

runs/synth_train/annotations.json: | venv
	$(BIN)/dwpose-edge make-data --out runs/synth_train --images 4000 --seed 1
runs/synth_val/annotations.json: | venv
	$(BIN)/dwpose-edge make-data --out runs/synth_val --images 400 --seed 2
runs/teacher_s_body/final.pth runs/control_t_body/final.pth: \
		runs/synth_train/annotations.json runs/synth_val/annotations.json
runs/teacher_s_body/final.pth:
	$(TRAIN) plain --config train/configs/synth_teacher_s_body.toml $(call resume,teacher_s_body)
runs/control_t_body/final.pth:
	$(TRAIN) plain --config train/configs/synth_control_t_body.toml $(call resume,control_t_body)
runs/teacher_s/final.pth: runs/teacher_s_body/final.pth
	$(TRAIN) plain --config train/configs/synth_teacher_s.toml $(call resume,teacher_s)
runs/control_t/final.pth: runs/control_t_body/final.pth
	$(TRAIN) plain --config train/configs/synth_control_t.toml $(call resume,control_t)
runs/tpd_t_stage1/final.pth: runs/teacher_s/final.pth runs/control_t_body/final.pth
	$(TRAIN) stage1 --config train/configs/synth_tpd_t_stage1.toml $(call resume,tpd_t_stage1)
runs/tpd_t_stage2/final.pth: runs/tpd_t_stage1/final.pth
	$(TRAIN) stage2 --config train/configs/synth_tpd_t_stage2.toml $(call resume,tpd_t_stage2)
runs/eval_teacher_s.json: runs/teacher_s/final.pth
	$(EVAL) --model dwpose-s --weights $< --out $@
runs/eval_%.json: runs/%/final.pth
	$(EVAL) --model dwpose-t --weights $< --out $@

clean:
	rm -rf $(VENV) out .pytest_cache
