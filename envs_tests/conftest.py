import os

import pytest
import torch

# Two cores: more torch threads than that only adds contention with the other test process.
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def teacher():
    from datagen_gym.backends import EMBEDDED_TEACHER, TransformersBackend

    return TransformersBackend(EMBEDDED_TEACHER)
