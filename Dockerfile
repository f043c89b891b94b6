# Image for the tgp Prefect worker and Dask workers (see docker-compose.yml).
FROM python:3.11-slim-bookworm
# bash, not sh: the package list is read with process substitution
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update && apt-get install -y --no-install-recommends make git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/tgp
COPY pyproject.toml constraints.txt README.md ./
COPY packaging ./packaging
COPY tgpcore ./tgpcore
COPY flows ./flows
COPY tasks ./tasks
COPY deployments ./deployments
# (the headless browser in the list is for the report's rendering test only)
RUN xargs -a <(grep -v -e '^\s*#' -e '^chromium' packaging/debian-packages.txt) -r sh -c \
      'apt-get update && apt-get install -y --no-install-recommends "$@" && rm -rf /var/lib/apt/lists/*' sh \
    && pip install --no-cache-dir -c constraints.txt -e .
ENV MPLBACKEND=Agg
CMD ["tgp", "--help"]
