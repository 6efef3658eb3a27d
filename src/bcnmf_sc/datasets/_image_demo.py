"""The bcNMF paper's image demo: handwritten digits composited on textures vs textures alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from anndata import AnnData

__all__ = ["image_demo"]

DATA_DIR = Path(__file__).parent / "data"


def image_demo() -> AnnData:
    """The image demo of the bcNMF paper (Li, Yang & Li, 2026), bundled for offline use.

    200 *target* images (a handwritten digit 0 or 1, 100 each, composited on a texture,
    ``max(digit, 0.8 * texture)``) and 150 *background* images (the same kind of texture,
    no digit), 28 x 28 pixels flattened row-major to 784 columns. Values are the published
    intensities in [0, 1] (stored as ``uint8 / 255``; the originals are exact multiples of
    1/255). The published protocol: squared-error loss (``loss="frobenius"``), K = 2,
    alpha = 2, then k-means (k = 2) on the target usages scored by adjusted Rand index
    against ``obs["digit"]``; the paper reports ARI 0.8456.

    Data: the demo data of the authors' public repository (li-lab-mcgill/bcnmf,
    ``demo/demo_data/``), MIT licence, copyright (c) 2025 Yixuan Li, Archer Y. Yang, Yue Li.
    The licence notice ships with the data: ``bcnmf_sc/datasets/data/LICENSE-source``.

    Returns
    -------
    AnnData (350 x 784, float32 ``.X``), target images first, with ``obs["condition"]``
    ("target"/"background", categorical with categories ``["background", "target"]``) and
    ``obs["digit"]`` (``"0"``/``"1"`` for target images, NaN for background images);
    ``var_names`` ``px_000`` ... ``px_783``, ``var["row"]``/``var["col"]`` the pixel
    position; ``uns["image_demo"]`` the image shape, source and licence.
    """
    with np.load(DATA_DIR / "image_demo.npz") as data:
        target, background, digit = data["target"], data["background"], data["digit"]
    X = np.vstack([target, background]).astype(np.float32) / np.float32(255.0)
    n_t, n_b = len(target), len(background)
    obs = pd.DataFrame(
        {
            "condition": pd.Categorical(
                ["target"] * n_t + ["background"] * n_b, categories=["background", "target"]
            ),
            "digit": pd.Categorical(
                [str(d) for d in digit] + [np.nan] * n_b, categories=["0", "1"]
            ),
        },
        index=[f"target_{i:03d}" for i in range(n_t)] + [f"background_{i:03d}" for i in range(n_b)],
    )
    pix = np.arange(X.shape[1])
    var = pd.DataFrame({"row": pix // 28, "col": pix % 28}, index=[f"px_{i:03d}" for i in pix])
    adata = AnnData(X=X, obs=obs, var=var)
    adata.uns["image_demo"] = {
        "image_shape": [28, 28],
        "source": "li-lab-mcgill/bcnmf, demo/demo_data/ (MIT licence)",
        "licence_file": str(DATA_DIR / "LICENSE-source"),
        "paper_ari": 0.8456,
    }
    return adata
