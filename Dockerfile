# One image, both server components (DESIGN §11, docs/deploy.md): mcpd (the default command) and
# `mcplocal serve` (override the command). Both are console scripts of the same wheel, so an image per
# component would be this image with another CMD: one build, one tag to pin, one thing to scan.
#
#   docker build -t REGISTRY/mcpctl:TAG .
#   docker run -p 3000:3000 REGISTRY/mcpctl:TAG                                  # mcpd
#   docker run -p 3200:3200 REGISTRY/mcpctl:TAG mcplocal serve --mcpd-url URL    # mcplocal
#
# tests/deploy/test_container_image.py checks what this file copies and runs (no Docker engine in CI).

# -- builder: a wheel of the project, installed with its dependencies into /opt/venv -----------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
    && python -m pip wheel --no-deps --wheel-dir /build/dist . \
    && /opt/venv/bin/pip install /build/dist/mcpctl-*.whl

# -- runtime: the venv on a slim Python, as a fixed non-root user ------------------------------------
FROM python:3.11-slim

ARG UID=10001
ARG GID=10001

# MCPD_HOST / MCPLOCAL_HTTP_HOST: listen on every interface inside the container (the defaults are
# loopback, right for a laptop and useless behind a port mapping or a Service).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/mcpctl \
    MCPD_HOST=0.0.0.0 \
    MCPD_PORT=3000 \
    MCPD_DATA_DIR=/var/lib/mcpd \
    MCPLOCAL_HTTP_HOST=0.0.0.0 \
    MCPLOCAL_HTTP_PORT=3200 \
    MCPLOCAL_CACHE_DIR=/var/lib/mcplocal/cache

# The data dir and the pipeline cache are 0700 and owned by the user: mcpd and the FileCache refuse
# (or tighten) directories someone else may write.
RUN groupadd --system --gid "${GID}" mcpctl \
    && useradd --system --uid "${UID}" --gid "${GID}" --home-dir /home/mcpctl --create-home \
        --shell /usr/sbin/nologin mcpctl \
    && install -d -m 0700 -o "${UID}" -g "${GID}" /var/lib/mcpd /var/lib/mcplocal /var/lib/mcplocal/cache

COPY --from=builder /opt/venv /opt/venv

USER ${UID}:${GID}
WORKDIR /home/mcpctl

VOLUME ["/var/lib/mcpd", "/var/lib/mcplocal/cache"]
EXPOSE 3000 3200

# /healthz of whichever component listens here: mcpd on MCPD_PORT, mcplocal on MCPLOCAL_HTTP_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os,socket,sys,urllib.request as r;ps=[int(os.environ.get(k,d)) for k,d in (('MCPD_PORT','3000'),('MCPLOCAL_HTTP_PORT','3200'))];up=[p for p in ps if socket.socket().connect_ex(('127.0.0.1',p))==0];sys.exit(0 if up and r.urlopen(f'http://127.0.0.1:{up[0]}/healthz',timeout=4).status==200 else 1)"]

CMD ["mcpd"]
