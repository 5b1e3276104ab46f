# mailhub: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install test-tools bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Start the platform on its embedded defaults (SQLite, generated TLS certificate
## and DKIM keys, delivery to the local Maildir outbox instead of the Internet).
run: install
	$(BIN)/mailhub init
	$(BIN)/mailhub serve

## Run the whole test suite.
test: install test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Independent DKIM verifier (Debian's Perl Mail::DKIM) for the interoperability
## tests. Best effort: without root or a package mirror the tests that need it skip.
test-tools:
	@perl -MMail::DKIM::Verifier -e 1 2>/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq libmail-dkim-perl >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libmail-dkim-perl >/dev/null 2>&1; }; } ; } || \
	  echo "note: Perl Mail::DKIM not available; the independent-verifier tests will be skipped"

bench: install
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) var .pytest_cache
