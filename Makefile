# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install kafka tools run test unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,test]'
	touch $(STAMP)

install: $(STAMP)

# Apache Kafka's jars (pinned in devtools/kafka.py), fetched once with mvn into ~/.cache/outage
kafka: install
	$(BIN)/python -m devtools.kafka fetch

# promtool (Debian's prometheus package; its server is not started) for the check of deploy/prometheus.yml
# in tests/unit/test_deploy.py: installed when missing and this user may apt-get, else that check is skipped
APT_PROMETHEUS := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
tools:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { $(APT_PROMETHEUS) || { apt-get update -q >/dev/null && $(APT_PROMETHEUS); }; }; } || \
	  echo "promtool is not installed (apt-get install prometheus): its check of deploy/ is skipped"

run: install
	$(BIN)/outage dev

test: install kafka tools
	$(BIN)/python -m pytest -q -p no:cacheprovider

unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache build *.egg-info
