"""The framework-free core, and its public API.

Importing `comparator` imports no framework: each function below loads the adapters
(torch and Keras on the torch backend) through their registry when it is called.
"""

from __future__ import annotations


def validate_port(torch_module, keras_model, inputs, **options):
    """Compare a PyTorch module and its Keras port layer by layer (see README)."""
    import adapters

    validator = adapters.load_port_validator()
    return validator.validate_port(torch_module, keras_model, inputs, **options)


def port_weights(torch_module, keras_model, **options):
    """Copy a PyTorch module's weights into its Keras twin, layer by layer."""
    import adapters

    return adapters.load_port_validator().port_weights(torch_module, keras_model, **options)


def validate_model(model: str, image_size: int | None = None, batch_size: int = 2,
                   seed: int = 0, naive: bool = False, **options):
    """Validate a zoo entry's port (or, with naive, keras.applications' model under the
    naive same-shape port). Checks the input before importing any framework."""
    from comparator.analysis.validation import check_zoo_request
    from comparator.limits import check_seed

    spec, size = check_zoo_request(model, image_size, batch_size, naive, options)
    check_seed(seed)
    import adapters

    return adapters.load_port_validator().validate_zoo_model(spec, size, batch_size, seed,
                                                         naive=naive, **options)


def validate_pair(pytorch: str, keras: str, **options):
    """Validate your own pair given as SPECs (file.py:callable, module:callable, a .keras
    file) on a batch from --inputs or --input-shape, as validate_port.py does. Checks the
    batch before importing any framework."""
    from comparator.analysis.validation import pair_request_inputs

    x, options = pair_request_inputs(options)
    import adapters

    return adapters.load_port_validator().validate_port(pytorch, keras, x, **options)


def compare_pair(torch_module, keras_model, inputs, labels_or_targets=None, **options):
    """Compare the freezing recipes of PyTorch and Keras on your own model pair; the Report
    of compare.py (see comparator.pipeline.compare_pair and README, "Your own models")."""
    from comparator.pipeline import compare_pair as run

    return run(torch_module, keras_model, inputs, labels_or_targets, **options)


__all__ = ["validate_port", "port_weights", "validate_model", "validate_pair", "compare_pair"]
