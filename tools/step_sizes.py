#!/usr/bin/env python
"""How far one comparison's steps move the weights, for a range of learning rates: the
measurements behind the rule that flags a step diverged with finite numbers
(comparator/analysis/divergence.py, docs/options.md "Steps that diverge").

    python tools/step_sizes.py tiny_cnn --optimizer sgd --lr 0.01,1,3,1000 [--steps N]
        [--image-size PX] [--batch-size N]

One line per run of this process's frameworks (PyTorch, Keras on torch) that changed a
weight: the inference loss before and after, the largest change of a weight, the largest
weight the steps changed, the two ratios of the rule and whether the report flags it.
Image models run at 16 px and batch 4 unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "torch")

HEADER = (f"{'lr':>8}  {'run':<24} {'before':>10} {'after':>10} {'max|dw|':>9} "
          f"{'max|w|':>7} {'ratio':>9} {'L2 ratio':>9}  flagged")


def _line(lr: float, run_id: str, measurement, sizes: dict, flagged: bool) -> str:
    losses = measurement.result.losses
    return (f"{lr:>8g}  {run_id:<24} {losses.inference_before:>10.4g} "
            f"{losses.inference_after:>10.4g} {sizes['max_weight_delta']:>9.3g} "
            f"{sizes['largest_weight_before']:>7.3g} {sizes['max_delta_ratio']:>9.3g} "
            f"{sizes['norm_ratio']:>9.3g}  {'yes' if flagged else 'no'}")


def _lines(model: str, optimizer: str, lr: float, steps: int, shape: dict) -> list[str]:
    from comparator.analysis.divergence import finite_divergence, step_sizes
    from comparator.config import CompareConfig, resolve
    from comparator.errors import Diverged
    from comparator.pipeline import compare

    config = CompareConfig(model=model, lr=lr, optimizer=optimizer, steps=steps, **shape)
    outcome = compare(config)
    lines = []
    for recipe in resolve(config)[2]:
        adapter = outcome.adapters[recipe.framework]
        try:
            found = adapter.run_recipe(recipe, outcome.batch, steps, lr, optimizer,
                                       ablate=False)
        except Diverged as exc:
            lines.append(f"{lr:>8g}  {recipe.id:<24} diverged (NaN or infinite) at step "
                         f"{exc.step}")
            continue
        moved = step_sizes(found.initial_state, found.final_state)
        if moved is not None:
            flagged = finite_divergence(found.result, found.initial_state, found.final_state)
            lines.append(_line(lr, recipe.id, found, moved, flagged is not None))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", default="0.01", help="comma-separated learning rates")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)
    shape = ({"scenario": "regress"} if args.model == "dense_mlp"
             else {"image_size": args.image_size})
    shape["batch_size"] = args.batch_size
    print(f"{args.model}, {args.optimizer}, {args.steps} step(s), batch {args.batch_size}"
          + (f", {args.image_size} px" if "image_size" in shape else ""))
    print(HEADER)
    for lr in (float(value) for value in args.lr.split(",")):
        print("\n".join(_lines(args.model, args.optimizer, lr, args.steps, shape)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
