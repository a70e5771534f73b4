# Quickstart targets. Each one sets up ./.venv first (idempotent), so both work on a fresh clone.
.PHONY: setup setup-dev serve test lint bench

setup:
	bash scripts/setup.sh runtime

setup-dev:
	bash scripts/setup.sh dev

serve: setup
	.venv/bin/warden serve

test: setup-dev
	.venv/bin/ruff check src tests benchmarks
	.venv/bin/pytest

lint: setup-dev
	.venv/bin/ruff check src tests benchmarks
