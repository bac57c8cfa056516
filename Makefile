# The two commands: `make demo` and `make test`. Everything they need is set up from here.

CARGO ?= cargo
DEMO_DIR ?= demo-data
DEMO_LISTEN ?= 127.0.0.1:8443
DEMO_USER ?= demo
DEMO_PASSWORD ?= harbour-lantern-2026
DEMO_UNITS ?= 20
DEMO_INCIDENT_EVERY ?= 60
DEMO_METRICS_TOKEN ?= demo-metrics-harbour-lantern-2026-token

.PHONY: all build test test-deps lint ui demo clean-demo bench fuzz fuzz-deps

all: build

# The release binaries carry the web console inside (built first by `ui`). Only the two programs
# a deployment runs, so the test suite's features (the tablet client's fault points) stay out.
build: ui
	$(CARGO) build --release -p dispatch-server -p field-client --bins

# The dispatcher console: install the locked npm packages, type-check and bundle it into
# dispatcher-ui/dist (served by dispatchd), then run its component tests.
ui:
	cd dispatcher-ui && npm ci --no-audit --no-fund && npm run build && npx vitest run

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path tests/fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every test: formatting and lints, unit and property tests, and the end-to-end tests that run
# the real binaries (built first, so the tests can start and kill them). The basemap test
# decodes tiles with Python's mapbox-vector-tile and writes a PMTiles file with Python's pmtiles;
# the export test reads an export with jsonschema, geojson and shapely (and its CAP alerts with
# xmllint); the OpenAPI test runs schemathesis against a live server: all installed here. The
# console is built (and its component tests run) before the browser test drives it in headless
# chromium. Every fuzz target runs for a bounded time (`fuzz`).
test: lint ui test-deps fuzz
	$(CARGO) build --workspace --bins
	python3 -m pip install --quiet --disable-pip-version-check mapbox-vector-tile pmtiles jsonschema geojson shapely schemathesis pypdf
	cd tests/e2e && npm ci --no-audit --no-fund --silent
	$(CARGO) test --workspace --no-fail-fast
	@if [ -n "$${DATABASE_URL:-}" ]; then python3 tests/postgres_schema_parity.py "$$DATABASE_URL" && \
		bash tests/scripts/drop-test-databases.sh "$$DATABASE_URL" && \
		{ DISPATCH_TEST_BACKEND=postgres $(CARGO) test --workspace --no-fail-fast \
			$(POSTGRES_E2E:%=--test %); status=$$?; \
		  bash tests/scripts/drop-test-databases.sh "$$DATABASE_URL"; exit $$status; }; \
	else echo "DATABASE_URL is unset: the PostgreSQL tests did not run"; fi

# The end-to-end tests run a second time with their servers on PostgreSQL (DATABASE_URL: a
# database per in-process server, and one per data directory for dispatchd child processes, kept
# across their kill -9 and restarts: tests/src/backend.rs). Not rerun: the storage-fault tests
# (a full or read-only disk under SQLite) and those of SQLite-only commands (backup, export,
# audit).
# (`--workspace` picks the targets by name and reuses the run above's build; `-p dispatch-tests`
# would build the server again with other features.)
POSTGRES_E2E := end_to_end console_api order_channel premises bad_input accounts protocol_edges \
	field_agent gps geocode metrics server_addresses simulator crash_recovery crash_loop \
	channel_faults attention emergency incident_lifecycle tablet_offline

# Debian's packages the tests run: libfiu's fiu-run and fiu-ctrl (I/O faults injected into a
# running dispatchd), chromium (the browser tests; playwright cannot download browsers here),
# libxml2-utils' xmllint (exported CAP alerts against the OASIS schema), and patroni with
# etcd-server (the Patroni failover test runs its own etcd and Patroni nodes on free loopback
# ports; it needs no system service of theirs).
TEST_PACKAGES := fiu-utils chromium libxml2-utils patroni etcd-server
test-deps:
	@missing=""; for cmd in fiu-run fiu-ctrl chromium xmllint patroni etcd; do command -v $$cmd >/dev/null 2>&1 || missing=1; done; \
	if [ -n "$$missing" ]; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q $(TEST_PACKAGES) >/dev/null || { apt-get update -q && apt-get install -y -q $(TEST_PACKAGES); }; \
	fi

# Coverage-guided fuzzing (libFuzzer through cargo-fuzz): each target in tests/fuzz for
# FUZZ_SECONDS (default 20) from the committed corpus; a crash fails with its reproducer's path.
# On the stable compiler (RUSTC_BOOTSTRAP=1, no sanitizer): see tests/fuzz/README.md.
FUZZ_SECONDS ?= 20
fuzz: fuzz-deps
	CARGO=$(CARGO) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh

# cargo-fuzz, installed into ~/.cargo/bin once.
fuzz-deps:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked

# The server on SQLite with a demo admin, a simulated fleet driving on the Helsinki map and a
# scripted incident every minute. Ctrl-C stops everything; state stays in $(DEMO_DIR). The demo
# admin logs in with a password alone (a deployment asks supervisors and admins for a second
# factor: docs/operations.md).
demo: build
	@DISPATCH_NEW_PASSWORD='$(DEMO_PASSWORD)' target/release/dispatchd --data-dir $(DEMO_DIR) \
		user add --username $(DEMO_USER) --role admin --exists-ok
	@bash -c 'set -u; \
		DISPATCH_METRICS_TOKEN='\''$(DEMO_METRICS_TOKEN)'\'' target/release/dispatchd --data-dir $(DEMO_DIR) --listen $(DEMO_LISTEN) --map data/helsinki.osm.pbf \
			--second-factor-roles none & server=$$!; \
		trap "kill $$server 2>/dev/null; wait $$server 2>/dev/null" EXIT INT TERM; \
		for i in $$(seq 100); do [ -s $(DEMO_DIR)/tls/cert.sha256 ] && curl -skf https://$(DEMO_LISTEN)/healthz >/dev/null && break; sleep 0.1; done; \
		echo; \
		echo "  Dispatch demo is running at https://$(DEMO_LISTEN)  (open it in a browser: the console)"; \
		echo "  Login: $(DEMO_USER) / $(DEMO_PASSWORD)   (API: POST /api/login)"; \
		echo "  Certificate sha256: $$(cat $(DEMO_DIR)/tls/cert.sha256)"; \
		echo "  Metrics: curl -sk -H '\''Authorization: Bearer $(DEMO_METRICS_TOKEN)'\'' https://$(DEMO_LISTEN)/metrics"; \
		echo "  $(DEMO_UNITS) simulated units; an incident every $(DEMO_INCIDENT_EVERY) s. Ctrl-C stops."; \
		echo; \
		target/release/field-client simulate --units $(DEMO_UNITS) --server https://$(DEMO_LISTEN) \
			--pin $$(cat $(DEMO_DIR)/tls/cert.sha256) --login '\''$(DEMO_USER):$(DEMO_PASSWORD)'\'' \
			--state-dir $(DEMO_DIR)/fleet --map data/helsinki.osm.pbf --dispatch-every $(DEMO_INCIDENT_EVERY)'

# Benchmarks with their peers side by side (Redis, PostGIS, Mosquitto); prints a table. The
# channel section runs the release dispatchd, so it is built first.
bench:
	bench/install-peers.sh
	$(CARGO) build --release -p dispatch-server --bin dispatchd
	$(CARGO) build --release -p dispatch-bench
	target/release/dispatch-bench

clean-demo:
	rm -rf $(DEMO_DIR)
