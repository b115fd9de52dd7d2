"""The framework-free core. Importing it imports no framework: the entry points below
(the port validator's, and compare_pair for your own models) load their adapters (torch
and Keras) on first use."""

_LAZY = {
    "validate_port": ("adapters.layerwise", "validate_port"),
    "port_weights": ("adapters.layerwise", "port_weights"),
    "validate_model": ("comparator.validation", "validate_model"),
    "compare_pair": ("comparator.runner", "compare_pair"),
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'comparator' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)
