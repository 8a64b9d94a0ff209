"""Settings for every pytest process of the suite, at the repository's root so that only pytest reads them.

The processes the tests start (APIs, workers, benchmark runs, CLIs) take one OpenMP thread each (torch's, and
the BLAS libraries', which read the same variable): the suite runs two test processes on two cores, and a child
with two threads beside them spins its idle OpenMP thread on a core that is already busy. The test processes
themselves keep the torch threads the first of them started with; the xdist workers inherit the variable with
the rest of the environment, so the count travels beside it. They must: at one torch thread
tests/unit/test_frozen_prefix.py's image case fails (docs/tests.md).

Not in tests/conftest.py: the benchmarks import that module for its service helpers, and a benchmark's
services must run as a user's would.
"""

from __future__ import annotations

import os

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(int(os.environ.setdefault("SUITE_TORCH_THREADS", str(torch.get_num_threads()))))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
