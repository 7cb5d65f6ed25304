# The two commands of the README's quick start. Each sets up ONNX Runtime once (a .venv holding
# the PyPI onnxruntime wheel, whose libonnxruntime.so Speck loads at run time).
CARGO ?= cargo

.PHONY: demo test setup lint

## Generate a synthetic chest CT, scan it with the bundled models, evaluate, print the table.
demo: setup
	$(CARGO) run --release -p speck-cli -- demo

## Build and run every test of the workspace.
test: setup
	$(CARGO) test --workspace

## Check for cmake; create .venv with onnxruntime (idempotent).
setup:
	@bash scripts/need-cmake.sh
	@bash scripts/setup-ort.sh

## What a reviewer runs first.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps
