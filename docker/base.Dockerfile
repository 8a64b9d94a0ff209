# The shared base of every lifelong image: the project and its dependencies on one torch build.
#   CPU (api, worker-cpu):  docker build -f docker/base.Dockerfile -t lifelong-base .
#   CUDA (worker-gpu):      docker build -f docker/base.Dockerfile -t lifelong-base-cuda \
#                             --build-arg RUNTIME=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#                             --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
ARG RUNTIME=python:3.11-slim
FROM ${RUNTIME} AS base
# The default wheel of torch on PyPI is the multi-GB CUDA build: take the one this image needs.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    LIFELONG_VAR_DIR=/var/lib/lifelong
# python:3.11-slim has Python; the CUDA runtime image has none, so it gets Ubuntu's.
RUN if ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
      && rm -rf /var/lib/apt/lists/*; \
    fi && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[postgres,s3,export]"
# Ubuntu's images (the CUDA runtime) already have a user 1000, `ubuntu`: it makes way for ours. The
# blob directory exists in the image and is ours, so a fresh named volume mounted on it is writable.
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && useradd --create-home --uid 1000 lifelong \
    && mkdir -p /var/lib/lifelong/blobs && chown -R lifelong /var/lib/lifelong
USER lifelong
