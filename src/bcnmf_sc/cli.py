"""Command line interface: ``bcnmf-sc fit`` and ``bcnmf-sc demo``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

PROG = "bcnmf-sc"


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Background-contrastive NMF for single-cell data: find gene programs of target "
            "cells that a background (control) population does not show."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = sub.add_parser(
        "fit",
        help="fit bcNMF to an .h5ad file and write the result",
        description=(
            "Fit bcNMF to the cells of IN.h5ad (counts in .X or --layer) and write OUT.h5ad "
            "with usages in .obsm['X_bcnmf'], loadings in .varm['bcnmf_loadings'] and "
            "parameters, history and the enrichment table in .uns['bcnmf']."
        ),
    )
    fit.add_argument("input", metavar="IN.h5ad", help="input AnnData file")
    fit.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="output file")
    fit.add_argument(
        "--background-key", required=True, metavar="KEY", help="obs column defining the groups"
    )
    fit.add_argument(
        "--background",
        nargs="+",
        metavar="VALUE",
        help="background value(s) of KEY (not needed for a boolean column, where False is "
        "background)",
    )
    fit.add_argument(
        "--target", nargs="+", metavar="VALUE", help="target value(s) of KEY (default: the rest)"
    )
    fit.add_argument("-k", "--n-topics", type=int, default=10, metavar="K", help="topics (10)")
    fit.add_argument(
        "--alpha", type=float, default=None, help="contrast strength (default: engine default)"
    )
    fit.add_argument(
        "--loss", choices=("kl", "frobenius"), default="kl", help="kl for raw counts (default)"
    )
    fit.add_argument("--layer", default=None, metavar="L", help="layer to use instead of .X")
    fit.add_argument("--max-epochs", type=int, default=None, metavar="N", help="epoch limit")
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    fit.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
    fit.add_argument("--key-added", default="bcnmf", metavar="KEY", help="result key (bcnmf)")

    demo = sub.add_parser(
        "demo",
        help="run bcNMF on simulated data and write figures and tables",
        description=(
            "Simulate target and background cells with a planted target-only program, fit "
            "bcNMF and write bcnmf_demo.h5ad, enrichment.csv, top_genes.csv and "
            "bcnmf_demo.png to DIR."
        ),
    )
    demo.add_argument("-o", "--outdir", default="bcnmf_demo", metavar="DIR", help="(bcnmf_demo)")
    demo.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    demo.add_argument("--max-epochs", type=int, default=60, metavar="N", help="epoch limit (60)")
    demo.add_argument("--n-cells", type=int, default=600, metavar="N", help="cells per group (600)")
    demo.add_argument("--n-genes", type=int, default=600, metavar="G", help="genes (600)")
    return parser


def _convert_values(values: list[str] | None, column) -> list | None:
    """Map command line strings onto the values of an obs column (bool/int/str)."""
    if values is None:
        return None
    import pandas as pd

    present = list(pd.unique(column.dropna()))
    lookup = {str(v): v for v in present}
    lookup.update({str(v).lower(): v for v in present})
    return [lookup.get(v, lookup.get(v.lower(), v)) for v in values]


def _fit(args: argparse.Namespace) -> None:
    import anndata as ad

    from . import tl

    path = Path(args.input)
    if not path.is_file():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    adata = ad.read_h5ad(path)
    if args.background_key not in adata.obs.columns:
        raise KeyError(
            f"--background-key {args.background_key!r} is not an obs column; "
            f"available: {list(adata.obs.columns)}"
        )
    col = adata.obs[args.background_key]
    tl.bcnmf(
        adata,
        args.background_key,
        _convert_values(args.background, col),
        target=_convert_values(args.target, col),
        n_topics=args.n_topics,
        alpha=args.alpha,
        loss=args.loss,
        layer=args.layer,
        max_epochs=args.max_epochs,
        random_state=args.seed,
        device=args.device,
        key_added=args.key_added,
        progress=False,
    )
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(out)
    enr = adata.uns[args.key_added]["enrichment"]
    print(f"wrote {out} ({adata.n_obs} cells, {args.n_topics} topics)")
    print(f"most target-enriched topic: {enr.index[0]} (log2FC {enr['log2fc'].iloc[0]:.2f})")


def _demo(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import get, tl
    from .datasets import simulate

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    adata = simulate(
        n_target=args.n_cells,
        n_background=args.n_cells,
        n_genes=args.n_genes,
        n_markers=min(40, args.n_genes // 10),
        n_program_genes=min(30, args.n_genes // 10),
        random_state=args.seed,
    )
    tl.bcnmf(
        adata,
        "condition",
        "background",
        n_topics=5,
        max_epochs=args.max_epochs,
        random_state=args.seed,
        progress=False,
    )
    res = adata.uns["bcnmf"]
    enr = res["enrichment"]
    top = get.top_genes(adata, n_genes=20)
    adata.write_h5ad(outdir / "bcnmf_demo.h5ad")
    enr.to_csv(outdir / "enrichment.csv", index_label="topic")
    top.to_csv(outdir / "top_genes.csv", index=False)

    best = str(enr.index[0])
    best_top = top[top["topic"] == best]
    planted = set(adata.var_names[adata.var["program"] == "program_1"])
    recovered = [g for g in best_top["gene"] if g in planted]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    hist = res["history"]
    ax = axes[0]
    ax.plot(hist["epoch"], hist["objective"], label="objective")
    ax.plot(hist["epoch"], hist["target"], label="target term")
    ax.plot(hist["epoch"], hist["background"], label="background term")
    ax.set_xlabel("epoch")
    ax.set_title("training history")
    ax.legend()
    ax = axes[1]
    shown = best_top.iloc[::-1]
    colors = ["tab:red" if g in planted else "tab:grey" for g in shown["gene"]]
    ax.barh(shown["gene"], shown["loading"], color=colors)
    ax.set_xlabel("loading")
    ax.set_title(f"top genes of {best} (red: planted program)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(outdir / "bcnmf_demo.png", dpi=120)
    plt.close(fig)

    print(f"bcnmf-sc demo: {adata.n_obs} simulated cells x {adata.n_vars} genes, 5 topics")
    print(
        f"most target-enriched topic: {best} (log2FC {enr['log2fc'].iloc[0]:.2f}, "
        f"AUROC {enr['auroc'].iloc[0]:.3f})"
    )
    print(f"its top genes: {', '.join(best_top['gene'].iloc[:10])}")
    print(
        f"planted program genes among its top {len(best_top)}: "
        f"{len(recovered)} of {len(planted)} planted"
    )
    print(f"wrote {outdir}/bcnmf_demo.h5ad, enrichment.csv, top_genes.csv, bcnmf_demo.png")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bcnmf-sc``; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            if args.command == "fit":
                _fit(args)
            else:
                _demo(args)
    except (ValueError, KeyError, FileNotFoundError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
