"""What JAX does on this machine's GPU by default: `python tools/jax_gpu_probe.py`.

Prints, each measured in a fresh process:

* the platform of JAX's default device when nothing is set (a CUDA build of jaxlib takes
  the GPU even where the comparison runs on the CPU);
* the GPU memory in use after one small array, with JAX's default preallocation and with
  `XLA_PYTHON_CLIENT_PREALLOCATE=false` (nvidia-smi);
* how far float32 convolutions move from a float64 reference with JAX's default precision
  and with `jax_default_matmul_precision=highest` (adapters/devices.py): four 3x3
  convolutions with ReLU on a seeded batch of 8 at 56 px, 64 channels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_DEFAULT_DEVICE = "import jax; print(jax.devices()[0].platform)"

_MEMORY = """
import subprocess, jax, jax.numpy as jnp
jnp.ones(1).block_until_ready()
print(subprocess.run(["nvidia-smi", "--query-gpu=memory.used,memory.total",
                      "--format=csv,noheader"], capture_output=True, text=True).stdout.strip())
"""

_CONVOLUTIONS = """
import json, numpy as np, jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
rng = np.random.default_rng(0)
x = rng.standard_normal((8, 64, 56, 56))
kernels = [rng.standard_normal((64, 64, 3, 3)) / 24.0 for _ in range(4)]

def net(x, kernels, precision=None):
    for k in kernels:
        x = jax.nn.relu(jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                                     precision=precision))
    return x

cpu = jax.devices("cpu")[0]
reference = np.asarray(jax.jit(net, device=cpu)(x, kernels))
x32, k32 = x.astype(np.float32), [k.astype(np.float32) for k in kernels]
found = {}
for name, precision in (("default", None), ("highest", jax.lax.Precision.HIGHEST)):
    out = np.asarray(jax.jit(lambda a, b: net(a, b, precision))(x32, k32))
    found[name] = float(np.abs(out - reference).max() / np.abs(reference).max())
found["device"] = str(jax.devices()[0])
print(json.dumps(found))
"""


def _python(code: str, **env) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    if done.returncode != 0:
        return "failed: " + (done.stderr.strip().splitlines() or ["no output"])[-1]
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    print("JAX's default device, nothing set:", _python(_DEFAULT_DEVICE))
    print("GPU memory used/total after one array, default:", _python(_MEMORY))
    print("  with XLA_PYTHON_CLIENT_PREALLOCATE=false:",
          _python(_MEMORY, XLA_PYTHON_CLIENT_PREALLOCATE="false"))
    found = _python(_CONVOLUTIONS)
    if found.startswith("{"):
        found = json.loads(found)
        print(f"convolutions on {found['device']}: largest difference from float64, relative to "
              f"the largest output: default precision {found['default']:.2e}, highest "
              f"{found['highest']:.2e}")
    else:
        print("convolutions:", found)


if __name__ == "__main__":
    main()
