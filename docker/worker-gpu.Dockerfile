# A GPU job worker: the same project on the CUDA build of torch (lifelong-base-cuda, see
# base.Dockerfile), on the `gpu` queue. LIFELONG_WORKER_DEVICE=cuda makes a container that sees no
# GPU refuse to start rather than train on its CPU.
ARG BASE=lifelong-base-cuda
FROM ${BASE}
ENV LIFELONG_WORKER_DEVICE=cuda
HEALTHCHECK --interval=30s --timeout=10s --retries=3 \
  CMD celery -A workers.tasks inspect ping -d "lifelong@$HOSTNAME" --timeout 5 || exit 1
CMD ["lifelong", "worker", "--queues", "gpu"]
