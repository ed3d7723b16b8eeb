# The lbsync image: lbsync and Debian's haproxy package. lbsync runs `haproxy -c` on
# every config before it goes live, so the binary must be in this image; HAProxy
# itself runs from its own image in the Pod (see deploy/kubernetes/): haproxy:3.0.11,
# pinned to 3.0, the major version CI tests besides this image's 2.6.
#
#   docker build -t registry.example.com/lbsync:0.1.0 .
#
# Needs BuildKit (the default builder since Docker 23; podman/buildah work too).
# The base image is pinned by tag; pin it by digest too (python:3.11.9-slim-bookworm@sha256:...)
# if your registry policy wants that. No secrets, no credentials: in a cluster lbsync
# uses the Pod's ServiceAccount token.

FROM python:3.11.9-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY lbsync/ lbsync/
COPY templates/ templates/
COPY errors/ errors/
# lbsync and all its dependencies as wheels, so the final stage installs offline
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11.9-slim-bookworm
LABEL org.opencontainers.image.title="lbsync" \
      org.opencontainers.image.description="Keeps an HAProxy config true to a Kubernetes cluster's Services" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# haproxy from Debian bookworm (2.6 LTS), for `haproxy -c`; its service is never started here
RUN apt-get update \
    && apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* \
    && haproxy -v
# Installs the package into /usr/local: the bundled template and error pages end up
# in /usr/local/share/lbsync/ (deploy/kubernetes copies the error pages from there).
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels lbsync \
    && lbsync --version
# A fixed numeric uid/gid, so that Kubernetes' runAsNonRoot can verify it and the
# haproxy container of the Pod can run as the same user (shared sockets, mode 600).
RUN groupadd --system --gid 10001 lbsync \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin lbsync
USER 10001:10001
WORKDIR /tmp
# /metrics, /healthz, /readyz when --metrics-bind is set
EXPOSE 9102
ENTRYPOINT ["lbsync"]
