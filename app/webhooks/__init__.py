"""Webhooks: per-model subscriptions to `job.finished`, `version.created` and `alias.moved`, delivered
signed and at least once.

A transactional outbox: `events.py` writes one delivery row per subscribed hook in the same transaction
as the change it reports (a job's end, a version, an alias move), so a rolled-back change emits nothing
and a crash loses nothing. `delivery.py` is the loop, run by each worker's main process, that claims due
rows under a lease, POSTs them with an HMAC-SHA256 signature and retries with exponential backoff; jobs
never wait for it. `service.py` and `routes.py` register hooks and show each hook's delivery log.
"""
