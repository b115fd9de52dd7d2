"""Files that let anyone reproduce a comparison's numbers with plain framework code."""

from __future__ import annotations

import io
import os

import numpy as np

from comparator.io import staged_directory, write_atomic


def save_artifacts(outcome, directory: str) -> list[str]:
    """batch.npz, the initial PyTorch state_dict(s) and report.json, all or nothing."""
    with staged_directory(directory) as staging:
        buffer = io.BytesIO()
        np.savez(buffer, x=outcome.batch.x, y=outcome.batch.y)
        write_atomic(os.path.join(staging, "batch.npz"), buffer.getvalue())
        outcome.adapters["pytorch"].save_state_dict(staging)
        write_atomic(os.path.join(staging, "report.json"), outcome.report.to_json())
        names = sorted(os.listdir(staging))
    return [os.path.join(directory, name) for name in names]
