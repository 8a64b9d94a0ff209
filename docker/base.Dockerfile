# The shared base of every lifelong image: Python 3.11, the project and its dependencies, CPU torch.
# Build from the repository root:  docker build -f docker/base.Dockerfile -t lifelong-base .
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LIFELONG_VAR_DIR=/var/lib/lifelong
WORKDIR /app
# CPU torch from PyTorch's CPU index: the default wheel on PyPI is the multi-GB CUDA build.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[postgres]"
RUN useradd --create-home --uid 1000 lifelong && mkdir -p /var/lib/lifelong && chown lifelong /var/lib/lifelong
USER lifelong
