"""Peak RSS as the benchmarks report it: a child process must not inherit its parent's peak."""

import subprocess
import sys

from lmrec_assets.memory import peak_rss_mib


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    ballast = bytearray(300 * 1024 * 1024)  # the parent holds 300 MiB when it starts the child
    assert peak_rss_mib() >= 300
    child = subprocess.run([sys.executable, "-c", "from lmrec_assets.memory import peak_rss_mib; print(peak_rss_mib())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < 200  # a bare interpreter: tens of MiB
    del ballast
