PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

.PHONY: install test test-fast demo lint clean neo4j

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==$(TORCH_VERSION)
	echo "torch==$(TORCH_VERSION)" > $(VENV)/constraints.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints.txt -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/kgrec demo

# The local Neo4j 5.26 + GDS + APOC + Browser (kg/neo4j_server/pom.xml): offline from ~/.m2 when cached.
NEO4J_DIST := kg/neo4j_server
NEO4J_STAMP := $(NEO4J_DIST)/lib/.assembled
neo4j: $(NEO4J_STAMP)

$(NEO4J_STAMP): $(NEO4J_DIST)/pom.xml
	rm -rf $(NEO4J_DIST)/lib $(NEO4J_DIST)/plugins
	mvn -B -q -o -f $(NEO4J_DIST)/pom.xml package 2>/dev/null || mvn -B -q -f $(NEO4J_DIST)/pom.xml package
	touch $(NEO4J_STAMP)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf .kgrec .pytest_cache

# RecBole 1.2.1 in its own git-ignored venv, for benchmarks/recbole_compare.py only
.PHONY: recbole-venv
recbole-venv:
	benchmarks/install_recbole.sh
