# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install kafka run test unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,test]'
	touch $(STAMP)

install: $(STAMP)

# Apache Kafka's jars (pinned in devtools/kafka.py), fetched once with mvn into ~/.cache/outage
kafka: install
	$(BIN)/python -m devtools.kafka fetch

run: install
	$(BIN)/outage dev

test: install kafka
	$(BIN)/python -m pytest -q -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache build *.egg-info
