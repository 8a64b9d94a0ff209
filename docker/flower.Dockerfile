# Flower, run from our own code (`celery -A workers.tasks`) so that it shares the workers' broker
# settings: with Redis, the visibility timeout longer than any job, which a plain Flower would not
# know (and would hand running jobs' messages to other workers after an hour).
ARG BASE=lifelong-base
FROM ${BASE}
RUN pip install "flower==2.2.0"
EXPOSE 5555
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5555/healthcheck', timeout=2)"
CMD ["celery", "-A", "workers.tasks", "flower", "--port=5555"]
