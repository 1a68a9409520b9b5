# Gridpilot: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
UV := scripts/uv.sh
RUN := $(UV) run --frozen

.PHONY: demo test test-quick lint bench env services clean

env: ## create or update .venv from uv.lock
	@$(UV) sync --locked --quiet

demo: env ## run the embedded stack on http://127.0.0.1:8000
	$(RUN) gridpilot demo

services: ## make sure RabbitMQ, PostgreSQL, Chromium and the deploy linters are there
	@bash scripts/ensure-rabbitmq.sh
	@bash scripts/ensure-postgres.sh
	@bash scripts/ensure-chromium.sh
	@bash scripts/ensure-deploy-tools.sh

test: env services ## the whole suite, on both buses and both databases, browser included
	$(RUN) pytest -q

test-quick: env ## the inner loop: no RabbitMQ, no PostgreSQL, no browser
	$(RUN) pytest -q -m "not rabbitmq and not postgres and not browser"

lint: env ## ruff, mypy --strict, import-linter
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy proto/src/proto services/acquisition/src/acquisition services/processing/src/processing services/session-api/src/session_api services/ui/src/ui launcher/src/gridpilot
	MYPYPATH=benchmarks:tests $(RUN) mypy --follow-imports=silent benchmarks
	$(RUN) lint-imports

bench: env services ## every benchmark; tables on stdout, JSON in benchmarks/results/
	$(RUN) python benchmarks/lease.py
	$(RUN) python benchmarks/control.py
	$(RUN) python benchmarks/logs.py
	$(RUN) python benchmarks/processing.py
	$(RUN) python benchmarks/stream.py
	$(RUN) python benchmarks/scale.py

clean:
	rm -rf .venv .mypy_cache .ruff_cache var
