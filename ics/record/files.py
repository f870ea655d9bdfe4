"""Writing run files: atomically (a killed run never leaves half a file) and in strict formats."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

# what atomic_write names its temporary files: `.<name>.<pid>-<random>.tmp` (and, written by ics
# before 0.3, `.<name>.<pid>.tmp`). The pid says whether the writer is still alive (only a dead
# writer's temporary files are removed); the random part, made by mkstemp with O_EXCL, is what makes
# the name unguessable: a link planted under a predictable name would otherwise be written through.
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(?:-[A-Za-z0-9_]+)?\.tmp$")


def temp_prefix(path: Path) -> str:
    """The start of the name of a temporary file atomic_write writes `path` through (mkstemp adds
    the random part and `.tmp`)."""
    return f".{Path(path).name}.{os.getpid()}-"


class UnsafePath(OSError):
    """A write refused because it would go through a symbolic link (the file or its folder): a run,
    sweep or report folder is data, and a link in it may lead anywhere. filename: the path."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# files are created with the mode an ordinary open() gives them (mkstemp makes 0600 files); read
# once, at import, because os.umask can only be read by setting it (not safe while threads write)
_FILE_MODE = 0o666 & ~_umask()


def check_not_link(path: Path) -> None:
    """UnsafePath when path or the folder holding it is a symbolic link."""
    path = Path(path)
    for p, what in ((path, "is a symbolic link"), (path.parent, "is in a folder that is a symbolic link")):
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise UnsafePath(errno.ELOOP, f"{what}; ics never writes through a link (remove the link)", str(path))


# --- writes that a signal never cuts ----------------------------------------------------------------
# A signal handler runs on the main thread between two bytecodes: an exit it forces must wait until a
# write in progress is whole. Writes on the main thread mark themselves here; ics.train.stopping
# defers what a signal asks for until the outermost marked write ends.
_depth = 0
_pending: Optional[Callable[[], None]] = None


def _main() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def whole() -> Iterator[None]:
    """The body runs to its end before anything a signal asks for happens (see `defer`)."""
    global _depth, _pending
    if not _main():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending is not None:
            fn, _pending = _pending, None
            fn()  # may raise (a stop asked for during the write); it then replaces any error in flight


def writing() -> bool:
    """A write marked by `whole` is in progress on the main thread."""
    return _depth > 0


def defer(fn: Optional[Callable[[], None]]) -> None:
    """Run fn when the write in progress ends (the last call wins; None cancels)."""
    global _pending
    _pending = fn


# --- a full disk --------------------------------------------------------------------------------------
FULL_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class FullDiskError(OSError):
    """A write that failed because the file system is full, over quota or read-only; filename: the
    file being written. (What a run does about it: ics.train.stopping.)"""


def full_disk_cause(e: Optional[BaseException]) -> Optional[OSError]:
    """The OSError for lack of space (ENOSPC, EDQUOT, EROFS) in e or what caused it, else None.
    (torch.save wraps it in a RuntimeError; its cause or context is the OSError.)"""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL_DISK_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def atomic_write(
    path: Path,
    write: Callable[[Any], Any],
    fsync: bool = False,
    before_rename: Optional[Callable[[], None]] = None,
    fileobj: bool = False,
) -> None:
    """Write through a new temporary file in the same folder, then rename over the target: readers
    see the old file or the whole new one. Every write into a run, sweep or report folder goes
    through here, because those folders are data that anyone may have written: the temporary file
    is made with O_EXCL under a random name (a planted link is never followed), and a target that
    is a symbolic link, or sits in a folder that is one, is refused (UnsafePath) before anything is
    written. write: gets the open binary file (fileobj=True: nothing reopens the file by name) or,
    for writers that need a name, the temporary file's path. fsync: also survive a machine crash
    (checkpoints). A signal never cuts it (see `whole`); the temporary file is removed whatever
    happens. A failure for lack of space is a FullDiskError naming `path`. before_rename: called with
    the new file written, before the rename (a checkpoint names the phase there: ics.train.stopping.reached)."""
    path = Path(path)
    check_not_link(path)
    with whole():
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        tmp = Path(name)
        try:
            os.fchmod(fd, _FILE_MODE)
            if fileobj:
                with os.fdopen(fd, "wb") as fh:
                    fd = -1
                    write(fh)
                    fh.flush()
                    if fsync:
                        os.fsync(fh.fileno())
            else:
                os.close(fd)
                fd = -1
                write(tmp)
                if fsync:
                    sync = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                    try:
                        os.fsync(sync)
                    finally:
                        os.close(sync)
            if before_rename is not None:
                before_rename()
            check_not_link(path)  # a link put in place while this wrote: still never replaced by a file
            os.replace(tmp, path)  # a rename replaces a name, never writes through it
        except Exception as e:
            full = full_disk_cause(e)
            if full is None:
                raise
            raise FullDiskError(full.errno, full.strerror or os.strerror(full.errno), str(path)) from None
        finally:
            if fd >= 0:
                os.close(fd)
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass


def write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """A small file into a run, sweep or report folder (see atomic_write)."""
    atomic_write(path, lambda fh: fh.write(data), fsync=fsync, fileobj=True)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def copy_tree(src: Path, dst: Path, max_bytes: int = 16 << 20) -> None:
    """Copy the plain files of a private folder (a study staged by the CLI) into dst, a folder of a
    sweep: each file through atomic_write, dst and every folder below it refused (UnsafePath) when it
    is a symbolic link (shutil.copytree would write through one planted in a resumed sweep)."""
    src, dst = Path(src), Path(dst)
    for d in [dst, *sorted(p for p in src.rglob("*") if p.is_dir() and not p.is_symlink())]:
        target = dst / d.relative_to(src) if d != dst else dst
        if os.path.islink(target):
            raise UnsafePath(
                errno.ELOOP, "is a symbolic link; ics never writes through a link (remove the link)", str(target)
            )
        target.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.rglob("*")):
        if f.is_file() and not f.is_symlink():
            write_bytes(dst / f.relative_to(src), read_bytes(f, max_bytes))


def _finite(obj: Any) -> Any:
    """NaN/inf -> None: strict JSON (jq, JavaScript, CSV tools) has no non-finite numbers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any, before_rename: Optional[Callable[[], None]] = None) -> None:
    data = json.dumps(_finite(obj), indent=2, allow_nan=False, default=float).encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data), before_rename=before_rename, fileobj=True)


def write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    # through the file object: np.savez would append ".npz" to a bare temporary path
    atomic_write(path, lambda fh: np.savez(fh, **arrays), fileobj=True)


def stale_temp_files(folder: Path) -> List[Path]:
    """Temporary files atomic_write left in folder (not below it) when its process was killed:
    named `.<name>.<pid>-<random>.tmp` (or `.<name>.<pid>.tmp`) by a process that is no longer
    alive; plain files and links only (a folder of that name is not one). Call it holding the
    run lock."""
    out: List[Path] = []
    if os.path.islink(folder):  # what a link leads to is not this run's folder
        return out
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for e in entries:
        m = TEMP_NAME.match(e.name)
        if m is None or not (e.is_file(follow_symlinks=False) or e.is_symlink()):
            continue
        if _alive(int(m.group("pid"))):
            continue
        out.append(Path(folder) / e.name)
    return out


def remove_stale_temp_files(folder: Path) -> List[Path]:
    """Remove stale_temp_files(folder) (a link is removed, never what it points to); returns them."""
    removed = []
    for p in stale_temp_files(folder):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's live process (or not a pid at all: leave it alone)
    return True


class UnreadableText(ValueError):
    """A file that is not data ics can read: empty, not a plain file, not UTF-8, far too large,
    nested too deeply, or (YAML) using aliases. Its message is one line."""


def _size(n: int) -> str:
    for unit, shift in (("GB", 30), ("MB", 20), ("kB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{n} bytes"


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """The bytes of a file from a run or sweep folder, read as untrusted data, with memory bounded
    by max_bytes: a file larger than that is refused by its size before a byte is read (a sparse
    1 GB file costs nothing on disk but would cost 1 GB to read); a FIFO, a device or a folder is
    refused without waiting on it; an empty file is refused; a symbolic link is not followed (it may
    lead out of the folder: another run's record read as this one's). FileNotFoundError when absent;
    every other refusal is an UnreadableText with one line."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    except IsADirectoryError:
        raise UnreadableText("a folder, not a file") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnreadableText("a symbolic link (not followed)") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = (
                "a FIFO"
                if stat.S_ISFIFO(st.st_mode)
                else "a device"
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
                else "a folder"
                if stat.S_ISDIR(st.st_mode)
                else "not a plain file"
            )
            raise UnreadableText(f"{what}, not a file ics wrote")
        if st.st_size > max_bytes:
            raise UnreadableText(
                f"{_size(st.st_size)}, larger than the {_size(max_bytes)} ics reads from such a "
                "file: not a file ics wrote"
            )
        data = fh.read(max_bytes + 1)  # the file may have grown since fstat: the cap holds anyway
    if not data:
        raise UnreadableText("empty file")
    if len(data) > max_bytes:
        raise UnreadableText(f"larger than the {_size(max_bytes)} ics reads from such a file: not a file ics wrote")
    return data


def read_text(path: Path, max_bytes: int) -> str:
    """The UTF-8 text of a file from a run or sweep folder (see read_bytes): an empty, binary (not
    UTF-8), oversized or special file is an UnreadableText with one line saying which."""
    data = read_bytes(path, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableText(
            f"not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): binary or damaged"
        ) from None


# Nothing ics writes nests deeper than a config (about 6 levels); a reader that walks a tree
# recursively (json, PyYAML's composer, OmegaConf) would hit Python's recursion limit on a hostile
# `[[[[...]]]]` long before memory runs out, so the depth is capped well below it.
MAX_DEPTH = 64
MAX_JSON_BYTES = 64 << 20  # jobs.json of a very large sweep; records and manifests pass smaller caps
MAX_YAML_BYTES = 16 << 20  # PyYAML is pure Python: a cap also bounds the time a file takes


def _too_deep(obj: Any, max_depth: int) -> bool:
    """obj nests lists/mappings more than max_depth deep (walked without recursion)."""
    todo = [(obj, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, (list, dict)):
            if depth > max_depth:
                return True
            todo += [(x, depth + 1) for x in (v.values() if isinstance(v, dict) else v)]
    return False


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON file from a run or sweep folder as plain data: an UnreadableText (a ValueError, one
    line) when it is not text, too large, not JSON or nested deeper than max_depth."""
    text = read_text(path, max_bytes)
    try:
        data = json.loads(text)
    except RecursionError:
        raise UnreadableText(f"nested more than {max_depth} levels deep: not a file ics wrote") from None
    except ValueError as e:
        raise UnreadableText(f"not JSON ({one_line(e)})") from None
    if _too_deep(data, max_depth):
        raise UnreadableText(f"nested more than {max_depth} levels deep: not a file ics wrote")
    return data


def _plain_yaml_loader(max_depth: int):
    import yaml

    class PlainLoader(yaml.SafeLoader):
        """safe_load without aliases and with a depth cap: Hydra never writes aliases, and a few
        nested ones make a small file expand to billions of values in whatever walks it."""

        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                raise yaml.YAMLError("uses YAML aliases (*name), which Hydra never writes")
            self.depth += 1
            if self.depth > max_depth:
                raise yaml.YAMLError(f"nested more than {max_depth} levels deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return PlainLoader


def read_yaml(path: Path, max_bytes: int = MAX_YAML_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """A YAML file from a run or sweep folder (Hydra's .hydra/*.yaml, multirun.yaml, a sweep's copy
    of its study) as plain data, never objects, nothing resolved (${...} stays text): an
    UnreadableText (one line) when it is not text, too large, not YAML, uses aliases, or nests
    deeper than max_depth."""
    import yaml

    text = read_text(path, max_bytes)
    try:
        return yaml.load(text, Loader=_plain_yaml_loader(max_depth))  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise UnreadableText(f"not YAML (nested more than {max_depth} levels deep)") from None
    except yaml.YAMLError as e:
        raise UnreadableText(f"not YAML ({one_line(e)})") from None


def one_line(e: BaseException) -> str:
    """An exception as one short line (its first non-empty line, else its type)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
