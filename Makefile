# Every target creates .venv when missing and installs the package into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

# glibc otherwise returns large activation buffers to the OS every step and faults them back in
# (see PERF-NOTES): keep them in the heap, with mmap off (glibc maps blocks over 32 MB afresh on every
# allocation otherwise). horseshoe also sets this in-process; this covers child processes.
export MALLOC_MMAP_MAX_ := 0
export MALLOC_TRIM_THRESHOLD_ := 68719476736
export MALLOC_TOP_PAD_ := 1073741824

.PHONY: demo test test-slow lint bench bench-quality gallery install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras, remade when pyproject.toml changes.
# torch exactly as tested (pyproject.toml allows a range, for users' own environments).
TORCH := torch==2.13.0

$(VENV)/.installed-%: pyproject.toml | $(PY)
	$(PIP) install "$(TORCH)" -e ".[$*]"
	touch $@

$(VENV)/.installed-base: pyproject.toml | $(PY)
	$(PIP) install "$(TORCH)" -e .
	touch $@

install: $(VENV)/.installed-base

# The main job: train on the built-in horseshoes and draw everything into runs/demo (~6 min on 2 CPU cores).
demo: $(VENV)/.installed-base
	$(VENV)/bin/horseshoe demo --out runs/demo

test: $(VENV)/.installed-test
	$(PY) -m pytest -q

test-slow: $(VENV)/.installed-test
	$(PY) -m pytest -q -m slow

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

# Speed against diffusers and lucidrains on the same network (~30 min on 2 CPU cores; BENCH_ARGS=--quick: ~5).
bench: $(VENV)/.installed-bench
	$(PIP) install --no-deps denoising-diffusion-pytorch==2.3.4
	$(PY) benchmarks/run.py $(BENCH_ARGS)

# Time to good samples: horseshoe's demo recipe against diffusers' and lucidrains' own recipes, same images,
# same machine (30 min of training each, plus evaluations; see benchmarks/quality.py --help for
# QUALITY_ARGS, e.g. "--data digits", "--minutes 10 --interval 60").
bench-quality: $(VENV)/.installed-bench
	$(PIP) install --no-deps denoising-diffusion-pytorch==2.3.4 ema-pytorch==0.8.3
	$(PY) benchmarks/quality.py $(QUALITY_ARGS)

# The README's gallery: the demo's pictures copied into docs/gallery (continues runs/demo if it is there),
# then the edits with its model: a fresh shoe half erased and filled in, the hand-drawn docs/gallery/sketch.png
# at three strengths, and an inversion round trip.
HS := $(VENV)/bin/horseshoe
gallery: $(VENV)/.installed-base
	$(HS) demo --out runs/demo --gallery docs/gallery
	$(HS) data export --count 1 --set data.seed=7 --out runs/gallery-shoe
	$(HS) inpaint runs/demo --image runs/gallery-shoe/000000.png --mask left-half --count 8 --out docs/gallery/inpaint.png
	for s in 0.4 0.6 0.8; do $(HS) edit runs/demo --image docs/gallery/sketch.png --strength $$s --count 8 \
		--out docs/gallery/edit-$$s.png || exit 1; done
	$(HS) invert runs/demo --image runs/gallery-shoe/000000.png --out docs/gallery/inversion.png

clean:
	rm -rf $(VENV) runs build dist src/*.egg-info
