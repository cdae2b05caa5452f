# bnnflow: two commands on a fresh machine.
#   make demo   train on digits, export, verify golden + RTL + HLS, print the table
#               (METHOD=binaryconnect|bnn|xnor|dorefa|wage, default bnn)
#   make test   the test suite (creates .venv on first use)
# The venv is (re)built whenever pyproject.toml or this Makefile changes.

PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
# torch is pinned: an unpinned torch can pull a multi-GB CUDA build.
TORCH   := torch==2.13.0
# pyproject's `board` extra takes any pynq >= 3.0.1 (what the board images ship);
# the host venv pins the release its tests were run with.
PYNQ    := pynq==4.0.0
DEMO    := runs/demo
# make demo METHOD=dorefa: any trained method (bnn, binaryconnect, xnor, dorefa, wage) through every level;
# bnn's run is runs/demo, the others' runs/demo-METHOD.
METHOD  ?= bnn
DEMO_RUN = $(if $(filter bnn,$(METHOD)),$(DEMO),$(DEMO)-$(METHOD))
JOBS    ?= 2

.PHONY: demo test test-slow results venv clean bitstream

venv: $(STAMP)

# --no-compile: Python compiles each module when it is first imported, instead of pip
# compiling every file of torch and onnxruntime up front (most are never imported).
PIP     := $(PY) -m pip install -q --no-compile

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) $(TORCH)
	$(PIP) -e '.[train,sim,test,board,interop]' '$(PYNQ)'
	# Xilinx's ap_int/hls_stream headers for HLS C-simulation ship in the
	# hls4ml wheel; only the headers are used, so skip its dependencies.
	$(PIP) --no-deps hls4ml==1.3.0
	touch $@

demo: $(STAMP)
	$(VENV)/bin/bnnflow train --dataset digits --method $(METHOD) --hidden 256,256 --epochs 60 --seed 0 --out $(DEMO_RUN)
	$(VENV)/bin/bnnflow export $(DEMO_RUN)
	$(VENV)/bin/bnnflow verify $(DEMO_RUN) --against golden,rtl,hls,board-sim --sim verilator

# worksteal: an idle worker takes queued tests from the busy one (the suite's durations vary 100x)
test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) --dist worksteal -m "not slow" --durations=25 tests

test-slow: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m slow tests

# The PYNQ overlay of a run, with Vivado (and Vitis HLS for ENGINE=hls) on PATH:
#   make bitstream RUN=runs/demo BOARD=pynq-z2 ENGINE=rtl
# writes runs/demo/bnnflow-pynq-z2-rtl.{bit,hwh,signature.json}. BOARD: pynq-z2,
# pynq-z1, kv260, ultra96; ENGINE: rtl (the generated Verilog) or hls.
BOARD   ?= pynq-z2
ENGINE  ?= rtl
bitstream: $(STAMP)
	@test -n "$(RUN)" || { echo "make bitstream: set RUN=runs/NAME (an exported run)"; exit 2; }
	$(VENV)/bin/bnnflow bitstream $(RUN) --board $(BOARD) --engine $(ENGINE)

clean:
	rm -rf runs sim_build .pytest_cache .hypothesis

results: $(STAMP)
	$(PY) bench/results.py
