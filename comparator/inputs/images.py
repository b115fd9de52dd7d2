"""Real images: files or folders of JPEG/PNG photos, decoded, resized, cropped and
preprocessed the way a framework's application expects; labels and targets given by the
user.

Decoding uses Pillow (imported only when images are read). No framework is imported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from dataclasses import dataclass

import numpy as np

from comparator.errors import UsageError
from comparator.io import why_not_a_file
from comparator.zoo import ModelSpec, Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SAMPLES = "samples"
# Photos shipped inside installable packages, so that `--images samples` works offline:
# (package, file inside the package folder, what the photo shows).
SAMPLE_PHOTOS = (
    ("skimage", "data/chelsea.png", "a tabby cat (scikit-image)"),
    ("skimage", "data/coffee.png", "a cup of coffee (scikit-image)"),
    ("skimage", "data/astronaut.png", "an astronaut (scikit-image)"),
    ("skimage", "data/rocket.jpg", "a rocket on its launch pad (scikit-image)"),
    ("skimage", "data/motorcycle_left.png", "a motorcycle (scikit-image)"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "Grace Hopper (matplotlib)"),
)
# torchvision's and Keras's evaluation transform: resize the shorter side to 256/224 of
# the crop, then crop the centre.
RESIZE_RATIO = 256 / 224


def _package_dir(package: str) -> str | None:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    return list(spec.submodule_search_locations)[0]


def sample_photos() -> list[str]:
    """The sample photos' paths; an error naming the package to install when one is missing."""
    paths = []
    for package, relative, _ in SAMPLE_PHOTOS:
        folder = _package_dir(package)
        path = os.path.join(folder, relative) if folder else None
        if path is None or not os.path.isfile(path):
            install = "scikit-image" if package == "skimage" else package
            raise UsageError(f"--images samples needs the photo {relative} of the {package} "
                             f"package, which is not installed here: pip install {install}")
        paths.append(path)
    return paths


def collect_images(given: list[str] | tuple[str, ...], notes: list | None = None) -> list[str]:
    """Image files from files and folders (a folder: its JPEG/PNG files, sorted by name, at
    most FOLDER_IMAGE_CAP of them; `notes` is told of any left out)."""
    from comparator.limits import FOLDER_IMAGE_CAP

    if list(given) == [SAMPLES]:
        return sample_photos()
    found = []
    for item in given:
        if item == SAMPLES:
            found += sample_photos()
        elif os.path.isdir(item):
            inside = sorted(os.path.join(item, n) for n in os.listdir(item)
                            if n.lower().endswith(IMAGE_SUFFIXES)
                            and os.path.isfile(os.path.join(item, n)))
            if not inside:
                raise UsageError(f"--images: the folder {item} has no JPEG or PNG file")
            if len(inside) > FOLDER_IMAGE_CAP and notes is not None:
                notes.append(f"the folder {item} holds {len(inside)} images; the first "
                             f"{FOLDER_IMAGE_CAP} by name were used (name files one by one "
                             "to use more)")
            found += inside[:FOLDER_IMAGE_CAP]
        elif os.path.isfile(item):
            found.append(item)
        else:
            raise UsageError(f"--images: {item} {why_not_a_file(item)}")
    for path in found:
        if os.path.getsize(path) == 0:
            raise UsageError(f"--images: {path} is empty (0 bytes)")
    return found


# Pillow modes of JPEG and PNG files: 8-bit ones convert to RGB in [0, 255]; 16-bit
# greyscale PNGs ("I;16", or "I" in older Pillow) hold 0..65535 and convert("RGB") would
# clip every value above 255 to white.
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK",
                   "YCbCr")
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def _bad_image(path: str, why: str) -> UsageError:
    from comparator.io import shown

    return UsageError(f"--images: {shown(path)} {why}")


@contextlib.contextmanager
def _opened(path: str):
    """Image.open with every failure a one-line bad-input error, Pillow's decompression
    bomb check included (its warning, between 1x and 2x the limit, counts as one too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.format not in ("JPEG", "PNG"):
                    raise _bad_image(path, f"is a {image.format} image, not JPEG or PNG")
                yield image
    except UnidentifiedImageError:
        raise _bad_image(path, "is not a readable image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bad_image(path, f"is refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _bad_image(path, f"cannot be decoded ({exc})") from None


def _resized(image, size: int):
    from PIL import Image

    short = round(size * RESIZE_RATIO)
    w, h = image.size
    scale = short / min(w, h)
    image = image.resize((max(short, round(w * scale)), max(short, round(h * scale))),
                         Image.Resampling.BILINEAR)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode(path: str, size: int) -> np.ndarray:
    """One image as float32 HWC RGB in [0, 1]: shorter side resized (bilinear) to
    round(size * 256 / 224), then the centre size x size crop."""
    from PIL import Image

    with _opened(path) as image:
        if image.mode in SIXTEEN_BIT_MODES:
            grey = np.asarray(image, dtype=np.float32) / 65535.0
            if grey.min() < 0 or grey.max() > 1:
                raise _bad_image(path, f"has {image.mode} values outside 0..65535")
            plane = np.asarray(_resized(Image.fromarray(grey, "F"), size), dtype=np.float32)
            return np.repeat(plane[:, :, None], 3, axis=2)
        if image.mode not in EIGHT_BIT_MODES:
            raise _bad_image(path, f"has the Pillow mode {image.mode}, which this tool does "
                                   "not decode; save it as 8-bit RGB or 16-bit greyscale")
        return np.asarray(_resized(image.convert("RGB"), size), dtype=np.float32) / 255.0


def probe(path: str) -> None:
    """Check that a file is a readable JPEG or PNG image without decoding its pixels."""
    with _opened(path) as image:
        image.verify()


def is_caffe(pre: Preprocessing) -> bool:
    return pre.mode.startswith("caffe")


def preprocess(images: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """NHWC RGB in [0, 1] to the NCHW tensor a framework's application expects.

    caffe: RGB to BGR, scaled to 0-255, ImageNet mean (BGR order) subtracted, no scaling;
    every other mode: (x - mean) / std on [0, 1] (torch: ImageNet mean/std, tf: 0.5/0.5).
    """
    x = images.astype(np.float32)
    if is_caffe(pre):
        x = x[..., ::-1] * 255.0
    x = (x - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)


def same_preprocessing(a: Preprocessing, b: Preprocessing) -> bool:
    return is_caffe(a) == is_caffe(b) and np.allclose(a.mean, b.mean) and np.allclose(
        a.std, b.std)


def describe_preprocessing(spec: ModelSpec, used: str) -> dict:
    """What each framework's application expects and which one fed both frameworks."""
    modes = {name: pre.mode for name, pre in spec.preprocessing.items()}
    same = same_preprocessing(spec.preprocessing["pytorch"], spec.preprocessing["keras"])
    note = ("both applications expect the same input" if same else
            f"the applications differ ({modes['pytorch']} in torchvision, {modes['keras']} in "
            f"keras.applications): both frameworks were fed the one tensor that {used}'s "
            "checkpoint expects")
    return {"used": used, "mode": modes[used], **{f"{k}_expects": v for k, v in modes.items()},
            "same_tensor_for_both": True, "note": note}


class ReadValues(tuple):
    """Values as read_values returns them, with the file they came from (`source`, None
    when given inline): a report must not overwrite that file."""

    source: str | None = None


def read_values(value: str, convert, expected: str) -> ReadValues:
    """Values separated by commas or whitespace, given inline or in a file (for --labels
    and --targets); ValueError with a one-line reason otherwise."""
    text, source = value, None
    if os.path.isfile(value):
        source = value
        try:
            with open(value, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read {value} ({exc})") from None
    elif os.path.sep in value or value.endswith(".txt"):
        raise ValueError(f"{value} {why_not_a_file(value)}")
    items = [t for t in text.replace(",", " ").split() if t]
    if not items:
        raise ValueError(f"no values in {value!r}")
    try:
        values = tuple(convert(t) for t in items)
    except ValueError:
        raise ValueError(f"expected {expected}, got {value!r}") from None
    if not all(np.isfinite(values)):
        raise ValueError("values must be finite")
    read = ReadValues(values)
    read.source = source
    return read


def label_values(value: str) -> tuple[int, ...]:
    return read_values(value, int, "integer class indices")


def target_values(value: str) -> tuple[float, ...]:
    return read_values(value, float, "numbers")


@dataclass(frozen=True)
class Images:
    """Decoded photos in [0, 1] (NHWC RGB) and where they came from."""

    pixels: np.ndarray
    paths: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def settings(self) -> dict:
        return {"files": [os.path.basename(p) for p in self.paths],
                "paths": list(self.paths), "count": len(self.paths),
                "notes": list(self.notes),
                "transform": f"shorter side resized (bilinear) to {RESIZE_RATIO:.4f} x the "
                             "crop, centre crop, RGB in [0, 1]"}


def load_images(given, size: int) -> Images:
    notes: list[str] = []
    paths = collect_images(given, notes)
    if not paths:
        raise UsageError("--images: no image given")
    return Images(np.stack([decode(p, size) for p in paths]), tuple(paths), tuple(notes))


__all__ = ["Images", "load_images", "preprocess", "label_values", "target_values",
           "describe_preprocessing", "collect_images"]
