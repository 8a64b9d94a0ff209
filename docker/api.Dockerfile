# The HTTP API. Several replicas may run behind a load balancer: they share only the database,
# the broker and the blob store.
ARG BASE=lifelong-base
FROM ${BASE}
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["lifelong", "api", "--host", "0.0.0.0", "--port", "8000"]
