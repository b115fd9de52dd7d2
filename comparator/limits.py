"""What the frameworks accept and what the machine can hold, checked before anything loads.

Seeds: PyTorch's, NumPy's and Keras's seeding all take a 32-bit unsigned integer
(`numpy.random.default_rng` takes more, but `keras.utils.set_random_seed` passes the seed
to `np.random.seed`, which refuses anything outside [0, 2**32)). Learning rates and
targets become float32 tensors: a value that float32 cannot hold becomes inf or 0.

The memory estimate is deliberately simple and errs high: a base for the imported
frameworks, a multiple of the weights (model, gradients, optimizer state, the states
each recipe keeps), one training step's activations and copies of the batch. The
activation counts are measured, once, by summing the output sizes of every leaf module
of each PyTorch model in training mode on one 64 x 64 image (per pixel, per sample);
they scale with the pixel count. A user's pair is counted the same way when it runs, on its
PyTorch model and batch (adapters.pytorch.user's memory_counts, in an inference pass).
"""

from __future__ import annotations

import math
import numbers
import os
import re
import threading

SEED_LIMIT = 2 ** 32
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 1.1754943508222875e-38  # smallest normal float32
GIB = 1024 ** 3

# model -> (parameters, activation values per pixel per sample in a training forward;
# for vector models, per sample). Measured with torch 2.14.1, torchvision 0.29.1.
MODEL_SIZES = {
    "dense_mlp": (102_001, 1_001),
    "densenet121": (7_978_856, 769),
    "densenet169": (14_149_480, 910),
    "densenet201": (20_013_928, 1_148),
    "mobilenet_v2": (3_504_872, 389),
    "resnet50": (25_557_032, 640),
    "tiny_cnn": (6_418, 29),
    "vgg16": (138_357_544, 583),
}
BASE_BYTES = int(1.5 * GIB)  # torch, torchvision and Keras imported (measured 1.3-1.5 GiB)
WEIGHT_COPIES = 12  # model, gradients, optimizer state, initial and final states per recipe
ACTIVATION_COPIES = 2  # kept for backward, and their gradients
BATCH_COPIES = 6  # NumPy batch, framework tensors, preprocessing, ONNX Runtime inputs
# A folder given to --images contributes at most this many images (by name): a folder of
# photos is not meant to become one batch of hundreds.
FOLDER_IMAGE_CAP = 64


def check_seed(seed, flag: str = "--seed") -> None:
    from comparator.errors import UsageError

    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise UsageError(f"{flag} must be an integer in [0, 2**32) (what PyTorch, NumPy and "
                         f"Keras seed with), got {seed}")


def check_count(value, label: str) -> None:
    """`value` must be a positive integer (steps, batch size)."""
    from comparator.errors import UsageError

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{label} must be a positive integer, got {value!r}")
    if value <= 0:
        raise UsageError(f"{label} must be positive, got {value}")


def check_float32(value, label: str, *, positive: bool = False) -> None:
    """`value` must be a number (not a string), finite once stored as float32 (and, if
    asked, not round to 0)."""
    from comparator.errors import UsageError

    if isinstance(value, (bool, str, bytes)):
        raise UsageError(f"{label} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{label} must be a number, got {value!r}") from None
    if positive and not FLOAT32_TINY <= number <= FLOAT32_MAX:
        raise UsageError(f"{label} must be a positive number that float32 can hold "
                         f"(1.2e-38 to 3.4e38), got {value}")
    if not (math.isfinite(number) and abs(number) <= FLOAT32_MAX):
        raise UsageError(f"{label} must be a number that float32 can hold (|x| <= 3.4e38), "
                         f"got {value}")


def check_timeout(seconds, label: str) -> None:
    from comparator.errors import UsageError

    if not (isinstance(seconds, (int, float)) and 0 < seconds <= threading.TIMEOUT_MAX):
        raise UsageError(f"{label} must be a positive number of seconds up to "
                         f"{threading.TIMEOUT_MAX:.3g}, got {seconds}")


def parse_size(text: str) -> int:
    """'8G', '512MiB', '1.5g', '2000000' -> bytes; ValueError otherwise."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text or "")
    if not match:
        raise ValueError(f"expected a size such as 8G or 512M, got {text!r}")
    scale = 1024 ** " KMGT".index(match.group(2).upper() or " ")
    size = float(match.group(1)) * scale
    if not 0 < size < 2 ** 63:
        raise ValueError(f"expected a positive size, got {text!r}")
    return int(size)


def format_size(size: float) -> str:
    return f"{size / GIB:.1f} GiB" if size >= GIB / 10 else f"{size / 1024 ** 2:.0f} MiB"


def estimate_peak_bytes(model: str, batch_size: int, image_size: int, channels: int = 3,
                        input_features: int | None = None) -> int:
    """An upper estimate of one process's peak memory for a comparison (see the module)."""
    params, activations = MODEL_SIZES.get(model, (0, 0))
    if input_features:
        per_sample_in, per_sample_act = input_features, activations
    else:
        pixels = image_size * image_size
        per_sample_in, per_sample_act = channels * pixels, activations * pixels
    return peak_bytes(params, per_sample_act, per_sample_in, batch_size)


def peak_bytes(params: int, activations_per_sample: int, inputs_per_sample: int,
               batch_size: int) -> int:
    """The estimate of one process's peak from a model's counts: its parameters, the values
    its leaf modules output for one sample in a forward pass, and one sample's inputs."""
    return int(BASE_BYTES + 4 * (WEIGHT_COPIES * params
                                 + batch_size * (ACTIVATION_COPIES * activations_per_sample
                                                 + BATCH_COPIES * inputs_per_sample)))


def machine_memory_bytes() -> int | None:
    """What this process can ever hold: the memory of the machine, or of its cgroup when
    that is smaller; None where neither can be read."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits) if limits else None


def workers_may_overlap(model: str, batch_size: int, image_size: int, workers: int,
                        max_memory: int | None) -> bool:
    """Whether Keras workers may run beside each other and this process (workers_fit_at_once)
    on a zoo model's estimate."""
    return workers_fit_at_once(estimate_peak_bytes(model, batch_size, image_size), workers,
                               max_memory)


def workers_fit_at_once(each: int, workers: int, max_memory: int | None) -> bool:
    """Whether Keras workers may run beside each other and this process: with two cores or
    more, and when every process's estimated peak (`each`) fits the memory at once (else they
    run one after another, each beside this process's own runs)."""
    if workers == 0 or (os.cpu_count() or 1) < 2:
        return False
    limit = max_memory if max_memory is not None else machine_memory_bytes()
    return limit is None or (workers + 1) * each <= limit


def check_memory(model: str, batch_size: int, image_size: int, input_features: int | None,
                 max_memory: int | None, what: str = "this run") -> int:
    """Refuse, in one line with the estimate and the limit, what cannot fit."""
    from comparator.errors import UsageError

    estimate = estimate_peak_bytes(model, batch_size, image_size, input_features=input_features)
    limit = max_memory if max_memory is not None else machine_memory_bytes()
    source = "--max-memory" if max_memory is not None else "this machine's memory"
    if limit is not None and estimate > limit:
        shape = (f"batch {batch_size}" if input_features
                 else f"batch {batch_size} at {image_size} px")
        raise UsageError(f"{what} ({model}, {shape}) needs an estimated "
                         f"{format_size(estimate)}, more than {source} ({format_size(limit)}); "
                         "use a smaller batch or image size, or --max-memory SIZE if you know "
                         "better")
    return estimate


def check_numbers(config) -> None:
    """Every number of a CompareConfig against what the frameworks accept."""
    check_seed(config.seed)
    check_float32(config.lr, "learning rate", positive=True)
    for target in config.targets:
        check_float32(target, "--targets")
    check_timeout(config.worker_timeout, "worker timeout")
    if config.max_memory is not None and not (isinstance(config.max_memory, int)
                                              and config.max_memory > 0):
        from comparator.errors import UsageError

        raise UsageError(f"--max-memory must be a positive size, got {config.max_memory}")
