"""Guarding a port in the user's own test suite:

    from comparator.testing import assert_port

    def test_my_port():
        assert_port(MyTorchNet(), my_keras_port(), x)  # x: a batch in PyTorch's layout

Importing this module imports no framework; assert_port loads torch and Keras (on the
torch backend, in the caller's process) on first use.
"""

from __future__ import annotations


def assert_port(torch_module, keras_model, inputs, train_step: bool = True, **options):
    """Validate the port layer by layer (comparator.validate_port, same options) and raise
    AssertionError when it diverges. The message starts with the first diverging layer and
    its likely cause, then the whole report. Returns the PortValidation when it agrees.

    train_step: also step every BatchNorm pair once in training mode and compare their
    running statistics (momentum, kept variance), and compare the Dropout rates."""
    from comparator import validate_port

    result = validate_port(torch_module, keras_model, inputs, train_step=train_step, **options)
    if not result.passed:
        report = result.render()
        raise AssertionError(report.splitlines()[-1] + "\n\n" + report)
    return result
