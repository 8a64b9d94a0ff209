# A CPU job worker: one process, one job at a time (prefetch 1), on the `cpu` queue;
# scale with `docker compose up --scale worker-cpu=N`.
ARG BASE=lifelong-base
FROM ${BASE}
ENV LIFELONG_WORKER_DEVICE=cpu
# The check imports the project (torch): slow the first time, hence the start period and timeout.
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=3 \
  CMD celery -A workers.tasks inspect ping -d "lifelong@$HOSTNAME" --timeout 5 || exit 1
CMD ["lifelong", "worker", "--queues", "cpu"]
