# aiops as a container: `docker build -t aiops .`, or `docker compose up` for the whole stack (docker-compose.yml).
#
# The image holds the package in a virtualenv and nothing else: asyncssh speaks SSH in Python, so no ssh client;
# every dependency ships wheels, so no compiler. Without git, a runbook's commit is recorded as "uncommitted".

FROM python:3.11.15-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/aiops
# pyproject.toml names README.md as the package's long description, so the build needs it too.
COPY pyproject.toml README.md ./
COPY aiops ./aiops
RUN /opt/aiops/bin/pip install . \
    && /opt/aiops/bin/python -c "import importlib.resources as r; assert r.files('aiops').joinpath('store/migrations').is_dir()"

FROM python:3.11.15-slim
# A fixed uid, so that the data volume's owner is the same in every build and on every host.
RUN groupadd --system --gid 10001 aiops \
    && useradd --system --uid 10001 --gid aiops --home-dir /var/lib/aiops --shell /usr/sbin/nologin aiops \
    && install -d -o aiops -g aiops -m 0750 /var/lib/aiops
COPY --from=build /opt/aiops /opt/aiops
# The bundled runbooks, so that the image works on its own; docker-compose.yml mounts ./runbooks over them.
COPY runbooks /etc/aiops/runbooks

# The container's defaults: listen on every interface (aiops then refuses to start without webhook credentials),
# the SQLite store in the data volume, runbooks where the compose file mounts them.
ENV PATH=/opt/aiops/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AIOPS_LISTEN=0.0.0.0:18789 \
    AIOPS_DATABASE_URL=sqlite:////var/lib/aiops/aiops.db \
    AIOPS_RUNBOOKS_DIR=/etc/aiops/runbooks

# Numeric, so that a runtime enforcing "non-root" (Kubernetes runAsNonRoot) can tell without /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/aiops
VOLUME ["/var/lib/aiops"]
EXPOSE 18789

# /readyz: the store answers (200), not only the process. The slim image has no curl; Python's urllib raises on
# any status other than 2xx, which fails the check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('AIOPS_LISTEN', ':18789').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"]

# SIGTERM (Docker's default stop signal) stops aiops gracefully: running jobs get queue.shutdown_grace (20 s)
# before they are handed back, so give `docker stop` more than that (compose sets stop_grace_period: 30s).
CMD ["aiops", "serve"]
