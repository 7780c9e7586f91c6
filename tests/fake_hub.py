"""A local stand-in for the Hugging Face hub: the endpoints `snapshot_download` and `hf_hub_download` of
huggingface_hub 2.4 call, serving repos from local folders.

Point a process at it with `HF_ENDPOINT` (read when huggingface_hub is imported, so run the code under test in a fresh
process: `FakeHub.env`). It answers as huggingface.co does:

- `GET /api/models/{repo}[/revision/{rev}]`: the repo's info, `sha` (the commit) and `siblings` (`rfilename`; size,
  `blobId` and `lfs` with `?blobs=true`).
- `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=`: tree entries, `{"type": "file", "path", "size", "oid",
  "lfs": {"oid", "size", "pointerSize"}}` (lfs only for LFS files) and `{"type": "directory", "path", "oid"}`.
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: a regular file is a relative 307 to `/api/resolve-cache/models/...`, which
  answers 200 with `X-Repo-Commit`, `ETag` (the git blob id) and `Content-Length`; an LFS file (as `.gitattributes`
  says: weights) is a 302 to a second origin (the CDN) with `X-Repo-Commit`, `X-Linked-Size` and `X-Linked-ETag` (its
  sha256), where the bytes are served with `Content-Length` and `Range` support.
- Errors carry `X-Error-Code`: an unknown repo is a 401 `RepoNotFound`, an unknown revision a 404
  `RevisionNotFound`, a missing file a 404 `EntryNotFound` with `X-Repo-Commit`.

No Xet headers: huggingface_hub downloads over plain HTTP. Every repo gets the `.gitattributes` real repos have, so
`allow_patterns` has files to leave out. `requests` records `(method, path)` of each request.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.onnx", "*.msgpack", "*.h5", "*.model")
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS).encode()
POINTER_SIZE = 134  # bytes of a git-lfs pointer file


@dataclass(frozen=True)
class RepoFile:
    path: str
    size: int
    blob_id: str  # git blob sha1 (of the pointer file for LFS files, as git stores them)
    sha256: str | None  # LFS files only
    source: Path | None  # None: `content`
    content: bytes = b""

    def read(self) -> bytes:
        return self.source.read_bytes() if self.source else self.content


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _file(path: str, data: bytes, source: Path | None) -> RepoFile:
    if any(fnmatch.fnmatch(path.rpartition("/")[2], pattern) for pattern in LFS_PATTERNS):
        sha256 = hashlib.sha256(data).hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()
        return RepoFile(path, len(data), _blob_id(pointer), sha256, source)
    return RepoFile(path, len(data), _blob_id(data), None, source, b"" if source else data)


class Repo:
    """One model repo at one commit: `folder`'s files (and a `.gitattributes` unless it has one)."""

    def __init__(self, repo_id: str, folder: Path):
        self.id = repo_id
        paths = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        self.files = {p.relative_to(folder).as_posix(): _file(p.relative_to(folder).as_posix(), p.read_bytes(), p)
                      for p in paths}  # fmt: skip
        self.files.setdefault(".gitattributes", _file(".gitattributes", GITATTRIBUTES, None))
        listing = "".join(f"{path} {file.blob_id}\n" for path, file in sorted(self.files.items()))
        self.sha = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()

    def folders(self) -> list[str]:
        return sorted({path.rsplit("/", i)[0] for path in self.files for i in range(1, path.count("/") + 1)})

    def tree(self, under: str, recursive: bool) -> list[dict]:
        prefix = f"{under}/" if under else ""
        entries = [{"type": "directory", "oid": hashlib.sha1(f"{self.sha}:{path}".encode()).hexdigest(), "size": 0,
                    "path": path} for path in self.folders()]  # fmt: skip
        for file in self.files.values():
            entry = {"type": "file", "oid": file.blob_id, "size": file.size, "path": file.path}
            if file.sha256:
                entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": POINTER_SIZE}
            entries.append(entry)
        inside = [e for e in entries if e["path"].startswith(prefix)]
        if not recursive:
            inside = [e for e in inside if "/" not in e["path"][len(prefix) :]]
        return sorted(inside, key=lambda e: (e["type"] != "directory", e["path"]))

    def info(self, blobs: bool) -> dict:
        siblings = []
        for file in self.files.values():
            sibling = {"rfilename": file.path}
            if blobs:
                sibling.update(size=file.size, blobId=file.blob_id)
                if file.sha256:
                    sibling["lfs"] = {"sha256": file.sha256, "size": file.size, "pointerSize": POINTER_SIZE}
            siblings.append(sibling)
        return {"_id": self.sha[:24], "id": self.id, "modelId": self.id, "author": self.id.partition("/")[0],
                "sha": self.sha, "lastModified": "2024-01-01T00:00:00.000Z", "private": False, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
                "createdAt": "2024-01-01T00:00:00.000Z"}  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub
    cdn: bool

    def log_message(self, format, *args):  # quiet: the test's output is the code under test's
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        with self.hub.lock:
            self.hub.requests.append((self.command, ("cdn" if self.cdn else "") + path))
        if self.cdn:
            return self._cdn(path, body)
        if path.startswith("/api/models/"):
            return self._api(path.removeprefix("/api/models/"), query, body)
        if path.startswith("/api/resolve-cache/models/"):
            org, name, commit, file = path.removeprefix("/api/resolve-cache/models/").split("/", 3)
            return self._resolve(f"{org}/{name}", commit, file, body, cached=True)
        parts = path.lstrip("/").split("/", 4)
        if len(parts) == 5 and parts[2] == "resolve":
            return self._resolve(f"{parts[0]}/{parts[1]}", parts[3], parts[4], body)
        self._error(404, "EntryNotFound", f"No route for {path}", body)

    def _repo(self, repo_id: str, revision: str, body: bool) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(401, "RepoNotFound", f"Repository Not Found for url: {self.path}.", body)
        elif revision not in ("main", repo.sha):
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
        else:
            return repo
        return None

    def _api(self, rest: str, query: dict, body: bool) -> None:
        org, _, rest = rest.partition("/")
        name, _, rest = rest.partition("/")
        kind, _, rest = rest.partition("/")
        if kind in ("", "revision"):
            repo = self._repo(f"{org}/{name}", rest or "main", body)
            if repo:
                self._json(repo.info(blobs=query.get("blobs", [""])[0].lower() == "true"), body)
        elif kind == "tree":
            revision, _, under = rest.partition("/")
            repo = self._repo(f"{org}/{name}", revision, body)
            if repo:
                recursive = query.get("recursive", ["false"])[0].lower() in ("true", "1")
                self._json(repo.tree(under.strip("/"), recursive), body)
        else:
            self._error(404, "EntryNotFound", f"No route for /api/models/{org}/{name}/{kind}", body)

    def _resolve(self, repo_id: str, revision: str, path: str, body: bool, cached: bool = False) -> None:
        repo = self._repo(repo_id, revision, body)
        if repo is None:
            return
        file = repo.files.get(path)
        if file is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on revision {revision}", body,
                               {"X-Repo-Commit": repo.sha})  # fmt: skip
        headers = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes"}
        if file.sha256:  # LFS: to the CDN, the real size and hash in X-Linked-*
            location = f"{self.hub.cdn_url}/repos/{quote(repo_id)}/{file.sha256}?filename={quote(path)}"
            self._send(302, {**headers, "Location": location, "ETag": f'"{file.sha256}"',
                             "X-Linked-ETag": f'"{file.sha256}"', "X-Linked-Size": str(file.size)}, b"", body)  # fmt: skip
        elif not cached:  # regular files: a relative redirect to the resolve cache, as huggingface.co does
            location = f"/api/resolve-cache/models/{quote(repo_id)}/{repo.sha}/{quote(path)}"
            self._send(307, {**headers, "Location": location, "ETag": f'"{file.blob_id}"'}, b"", body)
        else:
            self._bytes(file, {**headers, "ETag": f'"{file.blob_id}"'}, body)

    def _cdn(self, path: str, body: bool) -> None:
        _, _, rest = path.partition("/repos/")
        repo_id, _, sha256 = rest.rpartition("/")
        repo = self.hub.repos.get(repo_id)
        file = next((f for f in repo.files.values() if f.sha256 == sha256), None) if repo else None
        if file is None:
            return self._send(403, {"Content-Type": "text/plain"}, b"AccessDenied", body)
        if body:
            time.sleep(self.hub.cdn_delay)
        self._bytes(file, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"}, body)

    def _bytes(self, file: RepoFile, headers: dict, body: bool) -> None:
        data = file.read() if body else b""
        status, length = 200, file.size
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            start, _, end = ranged.removeprefix("bytes=").partition("-")
            first, last = int(start or 0), int(end) if end else file.size - 1
            headers["Content-Range"] = f"bytes {first}-{last}/{file.size}"
            status, length, data = 206, last + 1 - first, data[first : last + 1]
        self._send(status, {**headers, "Content-Type": "application/octet-stream"}, data, body, length)

    def _json(self, payload, body: bool) -> None:
        self._send(200, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(payload).encode(), body)

    def _error(self, status: int, code: str, message: str, body: bool, headers: dict | None = None) -> None:
        payload = json.dumps({"error": message}).encode()
        self._send(status, {**(headers or {}), "Content-Type": "application/json; charset=utf-8",
                            "X-Error-Code": code, "X-Error-Message": message}, payload, body)  # fmt: skip

    def _send(self, status: int, headers: dict, data: bytes, body: bool, length: int | None = None) -> None:
        self.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(data) if length is None else length)}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)


class FakeHub:
    """The hub on `127.0.0.1` (`endpoint`) and its CDN on a second port (`cdn_url`), serving `repos` (repo id ->
    folder) from daemon threads; a context manager. `cdn_delay`: seconds before the CDN answers a GET, so the small
    regular files are done before any weight's bytes start (a CDN's first byte is the slow one)."""

    def __init__(self, repos: dict[str, Path | str], cdn_delay: float = 0.0):
        self.repos = {repo_id: Repo(repo_id, Path(folder)) for repo_id, folder in repos.items()}
        self.cdn_delay = cdn_delay
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    def start(self) -> FakeHub:
        for cdn in (False, True):
            handler = type("Handler", (_Handler,), {"hub": self, "cdn": cdn})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._servers.append(server)
        self.endpoint, self.cdn_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in self._servers)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self, base: dict[str, str], hub_cache: Path | str) -> dict[str, str]:
        """`base` with `HF_ENDPOINT` at this hub, `HF_HUB_CACHE` at `hub_cache` and without `HF_HUB_OFFLINE`."""
        env = {k: v for k, v in base.items() if k not in ("HF_HUB_OFFLINE", "HF_HOME", "HF_TOKEN")}
        return {**env, "HF_ENDPOINT": self.endpoint, "HF_HUB_CACHE": str(hub_cache), "HF_HUB_DISABLE_TELEMETRY": "1"}
