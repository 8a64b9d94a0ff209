"""Aliases: movable names for a model's immutable versions (`production`, `candidate`, users' own), their
history, and the promotion policy that decides whether a job's version moves `production`."""
