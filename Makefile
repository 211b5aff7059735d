# One place for the commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.13 || command -v python3.12 || echo python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run superuser test docs test-sqlite test-postgres chromium lint format bench bench-peers bench-peers-quick bench-tasks bench-children bench-mail-drain bench-memory bench-backlog bench-socket-burst clean

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
		{ echo "Python 3.12+ is needed; set PYTHON=/path/to/python3.13"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install: $(VENV)/.installed

# The web page on http://127.0.0.1:$(PORT)/contact/ and the relieve master beside it. Ctrl-C stops both:
# project/run.py gives each one SIGTERM and waits for the master's graceful stop.
run: install
	mkdir -p var
	$(PY) manage.py migrate --noinput
	@echo "contact page: http://127.0.0.1:$(PORT)/contact/   admin: http://127.0.0.1:$(PORT)/admin/ (make superuser)"
	@$(PY) -m project.run 127.0.0.1:$(PORT)

superuser: install
	$(PY) manage.py createsuperuser

# Lint, the docs, the whole suite on SQLite (browser tests included), then the database tests again on PostgreSQL.
test: lint docs chromium test-sqlite test-postgres

# The documentation site (docs/, Sphinx + furo + MyST) into var/docs-html; any warning fails it.
docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs var/docs-html

test-sqlite: install
	$(VENV)/bin/pytest

PG_URL ?= postgres://postgres@127.0.0.1:5432/relieve
test-postgres: install
	@if $(PY) -c "import psycopg; psycopg.connect('$(PG_URL)'.rsplit('/', 1)[0] + '/postgres', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== the database tests again, on PostgreSQL ($(PG_URL))"; \
		DATABASE_URL=$(PG_URL) $(VENV)/bin/pytest tests/app tests/tasks tests/contact tests/monitor tests/e2e; \
	elif [ -n "$$CI" ]; then \
		echo "PostgreSQL does not answer at $(PG_URL); CI needs it"; exit 1; \
	else \
		echo "== SKIPPED the PostgreSQL run: nothing answers at $(PG_URL) (set PG_URL=postgres://user@host:port/db)"; \
	fi

# The browser tests drive the system's Chromium (Playwright cannot download one here).
chromium:
	@if [ -n "$$RELIEVE_CHROMIUM" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then \
		true; \
	elif [ -n "$$CI" ]; then \
		echo "Chromium is missing and CI needs the browser tests: apt-get install chromium (.ci/run does)"; exit 1; \
	else \
		echo "== the browser tests will be SKIPPED: no Chromium. Install it (Debian/Ubuntu: sudo apt-get install chromium;"; \
		echo "   macOS: brew install --cask chromium) or set RELIEVE_CHROMIUM=/path/to/chromium"; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) bench/pool_calls.py
	$(PY) bench/contact_latency.py

# relieve against Celery, django-q2, django.tasks backends, django-post-office and send_mail in the view.
# The peers live in their own virtualenv; Redis (db 7 by default) and PostgreSQL on 127.0.0.1.
PEERS_VENV := var/peers-venv
PEERS_ARGS ?=
$(PEERS_VENV)/.installed: requirements.txt bench/requirements-peers.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12))' || \
		{ echo "Python 3.12+ is needed; set PYTHON=/path/to/python3.13"; exit 1; }
	test -x $(PEERS_VENV)/bin/python || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/python -m pip install --quiet -r bench/requirements-peers.txt
	touch $@

bench-peers: $(PEERS_VENV)/.installed
	nice -n 10 $(PEERS_VENV)/bin/python bench/peers.py $(PEERS_ARGS)

bench-peers-quick: $(PEERS_VENV)/.installed
	nice -n 10 $(PEERS_VENV)/bin/python bench/peers.py --quick $(PEERS_ARGS)

# relieve against django-tasks-db's db_worker, which lives in its own venv: never a dependency of the app.
BENCH_VENV := var/bench-venv
bench-tasks: install
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r requirements.txt -r bench/requirements-tasks.txt
	nice -n 10 $(BENCH_VENV)/bin/python bench/tasks.py

bench-children: install
	nice -n 10 $(PY) bench/children.py

bench-mail-drain: install
	nice -n 10 $(PY) bench/mail_drain.py

bench-memory: install
	nice -n 10 $(PY) bench/memory.py

bench-backlog: install
	nice -n 10 $(PY) bench/backlog.py

bench-socket-burst: install
	nice -n 10 $(PY) bench/socket_burst.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
