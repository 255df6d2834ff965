# Twitchcrement. Every target installs what it needs on a fresh clone; downloads are cached in .venv/ and .cache/.
SHELL := /bin/bash
PYTHON_VERSION ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
JARS := .cache/jars
M2 := $(CURDIR)/.cache/m2
JAR_SETS := spark kafka cassandra
CLASSPATHS := $(foreach s,$(JAR_SETS),$(JARS)/$(s).classpath)
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)

.PHONY: setup venv jars browser services-up services-down services-status test test-fast demo detector dashboard \
	bench-ingest \
	notebooks notebooks-strip soak bench bench-quick bench-dashboard dist lint clean distclean

setup: venv jars

venv: $(VENV)/.installed
$(VENV)/.installed: constraints.txt pyproject.toml
	@command -v $(PYTHON_VERSION) >/dev/null || { echo "error: $(PYTHON_VERSION) not found; install Python 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON_VERSION) -m venv $(VENV)
	@echo "Installing Python packages into $(VENV) (first run downloads about 450 MB) ..."
	@$(PY) -m pip install --quiet --upgrade pip
	@# The project itself, editable (its packages import from the checkout), with every extra, at the pinned versions.
	@$(PY) -m pip install --progress-bar on -c constraints.txt -e '.[dev,notebooks,bench]' 2>&1 | grep -v -E '^(Requirement already satisfied|Collecting|Using cached|Looking in links|Installing collected packages|Obtaining|  )'; \
		test $${PIPESTATUS[0]} -eq 0 || { echo "error: pip could not install the project with constraints.txt (see above)"; exit 1; }
	@rm -f $(VENV)/lib/python3.11/site-packages/twitchcrement.pth  # what older checkouts used instead
	@$(PY) -c "import pyspark, kafka, msgpack, cassandra, dash, irc, twitchcrement" && touch $@

UDF_JAR := $(JARS)/twitchcrement-udf.jar
jars: $(CLASSPATHS) $(UDF_JAR)
# The detector's JVM function, compiled against pyspark's own jars (Java 8 bytecode: any Spark 3.5 cluster runs it).
$(UDF_JAR): $(wildcard jvm/src/twitchcrement/*.java) $(VENV)/.installed
	@command -v javac >/dev/null || { echo "error: javac not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@rm -rf $(JARS)/udf-classes && mkdir -p $(JARS)/udf-classes
	@javac --release 8 -nowarn -Xlint:-options -cp "$$($(PY) -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')/jars/*" \
		-d $(JARS)/udf-classes $(wildcard jvm/src/twitchcrement/*.java)
	@jar --create --file $@ -C $(JARS)/udf-classes . && rm -rf $(JARS)/udf-classes && echo "built $@"
$(JARS)/%.classpath: jvm/%.pom.xml
	@command -v mvn >/dev/null || { echo "error: Maven (mvn) not found; install it (apt-get install maven)"; exit 1; }
	@command -v java >/dev/null || { echo "error: Java not found; install a JDK 17 (apt-get install openjdk-17-jdk-headless)"; exit 1; }
	@mkdir -p $(JARS)
	@echo "Resolving JVM jars for $* from Maven Central into .cache/m2 ..."
	@mvn -B -Dstyle.color=never -f $< -Dmaven.repo.local=$(M2) dependency:build-classpath -Dmdep.outputFile=$(CURDIR)/$@.tmp \
		| { grep -E --line-buffered '^\[INFO\] Downloaded from|ERROR' | sed -u -E 's#^\[INFO\] Downloaded from central: .*/([^/]+) \(([^)]*)\)#  downloaded \1 (\2)#'; } ; \
		test -s $@.tmp || { echo "error: Maven could not resolve jvm/$*.pom.xml (see above)"; exit 1; }
	@mv $@.tmp $@

# Browser tests use Debian's Chromium and ChromeDriver (a test tool's own browser download cannot work here).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "Installing Debian's chromium and chromium-driver for the browser tests ..."; \
		command -v apt-get >/dev/null || { echo "error: apt-get not found; install Chromium and ChromeDriver"; exit 1; }; \
		SUDO=$$(test "$$(id -u)" -eq 0 || echo sudo); \
		$$SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { $$SUDO apt-get update -q >/dev/null && \
		$$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; } || \
		{ echo "error: could not install chromium and chromium-driver with apt-get"; exit 1; }; }

services-up: setup
	@$(PY) -m services up

services-down: venv
	@$(PY) -m services down

services-status: venv
	@$(PY) -m services status

# The test run starts its own Kafka, Cassandra and Spark (see tests/conftest.py) on ports apart from the demo's.
test: setup browser lint
	@$(PY) -m pytest

test-fast: setup browser
	@$(PY) -m pytest -m "not slow"

# The whole platform on embedded chat (replayed #nymn capture + synthetic channels); `make services-down` stops it.
demo: setup
	@$(PY) -m services demo
	@echo "Demo running: replayed and synthetic chat -> Kafka chatmessage -> spam detector -> Kafka spammessage + Cassandra."
	@echo "Dashboard: $$($(PY) -c 'from services.demo import dashboard_url; from twitchcrement import config; print(dashboard_url(config.load()))')"
	@echo "Spark UI of the detector: http://127.0.0.1:4040  (metrics: var/local/detector/metrics.json)"
	@echo "Prometheus metrics, /healthz, /readyz: ingest http://127.0.0.1:9461, detector :9462, dashboard :9463"
	@echo "Stop it with: make services-down"

# The spam detector in the foreground (Spark local mode, the connector jars from .cache/jars). Ctrl-C stops it.
detector: services-up
	@$(PY) jobs/spam_detector.py

# The dashboard in the foreground against the configured Kafka and Cassandra. Ctrl-C stops it.
dashboard: services-up
	@$(PY) -m dashboard

# Speed and quality of detector, exact, noop and datasketch side by side (bench/run.py): bench/results/latest.*
bench: services-up
	@$(PY) -m bench.run

bench-quick: services-up
	@$(PY) -m bench.run --quick

# Jupyter on loopback with the project's environment (notebooks/); the notebooks use the local services.
notebooks: services-up
	@$(PY) -m jupyterlab --ip=127.0.0.1 --no-browser --notebook-dir=notebooks

# Notebooks are committed without outputs (a test checks it).
notebooks-strip: venv
	@$(PY) -m jupyter nbconvert --clear-output --inplace notebooks/*.ipynb

# The whole platform for 30 minutes at 20,000 msg/s offered: memory and state every minute (bench/results/soak.*).
soak: services-up
	@$(PY) -m bench.soak

bench-ingest: services-up
	@$(PY) -m bench.ingest

bench-dashboard: services-up
	@$(PY) -m bench.dashboard

# The wheel and sdist (python -m build), and the detector's JVM function: on a cluster, spark-submit takes the wheel
# with --py-files and the jar with --jars (README, "On an existing cluster").
dist: venv $(UDF_JAR)
	@rm -rf dist build && mkdir -p dist
	@$(PY) -m build --no-isolation --outdir dist . >/dev/null || { echo "error: python -m build failed (run it to see why)"; exit 1; }
	@rm -rf build *.egg-info
	@cp $(UDF_JAR) dist/
	@ls dist/*

# Lint (ruff: pycodestyle, pyflakes, isort, bugbear, pyupgrade), formatting and types (mypy); make test runs it first.
lint: venv
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) -m mypy

clean:
	rm -rf var test-artifacts spark-warehouse .pytest_cache dist

distclean: clean
	rm -rf $(VENV) .cache
