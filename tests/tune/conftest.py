"""The tune tests train many tiny models: one torch thread each is much faster on a shared
machine (threads of tiny matrix products mostly wait for each other)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
