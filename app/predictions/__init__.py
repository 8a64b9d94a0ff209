"""Predictions: served in the API process from a cache of loaded versions, never through the queue."""
