# nasa_assets code location: serves the definitions over gRPC (code server) and is also the image
# that K8s/ECS run launchers start for each run (`dagster api execute_run ...` as the command).
# Build: make build (docker build -t nasa_assets:latest .). No secrets are baked in: settings and
# credentials come from the environment at run time (docs/production.md).
FROM python:3.11-slim

# Without S3_BUCKET_NAME the dataset goes to NASA_ASSETS_LOCAL_DIR, a folder the non-root user owns.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    NASA_ASSETS_LOCAL_DIR=/opt/dagster/data/moon_dataset

WORKDIR /opt/dagster/app

# Dependencies in their own layer, rebuilt only when setup.py or constraints.txt change: install
# the project's requirements (pinned by constraints.txt, the versions the tests ran with) through
# an empty stub package, then drop the stub. Every dependency ships wheels, so no compiler is
# installed and none is left behind.
COPY setup.py constraints.txt ./
RUN mkdir nasa_assets \
    && touch nasa_assets/__init__.py \
    && pip install --no-cache-dir -c constraints.txt ".[postgres]" \
    && pip uninstall --yes nasa_assets \
    && rm -rf nasa_assets build nasa_assets.egg-info

# The code itself (pyproject.toml names the build backend); --no-deps: nothing new is resolved.
COPY pyproject.toml ./
COPY nasa_assets ./nasa_assets
RUN pip install --no-cache-dir --no-deps -c constraints.txt . \
    && rm -rf build nasa_assets.egg-info

# Unprivileged runtime user (numeric, so Kubernetes can verify runAsNonRoot); DAGSTER_HOME is
# where a deployment mounts its dagster.yaml (deploy/dagster.yaml).
RUN useradd --create-home --uid 10001 --user-group dagster \
    && mkdir -p "$DAGSTER_HOME" "$NASA_ASSETS_LOCAL_DIR" \
    && chown dagster:dagster "$DAGSTER_HOME" "$NASA_ASSETS_LOCAL_DIR" /opt/dagster/data
USER 10001

EXPOSE 4000

HEALTHCHECK --interval=30s --timeout=10s --start-period=60s \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]

# No ENTRYPOINT: Helm's user deployments and the run launchers pass their own command as args.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "nasa_assets.definitions"]
