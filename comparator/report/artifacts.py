"""Files that let anyone reproduce a comparison's numbers with plain framework code."""

from __future__ import annotations

import io
import os

import numpy as np

from comparator.io import staged_directory, write_atomic


def write_artifacts(outcome, folder: str) -> None:
    """batch.npz (x, or x0, x1, ... for a model's several inputs, as --inputs reads them;
    y), the initial PyTorch state_dict(s) and report.json into `folder`."""
    buffer = io.BytesIO()
    batch = outcome.batch
    inputs = ({f"x{index}": x for index, x in enumerate(batch.inputs)} if batch.several
              else {"x": batch.x})
    np.savez(buffer, **inputs, y=batch.y)
    write_atomic(os.path.join(folder, "batch.npz"), buffer.getvalue())
    outcome.adapters["pytorch"].save_state_dict(folder)
    write_atomic(os.path.join(folder, "report.json"), outcome.report.to_json())


def save_artifacts(outcome, directory: str) -> list[str]:
    """The artifacts, all or nothing."""
    with staged_directory(directory) as staging:
        write_artifacts(outcome, staging)
        names = sorted(os.listdir(staging))
    return [os.path.join(directory, name) for name in names]
