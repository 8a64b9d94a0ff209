"""Scoring: a version's predictions on labeled data against the labels (accuracy, per-class precision and
recall, confusion matrix), synchronously, as `POST /v1/models/{name}/evaluate` answers them."""
