"""Peak memory of this process, as the benchmarks report it."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB.

    On Linux, VmHWM from /proc/self/status: the high-water mark of this process's own address space. `ru_maxrss` is
    not used there because it survives execve: a child started by fork + exec (subprocess, multiprocessing "spawn")
    reports at least its parent's RSS at the moment of the fork. Elsewhere, ru_maxrss (kilobytes on Linux/BSD).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
