# chronos-rs: the two commands of the README, plus fixtures and benchmarks.
#   make forecast   build, then forecast the bundled example with the bundled model (and plot it)
#   make test       build and run the test suite (what .ci/run runs)
# Both install what they need first (scripts/setup.sh: a project-local venv with torch 2.11.0).

CARGO ?= cargo
EXAMPLE_MODEL ?= chronos-bolt-2m
EXAMPLE_INPUT ?= fixtures/example/m4_hourly_5.csv
EXAMPLE_OUTPUT ?= target/example-forecast.csv
EXAMPLE_PLOT ?= target/example-forecast.png

.PHONY: setup setup-reference forecast test lint fixtures bench

setup:
	scripts/setup.sh

setup-reference:
	scripts/setup.sh --reference

forecast: setup
	$(CARGO) build --release --bin predict
	target/release/predict --model $(EXAMPLE_MODEL) --input $(EXAMPLE_INPUT) \
		--prediction-length 48 --quantiles 0.1,0.5,0.9 --output $(EXAMPLE_OUTPUT) \
		--plot $(EXAMPLE_PLOT)
	head -n 6 $(EXAMPLE_OUTPUT)

test: setup
	$(CARGO) test --release

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

fixtures: setup-reference
	.venv/bin/python fixtures/generate.py
	.venv/bin/python fixtures/generate_t5.py
	.venv/bin/python fixtures/generate_gpt2.py
	.venv/bin/python fixtures/generate_chronos2.py
	.venv/bin/python fixtures/eval.py
	.venv/bin/python fixtures/kernel_synth.py
	.venv/bin/python fixtures/generate_train.py
	.venv/bin/python fixtures/generate_train_data.py
	.venv/bin/python fixtures/generate_chronos2_df.py
	.venv/bin/python fixtures/generate_chronos2_train.py

bench: setup-reference
	$(CARGO) bench --bench bolt
	$(CARGO) bench --bench t5
	$(CARGO) bench --bench chronos2
	$(CARGO) bench --bench evaluate
	$(CARGO) bench --bench kernel_synth
	$(CARGO) bench --bench train
	$(CARGO) bench --bench distributed
