# A GPU job worker: the same project on the CUDA build of torch (lifelong-base-cuda, see
# base.Dockerfile), on the `gpu` queue. LIFELONG_WORKER_DEVICE=cuda makes a container that sees no
# GPU refuse to start rather than train on its CPU.
ARG BASE=lifelong-base-cuda
FROM ${BASE}
ENV LIFELONG_WORKER_DEVICE=cuda
# The check imports the project (torch): slow the first time, hence the start period and timeout.
HEALTHCHECK --interval=30s --timeout=30s --start-period=60s --retries=3 \
  CMD celery -A workers.tasks inspect ping -d "lifelong@$HOSTNAME" --timeout 5 || exit 1
CMD ["lifelong", "worker", "--queues", "gpu"]
