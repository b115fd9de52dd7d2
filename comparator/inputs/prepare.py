"""What a comparison starts from: the weights (`--weights`) and the batch (`--images`,
`--labels`, `--targets`), with the report settings that record them.

The default stays the offline one: seeded random weights with calibrated BatchNorm
statistics and a seeded synthetic batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from comparator.inputs.checkpoints import IMAGENET, IMAGENET_BOTH, IMAGENET_KERAS, parse_weights
from comparator.inputs.batch import (
    _STREAM_TARGETS,
    REGRESSION_SCENARIOS,
    Batch,
    init_rng,
    make_batch,
    rng_for,
)
from comparator.errors import UsageError
from comparator.inputs.images import (
    collect_images,
    describe_preprocessing,
    load_images,
    preprocess,
    probe,
)
from comparator.zoo import ModelSpec
from comparator.inputs.sources import random_calibrated
from comparator.zoo.head import HEAD_HIDDEN
from comparator.inputs.weights import CanonicalWeights, head_init_arrays

@dataclass
class Prepared:
    weights: CanonicalWeights  # what the PyTorch model holds
    batch: Batch
    framework_arrays: dict = field(default_factory=dict)  # per other framework, if not ported
    separate: bool = False  # each framework its own training: compared, not checked
    settings: dict = field(default_factory=dict)

    def arrays_for(self, framework: str) -> dict:
        return self.framework_arrays.get(framework, self.weights.arrays)


def check_inputs(spec: ModelSpec, config):
    """Validate --weights, --images and --targets before any framework loads; with images,
    the configuration's batch size becomes the number of images."""
    from dataclasses import replace

    parse_weights(getattr(config, "weights", None), spec)
    images = tuple(getattr(config, "images", ()) or ())
    targets = tuple(getattr(config, "targets", ()) or ())
    if not images:
        if targets:
            raise UsageError("--targets goes with --images")
        return config
    if spec.input_features:
        raise UsageError(f"{spec.name} takes vectors, not images")
    paths = collect_images(images)
    for path in paths:
        probe(path)
    if targets:
        if config.scenario not in REGRESSION_SCENARIOS:
            raise UsageError("--targets is for the head scenario; classify takes --labels")
        if len(targets) not in (1, len(paths)):
            raise UsageError(f"--targets: give one target or {len(paths)} (one per image), "
                             f"got {len(targets)}")
    return replace(config, batch_size=len(paths))


def _fit_scenario(arrays: dict, template: dict, scenario: str, seed: int,
                  spec: ModelSpec) -> dict:
    """A whole network's arrays cut to what the scenario's model holds; the head's seeded."""
    needed = {k for k in template if not k.startswith("head.")}
    missing = sorted(needed - set(arrays))
    if missing:
        raise UsageError(f"the checkpoint lacks {len(missing)} arrays {spec.name} needs, "
                         f"e.g. {missing[:3]}")
    fitted = {k: arrays[k] for k in needed}
    if scenario == "head":
        fitted.update(head_init_arrays(spec.feature_dim, HEAD_HIDDEN, init_rng(seed)))
    return fitted


def _keras_checkpoint(spec, config, choice, template, loaders) -> tuple[dict, dict]:
    kp = loaders("keras")
    if choice.kind == "file":
        model, record = kp.load_file(spec, config.image_size, choice.path)
    else:
        model, record = kp.load_imagenet(spec, config.image_size)
    body = {k: v for k, v in template.items() if not k.startswith("head.")}
    return kp.canonical_arrays(model, spec, body), record


def _pytorch_checkpoint(spec, choice, loaders) -> tuple[dict, dict]:
    pp = loaders("pytorch")
    if choice.kind == "file":
        return pp.load_file(spec, choice.path)
    return pp.load_imagenet(spec)


def _pretrained(spec, config, choice, torch_adapter, loaders) -> Prepared:
    torch_adapter.build(spec, config.scenario, config.seed, config.image_size)
    template = torch_adapter.canonical_weights()
    records, others = [], {}
    if choice.source == "keras":
        arrays, record = _keras_checkpoint(spec, config, choice, template, loaders)
        records.append({**record, "role": "source, ported to PyTorch"})
    else:
        arrays, record = _pytorch_checkpoint(spec, choice, loaders)
        records.append({**record, "role": "source, ported to Keras" if not choice.separate
                        else "PyTorch's own training"})
    arrays = _fit_scenario(arrays, template, config.scenario, config.seed, spec)
    if choice.separate:
        keras_arrays, keras_record = _keras_checkpoint(spec, config, choice, template, loaders)
        others["keras"] = _fit_scenario(keras_arrays, template, config.scenario, config.seed,
                                        spec)
        records.append({**keras_record, "role": "Keras's own training"})
    torch_adapter.load_weights(arrays)
    describe = {
        IMAGENET: "torchvision's ImageNet checkpoint, ported to Keras",
        IMAGENET_KERAS: "keras.applications' ImageNet checkpoint, ported to PyTorch",
        IMAGENET_BOTH: "each framework's own ImageNet checkpoint, not ported: two different "
                       "trainings, compared as they are",
    }.get(choice.kind, f"{choice.source} checkpoint file {records[0]['file']}, ported to the "
                       "other framework")
    if config.scenario == "head":
        describe += "; the regression head is seeded (PyTorch's Linear initialisation)"
    weights = CanonicalWeights(arrays, source=choice.label, description=describe)
    settings = {"checkpoints": records, "weights_source_framework":
                "both" if choice.separate else choice.source}
    if choice.separate:
        settings["notes"] = [
            "--weights imagenet-both: PyTorch holds torchvision's ImageNet checkpoint and "
            "Keras keras.applications' one. They are different trainings, so their outputs "
            "are compared as a distance (settings.trainings_distance), not checked as a port; "
            "cross-framework ONNX referee checks are not applicable and left out."]
    return Prepared(weights, None, others, choice.separate, settings)


def _image_batch(spec, config, prepared: Prepared, torch_adapter, used: str) -> Batch:
    images = load_images(config.images, config.image_size)
    count = len(images.paths)
    x = preprocess(images.pixels, spec.preprocessing[used])
    settings = prepared.settings
    settings["images"] = images.settings()
    settings["preprocessing"] = describe_preprocessing(spec, used)
    if config.scenario in REGRESSION_SCENARIOS:
        if config.targets:
            y = np.resize(np.asarray(config.targets, np.float32), count).reshape(count, 1)
            settings["targets"] = {"source": "given", "values": y[:, 0].tolist()}
        else:
            y = rng_for(config.seed, _STREAM_TARGETS).normal(0.0, 1.0, size=(count, 1))
            y = y.astype(np.float32)
            settings["targets"] = {"source": f"seeded N(0, 1), seed {config.seed}"}
        return Batch(x=x, y=y)
    if config.labels:
        y = np.resize(np.asarray(config.labels, np.int64), count)
        settings["labels"], source = "given", "given"
    else:
        logits = torch_adapter.logits(Batch(x=x, y=np.zeros(count, np.int64)))
        y = logits.argmax(axis=1).astype(np.int64)
        settings["labels"] = "predicted"
        held = ("torchvision's checkpoint" if prepared.separate
                else f"the {prepared.weights.source} weights")
        source = ("the reference model's own predictions (top-1 of the PyTorch model in "
                  f"inference mode, holding {held})")
    settings["label_values"] = {"source": source, "values": y.tolist()}
    return Batch(x=x, y=y)


def prepare(spec: ModelSpec, config, torch_adapter, loaders=None) -> Prepared:
    """Weights loaded into the PyTorch adapter, and the comparison batch. `loaders(framework)`
    gives a framework's checkpoint loader (adapters.checkpoint_loader), needed only for
    pretrained weights."""
    choice = parse_weights(getattr(config, "weights", None), spec)
    if choice.pretrained:
        prepared = _pretrained(spec, config, choice, torch_adapter, loaders)
    else:
        weights = random_calibrated(spec, config.scenario, config.seed, config.image_size,
                                    torch_adapter, cache_dir=getattr(config, "cache_dir", None))
        prepared = Prepared(weights, None, settings={"weights_cache": weights.cache})
    if getattr(config, "images", ()):
        used = "keras" if choice.source == "keras" else "pytorch"
        prepared.batch = _image_batch(spec, config, prepared, torch_adapter, used)
    else:
        prepared.batch = make_batch(spec, config.scenario, config.batch_size,
                                    config.image_size, config.seed, labels=config.labels)
    prepared.settings["notes"] = _notes(prepared) + prepared.settings.get("notes", [])
    return prepared


def _notes(prepared: Prepared) -> list[str]:
    """One line per input fact the terminal shows above the matrix."""
    settings, notes = prepared.settings, []
    for record in settings.get("checkpoints", []):
        notes.append(f"weights: {record['framework']} checkpoint {record['file']} "
                     f"({record['source']}; {record['role']}), sha256 {record['sha256'][:16]}…"
                     + (f"; {record['note']}" if record.get("note") else ""))
    if "images" in settings:
        pre = settings["preprocessing"]
        notes.append(f"images: {settings['images']['count']} photos "
                     f"({', '.join(settings['images']['files'])}); preprocessing: "
                     f"{pre['mode']} ({pre['note']})")
        notes += [f"images: {note}" for note in settings["images"].get("notes", [])]
    for key, shown in (("label_values", "labels"), ("targets", "targets")):
        if key in settings:
            notes.append(f"{shown}: {settings[key]['source']}")
    return notes
