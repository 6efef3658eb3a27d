"""The placement check on wide data, with the ordered NNDSVDa start.

3,000 + 3,000 cells x 20,000 genes at 5% non-zeros (``bench_time_to_answer``'s
``planted_counts``), K=10, seeds 0 and 1, the check off and on: the best target topic's
cell AUROC for the planted program, the swaps, the epochs and the objective.

    python benchmarks/probe_wide_placement.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

from bcnmf_sc import BcNMF
from bcnmf_sc._engine import engine_options

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_time_to_answer import planted_counts


def main() -> None:
    """Run the four fits and print one line each."""
    torch.set_num_threads(1)
    for seed in (0, 1):
        X, Y, prog = planted_counts(3000, 3000, 20000, 0.05, seed=seed)
        for repair in (False, True):
            with engine_options(repair_placement=repair), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = BcNMF(10, random_state=seed).fit(X, Y)
            P = m.usage_target_ / m.usage_target_.sum(1, keepdims=True)
            auc = max(roc_auc_score(prog, P[:, j]) for j in range(10))
            print(
                f"seed {seed} check {repair}: init {m.init_}, best target topic AUROC "
                f"{auc:.3f}, swapped {m.swapped_topics_}, {m.n_epochs_} epochs, "
                f"objective {m.objective_:.5f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
