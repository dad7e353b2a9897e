"""Download and cache: checksums, atomic unpacking, unsafe archives, truncation, offline failure."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bayesnu.cli import main
from bayesnu.data.fetch import MANIFEST, cache_root, fetch_release
from bayesnu.errors import FetchError

_EVENTS = (
    b"# MJD[days] log10(E/GeV) AngErr[deg] RA[deg] Dec[deg] Azimuth[deg] Zenith[deg]\n"
    b"   54562.37911273     3.31     0.48   203.024    16.760   218.374   106.712\n"
)
RELEASE_FILES = {
    "events/IC40_exp.csv": _EVENTS,
    "uptime/IC40_exp.csv": b"# MJD_start[days] MJD_stop[days]\n   54562.37203080   54562.70626163\n",
    "irfs/IC40_effectiveArea.csv": b"# header\n",
    "README.txt": b"readme\n",
}


def _zip(path: Path, members: dict[str, bytes], prefix: str = "") -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(prefix + name, data)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_good_zip_unpacked_atomically_with_manifest(tmp_path: Path) -> None:
    archive = tmp_path / "release.zip"
    digest = _zip(archive, RELEASE_FILES, prefix="icecube_10year_ps/")
    root = tmp_path / "cache"
    res = fetch_release("10y", dest_dir=root, url=archive.as_uri(), sha256=digest)
    assert res.path == root / "icecube_10year_ps" and res.pinned and not res.cached
    assert (res.path / "uptime" / "IC40_exp.csv").read_bytes() == RELEASE_FILES["uptime/IC40_exp.csv"]
    man = json.loads((res.path / MANIFEST).read_text())
    assert man["sha256"] == digest and man["pinned"] is True
    assert {f["path"] for f in man["files"]} == set(RELEASE_FILES)
    assert _leftovers(root) == ["icecube_10year_ps"]  # no temporary files left
    # A second call returns the cached copy without downloading.
    again = fetch_release("10y", dest_dir=root, url=(tmp_path / "missing.zip").as_uri(), sha256=digest)
    assert again.cached and again.sha256 == digest
    with pytest.raises(FetchError, match="not the expected"):
        fetch_release("10y", dest_dir=root, sha256="0" * 64)


def test_files_at_top_level_and_nested_archive(tmp_path: Path) -> None:
    flat = tmp_path / "flat.zip"
    _zip(flat, RELEASE_FILES)
    res = fetch_release("10y", dest_dir=tmp_path / "c1", url=flat.as_uri(), allow_unpinned=True)
    assert (res.path / "events" / "IC40_exp.csv").is_file() and not res.pinned
    assert json.loads((res.path / MANIFEST).read_text())["pinned"] is False
    inner = tmp_path / "inner.zip"
    _zip(inner, RELEASE_FILES, prefix="data/")
    outer = tmp_path / "outer.zip"
    _zip(outer, {"20210126_PS-IC40-IC86_VII.zip": inner.read_bytes()})
    res = fetch_release("10y", dest_dir=tmp_path / "c2", url=outer.as_uri(), allow_unpinned=True)
    assert (res.path / "irfs" / "IC40_effectiveArea.csv").is_file()


def test_tar_archive(tmp_path: Path) -> None:
    archive = tmp_path / "r.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name, data in RELEASE_FILES.items():
            info = tarfile.TarInfo(f"rel/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    res = fetch_release("10y", dest_dir=tmp_path / "c", url=archive.as_uri(), allow_unpinned=True)
    assert (res.path / "events" / "IC40_exp.csv").read_bytes() == RELEASE_FILES["events/IC40_exp.csv"]


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "release.zip"
    _zip(archive, RELEASE_FILES)
    root = tmp_path / "cache"
    with pytest.raises(FetchError, match="SHA-256 mismatch"):
        fetch_release("10y", dest_dir=root, url=archive.as_uri(), sha256="ab" * 32)
    assert _leftovers(root) == []


@pytest.mark.parametrize("bad", ["../evil.txt", "/abs/evil.txt", "events/../../evil.txt", "C:/evil.txt"])
def test_path_traversal_rejected(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "evil.zip"
    _zip(archive, {**RELEASE_FILES, bad: b"pwned"})
    root = tmp_path / "cache"
    with pytest.raises(FetchError, match="refusing"):
        fetch_release("10y", dest_dir=root, url=archive.as_uri(), allow_unpinned=True)
    assert _leftovers(root) == []
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_members_rejected(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in RELEASE_FILES.items():
            zf.writestr(name, data)
        info = zipfile.ZipInfo("events/link")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(FetchError, match="symbolic link"):
        fetch_release("10y", dest_dir=tmp_path / "c", url=archive.as_uri(), allow_unpinned=True)
    tar = tmp_path / "link.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("rel/events/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(FetchError, match="link"):
        fetch_release("10y", dest_dir=tmp_path / "c", url=tar.as_uri(), allow_unpinned=True)
    assert _leftovers(tmp_path / "c") == []


def test_archive_without_release_folders(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    _zip(archive, {"something/else.txt": b"x"})
    with pytest.raises(FetchError, match="no events/, uptime/ or irfs/"):
        fetch_release("10y", dest_dir=tmp_path / "c", url=archive.as_uri(), allow_unpinned=True)
    assert _leftovers(tmp_path / "c") == []


# ---------------------------------------------------------------------------- loopback HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/truncated"):
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload) + 1000))
            self.end_headers()
            self.wfile.write(self.payload[: len(self.payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/missing"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    archive = tmp_path / "served.zip"
    digest = _zip(archive, RELEASE_FILES, prefix="icecube_10year_ps/")
    _Handler.payload = archive.read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", digest
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_http_download_and_truncation(http_server, tmp_path: Path) -> None:
    base, digest = http_server
    res = fetch_release(
        "10y", dest_dir=tmp_path / "ok", url=f"{base}/release.zip", sha256=digest, timeout_s=5
    )
    assert (res.path / "events" / "IC40_exp.csv").is_file()
    root = tmp_path / "trunc"
    with pytest.raises(FetchError, match="truncated"):
        fetch_release("10y", dest_dir=root, url=f"{base}/truncated.zip", allow_unpinned=True, timeout_s=5)
    assert _leftovers(root) == []
    with pytest.raises(FetchError, match=r"could not download .*: HTTP 404"):
        fetch_release(
            "10y", dest_dir=tmp_path / "nf", url=f"{base}/missing.zip", allow_unpinned=True, timeout_s=5
        )


def test_offline_fails_fast_with_instructions(tmp_path: Path) -> None:
    with socket.socket() as s:  # a free port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "cache"
    t0 = time.monotonic()
    with pytest.raises(FetchError) as err:
        fetch_release(
            "10y", dest_dir=root, url=f"http://127.0.0.1:{port}/r.zip", allow_unpinned=True, timeout_s=2
        )
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert (
        "could not download" in msg and "by hand" in msg and str(root / "icecube_10year_ps" / "events") in msg
    )
    assert _leftovers(root) == []


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as srv:  # accepts connections (backlog) but never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(FetchError, match="could not download"):
            fetch_release(
                "10y",
                dest_dir=tmp_path / "c",
                url=f"http://127.0.0.1:{port}/r.zip",
                allow_unpinned=True,
                timeout_s=1,
            )
        assert time.monotonic() - t0 < 30
    assert _leftovers(tmp_path / "c") == []


# ---------------------------------------------------------------------------- policy and CLI


def test_unpinned_needs_explicit_consent_and_14y_has_no_address(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="no SHA-256 is pinned"):
        fetch_release("10y", dest_dir=tmp_path)
    with pytest.raises(FetchError, match="no public download address"):
        fetch_release("14y", dest_dir=tmp_path, allow_unpinned=True)
    with pytest.raises(FetchError, match="64-digit"):
        fetch_release("10y", dest_dir=tmp_path, sha256="abc")
    (tmp_path / "icecube_10year_ps" / "events").mkdir(parents=True)
    with pytest.raises(FetchError, match="not written by 'bayesnu data fetch'"):
        fetch_release("10y", dest_dir=tmp_path, allow_unpinned=True)


def test_cache_root_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BAYESNU_DATA", str(tmp_path / "envcache"))
    assert cache_root() == tmp_path / "envcache"
    monkeypatch.delenv("BAYESNU_DATA")
    assert cache_root().name == "bayesnu"


def test_cli_fetch(tmp_path: Path, capsys) -> None:
    archive = tmp_path / "release.zip"
    digest = _zip(archive, RELEASE_FILES)
    rc = main(["data", "fetch", "icecube-10y-ps", "--dir", str(tmp_path / "c"), "--url", archive.as_uri(),
               "--sha256", digest, "--json"])  # fmt: skip
    assert rc == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["release"] == "10y" and obj["sha256"] == digest and obj["pinned"] is True
    rc = main(["data", "fetch", "--release", "14y", "--dir", str(tmp_path / "c"), "--allow-unpinned"])
    assert rc == 2 and "no public download address" in capsys.readouterr().err
    rc = main(["data", "fetch", "icecube-10y-ps", "--release", "14y", "--dir", str(tmp_path)])
    assert rc == 2 and "is the 10y release" in capsys.readouterr().err
