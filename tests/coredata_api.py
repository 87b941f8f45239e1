"""A tiny blocking CoreData API client for tests: drives the sandbox as a user or another app would.

Deliberately independent of the provider under test (urllib, hand-made multipart), so a bug in the
provider cannot hide behind the same bug here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class CoreDataAPI:
    def __init__(self, remote: dict[str, str]) -> None:
        self.base = remote["base_url"].rstrip("/")
        self.root = remote["root"]
        self.auth = f"apikey {remote['api_user']}:{remote['api_key']}"

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        auth: bool = True,
    ) -> Reply:
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, data=body, method=method)
        if auth:
            req.add_header("Authorization", self.auth)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with _opener.open(req, timeout=30) as resp:
                return Reply(resp.status, dict(resp.headers), resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, dict(err.headers), err.read())

    def _all(self, path: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        url: str | None = path + "?limit=100"
        while url:
            reply = self.call("GET", url)
            assert reply.status == 200, reply
            data = reply.json()
            out.extend(data["objects"])
            url = data["meta"]["next"]
        return out

    def folders(self) -> list[dict[str, Any]]:
        return self._all("/api/v2/folders/")

    def files(self) -> list[dict[str, Any]]:
        return self._all("/api/v2/files/")

    def tree(self) -> dict[str, dict[str, Any]]:
        """Every file under the root as {relative path: file object}, trash excluded."""
        folders = {f["id"]: f for f in self.folders()}

        def rel(parent: str) -> str | None:
            parts: list[str] = []
            while parent != self.root:
                folder = folders.get(parent)
                if folder is None:
                    return None
                parts.append(folder["title"])
                parent = folder["parent"]
            return "/".join(reversed(parts))

        out: dict[str, dict[str, Any]] = {}
        for f in self.files():
            base = rel(f["parent"])
            if base is None:
                continue
            out[f"{base}/{f['filename']}".lstrip("/")] = f
        return out

    def folder_paths(self) -> dict[str, str]:
        """{relative path: id} of every folder under the root."""
        folders = {f["id"]: f for f in self.folders()}
        out: dict[str, str] = {}
        for fid in folders:
            parts: list[str] = []
            cur = fid
            while cur != self.root and cur in folders:
                parts.append(folders[cur]["title"])
                cur = folders[cur]["parent"]
            if cur == self.root:
                out["/".join(reversed(parts))] = fid
        return out

    def content(self, file_id: str) -> bytes:
        reply = self.call("GET", f"/api/v2/files/{file_id}/content/")
        assert reply.status == 302, reply
        got = self.call("GET", urllib.parse.urljoin(self.base + "/", reply.headers["Location"]), auth=False)
        assert got.status == 200, got
        return got.body

    def create(self, parent: str, filename: str, data: bytes) -> str:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in (
            ("filename", filename),
            ("title", filename.rsplit(".", 1)[0]),
            ("parent", parent),
        ):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
        parts.append(f"--{boundary}--\r\n".encode())
        reply = self.call(
            "POST",
            "/api/v2/files/",
            body=b"".join(parts),
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        assert reply.status == 201, reply
        return reply.headers["Location"].rstrip("/").rsplit("/", 1)[1]

    def update(self, file_id: str, data: bytes, snapshot_id: str | None = None) -> Reply:
        query = f"?snapshot_id={snapshot_id}" if snapshot_id else ""
        return self.call(
            "PUT",
            f"/api/v2/files/{file_id}/content/{query}",
            body=data,
            content_type="application/octet-stream",
        )

    def move(self, file_id: str, parent: str, filename: str) -> Reply:
        body = json.dumps({"filename": filename, "title": filename.rsplit(".", 1)[0], "parent": parent}).encode()
        return self.call("PUT", f"/api/v2/files/{file_id}/", body=body, content_type="application/json")

    def delete(self, file_id: str) -> Reply:
        return self.call("DELETE", f"/api/v2/files/{file_id}/")

    def mkdir(self, parent: str, title: str) -> str:
        body = json.dumps({"title": title, "parent": parent}).encode()
        reply = self.call("POST", "/api/v2/folders/", body=body, content_type="application/json")
        assert reply.status == 201, reply
        return reply.headers["Location"].rstrip("/").rsplit("/", 1)[1]
