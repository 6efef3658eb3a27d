"""Data-parallel bcNMF on an ``.h5ad`` file with ``torch.distributed``, launched by torchrun.

Every process opens the file read-only, streams its own share of the cells from disk and
trains on them; the statistics that update the gene loadings are summed over the
processes after every minibatch (``BcNMF(distributed=True)``), so all processes hold the
same loadings, while the usages of each cell stay with the process that owns it. At the
end, process 0 gathers the usages and writes a result file (the input is never written).

One machine, two processes on CPU (``gloo``)::

    torchrun --standalone --nproc-per-node=2 -m bcnmf_sc.distributed atlas.h5ad \\
        -o atlas_bcnmf.h5ad --background-key condition --background control -k 20

One machine with 4 GPUs (``nccl``, one GPU per process; ``--device auto`` picks
``cuda:LOCAL_RANK``)::

    torchrun --standalone --nproc-per-node=4 -m bcnmf_sc.distributed atlas.h5ad -o ...

Several machines (here 2 x 4 processes): run the same command on every machine, with the
file at the same path on each (a shared file system or a copy), and one machine's address
as the rendezvous endpoint::

    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \\
        --rdzv-endpoint=node0.example.org:29400 --rdzv-id=bcnmf-atlas \\
        -m bcnmf_sc.distributed /shared/atlas.h5ad -o /shared/atlas_bcnmf.h5ad ...

Without torchrun (``python -m bcnmf_sc.distributed ...``) it runs as one process.

Cells are split as follows: the target cells (in file order) are cut into as many
contiguous shards as there are processes, process ``r`` taking shard ``r``; the same for
the background cells and for the cells in neither group (which are projected onto the
fitted topics). The result equals ``bc.tl.bcnmf`` on the same file with the same settings
up to float rounding: every process draws the same global order of cells, works on its
own cells of every batch, and the sums it contributes are the sums one process would
form over the whole batch, added in another order. (Projected cells are the exception:
each process projects its own shard, and a projection stops when the loss of its batch
settles, so their usages agree with one process's to the solver's tolerance, 1e-6.)

The result file holds ``obs_names``, ``var_names``, ``.obsm["X_bcnmf"]``,
``.varm["bcnmf_loadings"]``, ``.obs["bcnmf_target_score"]`` and ``.uns["bcnmf"]``, as
``bc.tl.bcnmf`` writes them (no counts); copy them into the AnnData they belong to.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bcnmf_sc.distributed",
        description="Data-parallel bcNMF of an .h5ad file (launch with torchrun).",
        epilog=__doc__[__doc__.index("One machine, two") : __doc__.index("Cells are split")],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN.h5ad", help="input AnnData file (.X or --layer as CSR)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="result file")
    p.add_argument("--background-key", required=True, metavar="KEY")
    p.add_argument("--background", nargs="+", metavar="VALUE")
    p.add_argument("--target", nargs="+", metavar="VALUE")
    p.add_argument("-k", "--n-topics", type=int, default=10, metavar="K")
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--loss", choices=("kl", "frobenius"), default="kl")
    p.add_argument("--layer", default=None, help="read layers/LAYER (on disk) instead of X")
    p.add_argument("--mask-var", default=None, metavar="COLUMN", help="boolean var column")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--n-init", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK if any), cpu, cuda")
    p.add_argument("--progress", action="store_true", help="progress bar on process 0")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import anndata
    import h5py
    import torch
    import torch.distributed as dist

    from ._engine import BcNMF
    from ._engine.model import resolve_device
    from ._engine.sparse import H5adRows
    from .cli import _convert_values
    from .tl._bcnmf import _check_source, _resolve_groups, _resolve_mask
    from .tl._enrichment import compare_usage, score_weights, target_score

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if world > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend)
    rank = dist.get_rank() if world > 1 else 0
    t0 = time.perf_counter()
    try:
        with h5py.File(args.input, "r") as f:
            obs = anndata.io.read_elem(f["obs"])
            var = anndata.io.read_elem(f["var"])
            meta = anndata.AnnData(obs=obs, var=var)
            col = meta.obs[args.background_key] if args.background_key in meta.obs else None
            bg_vals = _convert_values(args.background, col) if col is not None else None
            tg_vals = _convert_values(args.target, col) if col is not None else None
            is_tg, is_bg, tg, bg = _resolve_groups(meta, args.background_key, bg_vals, tg_vals)
            genes, mask_name = _resolve_mask(meta, args.mask_var)
            key = "X" if args.layer is None else f"layers/{args.layer}"
            src = H5adRows(f, key)
            if src.shape != (meta.n_obs, meta.n_vars):
                raise ValueError(f"{key} has shape {src.shape}, obs x var is {meta.shape}.")
            if not genes.all():
                src = src.subset(cols=genes)
            other = ~(is_tg | is_bg)
            shards = [np.array_split(np.flatnonzero(m), world)[rank] for m in (is_tg, is_bg, other)]
            _check_source(src.subset(rows=shards[2]), args.loss, "The data")
            kwargs = {} if args.alpha is None else {"alpha": args.alpha}
            model = BcNMF(
                n_components=args.n_topics,
                loss=args.loss,
                batch_size=args.batch_size,
                max_epochs=args.max_epochs,
                tol=args.tol,
                n_init=args.n_init,
                random_state=args.seed,
                device=device,
                dtype=args.dtype,
                progress=args.progress and rank == 0,
                distributed=world > 1,
                **kwargs,
            )
            if rank == 0:
                print(
                    f"bcNMF: {world} process(es), {int(is_tg.sum())} target + "
                    f"{int(is_bg.sum())} background cells x {int(genes.sum())} genes, "
                    f"K={args.n_topics}, device {device}",
                    flush=True,
                )
            with warnings.catch_warnings():
                if rank > 0:  # one copy of each warning is enough
                    warnings.simplefilter("ignore")
                model.fit_source(src.subset(rows=shards[0]), src.subset(rows=shards[1]))
                own = [model.usage_target_, model.usage_background_]
                own.append(model.transform_source(src.subset(rows=shards[2])))
        if world > 1:
            group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
            gathered = [None] * world if rank == 0 else None
            dist.gather_object(own, gathered, dst=0, group=group)
        else:
            gathered = [own]
        if rank == 0:
            K = args.n_topics
            usage = np.zeros((meta.n_obs, K))
            for j, mask in enumerate((is_tg, is_bg, other)):
                usage[mask] = np.vstack([g[j] for g in gathered])
            loadings = np.zeros((meta.n_vars, K))
            loadings[genes] = model.components_.T
            topics = [f"topic_{i + 1}" for i in range(K)]
            enrichment = compare_usage(usage, is_tg, is_bg, topics, names=("target", "background"))
            out = anndata.AnnData(obs=obs[[]].copy(), var=var[[]].copy())
            out.obsm["X_bcnmf"] = usage
            out.varm["bcnmf_loadings"] = loadings
            out.obs["bcnmf_target_score"] = target_score(usage, score_weights(enrichment, topics))
            params = {
                "background_key": args.background_key,
                "background": [str(v) for v in bg],
                "target": [str(v) for v in tg],
                "n_topics": K,
                "alpha": float(model.alpha),
                "loss": args.loss,
                "layer": args.layer,
                "mask_var": mask_name,
                "n_genes_used": int(genes.sum()),
                "batch_size": args.batch_size,
                "max_epochs": args.max_epochs,
                "tol": float(args.tol),
                "n_init": args.n_init,
                "random_state": args.seed,
                "device": str(device),
                "solver": model.solver_,
                "dtype": args.dtype,
                "n_processes": world,
                "n_target": int(is_tg.sum()),
                "n_background": int(is_bg.sum()),
                "n_projected": int(other.sum()),
            }
            out.uns["bcnmf"] = {
                "params": {k: v for k, v in params.items() if v is not None},
                "history": {k: np.asarray(v, dtype=float) for k, v in model.history_.items()},
                "topics": topics,
                "objective": float(model.objective_),
                "n_epochs": int(model.n_epochs_),
                "converged": bool(model.converged_),
                "enrichment": enrichment,
            }
            out.write_h5ad(args.output)
            secs = np.diff(np.r_[0.0, model.history_["seconds"]])
            print(
                f"bcNMF: {model.n_epochs_} epochs ({np.median(secs):.2f} s per epoch), "
                f"objective {model.objective_:.6g}, total {time.perf_counter() - t0:.1f} s; "
                f"wrote {args.output}",
                flush=True,
            )
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
