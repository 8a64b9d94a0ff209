"""Plain fine-tuning: the lower bound on remembering, the upper bound on learning the new task."""

from app.mas.methods.base import Method


class Finetune(Method):
    name = "finetune"
