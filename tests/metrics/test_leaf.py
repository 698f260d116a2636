"""srlab.metrics is a leaf: importing it loads no other part of srlab than the two leaves it names."""
from __future__ import annotations

import subprocess
import sys

ALLOWED = ("srlab", "srlab.errors", "srlab.optics", "srlab.metrics")


def test_importing_the_metrics_loads_nothing_else_of_srlab():
    code = ("import sys, srlab.metrics, srlab.metrics.consistency, srlab.metrics.stats; "
            "print('\\n'.join(m for m in sys.modules if m == 'srlab' or m.startswith('srlab.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "srlab.metrics.image" in loaded
    outside = [m for m in loaded if not any(m == a or m.startswith(a + ".") for a in ALLOWED)]
    assert outside == []
