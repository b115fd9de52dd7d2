"""The framework-free core. Importing it imports no framework: the port validator's
entry points below load their adapter (torch and Keras) on first use."""

_LAZY = {
    "validate_port": ("adapters.layerwise", "validate_port"),
    "port_weights": ("adapters.layerwise", "port_weights"),
    "validate_model": ("comparator.validation", "validate_model"),
    "validate_pair": ("comparator.validation", "validate_pair"),
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'comparator' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(module_name), attribute)
