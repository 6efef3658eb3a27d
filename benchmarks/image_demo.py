"""The bcNMF paper's image demo: the published updates vs bcnmf-sc, five seeds.

Run from the repository root (about a minute on 2 cores)::

    python benchmarks/image_demo.py
    python benchmarks/image_demo.py --seeds 0,1,2,3,4 --variants default,published

Protocol of the paper (authors' demo notebook): squared-error loss, K = 2, alpha = 2,
k-means (k = 2, random_state 0, n_init 10) on the target usages, adjusted Rand index
against the digit. ``published`` is the multiplicative update of the paper written from
its formulas (genes x samples orientation, uniform random start, 300 iterations, no
normalisation); the other rows are :class:`bcnmf_sc.BcNMF` with the settings named.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from bcnmf_sc import BcNMF
from bcnmf_sc.datasets import image_demo

# BcNMF settings compared; "default" is what a user gets with loss="frobenius"
VARIANTS = {
    "default": {},
    "paper_objective": {
        "alpha_scaling": "raw",
        "null_topic": "none",
        "init": "random",
    },
    "null_topic": {"null_topic": "background"},
    "deviance": {"alpha_scaling": "deviance"},
    "contrastive_start": {"init": "contrastive"},
}
LABELS = {
    "published": "published updates, 300 iterations",
    "default": 'BcNMF defaults for loss="frobenius"',
    "paper_objective": 'paper objective: null_topic="none", alpha_scaling="raw", init="random"',
    "null_topic": 'defaults + null_topic="background" (the KL default; 0.x behaviour)',
    "deviance": 'defaults + alpha_scaling="deviance"',
    "contrastive_start": 'defaults + init="contrastive"',
}


def published(X, Y, k=2, alpha=2.0, n_iter=300, seed=0):
    """Multiplicative updates of the paper (squared error), from its formulas."""
    g = torch.Generator().manual_seed(seed)
    X = torch.as_tensor(X.T, dtype=torch.float32)  # pixels x images, as published
    Y = torch.as_tensor(Y.T, dtype=torch.float32)
    W = torch.rand(X.shape[0], k, generator=g)
    HX = torch.rand(k, X.shape[1], generator=g)
    HY = torch.rand(k, Y.shape[1], generator=g)
    for _ in range(n_iter):
        HX = HX * (W.T @ X) / (W.T @ W @ HX + 1e-10)
        HY = HY * (W.T @ Y) / (W.T @ W @ HY + 1e-10)
        W = W * (X @ HX.T + alpha * W @ (HY @ HY.T)) / (W @ (HX @ HX.T) + alpha * Y @ HY.T + 1e-10)
    return HX.T.numpy()


def ari(usage, digit):
    """ARI of k-means(2) on the usages against the digit, as published."""
    labels = KMeans(2, random_state=0, n_init=10).fit_predict(usage)
    return adjusted_rand_score(digit, labels)


def main() -> None:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--variants", default=",".join(["published", *VARIANTS]))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ad = image_demo()
    t = (ad.obs["condition"] == "target").to_numpy()
    X, Y = np.asarray(ad.X[t], dtype=np.float64), np.asarray(ad.X[~t], dtype=np.float64)
    digit = ad.obs["digit"].to_numpy()[t]
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"| settings | ARI per seed ({args.seeds}) | mean | s/fit |")
    print("|---|---|---|---|")
    for name in args.variants.split(","):
        scores, secs = [], []
        for seed in seeds:
            start = time.perf_counter()
            if name == "published":
                usage = published(X, Y, seed=seed)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = BcNMF(2, loss="frobenius", random_state=seed, **VARIANTS[name])
                    usage = model.fit(X, Y).usage_target_
            secs.append(time.perf_counter() - start)
            scores.append(ari(usage, digit))
        label = LABELS[name]
        cells = " / ".join(f"{s:.3f}" for s in scores)
        print(f"| {label} | {cells} | {np.mean(scores):.3f} | {np.mean(secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
