# syntax=docker/dockerfile:1
# One image for every process of the agent system; the first argument picks which (scripts/docker-entrypoint.sh):
#   console (default) | api | worker | probe | alerts | migrate
# `make test` lints this file with hadolint and replays its COPY steps and commands with scripts/image-smoke.

# Builder: every runtime dependency as a wheel, built where compilers and headers exist (the full Python image).
FROM python:3.11-bookworm AS builder
WORKDIR /build
COPY requirements.txt ./
RUN pip wheel --no-cache-dir --wheel-dir /build/wheels -r requirements.txt

# Runtime: slim and without compilers; installs only the builder's wheels (the bind mount keeps them out of every
# layer) and runs as a numeric non-root user that cannot write the code it runs.
FROM python:3.11-slim-bookworm AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ENVIRONMENT=production \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none
RUN --mount=type=bind,from=builder,source=/build,target=/build \
    pip install --no-cache-dir --no-index --find-links=/build/wheels -r /build/requirements.txt \
    && groupadd --gid 10001 agentops \
    && useradd --uid 10001 --gid 10001 --no-log-init --create-home --shell /usr/sbin/nologin agentops
WORKDIR /app
COPY core ./core
COPY dashboard ./dashboard
COPY pages ./pages
COPY .streamlit/config.toml ./.streamlit/config.toml
COPY scripts/docker-entrypoint.sh scripts/healthcheck.py ./scripts/
# var/ holds the default SQLite file, var/backups db cleanup's backups (BACKUP_DIR) and var/anchors the audit chain's
# checkpoints (AUDIT_ANCHOR_PATH); owned by the app user so a named volume mounted there starts out writable.
RUN install --directory --owner=10001 --group=10001 /app/var /app/var/backups /app/var/anchors
USER 10001:10001
EXPOSE 8501 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["/app/scripts/docker-entrypoint.sh", "health"]
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
CMD ["console"]
