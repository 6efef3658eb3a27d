"""Shared test data: simulated counts split into target and background matrices."""

from bcnmf_sc.datasets import simulate


def target_background(**sim_kwargs):
    """``(X_target, X_background, adata)`` from :func:`bcnmf_sc.datasets.simulate`."""
    ad = simulate(**sim_kwargs)
    t = (ad.obs["condition"] == "target").to_numpy()
    return ad.X[t], ad.X[~t], ad[t]
