"""Weight sources: where the canonical weights of a comparison come from."""

from __future__ import annotations

import os

from comparator.inputs.batch import calibration_images, init_rng
from comparator.inputs.weight_cache import WeightCache, code_digest, fields
from comparator.zoo import ModelSpec
from comparator.inputs.weights import CanonicalWeights, head_init_arrays
from comparator.zoo.head import HEAD_HIDDEN

CALIBRATION_IMAGES = 16
CALIBRATION_CHUNK = 8


def random_calibrated(spec: ModelSpec, scenario: str, seed: int, image_size: int,
                      torch_adapter, cache_dir: str | None = None) -> CanonicalWeights:
    """PyTorch's own initialisation from `seed`, BatchNorm statistics calibrated on data.

    The torch adapter is built, randomised and calibrated in place, then loaded
    with the resulting arrays, so the model that made the weights is the one
    that is compared: nothing is built twice. The arrays are kept in the cache
    folder (comparator.inputs.weight_cache); a valid entry replaces the calibration.
    """
    cache = WeightCache(cache_dir)
    entry = fields(spec, scenario, seed, image_size, _code_version(torch_adapter))
    torch_adapter.build(spec, scenario, seed, image_size)
    arrays, problem = cache.load(entry)
    if arrays is not None:
        note = f"reused from the cache ({os.path.basename(cache.path_for(entry))}, digest checked)"
    else:
        arrays = _calibrated(spec, scenario, seed, image_size, torch_adapter)
        stored = cache.store(entry, arrays)
        note = ("calibrated" + (f"; {problem}, rebuilt" if problem else "")
                + ("; stored in the cache" if stored else "; the cache folder is not writable"))
    torch_adapter.load_weights(arrays)
    description = (
        f"PyTorch initialisation with seed {seed}; BatchNorm gamma ~ U(0.75, 1.25), "
        f"beta ~ N(0, 0.1); running statistics averaged over {CALIBRATION_IMAGES} seeded "
        f"calibration images (not the comparison batch) at {image_size} px"
    )
    return CanonicalWeights(arrays, source="random-calibrated", description=description,
                            cache=note)


def _calibrated(spec, scenario, seed, image_size, torch_adapter) -> dict:
    torch_adapter.randomise_affine(seed)
    torch_adapter.calibrate(calibration_images(spec, CALIBRATION_IMAGES, image_size, seed),
                            chunk=CALIBRATION_CHUNK)
    arrays = torch_adapter.canonical_weights()
    if scenario == "head":
        arrays.update(head_init_arrays(spec.feature_dim, HEAD_HIDDEN, init_rng(seed)))
    return arrays


def _code_version(torch_adapter) -> str:
    """What the cached arrays depend on in this project's code, by its source."""
    adapter = type(torch_adapter)
    constants = f"{CALIBRATION_IMAGES} {CALIBRATION_CHUNK} {HEAD_HIDDEN}"
    return constants + " " + code_digest([
        _calibrated, calibration_images, init_rng, head_init_arrays, adapter._build_impl,
        adapter.randomise_affine, adapter.calibrate, adapter._canonical_impl])
