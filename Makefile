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

# promtool and prometheus (Debian's prometheus package), used by tests/unit/test_deploy.py:
# `promtool check config deploy/prometheus.yml` (and the rules it loads), `promtool check rules
# deploy/prometheus/alerts.yml`, `promtool test rules deploy/prometheus/alerts.test.yml` (the alerts fire
# when they should), and by tests/integration/test_dashboard_queries.py (the server, started on a free
# port against live workers). Installed when missing and this user may apt-get, else those checks are skipped
APT_PROMETHEUS := DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null
tools:
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { $(APT_PROMETHEUS) || { apt-get update -q >/dev/null && $(APT_PROMETHEUS); }; }; } || \
	  echo "promtool is not installed (apt-get install prometheus): its checks of deploy/ are skipped"

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
