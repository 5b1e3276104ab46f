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

## Debian tools some tests use: Perl Mail::DKIM (an independent DKIM verifier),
## poppler-utils (pdftoppm renders the HR report's PDF pages), HarfBuzz's subsetter
## (WeasyPrint embeds fonts with it) and Chromium with its driver (the console's browser
## tests; Playwright drives /usr/bin/chromium, no browser is downloaded). Best effort:
## without root or a package mirror the tests that need them skip.
TEST_PACKAGES := libmail-dkim-perl poppler-utils libharfbuzz-subset0 chromium chromium-driver
test-tools:
	@{ perl -MMail::DKIM::Verifier -e 1 2>/dev/null && command -v pdftoppm >/dev/null && \
	   command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
	   ldconfig -p | grep -q libharfbuzz-subset; } || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { apt-get install -y -qq $(TEST_PACKAGES) >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(TEST_PACKAGES) >/dev/null 2>&1; }; } ; } || \
	  echo "note: $(TEST_PACKAGES) not all available; the tests that need them will be skipped"

bench: install
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) var .pytest_cache
