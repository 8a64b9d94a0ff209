"""The one pattern of names a client gives: models, tasks, aliases, and the models a key is scoped to.

Every package that reads such a name checks it against this pattern, and the auth package checks the
model names of a key's scope, so it lives below them all rather than in one of them.
"""

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
