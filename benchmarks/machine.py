"""One line saying what a benchmark ran on: the CPUs, the BLAS libraries loaded and their kernels, and whether
OPENBLAS_CORETYPE forced one (figures from different kernels do not compare)."""
from __future__ import annotations

import os


def describe() -> str:
    """'2 CPUs, BLAS openblas SkylakeX x1, ...; OPENBLAS_CORETYPE not set' (NumPy imported first: its BLAS loads)."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}" for i in threadpool_info())
    forced = os.environ.get("OPENBLAS_CORETYPE")
    return (f"{os.cpu_count()} CPUs, BLAS {blas or 'none loaded'}; "
            + (f"OPENBLAS_CORETYPE={forced} (forced)" if forced else "OPENBLAS_CORETYPE not set"))
