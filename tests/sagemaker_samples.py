"""Where the real SageMaker sample files lie (../shared/interop/sagemaker); tests skip without them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SAMPLES = Path(os.environ.get(
    "MODELWATCH_SAGEMAKER_SAMPLES",
    Path(__file__).resolve().parents[2] / "shared" / "interop" / "sagemaker",
))


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"SageMaker sample {name} not found under {SAMPLES} "
                    "(the shared/ folder beside the checkout is absent)")
    return path
