# The README's commands. Each target installs what it needs first (scripts/bootstrap.sh is
# idempotent and quick when nothing is missing), so they work on a fresh Debian 12 machine.
VENV := .venv/bin
SPEC ?= stacks/default.lab.yaml
NAME ?= default

.PHONY: up test bootstrap lint fmt unit integration e2e kernel vm-image

## Stand up the default lab (plan, nodes, provisioning) and check it with `nestlab verify`.
up: bootstrap
	$(VENV)/nestlab plan $(SPEC)
	$(VENV)/nestlab up $(SPEC) --name $(NAME)
	$(VENV)/nestlab verify --name $(NAME)

## Install everything, run the checks and the whole test suite (the slow cached builds start at
## once, in the background: scripts/test.sh).
test: bootstrap
	@bash scripts/test.sh

bootstrap:
	@bash scripts/bootstrap.sh

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports
	$(VENV)/yamllint --strict roles playbooks
	$(VENV)/ansible-lint roles playbooks

fmt: bootstrap
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .

unit: bootstrap
	$(VENV)/pytest tests/unit

integration: bootstrap
	$(VENV)/pytest -m integration

e2e: bootstrap
	$(VENV)/pytest -m e2e

## Build the just-enough pod kernel (cached by content under the nestlab cache) and print its path.
kernel: bootstrap
	$(VENV)/python -m nestlab.runtime.kernel build

## Build the node VM disk image (UEFI qcow2, cached by content) and print the path the stacks use.
vm-image: bootstrap
	$(VENV)/python -m nestlab.substrate.libvirt.image
