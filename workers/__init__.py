"""The Celery side of the service: the app (broker settings) and the one task that runs a job by id."""
