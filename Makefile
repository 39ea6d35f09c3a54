# Local development entry points. Everything runs through uv in the workspace's .venv.
.PHONY: install up down status lint test demo bench openapi clean

# Every importable package in the workspace: mypy takes module names, as src-layout paths
# would give the same file two names (and packages and paths cannot be mixed in one run).
PACKAGES := events catalog apikeys devstack request_api validator allocator configurator deployer auditor
# Pyc files make every service start faster, and PYTHONDONTWRITEBYTECODE may be set.
export UV_COMPILE_BYTECODE := 1

install:
	command -v uv >/dev/null || python3 -m pip install uv || python3 -m pip install --break-system-packages uv
	if [ -f uv.lock ]; then uv sync --all-packages --frozen; else uv sync --all-packages; fi
	uv run python -m devstack fetch-jars
	bash deploy/k8s/install-tools.sh

# SCALE="allocator=3 deployer=2": replicas per service, each in the same consumer group
# (default 1 each; `make up` again without SCALE goes back to one).
up: install
	uv run python -m devstack up --scale "$(SCALE)"

down:
	uv run python -m devstack down

status:
	uv run python -m devstack status

lint:
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy $(addprefix -p ,$(PACKAGES))
	uv run mypy tests

test: lint
	uv run pytest

demo:
	uv run python -m devstack demo

bench:
	uv run python -m devstack.bench

# Each service's OpenAPI document, written from the code to docs/openapi/ (a test fails when
# they drift).
openapi:
	uv run python -m devstack openapi

# Stops the stack and deletes its state; keeps the downloaded Kafka jars and the .venv.
clean:
	uv run python -m devstack down
	uv run python -m devstack wipe
	uv run python -m devstack --profile test down
	uv run python -m devstack --profile test wipe
	rm -rf .mypy_cache .ruff_cache .pytest_cache deploy/kafka/target
