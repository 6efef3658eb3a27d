"""The files of the two command lines: the input, the output path, atomic writes.

* :func:`check_input`: the input must be an AnnData ``.h5ad`` (HDF5 with ``obs`` and
  ``var``) holding ``X`` or the layer asked for;
* :func:`check_output`: output policy of both commands. The output is the input AnnData
  plus the results, as ``bc.tl.bcnmf`` leaves it. An existing file, or the input itself
  (also under another spelling, a symlink or a hard link), is never replaced unless
  ``--overwrite`` (alias ``--force``) is given;
* :func:`atomic_output`: even then the new file is written to a temporary file next to
  the destination and renamed over the old one (``os.replace``) only once it is
  complete, so the old file is intact until the very end, whatever happens before; the
  temporary file is removed on any error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._cli_common import UserError

__all__ = ["atomic_output", "check_input", "check_output", "same_file"]


def check_input(path: str, layer: str | None = None) -> Path:
    """``path`` must be an AnnData ``.h5ad`` file holding ``X`` (or ``layers/LAYER``)."""
    import h5py

    p = Path(path)
    if not p.exists():
        raise UserError(f"input file {path!r} does not exist")
    if not p.is_file():
        raise UserError(f"input file {path!r} is not a file")
    if not h5py.is_hdf5(p):
        raise UserError(f"input file {path!r} is not an .h5ad (HDF5) file")
    with h5py.File(p, "r") as f:
        missing = [g for g in ("obs", "var") if g not in f]
        if missing:
            raise UserError(
                f"input file {path!r} is an HDF5 file but not an AnnData .h5ad (no "
                f"{' or '.join(missing)} group)"
            )
        layers = list(f["layers"]) if "layers" in f else []
        if layer is not None and layer not in layers:
            raise UserError(f"--layer {layer!r} is not a layer of {path!r}; available: {layers}")
        if layer is None and "X" not in f:
            raise UserError(f"input file {path!r} has no X; pass --layer (layers: {layers})")
    return p


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (other spellings, symlinks, hard links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(output: str, overwrite: bool, *, input: str | None = None) -> Path:
    """Refuse an output that exists (or is the input) unless ``overwrite``; check the folder."""
    out = Path(output)
    if out.is_dir():
        raise UserError(f"-o/--output {output!r} is a directory; give a file name")
    if input is not None and same_file(Path(input), out) and not overwrite:
        raise UserError(
            f"-o/--output {output!r} is the input file; choose another file, or pass "
            "--overwrite to replace the input with input + results"
        )
    if os.path.lexists(out) and not overwrite:
        raise UserError(
            f"-o/--output {output!r} exists; pass --overwrite (or --force) to replace it"
        )
    folder = Path(os.path.realpath(out)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"-o/--output {output!r}: cannot write in folder {str(folder)!r}")
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(dest: str | os.PathLike, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; rename it to ``dest`` if the block succeeds.

    On any exception (also ``KeyboardInterrupt``) the temporary file is removed and
    ``dest`` is left as it was. A symlink ``dest`` keeps pointing to the new file.
    """
    dest = Path(dest)
    target = Path(os.path.realpath(dest))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp.h5ad", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not overwrite and os.path.lexists(dest):
            raise UserError(
                f"-o/--output {str(dest)!r} appeared while fitting; pass --overwrite (or "
                "--force) to replace it"
            )
        with open(tmp, "rb+") as fh:  # on disk before the rename
            os.fsync(fh.fileno())
        mode = target.stat().st_mode & 0o777 if target.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
