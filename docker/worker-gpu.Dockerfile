# A GPU job worker: the same project on CUDA torch (the only image that carries the CUDA build).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LIFELONG_VAR_DIR=/var/lib/lifelong
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN pip install --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY workers ./workers
COPY migrations ./migrations
RUN pip install ".[postgres]"
RUN useradd --create-home --uid 1000 lifelong && mkdir -p /var/lib/lifelong && chown lifelong /var/lib/lifelong
USER lifelong
HEALTHCHECK --interval=30s --timeout=10s --retries=3 \
  CMD celery -A workers.tasks inspect ping -d "lifelong@$HOSTNAME" --timeout 5 || exit 1
CMD ["lifelong", "worker"]
