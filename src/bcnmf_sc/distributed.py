r"""Data-parallel bcNMF on an ``.h5ad`` file with ``torch.distributed``, launched by torchrun.

Every process opens the file read-only, streams its own share of the cells from disk and
trains on them; the statistics that update the gene loadings are summed over the
processes after every minibatch (``BcNMF(distributed=True)``), so all processes hold the
same loadings, while the usages of each cell stay with the process that owns it. At the
end, process 0 gathers the usages and writes the output file: a copy of the input plus
the results, as ``bc.tl.bcnmf`` leaves the AnnData (the input is never written).

One machine, two processes on CPU (``gloo``)::

    torchrun --standalone --nproc-per-node=2 -m bcnmf_sc.distributed atlas.h5ad \
        -o atlas_bcnmf.h5ad --background-key condition --background control -k 20

One machine with 4 GPUs (``nccl``, one GPU per process; ``--device auto`` picks
``cuda:LOCAL_RANK``)::

    torchrun --standalone --nproc-per-node=4 -m bcnmf_sc.distributed atlas.h5ad -o ...

Several machines (here 2 x 4 processes): run the same command on every machine, with the
file at the same path on each (a shared file system or a copy), and one machine's address
as the rendezvous endpoint::

    torchrun --nnodes=2 --nproc-per-node=4 --rdzv-backend=c10d \
        --rdzv-endpoint=node0.example.org:29400 --rdzv-id=bcnmf-atlas \
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

The output file is the input file plus the results, written by the writer of
``bc.tl.bcnmf``: ``.obsm["X_bcnmf"]``, ``.varm["bcnmf_loadings"]``,
``.obs["bcnmf_target_score"]`` and ``.uns["bcnmf"]`` (``bcnmf`` is ``--key-added``), whose
``params`` are those ``bc.tl.bcnmf`` records plus ``n_processes``. Process 0 copies the
input byte for byte into a temporary file next to the output (streamed: X is never held
in memory), adds the results to it and renames it to the output; a failure or Ctrl-C
leaves no partial file. An existing output, or the input itself, is only replaced with
``--overwrite`` (alias ``--force``).

User errors (missing file or column, unknown label, ``-k 0``, an existing output, ...)
are one line ``bcnmf_sc.distributed: error: ...`` naming the flag, exit status 2,
printed by process 0 only; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._cli_common import (
    CliParser,
    UserError,
    add_fit_arguments,
    check_args,
    check_device,
    resolve_labels,
    run_cli,
)
from ._cli_files import atomic_output, check_input, check_output

__all__ = ["main"]


PROG = "bcnmf_sc.distributed"


def _parser() -> argparse.ArgumentParser:
    p = CliParser(
        prog="python -m bcnmf_sc.distributed",
        description="Data-parallel bcNMF of an .h5ad file (launch with torchrun).",
        epilog=__doc__[__doc__.index("One machine, two") : __doc__.index("Cells are split")]
        + __doc__[__doc__.index("The output file is") :],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_fit_arguments(p, consensus=False)
    return p


def _add_results(path, adata, key: str) -> None:
    """Write the results that ``write_result`` put in ``adata`` into the file ``path``."""
    import h5py
    from anndata.io import write_elem

    # ``adata`` holds obs, var and what write_result put there: every .obsm / .varm entry
    # (usages, loadings, program scores and profiles) and .uns[key]
    names = [(g, n) for g in ("obsm", "varm") for n in getattr(adata, g)] + [("uns", key)]
    with h5py.File(path, "r+") as f:
        for group, name in names:
            if group not in f:
                write_elem(f, group, {})
            if name in f[group]:
                del f[group][name]
            write_elem(f[group], name, getattr(adata, group)[name])
        del f["obs"]  # obs gains the target score column
        write_elem(f, "obs", adata.obs)


def _source(f: Any, key: str, meta: Any, genes: np.ndarray) -> Any:
    """The rows of ``f[key]`` (an open h5ad) on the used ``genes`` (a ``RowSource``)."""
    from ._engine.rows import H5adRows

    src = H5adRows(f, key)
    if src.shape != (meta.n_obs, meta.n_vars):
        raise ValueError(f"{key} has shape {src.shape}, obs x var is {meta.shape}.")
    return src if genes.all() else src.subset(cols=genes)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2: a user error, one line, from process 0)."""
    quiet = int(os.environ.get("RANK", "0")) != 0
    return run_cli(_parser(), _main, argv, prog=PROG, quiet=quiet)


def _main(args: argparse.Namespace) -> None:
    check_args(args)
    check_input(args.input, args.layer)
    check_output(args.output, args.overwrite, input=args.input)
    import anndata
    import h5py
    import torch
    import torch.distributed as dist

    from ._engine.threads import default_threads
    from .tl._bcnmf import checked_model, held_out_cells
    from .tl._checks import check_counts_sample, check_source
    from .tl._inputs import Inputs, resolve_groups, resolve_mask
    from .tl._outputs import fit_params, fit_result, write_result

    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = check_device(args.device)
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
            bg_vals, tg_vals = resolve_labels(meta.obs, args, args.input)
            is_tg, is_bg, tg, bg = resolve_groups(meta, args.background_key, bg_vals, tg_vals)
            genes, mask_name = resolve_mask(meta, args.mask_var)
            n_max = min(int(is_tg.sum()), int(genes.sum()))
            if args.n_topics > n_max:  # tl.bcnmf's check, before anything is read
                raise UserError(
                    f"-k/--n-topics {args.n_topics} is too large for {int(is_tg.sum())} target "
                    f"cells x {int(genes.sum())} genes; use at most {n_max}"
                )
            key = "X" if args.layer is None else f"layers/{args.layer}"
            src = _source(f, key, meta, genes)
            other = ~(is_tg | is_bg)
            engine_kwargs = {} if args.dtype is None else {"dtype": args.dtype}
            model, share = checked_model(
                args.holdout,
                n_components=args.n_topics,
                n_shared=args.n_shared,
                loss=args.loss,
                batch_size=args.batch_size,
                max_epochs=args.max_epochs,
                tol=args.tol,
                n_init=args.n_init,
                random_state=args.seed,
                device=device,
                progress=args.progress and rank == 0,
                distributed=world > 1,
                # processes on one machine share its cores: each gets its part of them
                n_jobs=args.n_jobs or max(1, default_threads() // local_processes),
                **({} if args.alpha is None else {"alpha": args.alpha}),
                **engine_kwargs,
            )
            # held-out cells are projected like cells of neither group (as tl.bcnmf)
            held = held_out_cells(is_tg, is_bg, share, args.seed)
            fitted = (is_tg & ~held, is_bg & ~held, other | held)
            shards = [np.array_split(np.flatnonzero(m), world)[rank] for m in fitted]
            what = "The data" if args.layer is None else f"Layer {args.layer!r}"
            if args.check_counts and args.loss == "kl":  # the same sample on every process
                check_counts_sample(src, what)
            check_source(src.subset(rows=shards[2]), args.loss, what)
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
            gathered: list[Any] | None = [None] * world if rank == 0 else None
            dist.gather_object(own, gathered, dst=0, group=group)
        else:
            gathered = [own]
        if rank == 0:
            usage = np.zeros((meta.n_obs, model.components_.shape[0]))
            for j, mask in enumerate(fitted):
                usage[mask] = np.vstack([g[j] for g in gathered or ()])
            inputs = Inputs(is_tg, is_bg, tg, bg, genes, mask_name, src)
            params = fit_params(
                inputs,
                model,
                background_key=args.background_key,
                n_topics=args.n_topics,
                loss=args.loss,
                layer=args.layer,
                batch_size=args.batch_size,
                max_epochs=args.max_epochs,
                tol=args.tol,
                n_init=args.n_init,
                consensus=False,
                seeds=None,
                random_state=args.seed,
                device=args.device,
                check_counts=bool(args.check_counts),
                holdout=share,
                n_processes=world,
            )
            with h5py.File(args.input, "r") as f:  # the program scores project every cell
                every = _source(f, key, meta, genes)
                result = fit_result(
                    model,
                    usage,
                    is_target=is_tg,
                    is_background=is_bg,
                    genes=genes,
                    params=params,
                    engine_kwargs=engine_kwargs,
                    held_out=held if share > 0 else None,
                    project=lambda V: model.project_onto(V, every),
                )
            write_result(meta, args.key_added, result)
            with atomic_output(args.output, overwrite=args.overwrite) as tmp:
                shutil.copyfile(args.input, tmp)
                _add_results(tmp, meta, args.key_added)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
