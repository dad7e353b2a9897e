"""Download, verify and cache the public point-source releases.

:func:`fetch_release` downloads a release archive, checks its SHA-256, unpacks it and
moves the release folder (the one holding ``events/``, ``uptime/``, ``irfs/``) into
the cache in one rename, so the cache holds either nothing or a complete, verified
release:

1. the archive is streamed into a temporary file inside the cache root, hashing it
   on the way (a short connection timeout makes an offline machine fail in seconds,
   with a message saying where to put the files by hand);
2. a download shorter than its announced length, or whose SHA-256 differs from the
   expected one, is deleted and reported;
3. every archive member is checked before anything is extracted: absolute paths,
   ``..`` components, drive letters, links and device files are refused (zip and
   tar; one nested archive, as Dataverse sometimes wraps files, is unpacked the same
   way);
4. the release folder is renamed into ``<cache>/<sub_path>`` (``icecube_10year_ps``,
   the layout SkyLLH's ``base_path`` also expects) and a manifest
   ``.bayesnu-fetch.json`` records URL, SHA-256, whether it was pinned, and every
   file with its size.

**Checksums.** A release's pinned SHA-256 lives in its
:class:`~bayesnu.data.ps_release.ReleaseSpec` (``sha256``). None is pinned yet: this
project was built without network access to the archive, and an unverified hash
would be worse than none. Until a maintainer pins one, a download needs either
``sha256=...`` (``--sha256 HEX``, a hash the user obtained from a trusted source) or
an explicit ``allow_unpinned=True`` (``--allow-unpinned``), which records the
computed hash with ``"pinned": false`` in the manifest so a later download can be
compared with it.

The cache root is ``$BAYESNU_DATA`` if set, otherwise the platform's user cache
directory (``platformdirs.user_cache_dir("bayesnu")``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import http.client
import json
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from bayesnu.data.atomic import atomic_write_text
from bayesnu.data.ps_release import ReleaseSpec, release_spec
from bayesnu.errors import FetchError

#: Environment variable naming the cache root.
ENV_VAR = "BAYESNU_DATA"

#: Manifest written into every fetched release folder.
MANIFEST = ".bayesnu-fetch.json"

#: Refuse archives that would unpack to more than this many bytes (zip bombs).
MAX_UNPACKED_BYTES = 50 * 1024**3

_CHUNK = 1 << 20


def cache_root() -> Path:
    """Root of the bayesnu data cache (``$BAYESNU_DATA`` or the platform cache directory)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bayesnu"))


def release_cache_dir(release: str = "10y", root: str | Path | None = None) -> Path:
    """Where a release lives in the cache: ``<root>/<sub_path>``."""
    spec = release_spec(release)
    return (Path(root).expanduser() if root is not None else cache_root()) / spec.sub_path


@dataclass(frozen=True)
class FetchResult:
    """Outcome of :func:`fetch_release`.

    Attributes
    ----------
    path
        Release folder (holds ``events/``, ``uptime/``, ``irfs/``).
    sha256
        SHA-256 of the downloaded archive.
    pinned
        Whether the hash was checked against a pinned/given value.
    url
        Where it came from.
    n_files, n_bytes
        Files unpacked and their total size.
    cached
        True when an existing verified copy was returned without downloading.
    """

    path: Path
    sha256: str
    pinned: bool
    url: str
    n_files: int
    n_bytes: int
    cached: bool

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "pinned": self.pinned,
            "url": self.url,
            "n_files": self.n_files,
            "n_bytes": self.n_bytes,
            "cached": self.cached,
        }


def _by_hand(spec: ReleaseSpec, target: Path) -> str:
    return (
        f"download the release by hand from https://doi.org/{spec.doi} and unpack it so that "
        f"{target}/events, {target}/uptime and {target}/irfs exist (or keep it anywhere and pass that "
        "folder to --data / load_ps_release; 'bayesnu data info DIR' checks it)"
    )


# ---------------------------------------------------------------------------- download


def _preflight(url: str, timeout_s: float) -> None:
    """Fail fast when the host cannot be reached (short TCP connect timeout)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
        pass


def _download(url: str, dest: Path, timeout_s: float, progress: bool | None) -> tuple[str, int]:
    """Stream ``url`` into ``dest``; return (sha256 hex, bytes). Raises on a short read."""
    from tqdm.auto import tqdm

    h = hashlib.sha256()
    n = 0
    req = urllib.request.Request(url, headers={"User-Agent": "bayesnu-fetch"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(dest, "wb") as out:
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        with tqdm(
            total=expected,
            unit="B",
            unit_scale=True,
            desc="download",
            disable=None if progress is None else not progress,
        ) as bar:
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
                bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    if expected is not None and n != expected:
        raise FetchError(f"download of {url} is truncated: got {n} of {expected} bytes")
    return h.hexdigest(), n


# ---------------------------------------------------------------------------- safe extraction


def _safe_member_path(name: str, archive: Path) -> PurePosixPath:
    """Validate an archive member name: relative, no '..', no drive; returns the normalised path."""
    norm = name.replace("\\", "/")
    p = PurePosixPath(norm)
    if norm.startswith("/") or p.is_absolute() or (len(norm) > 1 and norm[1] == ":"):
        raise FetchError(f"{archive}: member {name!r} has an absolute path; refusing to unpack this archive")
    if any(part == ".." for part in p.parts):
        raise FetchError(f"{archive}: member {name!r} escapes the target folder ('..'); refusing to unpack")
    return p


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            _safe_member_path(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise FetchError(
                    f"{archive}: member {info.filename!r} is a symbolic link; refusing to unpack"
                )
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise FetchError(
                    f"{archive}: member {info.filename!r} is not a regular file; refusing to unpack"
                )
            total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise FetchError(f"{archive}: would unpack to {total} bytes (> {MAX_UNPACKED_BYTES}); refusing")
        for info in infos:
            rel = _safe_member_path(info.filename, archive)
            target = dest.joinpath(*rel.parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        total = 0
        for m in members:
            _safe_member_path(m.name, archive)
            if m.issym() or m.islnk():
                raise FetchError(f"{archive}: member {m.name!r} is a link; refusing to unpack")
            if not (m.isfile() or m.isdir()):
                raise FetchError(f"{archive}: member {m.name!r} is not a regular file; refusing to unpack")
            total += m.size
        if total > MAX_UNPACKED_BYTES:
            raise FetchError(f"{archive}: would unpack to {total} bytes (> {MAX_UNPACKED_BYTES}); refusing")
        tf.extractall(dest, members=members, filter="data")


def _extract(archive: Path, dest: Path) -> None:
    if zipfile.is_zipfile(archive):
        _extract_zip(archive, dest)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, dest)
    else:
        raise FetchError(f"{archive}: not a zip or tar archive")


def _is_release_dir(d: Path) -> bool:
    return any((d / sub).is_dir() for sub in ("events", "uptime", "irfs"))


def _find_release_root(top: Path, archive: Path) -> Path:
    """The folder of an unpacked tree that holds events/, uptime/ or irfs/ (unpacks one nested archive)."""
    for _ in range(2):
        if _is_release_dir(top):
            return top
        for d in sorted(p for p in top.rglob("*") if p.is_dir()):
            if len(d.relative_to(top).parts) <= 3 and _is_release_dir(d):
                return d
        inner = [
            p for p in top.rglob("*") if p.is_file() and (zipfile.is_zipfile(p) or tarfile.is_tarfile(p))
        ]
        if len(inner) != 1:
            break
        nested = top / ".nested"
        nested.mkdir()
        _extract(inner[0], nested)
        inner[0].unlink()
        top = nested
    raise FetchError(
        f"{archive}: the archive holds no events/, uptime/ or irfs/ folder of a point-source release"
    )


# ---------------------------------------------------------------------------- main entry


def fetch_release(
    release: str = "10y",
    *,
    dest_dir: str | Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
    allow_unpinned: bool = False,
    timeout_s: float = 10.0,
    force: bool = False,
    progress: bool | None = None,
) -> FetchResult:
    """Download, verify and unpack a public point-source release into the cache.

    Parameters
    ----------
    release
        ``"10y"``/``"icecube-10y-ps"`` or ``"14y"``/``"icecube-14y-ps"``.
    dest_dir
        Cache root to use instead of :func:`cache_root`; the release goes into
        ``<dest_dir>/<sub_path>``.
    url
        Archive address (default: the release's public address); ``file://`` works.
    sha256
        Expected SHA-256 (hex) of the archive, overriding the release's pinned one.
    allow_unpinned
        Accept a download without any expected hash (the computed hash is recorded).
    timeout_s
        Connection and read timeout [s].
    force
        Replace an existing copy.
    progress
        Progress bar (default: only on a terminal).

    Returns
    -------
    FetchResult

    Raises
    ------
    FetchError
        No download address, no expected hash (and not ``allow_unpinned``),
        unreachable host, truncated download, checksum mismatch, unsafe or
        unrecognised archive, an existing folder (without ``force``). Nothing is left
        behind in the cache on failure.
    """
    spec = release_spec(release)
    root = Path(dest_dir).expanduser() if dest_dir is not None else cache_root()
    target = root / spec.sub_path
    address = url or spec.url
    if address is None:
        raise FetchError(
            f"the {spec.key} release ({spec.title}) has no public download address configured in "
            f"bayesnu yet; {_by_hand(spec, target)}"
        )
    expected = (sha256 or spec.sha256 or "").lower() or None
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise FetchError(f"--sha256 {sha256!r} is not a 64-digit hexadecimal SHA-256")
    manifest_path = target / MANIFEST
    if target.exists() and not force:
        if manifest_path.is_file():
            man = json.loads(manifest_path.read_text())
            if expected is not None and man.get("sha256") != expected:
                raise FetchError(
                    f"{target} holds a copy with SHA-256 {man.get('sha256')}, not the expected {expected}; "
                    "pass --force to download again"
                )
            return FetchResult(
                path=target,
                sha256=man["sha256"],
                pinned=bool(man.get("pinned")),
                url=man.get("url", address),
                n_files=len(man.get("files", [])),
                n_bytes=sum(f["bytes"] for f in man.get("files", [])),
                cached=True,
            )
        raise FetchError(
            f"{target} already exists but was not written by 'bayesnu data fetch' (no {MANIFEST}); bayesnu "
            "uses it as it is ('bayesnu data info DIR' checks it); pass --force to replace it by a download"
        )
    if expected is None and not allow_unpinned:
        raise FetchError(
            f"no SHA-256 is pinned for the {spec.key} release, so the download could not be verified; pass "
            "--sha256 HEX (a hash from a trusted source) or --allow-unpinned (the computed hash is recorded "
            f"in {MANIFEST} as unpinned)"
        )
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=root)
    os.close(fd)
    archive = Path(tmp_name)
    work = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    old: Path | None = None
    try:
        try:
            _preflight(address, timeout_s)
            digest, _ = _download(address, archive, timeout_s, progress)
        except FetchError as exc:
            raise FetchError(f"{exc}; {_by_hand(spec, target)}") from None
        except http.client.IncompleteRead as exc:
            raise FetchError(
                f"download of {address} is truncated ({len(exc.partial)} bytes in the last read, "
                f"{exc.expected} more expected); {_by_hand(spec, target)}"
            ) from None
        except urllib.error.HTTPError as exc:
            raise FetchError(
                f"could not download {address}: HTTP {exc.code} {exc.reason}; {_by_hand(spec, target)}"
            ) from None
        except (urllib.error.URLError, OSError, TimeoutError, ValueError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(
                f"could not download {address}: {reason} (offline?); {_by_hand(spec, target)}"
            ) from None
        if expected is not None and digest != expected:
            raise FetchError(
                f"SHA-256 mismatch for {address}: got {digest}, expected {expected}; the download was deleted"
            )
        _extract(archive, work)
        rel_root = _find_release_root(work, archive)
        files = sorted(p for p in rel_root.rglob("*") if p.is_file())
        manifest = {
            "release": spec.key,
            "url": address,
            "sha256": digest,
            "pinned": expected is not None,
            "fetched_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "files": [{"path": p.relative_to(rel_root).as_posix(), "bytes": p.stat().st_size} for p in files],
        }
        atomic_write_text(rel_root / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=".old-", dir=root))
            os.rename(target, old / "release")
        os.rename(rel_root, target)
        return FetchResult(
            path=target,
            sha256=digest,
            pinned=expected is not None,
            url=address,
            n_files=len(files),
            n_bytes=sum(f["bytes"] for f in manifest["files"]),
            cached=False,
        )
    finally:
        archive.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


__all__ = ["ENV_VAR", "MANIFEST", "FetchResult", "cache_root", "fetch_release", "release_cache_dir"]
