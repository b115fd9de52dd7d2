"""Build a compiled Keras 3 model's loss container without a symbolic pass of the model.

The first fit() or evaluate() after each compile() builds the model's loss container
(`_symbolic_build`) from a symbolic pass of the whole model: on torch that is every layer
called again on meta tensors, 0.29 to 0.35 s for DenseNet121 at 224 px (measured
2026-11-28), and the comparison recompiles for every Keras recipe. The container needs
only the structure, shapes and dtypes of the labels and of the model's output, which a
single-output functional model already knows, so it is built from those here and Keras
skips the pass. Anything else (a model that is not built, several outputs, compiled
metrics, a Keras without these attributes, tf-keras) is left to Keras as it is.

On torch the skipped pass was not free of side effects: Keras took its batch from a new
torch DataLoader iterator, whose creation draws its base seed from torch's global
generator, the generator an unseeded Keras Dropout draws its masks from on torch. One
draw stands in for it, so the step draws the masks Keras's own fit() draws after the
same seed (bitwise, tests/test_keras_loss_build.py, Keras 3.15.1 on torch 2.14.1).
"""

from __future__ import annotations

from adapters.keras.backend import keras


def build_loss_from_output_spec(model, y) -> bool:
    """Build `model`'s loss container for labels like `y`; True when it did."""
    container = getattr(model, "_compile_loss", None)
    outputs = getattr(model, "outputs", None)
    if (container is None or getattr(container, "built", True) or not outputs
            or len(outputs) != 1 or getattr(model, "_compile_metrics", None) is not None
            or not all(layer.built for layer in model._flatten_layers())):
        return False
    output = outputs[0]
    y_true = keras.KerasTensor(tuple(y.shape), dtype=keras.backend.standardize_dtype(y.dtype))
    y_pred = keras.KerasTensor((len(y), *output.shape[1:]), dtype=output.dtype)
    container.build(y_true, y_pred)
    if keras.backend.backend() == "torch":
        _draw_as_a_data_loader_iterator_does()
    return True


def _draw_as_a_data_loader_iterator_does() -> None:
    import torch

    torch.empty((), dtype=torch.int64).random_()
