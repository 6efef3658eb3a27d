"""What the two command lines (``bcnmf-sc fit`` and ``python -m bcnmf_sc.distributed``) share.

* one argument builder, :func:`add_fit_arguments`, and one check of the values,
  :func:`check_args`;
* (the input and output files, and atomic writes, are in :mod:`bcnmf_sc._cli_files`);
* one error path, :func:`run_cli`: every user error is one line
  ``PROG: error: MESSAGE`` naming the flag, exit status 2, no traceback (``--debug``
  shows it). Messages of the Python API that name its parameters (``n_components must
  be ...``) are rewritten to name the flags (:data:`PARAM_FLAGS`, :func:`translate`).

Output policy (both commands): see :mod:`bcnmf_sc._cli_files`.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "PARAM_FLAGS",
    "UserError",
    "add_fit_arguments",
    "check_args",
    "convert_values",
    "resolve_labels",
    "run_cli",
    "translate",
]


class UserError(Exception):
    """A mistake in the command line or its files: reported as one line, exit status 2."""


class CliParser(argparse.ArgumentParser):
    """argparse, but its errors go through :func:`run_cli` (one line, no usage block)."""

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


# Python API parameter -> command line flag, the one place that maps them.
PARAM_FLAGS = {
    "n_components": "-k/--n-topics",
    "n_topics": "-k/--n-topics",
    "background_key": "--background-key",
    "background": "--background",
    "target": "--target",
    "alpha": "--alpha",
    "loss": "--loss",
    "layer": "--layer",
    "mask_var": "--mask-var",
    "batch_size": "--batch-size",
    "max_epochs": "--max-epochs",
    "tol": "--tol",
    "n_init": "--n-init",
    "n_shared": "--n-shared",
    "holdout": "--holdout",
    "consensus": "--consensus",
    "random_state": "--seed",
    "device": "--device",
    "n_jobs": "--n-jobs",
    "dtype": "--dtype",
    "key_added": "--key-added",
    "check_counts": "--no-check-counts",  # only ever named as check_counts=False
}
_NAMES = "|".join(sorted(PARAM_FLAGS, key=len, reverse=True))
# name=value (value optional, quotes dropped): n_topics=5, loss='kl', background=
_ASSIGN = re.compile(rf"\b({_NAMES})=(?:'([^']*)'|([^\s,;:)]*))")
# parameter names with an underscore are never plain words: rewrite them anywhere
_UNDERSCORED = re.compile(r"\b(" + "|".join(n for n in PARAM_FLAGS if "_" in n) + r")\b")
# plain words only where they are the subject: "alpha must ...", "Unknown loss ..."
_SUBJECT = re.compile(rf"(^|Unknown )({_NAMES})\b(?= must| should| is |\s'|\s\d)")


def translate(message: str) -> str:
    """Rewrite the Python API's parameter names in ``message`` as the command line flags."""

    def assign(m: re.Match) -> str:
        flag = PARAM_FLAGS[m.group(1)]
        value = m.group(2) if m.group(2) is not None else m.group(3)
        if flag.startswith("--no-") and value == "False":
            return flag
        return flag if value in ("", "True") else f"{flag} {value}"

    message = _ASSIGN.sub(assign, message)
    message = _SUBJECT.sub(lambda m: m.group(1) + PARAM_FLAGS[m.group(2)], message)
    message = re.sub(r"^Layer '", "--layer '", message)
    return _UNDERSCORED.sub(lambda m: PARAM_FLAGS[m.group(1)], message)


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


# --------------------------------------------------------------------- arguments
OVERWRITE_HELP = (
    "replace OUT.h5ad if it exists, even when it is the input file; without it an existing "
    "file is never written. The new file is written to a temporary file next to OUT.h5ad "
    "and renamed over it only when complete, so the old file stays intact until then"
)


def add_fit_arguments(
    p: argparse.ArgumentParser,
    *,
    consensus: bool = True,
    sweep: bool = False,
) -> None:
    """The options of a fit: ``bcnmf-sc fit``, ``bcnmf-sc sweep``, ``bcnmf_sc.distributed``.

    ``sweep=True``: the options of :func:`bcnmf_sc.tl.bcnmf_sweep` instead (``-k`` and
    ``--alphas`` take lists, ``--n-init`` seeds per setting, ``--heldout``; no
    ``--consensus``, no ``--n-shared``, no ``--holdout``).
    """
    p.add_argument("input", metavar="IN.h5ad", help="input AnnData file (counts in X or --layer)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUT.h5ad",
        help="output file: the input AnnData plus the results (never the input itself "
        "unless --overwrite)",
    )
    p.add_argument(
        "--background-key", required=True, metavar="KEY", help="obs column defining the groups"
    )
    p.add_argument(
        "--background",
        nargs="+",
        metavar="VALUE",
        help="background value(s) of KEY (not needed for a boolean column, where False is "
        "background)",
    )
    p.add_argument(
        "--target", nargs="+", metavar="VALUE", help="target value(s) of KEY (default: the rest)"
    )
    if sweep:
        p.add_argument(
            "-k",
            "--n-topics",
            type=int,
            nargs="+",
            default=[5, 10, 15],
            metavar="K",
            help="numbers of topics to try (5 10 15)",
        )
        p.add_argument(
            "--alphas",
            type=float,
            nargs="+",
            default=[0.0, 1.0, 2.0, 3.0],
            metavar="A",
            help="contrast strengths to try (0 1 2 3)",
        )
        p.add_argument(
            "--heldout",
            type=float,
            default=0.1,
            metavar="F",
            help="fraction of target cells held out to score the fits (0.1; 0 skips)",
        )
    else:
        p.add_argument("-k", "--n-topics", type=int, default=10, metavar="K", help="topics (10)")
        p.add_argument(
            "--alpha", type=float, default=None, help="contrast strength (default: engine default)"
        )
    p.add_argument(
        "--loss", choices=("kl", "frobenius"), default="kl", help="kl for raw counts (default)"
    )
    p.add_argument("--layer", default=None, metavar="L", help="layer to use instead of .X")
    p.add_argument(
        "--mask-var",
        default=None,
        metavar="COLUMN",
        help="boolean var column of the genes to use (default: highly_variable if present)",
    )
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="cells per batch")
    p.add_argument("--max-epochs", type=int, default=None, metavar="N", help="epoch limit")
    p.add_argument(
        "--tol",
        type=float,
        default=None,
        help="relative tolerance (1e-5; 5e-5 for the shared-topic model)",
    )
    if sweep:
        p.add_argument("--n-init", type=int, default=3, metavar="N", help="seeds per setting (3)")
    else:
        p.add_argument(
            "--n-init", type=int, default=1, metavar="N", help="restarts; the best is kept (1)"
        )
    if not sweep:
        p.add_argument(
            "--n-shared",
            type=_n_shared,
            default="auto",
            metavar="S",
            help="shared topics beside the K target topics (auto: 16 for --loss kl without "
            "--alpha, else 0; 0: the contrastive model)",
        )
        p.add_argument(
            "--holdout",
            type=float,
            default=None,
            metavar="F",
            help="share of each group held out for the enrichment table "
            "(0.2 with shared topics, else 0)",
        )
    if consensus and not sweep:
        p.add_argument(
            "--consensus",
            action="store_true",
            help="combine the --n-init restarts (>= 2) into consensus topics",
        )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (0)")
    p.add_argument(
        "--dtype", choices=("float32", "float64"), default=None, help="(engine default float32)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto)")
    p.add_argument(
        "--n-jobs",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for torch (-1: all CPUs; default: the physical cores available, "
        "at most torch's default, divided among the torchrun processes of one machine)",
    )
    key = "bcnmf_sweep" if sweep else "bcnmf"
    p.add_argument("--key-added", default=key, metavar="KEY", help=f"result key ({key})")
    p.add_argument("--progress", action="store_true", help="show a progress bar")
    p.add_argument(
        "--no-check-counts",
        dest="check_counts",
        action="store_false",
        help="with --loss kl, skip the check that a sample of the values are integer counts",
    )
    add_safety_arguments(p)


def add_safety_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", "--force", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")


def _require(ok: bool, flag: str, what: str, value) -> None:
    if not ok:
        raise UserError(f"{flag} must be {what}, got {value!r}")


def _n_shared(text: str) -> int | str:
    """``--n-shared``: ``auto`` or an integer."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {text!r}") from None


def check_args(args: argparse.Namespace) -> None:
    """Range checks of the shared options, before any file is read."""
    ks = args.n_topics if isinstance(args.n_topics, list) else [args.n_topics]
    for k in ks:
        _require(k >= 1, "-k/--n-topics", ">= 1", k)
    alphas = getattr(args, "alphas", None) or []
    if getattr(args, "alpha", None) is not None:
        alphas = [args.alpha]
    for a in alphas:
        flag = "--alpha" if getattr(args, "alpha", None) is not None else "--alphas"
        _require(math.isfinite(a) and a >= 0, flag, "a number >= 0", a)
    if hasattr(args, "heldout"):
        _require(0 <= args.heldout <= 0.5, "--heldout", "a fraction in [0, 0.5]", args.heldout)
        _require(args.n_init >= 2, "--n-init", ">= 2 (stability compares seeds)", args.n_init)
    for flag, v in (("--batch-size", args.batch_size), ("--max-epochs", args.max_epochs)):
        if v is not None:
            _require(v >= 1, flag, ">= 1", v)
    if args.tol is not None:
        _require(math.isfinite(args.tol) and args.tol >= 0, "--tol", "a number >= 0", args.tol)
    _require(args.n_init >= 1, "--n-init", ">= 1", args.n_init)
    n_shared = getattr(args, "n_shared", "auto")
    if isinstance(n_shared, int):
        _require(n_shared >= 0, "--n-shared", "'auto' or an integer >= 0", n_shared)
        if n_shared > 0 and getattr(args, "alpha", None) is not None:
            raise UserError(
                "--alpha is the strength of the contrastive model and has no effect with "
                "--n-shared > 0; pass --n-shared 0 with --alpha, or drop --alpha"
            )
    holdout = getattr(args, "holdout", None)
    if holdout is not None:
        _require(0 <= holdout < 1, "--holdout", "in [0, 1)", holdout)
    if getattr(args, "consensus", False):
        _require(args.n_init >= 2, "--n-init", ">= 2 with --consensus", args.n_init)
    _require(args.seed >= 0, "--seed", ">= 0", args.seed)
    if args.n_jobs is not None:
        ok = args.n_jobs >= 1 or args.n_jobs == -1
        _require(ok, "--n-jobs", "-1 or an integer >= 1", args.n_jobs)
    key = args.key_added
    _require(bool(key) and "/" not in key, "--key-added", "a non-empty name without '/'", key)
    check_device(args.device)


def check_device(device: str):
    """The torch device of ``--device``, or a :class:`UserError` if this machine lacks it."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(
            f"--device {device!r} is not a device: use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UserError(f"--device {device!r}: torch sees no CUDA GPU here; use auto or cpu")
        if dev.index is not None and dev.index >= n:
            raise UserError(f"--device {device!r}: this machine has {n} CUDA GPU(s) (cuda:0..)")
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise UserError(f"--device {device!r}: MPS is not available here; use auto or cpu")
    elif dev.type != "cpu":
        raise UserError(f"--device {device!r} is not supported: use auto, cpu, cuda or cuda:N")
    return dev


# ------------------------------------------------------------------------ labels
def convert_values(values: list[str] | None, column) -> list | None:
    """Map command line strings onto the values of an obs column (bool/int/str)."""
    if values is None:
        return None
    import pandas as pd

    present = list(pd.unique(column.dropna()))
    if hasattr(column, "cat"):
        present += [c for c in column.cat.categories if c not in present]
    lookup = {str(v): v for v in present}
    lookup.update({str(v).lower(): v for v in present})
    return [lookup.get(v, lookup.get(v.lower(), v)) for v in values]


def resolve_labels(obs, args: argparse.Namespace, path: str) -> tuple[list | None, list | None]:
    """Check ``--background-key``, ``--background`` and ``--target`` against ``obs``."""
    import pandas as pd

    key = args.background_key
    if key not in obs.columns:
        raise UserError(
            f"--background-key {key!r} is not an obs column of {path!r}; "
            f"available: {list(obs.columns)}"
        )
    col = obs[key]
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = list(col.cat.categories)
    else:
        present = list(pd.unique(col.dropna()))
    shown = [str(v) for v in present]
    if args.background is None and not (pd.api.types.is_bool_dtype(col) and args.target is None):
        raise UserError(
            f"--background is required: the background value(s) of obs column {key!r}, one "
            f"or more of {shown}"
        )
    bg, tg = convert_values(args.background, col), convert_values(args.target, col)
    for flag, given, vals in (("--background", args.background, bg), ("--target", args.target, tg)):
        unknown = [g for g, v in zip(given or [], vals or [], strict=True) if v not in present]
        if unknown:
            raise UserError(
                f"{flag}: unknown value(s) {unknown} of obs column {key!r}; available: {shown}"
            )
    return bg, tg


# ------------------------------------------------------------------- error path
@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM (torchrun stopping a process) unwinds like Ctrl-C, so temp files go."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


USER_ERRORS = (UserError, ValueError, KeyError, TypeError, OSError, ArithmeticError)


def run_cli(
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace], None],
    argv: Sequence[str] | None = None,
    *,
    prog: str,
    quiet: bool = False,
) -> int:
    """Parse ``argv`` and run ``body``; the one error path of the command lines.

    Returns 0, 2 for a user error (one line ``PROG: error: ...`` on stderr, parameter
    names rewritten as flags), 130 for Ctrl-C, 1 for an unexpected error (one line too).
    ``--debug`` re-raises instead, with the traceback. ``quiet`` (processes other than
    rank 0 of a torchrun job) prints nothing.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv

    def say(line: str) -> None:
        if not quiet:
            print(f"{prog}: {line}", file=sys.stderr, flush=True)

    try:
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", debug))
        with _sigterm_as_exit():
            body(args)
    except KeyboardInterrupt:
        if debug:
            raise
        say("interrupted; no output was written")
        return 130
    except USER_ERRORS as e:
        if debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if not isinstance(e, UserError):
            msg = translate(str(msg))
        say(f"error: {_one_line(msg)}")
        return 2
    except Exception as e:
        if debug:
            raise
        say(
            f"internal error: {type(e).__name__}: {_one_line(str(e))} (rerun with --debug for the "
            "traceback)"
        )
        return 1
    return 0
