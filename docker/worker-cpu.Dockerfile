# A CPU job worker: one process, one job at a time (prefetch 1); scale with `--scale worker-cpu=N`.
ARG BASE=lifelong-base
FROM ${BASE}
HEALTHCHECK --interval=30s --timeout=10s --retries=3 \
  CMD celery -A workers.tasks inspect ping -d "lifelong@$HOSTNAME" --timeout 5 || exit 1
CMD ["lifelong", "worker"]
