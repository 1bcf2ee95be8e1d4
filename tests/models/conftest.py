"""Fixtures of the model tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Run each test on one torch thread, then restore the setting.

    The inputs are tiny, so a second thread gains little; on the shared two-core machine, OpenMP
    threads spinning for a descheduled sibling made these tests about 15 times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
