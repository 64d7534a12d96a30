# One entry point for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          ?= python3
BIN         := $(VENV)/bin
BUILD       := build
# The collection seen through an ansible_collections/ path, as Ansible and pytest import it.
COLL_ROOT   := $(BUILD)/collections
COLL_LINK   := $(COLL_ROOT)/ansible_collections/hypermotion/linux_agent
# ansible-test insists on a real (not symlinked) ansible_collections/NS/NAME working directory.
SANITY_DIR  := $(BUILD)/sanity/ansible_collections/hypermotion/linux_agent
export HM_CACHE ?= /var/cache/hypermotion-linux-agent
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLL_ROOT)
export ANSIBLE_HOME := $(CURDIR)/$(BUILD)/ansible-home
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/$(BUILD)/ansible-home/tmp

.PHONY: help venv collection deploy test test-fast lint sanity unit integration molecule build-collection clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/.stamp: requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $@

venv: $(BIN)/.stamp  ## Create the virtualenv with the pinned tools

collection:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn $(CURDIR) $(COLL_LINK)

deploy: venv collection  ## Main job: create a disposable Debian target and console, run playbooks/install.yml
	tests/testbed/deploy-demo.sh

test-fast: lint sanity unit  ## Quick checks for iteration: lint, ansible-test sanity, unit tests

test: venv collection  ## The whole suite: fast checks, real-DKMS integration, molecule scenarios
	$(MAKE) test-fast
	$(MAKE) integration
	$(MAKE) molecule

lint: venv collection  ## ruff and ansible-lint (production profile)
	$(BIN)/ruff check plugins tests
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production

GET_PIP_CACHE := $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(shell $(BIN)/python -c 'from ansible_test._internal.python_requirements import *; import re,inspect,ansible_test._internal.python_requirements as m; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(m)).group(1))' 2>/dev/null || echo 24.2)).py

sanity: venv  ## ansible-test sanity on a copy of the collection
	@mkdir -p $(dir $(GET_PIP_CACHE)) && cp tests/tools/get_pip_offline.py $(GET_PIP_CACHE)
	rm -rf $(BUILD)/sanity && mkdir -p $(SANITY_DIR)
	git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C $(SANITY_DIR)
	# A repository of its own: ansible-test lists files with git, and build/ is ignored by ours.
	cd $(SANITY_DIR) && git init -q && git add -A
	cd $(SANITY_DIR) && PATH=$(CURDIR)/$(BIN):$$PATH $(CURDIR)/$(BIN)/ansible-test sanity --venv --python 3.11 --color no

unit: venv collection  ## Unit tests of module_utils and modules (pytest)
	cd $(COLL_LINK) && $(CURDIR)/$(BIN)/pytest -q tests/unit

integration: venv collection  ## Run the modules for real in Debian 12 and 13 containers with real DKMS
	cd $(COLL_LINK) && $(CURDIR)/$(BIN)/pytest -q tests/integration

molecule: venv collection  ## Molecule scenarios (podman targets, then the VM)
	@echo "molecule scenarios: none yet"

build-collection: venv  ## Build the installable collection tarball into build/
	$(BIN)/ansible-galaxy collection build --force --output-path $(BUILD) .

clean:  ## Remove build output (the image cache in $$HM_CACHE stays)
	rm -rf $(BUILD)
