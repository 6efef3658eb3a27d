"""Named simulation families for the recovery benchmark: keyword arguments of simulate()."""

from __future__ import annotations

import copy

__all__ = ["simulation_families"]

_FAMILIES: dict[str, dict] = {
    "default": {
        "what": "4 shared cell types; one 30-gene 3-fold program in 50% of target cells",
        "kwargs": {},
        "kind": "program",
    },
    "hard": {
        "what": "6 cell types + 6 shared 3-fold programs (30% of all cells); planted 3-fold",
        "kwargs": {"n_cell_types": 6, "n_shared_programs": 6},
        "kind": "program",
    },
    "shared": {
        "what": "as hard, shared programs 5-fold: stronger than the planted 3-fold one",
        "kwargs": {"n_cell_types": 6, "n_shared_programs": 6, "shared_program_fold": 5.0},
        "kind": "program",
    },
    "one_type": {
        "what": "program in 50% of the target cells of ONE cell type (type_1; ~12% of target)",
        "kwargs": {"program_cell_type": 0, "program_fraction": 0.5},
        "kind": "program",
    },
    "two_programs": {
        "what": "two programs, 3-fold and 1.8-fold, each in 50% of target cells",
        "kwargs": {"n_programs": 2, "program_fold": [3.0, 1.8]},
        "kind": "program",
    },
    "weak": {
        "what": "one 1.5-fold program in 10% of target cells",
        "kwargs": {"program_fold": 1.5, "program_fraction": 0.1},
        "kind": "program",
    },
    "unbalanced": {
        "what": "200 target vs 2000 background cells; default program",
        "kwargs": {"n_target": 200, "n_background": 2000},
        "kind": "program",
    },
    "depth": {
        "what": "target sequenced 2x deeper; default program",
        "kwargs": {"depth_ratio": 2.0},
        "kind": "program",
    },
    "depth_only": {
        "what": "target sequenced 2x deeper; no program",
        "kwargs": {"depth_ratio": 2.0, "n_programs": 0},
        "kind": "null",
    },
    "composition": {
        "what": "6 cell types; type_1 3x more abundant in target (0.50 vs 0.17); no program",
        "kwargs": {"n_cell_types": 6, "composition_shift": [0, 3.0], "n_programs": 0},
        "kind": "composition",
    },
    "null": {
        "what": "target and background from the same distribution (no program)",
        "kwargs": {"n_programs": 0},
        "kind": "null",
    },
}


def simulation_families() -> dict[str, dict]:
    """The simulation families of the recovery benchmark (``benchmarks/recovery.py``).

    Returns a fresh dict ``name -> {"what": description, "kwargs": keyword arguments of
    :func:`~bcnmf_sc.datasets.simulate` (add ``random_state``), "kind": kind}``, where kind
    is ``"program"`` (target-only programs ``program_1`` ... to recover), ``"null"`` (no
    program: no topic should be called target-enriched) or ``"composition"`` (no program;
    ``composition_shift`` makes one cell type more abundant in the target: its topic is
    one the background also uses, not a target-only program).
    """
    return copy.deepcopy(_FAMILIES)
