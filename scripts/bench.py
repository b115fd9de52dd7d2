#!/usr/bin/env python
"""Benchmark compare.py against the irreducible compute of its default matrix.

See tools/bench.py for exactly what is measured and what counts as irreducible.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from comparator.cli.common import (  # noqa: E402
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    OneLineParser,
    Terminated,
    handle_sigterm,
)
from comparator.errors import ComparatorError  # noqa: E402


def main(argv=None) -> int:
    parser = OneLineParser(prog="bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="densenet121",
                        help="model to benchmark (default densenet121)")
    parser.add_argument("--image-size", type=int, help="pixels per side (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=8, help="default 8")
    parser.add_argument("--output", default="benchmarks/results.json",
                        help="JSON output path (default benchmarks/results.json)")
    parser.add_argument("--runs", type=int, default=1,
                        help="repetitions of the tool's cold and warm runs and of the "
                             "irreducible compute; medians are kept (default 1)")
    parser.add_argument("--frameworks-model", default="densenet121",
                        help="model of the four-against-two-frameworks runs (default "
                             "densenet121)")
    parser.add_argument("--frameworks-image-size", type=int, default=96, help="default 96")
    parser.add_argument("--frameworks-batch-size", type=int, default=4, help="default 4")
    args = parser.parse_args(argv)
    from tools.bench import benchmark, resolve, table
    from comparator.io import check_writable_file, write_atomic

    handle_sigterm()
    try:
        resolve(args.model, args.image_size, args.batch_size, args.runs)
        resolve(args.frameworks_model, args.frameworks_image_size, args.frameworks_batch_size,
                1)
        check_writable_file(args.output, "--output")
        result = benchmark(args.model, args.image_size, args.batch_size, args.runs,
                           args.frameworks_model, args.frameworks_image_size,
                           args.frameworks_batch_size)
    except ComparatorError as exc:
        print(f"bench.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: children ended, folders removed
        terminated = isinstance(exc, Terminated)
        print(f"bench.py: {'terminated (SIGTERM)' if terminated else 'interrupted'}; "
              "nothing was written", file=sys.stderr)
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    import json

    write_atomic(args.output, json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written: {args.output}")
    failed = [k for k, v in result["exit_codes"].items() if v != 0]
    failed += [k for k, v in result["frameworks"]["runs"].items() if v["exit_code"] != 0]
    if failed:
        runs = {**result["runs"], **result["frameworks"]["runs"]}
        tail = runs[failed[0]]["stderr_tail"].strip().splitlines()
        print(f"bench.py: compare.py exited non-zero ({', '.join(failed)})"
              + (f": {tail[-1]}" if tail else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
