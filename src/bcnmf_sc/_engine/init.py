"""Initialisation of the gene basis: NNDSVD (Boutsidis & Gallopoulos, 2008) or random.

Works on a scipy CSR matrix without densifying it (a randomised truncated SVD).
Returns ``W`` (K x g) with rows summing to one; usages are initialised by the solver.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["init_components", "order_by_enrichment"]


def _randomized_svd(X: sp.csr_matrix, k: int, rng: np.random.Generator, n_iter: int = 4):
    """Truncated SVD by randomised range finding (Halko et al., 2011)."""
    n, g = X.shape
    p = min(k + 10, min(n, g))
    # the dense factors take X's float type, so that no float64 copy of X is made
    Q = X @ rng.standard_normal((g, p)).astype(X.dtype, copy=False)
    Q, _ = np.linalg.qr(Q)
    for _ in range(n_iter):
        Z, _ = np.linalg.qr(X.T @ Q)
        Q, _ = np.linalg.qr(X @ Z)
    B = (X.T @ Q).T  # p x g
    Ub, s, Vt = np.linalg.svd(B, full_matrices=False)
    U, s, Vt = (np.asarray(a, dtype=np.float64) for a in (Q @ Ub, s, Vt))
    # fix signs so the result does not depend on LAPACK's choice
    signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
    signs[signs == 0] = 1
    return U[:, :k] * signs[:k], s[:k], Vt[:k] * signs[:k, None]


def _nndsvd(X: sp.csr_matrix, k: int, rng: np.random.Generator) -> np.ndarray:
    """The NNDSVD basis ``W`` (K x g; zeros where NNDSVD puts them), from a randomised SVD.

    Rows beyond the rank of ``X`` (fewer cells or genes than K, as a shared-topic model
    of a small group can ask for) are random around the mean of the others.
    """
    U, S, V = _randomized_svd(X, k, rng)
    rank = len(S)
    W = np.zeros((k, X.shape[1]))
    W[0] = np.sqrt(S[0]) * np.abs(V[0])
    for j in range(1, rank):
        x, y = U[:, j], V[j]
        xp, xn = np.maximum(x, 0), np.maximum(-x, 0)
        yp, yn = np.maximum(y, 0), np.maximum(-y, 0)
        xpn, xnn = np.linalg.norm(xp), np.linalg.norm(xn)
        ypn, ynn = np.linalg.norm(yp), np.linalg.norm(yn)
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            v, sigma = yp / max(ypn, 1e-300), mp
        else:
            v, sigma = yn / max(ynn, 1e-300), mn
        W[j] = np.sqrt(S[j] * sigma) * v
    if rank < k:
        scale = W[:rank].mean() if W[:rank].mean() > 0 else 1.0
        W[rank:] = scale * rng.uniform(0.5, 1.5, size=(k - rank, X.shape[1]))
    return W


def init_components(
    X: sp.csr_matrix,
    k: int,
    *,
    method: str,
    rng: np.random.Generator,
    perturb: bool = False,
    Y: sp.csr_matrix | None = None,
    alpha: float = 0.0,
) -> np.ndarray:
    """Initial components (K x g, rows sum to one, strictly positive).

    Parameters
    ----------
    X
        The target matrix (cells x genes).
    method
        ``"contrastive"``: non-negative parts of the contrastive principal directions of
        ``X`` against ``Y`` (see :func:`contrastive_components`; what ``BcNMF`` uses by
        default when ``alpha > 0``); ``"nndsvda"``: NNDSVD with zeros filled by the mean
        of the NNDSVD basis (``BcNMF``'s default with shared topics, whose start
        :func:`order_by_enrichment` then orders, and when ``alpha = 0``); ``"nndsvd"``:
        NNDSVD with a tiny floor; ``"random"``: uniform random. There is no default here:
        the estimator resolves ``init="auto"``.
    perturb
        Multiply by log-normal noise (used by restarts after the first, so that
        ``n_init`` explores different starting points even with a deterministic method).
    """
    g = X.shape[1]
    if method == "random":
        W = rng.uniform(0.5, 1.5, size=(k, g))
    elif method == "contrastive":
        W = contrastive_components(X, Y, k, alpha=alpha, rng=rng)
    elif method in ("nndsvd", "nndsvda"):
        Xf = X if X.dtype in (np.float32, np.float64) else X.astype(np.float64)
        W = _nndsvd(Xf, k, rng)
        if method == "nndsvda":
            mean = W.mean() if W.mean() > 0 else 1.0
            W[W <= 0] = mean
        else:
            W = np.maximum(W, 1e-6 * max(W.max(), 1e-12))
    else:
        raise ValueError(
            f"Unknown init {method!r}: use 'contrastive', 'nndsvda', 'nndsvd' or 'random'."
        )
    if perturb:
        W = W * np.exp(0.5 * rng.standard_normal(W.shape))
    W = np.maximum(W, 1e-12)
    return W / W.sum(1, keepdims=True)


def _cell_weights(X: sp.csr_matrix, Wn: np.ndarray) -> np.ndarray:
    """Each cell's weight on each component: ``(x_i / |x_i|) . w`` (cells x components)."""
    lib = np.asarray(X.sum(1, dtype=np.float64)).ravel()
    weights = np.asarray(X @ Wn.T.astype(X.dtype, copy=False), dtype=np.float64)
    return weights / np.maximum(lib, 1e-12)[:, None]


def order_by_enrichment(
    W: np.ndarray, X: sp.csr_matrix, Y: sp.csr_matrix, n_target: int
) -> np.ndarray:
    """The rows of ``W`` reordered so that the ``n_target`` most target-enriched come first.

    The start of the shared-topic model: its first ``n_target`` rows are the target
    topics, which only target cells may use, so they should begin as the components the
    target uses more. Each cell's weight on a component is ``(x_i / |x_i|) . w`` (``w``
    summing to one; free of sequencing depth), and the components are ranked by the
    Welch t statistic of target against background weights. A statistic rather than a
    ratio of means, so that a weak, noisy component of a small sample does not outrank a
    strong program. The order is stable and the other rows keep their order.
    """
    Wn = W / np.maximum(W.sum(1, keepdims=True), 1e-300)
    a, b = _cell_weights(X, Wn), _cell_weights(Y, Wn)
    se = np.sqrt(sum(c.var(0, ddof=1) / len(c) if len(c) > 1 else 0.0 for c in (a, b)))
    t = (a.mean(0) - b.mean(0)) / np.maximum(se, 1e-300)
    order = np.argsort(-t, kind="stable")
    return W[np.r_[order[:n_target], np.sort(order[n_target:])]]


def _log_normalised(X: sp.csr_matrix) -> sp.csr_matrix:
    """log1p of counts per 10,000 (independent of sequencing depth)."""
    lib = np.asarray(X.sum(1, dtype=np.float64)).ravel()
    Xn = sp.diags(1e4 / np.maximum(lib, 1e-12)) @ X.astype(np.float64)
    Xn = Xn.tocsr()
    Xn.data = np.log1p(Xn.data)
    return Xn


def _cov_operator(X: sp.csr_matrix):
    """V -> Cov(X) v without densifying X, and the trace of Cov(X)."""
    n = X.shape[0]
    mean = np.asarray(X.mean(0)).ravel()
    sq = np.asarray(X.multiply(X).sum(0)).ravel() / n
    trace = float(np.sum(sq - mean**2))

    def matvec(V):
        XV = X @ V
        return (
            (X.T @ XV) / n - np.outer(mean, mean @ V)
            if V.ndim == 2
            else (X.T @ XV / n - mean * (mean @ V))
        )

    return matvec, max(trace, 1e-12)


def contrastive_components(
    X: sp.csr_matrix,
    Y: sp.csr_matrix,
    k: int,
    *,
    alpha: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Gene directions of largest contrastive variance, made non-negative (NNDSVD-style).

    The top-k eigenvectors of ``Cov(X)/tr Cov(X) - alpha * Cov(Y)/tr Cov(Y)`` on
    log-normalised data (contrastive PCA, Abid et al. 2018), found by subspace iteration
    with sparse products; each eigenvector keeps its larger signed part (as NNDSVD does)
    and is filled with 0.1 times the mean of that part where zero. With ``alpha=0`` these
    are the principal directions of the target alone.
    """
    Xn, Yn = _log_normalised(X), _log_normalised(Y)
    cx, tx = _cov_operator(Xn)
    cy, ty = _cov_operator(Yn)
    g = X.shape[1]
    p = min(g, k + 10)

    def op(V):
        out = cx(V) / tx
        if alpha > 0:
            out = out - alpha * cy(V) / ty
        return out

    # shift so that the largest algebraic eigenvalues dominate the subspace iteration
    shift = alpha * _spectral_bound(cy, g, rng) / ty if alpha > 0 else 0.0
    Q, _ = np.linalg.qr(rng.standard_normal((g, p)))
    for _ in range(40):
        Q, _ = np.linalg.qr(op(Q) + shift * Q)
    T = Q.T @ op(Q)
    vals, vecs = np.linalg.eigh((T + T.T) / 2)
    V = Q @ vecs[:, np.argsort(vals)[::-1][:k]]
    W = np.empty((k, g))
    for j in range(k):
        v = V[:, j]
        pos, neg = np.maximum(v, 0), np.maximum(-v, 0)
        part = pos if np.linalg.norm(pos) >= np.linalg.norm(neg) else neg
        fill = part[part > 0].mean() if np.any(part > 0) else 1.0
        W[j] = np.where(part > 0, part, 0.1 * fill)
    return W


def _spectral_bound(op, g: int, rng: np.random.Generator, n_iter: int = 20) -> float:
    v = rng.standard_normal(g)
    v /= np.linalg.norm(v)
    lam = 0.0
    for _ in range(n_iter):
        w = op(v)
        lam = float(np.linalg.norm(w))
        if lam == 0:
            return 0.0
        v = w / lam
    return lam
