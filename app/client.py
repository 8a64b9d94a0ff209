"""The Python client, as the service's own code imports it: the `lifelong_client` package (clients/python).

The client is its own distribution (`lifelong-client`, httpx and numpy only) so that a notebook can
install it without torch, Celery or SQLAlchemy; this module keeps `app.client` naming the same objects
for the CLI (`app/commands/`) and older imports.
"""

from lifelong_client import *  # noqa: F403
from lifelong_client import __all__ as __all__
