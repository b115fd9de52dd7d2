"""adapters.pytorch.dynamo: torch._dynamo stays out of a comparison until something compiles,
the numbers are the same as with it imported, and whatever needs the real package gets it.
Each case runs in a fresh process that keeps TensorFlow out, as the command lines do: the
stand-in goes in before torchvision and Keras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


KEEP_BACKENDS_OUT = ("from comparator.config.frameworks import keep_worker_backends_out\n"
                     "keep_worker_backends_out()\n")


def _run(code: str, keep_backends_out: bool = True, **env) -> str:
    inherited = {k: v for k, v in os.environ.items() if k != "XFRAME_IMPORT_DYNAMO"}
    env = {**inherited, "KERAS_BACKEND": "torch", "PYTHONPATH": ROOT, **env}
    code = (KEEP_BACKENDS_OUT if keep_backends_out else "") + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


_TINY_COMPARISON = """
    import json, sys
    from comparator.config import CompareConfig
    from comparator.pipeline import compare
    report = compare(CompareConfig(model="tiny_cnn", batch_size=4, image_size=16)).report
    runs = {r.id: [r.losses.inference_before, r.losses.train_step, r.losses.inference_after]
            for r in report.runs}
    print(json.dumps({"runs": runs, "real": type(sys.modules["torch._dynamo"]).__name__}))
"""


def test_a_comparison_never_imports_the_compiler_and_measures_the_same():
    # Keras's build (its seeded initializers are marked with disable) and fit, and
    # PyTorch's SGD step (which calls graph_break) all run with the stand-in in place.
    deferred = json.loads(_run(_TINY_COMPARISON))
    imported = json.loads(_run(_TINY_COMPARISON, XFRAME_IMPORT_DYNAMO="1"))
    assert deferred["real"] == "_StandIn" and imported["real"] == "module"
    assert len(deferred["runs"]) == 8
    assert deferred["runs"] == imported["runs"]  # bitwise: the same floats in JSON


def test_compiling_imports_the_real_compiler_and_the_markers_follow_it():
    out = _run("""
        import sys
        import torch
        import adapters.pytorch  # the stand-in
        from adapters.keras.backend import keras
        from adapters.pytorch.dynamo import is_deferred
        before = keras.random.normal((3,), seed=7)
        deferred = is_deferred()

        def f(x):  # a function the compiler traces, calling Keras's marked seed function
            return torch.sin(x) + keras.random.normal((3,), seed=7)

        x = torch.arange(3.0)
        compiled = torch.compile(f, backend="eager")(x)
        after = keras.random.normal((3,), seed=7)
        import torch._dynamo.config as config
        print(deferred, is_deferred(), type(torch._dynamo).__name__,
              config is sys.modules["torch._dynamo.config"],
              torch.equal(before, after), torch.equal(compiled, torch.sin(x) + before))
    """)
    assert out.split() == ["True", "False", "module", "True", "True", "True"]


def test_a_submodule_import_brings_in_the_real_package():
    out = _run("""
        import sys
        import adapters.pytorch
        from torch._dynamo.utils import counters  # not one of the stand-in's names
        from torch._dynamo import config
        import torch
        print(type(sys.modules["torch._dynamo"]).__name__, torch._dynamo.config is config,
              sys.modules["torch._dynamo.utils"].counters is counters,
              sys.modules["torch._dynamo.config"].__spec__.name)
    """)
    assert out.split() == ["module", "True", "True", "torch._dynamo.config"]


def test_torchvision_runs_its_ops_and_its_compiler_question_gets_the_real_answer():
    out = _run("""
        import adapters.pytorch  # the stand-in, before torchvision
        import torch, torchvision
        import sys
        module = sys.modules["torchvision.ops.roi_align"]
        from adapters.pytorch.dynamo import is_deferred
        x = torch.arange(16.0).reshape(1, 1, 4, 4)
        boxes = torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0]])
        pooled = torchvision.ops.roi_align(x, boxes, output_size=1)
        still_deferred = is_deferred()
        supported = module.is_compile_supported("cpu")  # what roi_align asks without its ops
        print(still_deferred, round(float(pooled), 4), supported, is_deferred())
    """)
    assert out.split() == ["True", "7.5", "True", "False"]


def test_where_tensorflow_may_come_later_the_compiler_is_imported_as_usual():
    # Importing triton (which torch._dynamo imports) after TensorFlow crashed the
    # interpreter here; the Python API's process may import TensorFlow (Keras's
    # set_random_seed does), so there torch._dynamo comes in with torchvision, as usual.
    out = _run("""
        import sys
        import adapters.pytorch
        import torchvision
        print(type(sys.modules["torch._dynamo"]).__name__)
    """, keep_backends_out=False)
    assert out == "module"


def test_after_tensorflow_torchvision_imports_because_the_compiler_waits():
    # `import tensorflow; import torchvision` crashed the interpreter here (triton, which
    # torch._dynamo imports, after TensorFlow); with the stand-in torchvision imports and runs.
    out = _run("""
        import sys
        import tensorflow
        import adapters.pytorch
        import torch, torchvision
        net = torchvision.models.mobilenet_v2(num_classes=3).eval()
        with torch.no_grad():
            shape = tuple(net(torch.zeros(1, 3, 32, 32)).shape)
        print(type(sys.modules["torch._dynamo"]).__name__, shape)
    """, keep_backends_out=False, KERAS_BACKEND="tensorflow")  # TensorFlow imports Keras
    assert out == "_StandIn (1, 3)"
