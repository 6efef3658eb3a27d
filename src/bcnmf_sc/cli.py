"""Command line interface: ``bcnmf-sc fit``, ``bcnmf-sc sweep`` and ``bcnmf-sc demo``."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from ._cli_common import (
    CliParser,
    UserError,
    add_fit_arguments,
    add_safety_arguments,
    check_args,
    resolve_labels,
    run_cli,
)
from ._cli_files import atomic_output, check_input, check_output

__all__ = ["main"]

PROG = "bcnmf-sc"


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = CliParser(
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
            "parameters, history and the enrichment table in .uns['bcnmf'] (KEY of "
            "--key-added). OUT.h5ad is the input plus these results, as bc.tl.bcnmf leaves "
            "the AnnData. An existing file, the input included, is only replaced with "
            "--overwrite, and then through a temporary file renamed over it once complete."
        ),
    )
    add_fit_arguments(fit)

    sweep = sub.add_parser(
        "sweep",
        help="fit a grid of alpha x number of topics and recommend a setting",
        description=(
            "Fit bcNMF to the cells of IN.h5ad for every pair of --alphas x -k with "
            "--n-init seeds each (bc.tl.bcnmf_sweep), and write OUT.h5ad: the input plus "
            "the sweep table and the recommended setting in .uns['bcnmf_sweep'] (KEY of "
            "--key-added). The recommendation is printed; fit it with bcnmf-sc fit."
        ),
    )
    add_fit_arguments(sweep, sweep=True)

    demo = sub.add_parser(
        "demo",
        help="run bcNMF on simulated data and write figures and tables",
        description=(
            "Simulate target and background cells with a planted target-only program, fit "
            "bcNMF and write bcnmf_demo.h5ad, enrichment.csv, top_genes.csv, "
            "program_genes.csv and bcnmf_demo.png to DIR."
        ),
    )
    demo.add_argument("-o", "--outdir", default="bcnmf_demo", metavar="DIR", help="(bcnmf_demo)")
    demo.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    demo.add_argument(
        "--max-epochs", type=int, default=None, metavar="N", help="epoch limit (engine default)"
    )
    demo.add_argument("--n-cells", type=int, default=600, metavar="N", help="cells per group (600)")
    demo.add_argument("--n-genes", type=int, default=600, metavar="G", help="genes (600)")
    add_safety_arguments(demo)
    return parser


def _read_input(args: argparse.Namespace):
    """Checked arguments and files, the input AnnData and its labels: ``(adata, out, bg, tg)``."""
    import anndata as ad

    check_args(args)
    check_input(args.input, args.layer)
    out = check_output(args.output, args.overwrite, input=args.input)
    try:
        adata = ad.read_h5ad(args.input)
    except Exception as e:  # h5py/anndata errors on a damaged or foreign file
        raise UserError(
            f"input file {args.input!r} cannot be read as AnnData: {type(e).__name__}: {e}"
        ) from e
    bg, tg = resolve_labels(adata.obs, args, args.input)
    if args.mask_var is not None and args.mask_var not in adata.var.columns:
        raise UserError(
            f"--mask-var {args.mask_var!r} is not a var column of {args.input!r}; "
            f"available: {list(adata.var.columns)}"
        )
    return adata, out, bg, tg


def _shared(args: argparse.Namespace, target) -> dict:
    """The keyword arguments that ``tl.bcnmf`` and ``tl.bcnmf_sweep`` take alike."""
    from ._engine.threads import default_threads

    return {
        "target": target,
        "loss": args.loss,
        "layer": args.layer,
        "mask_var": args.mask_var,
        "batch_size": args.batch_size,
        "max_epochs": args.max_epochs,
        "tol": args.tol,
        "n_init": args.n_init,
        "random_state": args.seed,
        "device": args.device,
        # no scanpy settings on a command line: the engine's default, not scanpy's 1
        "n_jobs": default_threads() if args.n_jobs is None else args.n_jobs,
        "engine_kwargs": None if args.dtype is None else {"dtype": args.dtype},
        "key_added": args.key_added,
        "progress": args.progress,
        "check_counts": args.check_counts,
    }


def _fit(args: argparse.Namespace) -> None:
    from . import tl

    adata, out, bg, tg = _read_input(args)
    tl.bcnmf(
        adata,
        args.background_key,
        bg,
        n_topics=args.n_topics,
        n_shared=args.n_shared,
        holdout=args.holdout,
        alpha=args.alpha,
        consensus=args.consensus,
        **_shared(args, tg),
    )
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        adata.write_h5ad(tmp)
    enr = adata.uns[args.key_added]["enrichment"]
    print(f"wrote {out} ({adata.n_obs} cells, {len(enr)} topics)")
    print(f"most target-enriched topic: {enr.index[0]} (log2FC {enr['log2fc'].iloc[0]:.2f})")


def _sweep(args: argparse.Namespace) -> None:
    from . import tl

    adata, out, bg, tg = _read_input(args)
    table = tl.bcnmf_sweep(
        adata,
        args.background_key,
        bg,
        alphas=args.alphas,
        n_topics=args.n_topics,
        heldout=args.heldout,
        **_shared(args, tg),
    )
    with atomic_output(out, overwrite=args.overwrite) as tmp:
        adata.write_h5ad(tmp)
    rec = adata.uns[args.key_added]["recommended"]
    print(f"wrote {out} ({len(table)} settings x {args.n_init} seeds)")
    print(
        f"recommended: --alpha {float(rec['alpha']):g} -k {int(rec['n_topics'])} "
        "(bcnmf-sc fit ... to fit it)"
    )


def _demo(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import get, tl
    from .datasets import simulate

    outdir = Path(args.outdir)
    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"-o/--outdir {args.outdir!r} is a file, not a folder")
    names = (
        "bcnmf_demo.h5ad",
        "enrichment.csv",
        "top_genes.csv",
        "program_genes.csv",
        "bcnmf_demo.png",
    )
    for name in names:
        check_output(str(outdir / name), args.overwrite)
    for flag, v in (("--max-epochs", args.max_epochs), ("--n-cells", args.n_cells)):
        if v is not None and v < 1:
            raise UserError(f"{flag} must be >= 1, got {v}")
    if args.n_genes < 10:
        raise UserError(f"--n-genes must be >= 10, got {args.n_genes}")
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
    programs = res["programs"]
    program_genes = get.program_genes(adata, n_genes=20)
    with atomic_output(outdir / "bcnmf_demo.h5ad", overwrite=args.overwrite) as tmp:
        adata.write_h5ad(tmp)
    with atomic_output(outdir / "enrichment.csv", overwrite=args.overwrite) as tmp:
        enr.to_csv(tmp, index_label="topic")
    with atomic_output(outdir / "top_genes.csv", overwrite=args.overwrite) as tmp:
        top.to_csv(tmp, index=False)
    with atomic_output(outdir / "program_genes.csv", overwrite=args.overwrite) as tmp:
        program_genes.to_csv(tmp, index=False)

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
    with atomic_output(outdir / "bcnmf_demo.png", overwrite=args.overwrite) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
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
    for name, row in programs.iterrows():
        genes = program_genes.loc[program_genes["program"] == name, "gene"]
        only = "target-only" if bool(row["target_only"]) else "not target-only"
        print(
            f"{name} ({row['topics']}; {only}): {sum(g in planted for g in genes)} of its "
            f"top {len(genes)} genes are planted program genes"
        )
    if len(programs) == 0:
        print("no target program found (no topic called target-enriched)")
    print(
        f"wrote {outdir}/bcnmf_demo.h5ad, enrichment.csv, top_genes.csv, program_genes.csv, "
        "bcnmf_demo.png"
    )


def _run(args: argparse.Namespace) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        {"fit": _fit, "sweep": _sweep, "demo": _demo}[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``bcnmf-sc``; returns the exit status (2: a user error, one line)."""
    return run_cli(_parser(), _run, argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
