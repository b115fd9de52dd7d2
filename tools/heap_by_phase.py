"""Where a comparison's memory is, phase by phase: `python tools/heap_by_phase.py COMPARE-ARGS`
runs `scripts/compare.py COMPARE-ARGS` in this process and prints, at the end of each phase of
the report's clock, the resident memory, the peak so far, and glibc's own count of its heap
(`mallinfo2`, Linux with glibc 2.33 or later): the bytes in use, the bytes freed but kept,
and the bytes in separate mappings. It showed that between recipes the tool holds about
0.45 GiB and glibc keeps 2.5 to 2.8 GiB that the steps freed (docs/benchmark.md).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


def _line(phase: str, mallinfo2) -> str:
    heap = mallinfo2()
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    return (f"{phase:34s} resident {resident:5d} MiB  peak {peak:5d} MiB  heap in use "
            f"{heap.uordblks >> 20:5d} MiB  freed, kept {heap.fordblks >> 20:5d} MiB  "
            f"mapped {heap.hblkhd >> 20:4d} MiB")


def main(argv: list[str]) -> int:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    import comparator.pipeline as pipeline

    phase = pipeline._Clock.phase

    def phase_with_memory(clock, name: str) -> None:
        phase(clock, name)
        print(_line(name, libc.mallinfo2), file=sys.stderr)

    pipeline._Clock.phase = phase_with_memory
    from comparator.cli.compare import main as compare

    return compare(argv)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # as compare.py ends: no teardown in the figures
