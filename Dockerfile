# syntax=docker/dockerfile:1
# Image of the apiservice-operator: `make docker-build IMAGE=registry.example/apiservice-operator:tag`.
#
# The builder stage turns the project and its dependencies into wheels. The final stage installs
# those wheels from a bind mount, so it contains neither the wheels nor a compiler nor the
# sources.

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# Every runtime dependency ships manylinux wheels, so this step downloads and compiles nothing
# beyond the project's own pure-Python wheel.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# A fixed numeric UID lets the pod's runAsNonRoot check pass without looking up /etc/passwd.
ARG UID=65532
# The operator reads each option from an APISERVICE_OPERATOR_* variable too. Setting the bind
# address and log format here keeps them in force when a pod spec replaces the arguments.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APISERVICE_OPERATOR_BIND_ADDRESS=0.0.0.0 \
    APISERVICE_OPERATOR_LOG_FORMAT=json
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels apiservice-operator \
    && groupadd --gid "${UID}" apiservice-operator \
    && useradd --uid "${UID}" --gid "${UID}" --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin apiservice-operator
USER ${UID}:${UID}
# 8080 serves Prometheus metrics at /metrics, and 8081 serves the /healthz and /readyz probes.
EXPOSE 8080 8081
ENTRYPOINT ["apiservice-operator"]
