"""Where a user's port first differs, once the comparison's port check has failed: the port
validator (adapters/port_validation) on the same models and batch, in inference mode, as the
port check compares inference outputs. The comparison then names the layer and its likely
cause instead of leaving every run's loss apart from the start unexplained."""

from __future__ import annotations

from comparator.inputs.batch import Batch
from comparator.errors import UsageError


def locate(adapters: dict, batch: Batch, leave_out: tuple[str, ...] = (),
           output_chosen: str | None = None) -> dict:
    """{"located": bool, "text": str} and, where located, the layer pair, the pass it was seen
    in and its cause codes (the report's settings.pair.first_divergence). leave_out: PyTorch
    modules off the output --output chose, which the pairing left out too; output_chosen:
    --output where it chose several, which the models return already (the validator follows
    each)."""
    from adapters.own_pair.port_slips import find_slip
    from adapters.port_validation.validator import validate_port
    from comparator.analysis.layer_pairing import without_mapping

    torch_adapter, keras_adapter = adapters["pytorch"], adapters["keras"]
    if getattr(torch_adapter, "inference_only", None):
        return {"located": False, "text": "a torch.export program has no modules to pair with "
                                          "Keras layers: run validate_port.py on the "
                                          "nn.Module to find the layer"}
    if keras_adapter.pairing is not None:  # a slip is named on the comparison's own pairing
        slip = find_slip(keras_adapter.pairing, torch_adapter.model)
        if slip is not None:
            return slip
    if torch_adapter.device != "cpu":
        return {"located": False, "text": "the port validator runs on the CPU: run "
                                          "validate_port.py on the pair to find the layer"}
    try:
        with without_mapping():  # the comparison has no mapping to give the validator
            result = validate_port(torch_adapter.model, keras_adapter.user_model, batch.x,
                                   modes=("inference",), gradients=False, train_step=False,
                                   leave_out=leave_out, output_chosen=output_chosen)
    except UsageError as exc:
        return {"located": False, "text": f"the port validator cannot trace this pair: {exc}"}
    finding = result.first_divergence
    if finding is None:
        return {"located": False,
                "text": "no single layer diverges beyond the port validator's tolerance: the "
                        "difference builds up over the layers, or arises after the last "
                        "paired one"}
    return {"located": True, "torch_module": finding.torch_module,
            "keras_layer": finding.keras_layer, "seen_in": finding.seen_in,
            "causes": [cause.code for cause in finding.causes], "text": finding.text}
