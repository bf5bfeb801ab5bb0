"""pytest --nbval on the chapters: the floating-point settings of the Makefile.

The notebooks' compared outputs are rounded, but a last-bit difference can still move a
discrete outcome (an iteration count, an accepted step). The kernels that nbval starts
inherit this process's environment, so a direct ``pytest --nbval book/`` runs them, like
``make test``, with one BLAS thread and, on x86-64, the AVX2 kernels of OpenBLAS and numpy.
Keep these values in step with the Makefile's.
"""

import os
import platform


def pytest_configure(config):
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")
        os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "X86_V4,AVX512_ICL,AVX512_SPR")
