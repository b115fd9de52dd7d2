"""Weight sources: where the canonical weights of a comparison come from."""

from __future__ import annotations

from comparator.inputs.batch import calibration_images, init_rng
from comparator.zoo import ModelSpec
from comparator.inputs.weights import CanonicalWeights, head_init_arrays

CALIBRATION_IMAGES = 16
CALIBRATION_CHUNK = 8
HEAD_HIDDEN = 64


def random_calibrated(spec: ModelSpec, scenario: str, seed: int, image_size: int,
                      torch_adapter) -> CanonicalWeights:
    """PyTorch's own initialisation from `seed`, BatchNorm statistics calibrated on data.

    The torch adapter is built, randomised and calibrated in place, then loaded
    with the resulting arrays, so the model that made the weights is the one
    that is compared: nothing is built twice.
    """
    torch_adapter.build(spec, scenario, seed, image_size)
    torch_adapter.randomise_affine(seed)
    torch_adapter.calibrate(calibration_images(spec, CALIBRATION_IMAGES, image_size, seed),
                            chunk=CALIBRATION_CHUNK)
    arrays = torch_adapter.canonical_weights()
    if scenario == "head":
        arrays.update(head_init_arrays(spec.feature_dim, HEAD_HIDDEN, init_rng(seed)))
    torch_adapter.load_weights(arrays)
    description = (
        f"PyTorch initialisation with seed {seed}; BatchNorm gamma ~ U(0.75, 1.25), "
        f"beta ~ N(0, 0.1); running statistics averaged over {CALIBRATION_IMAGES} seeded "
        f"calibration images (not the comparison batch) at {image_size} px"
    )
    return CanonicalWeights(arrays, source="random-calibrated", description=description)
