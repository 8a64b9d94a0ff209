# The HTTP API. Several replicas may run behind a load balancer: they share only the database,
# the broker and the blob store.
ARG BASE=lifelong-base
FROM ${BASE}
EXPOSE 8000 8001
# Probes on a port of their own, answered beside the API so that a busy API is not taken for a dead one
# (docs/auth-and-limits.md); its /healthz fails once the API's event loop stops turning.
ENV LIFELONG_HEALTH_PORT=8001
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/healthz', timeout=2)"
CMD ["lifelong", "api", "--host", "0.0.0.0", "--port", "8000"]
