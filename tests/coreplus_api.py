"""A tiny blocking coreplus API client for tests: drives the sandbox as another app would.

Deliberately independent of the provider under test (urllib, hand-made multipart, its own JWT), so a
bug in the provider cannot hide behind the same bug here. ``claims`` overrides let tests forge bad
tokens (wrong url, expired...) to prove the sandbox is strict.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import jwt


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class CorePlusAPI:
    def __init__(self, remote: dict[str, str]) -> None:
        self.remote = remote
        self.base = remote["base_url"].rstrip("/")

    def token(self, method: str, url: str, /, secret: str | None = None, **overrides: Any) -> str:
        """A token as the doc describes it; ``overrides`` replace claims (None drops one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.remote["issuer"],
            "aud": self.remote["audience"],
            "nbf": now,
            "exp": now + 60,
            "consumerId": self.remote["consumer_id"],
            "accessToken": self.remote["access_token"],
            "url": url,
            "httpMethod": method,
        }
        claims.update(overrides)
        payload = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(payload, secret or self.remote["consumer_secret"], algorithm="HS256")

    def call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        authorization: str | None = None,
        claims: dict[str, Any] | None = None,
    ) -> Reply:
        url = self.base + path
        req = urllib.request.Request(url, data=body, method=method)
        if authorization is None and not path.startswith("/_sandbox/"):
            authorization = "JwToken " + self.token(method, url, **(claims or {}))
        if authorization:
            req.add_header("Authorization", authorization)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Reply(resp.status, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, err.read())

    # --- the documented API ---------------------------------------------------------------------

    def clients_page(self, page: int, size: int, **claims: Any) -> Reply:
        return self.call("GET", f"/API/Core/v2/Client/?pageNumber={page}&pageSize={size}", claims=claims)

    @staticmethod
    def multipart(meta: dict[str, Any], file: tuple[str, bytes] | None) -> tuple[bytes, str]:
        boundary = uuid.uuid4().hex
        out = [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="json"\r\nContent-Type: text/plain\r\n\r\n',
            json.dumps(meta).encode(),
            b"\r\n",
        ]
        if file is not None:
            name, data = file
            out += [
                f"--{boundary}\r\n".encode(),
                f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'.encode(),
                b"Content-Type: text/plain\r\n\r\n",
                data,
                b"\r\n",
            ]
        out.append(f"--{boundary}--\r\n".encode())
        return b"".join(out), f"multipart/form-data; boundary={boundary}"

    def upload(
        self, client: str, name: str, data: bytes, *, parent: str | None = None, size: int | None = None
    ) -> Reply:
        meta = {
            "parentFolderId": parent,
            "name": name,
            "size": str(len(data) if size is None else size),
            "isFolder": False,
            "entity": "Client",
            "primaryDomainKey": client,
        }
        body, ctype = self.multipart(meta, (name, data))
        return self.call("POST", "/API/Core/v2.1/File/", body=body, content_type=ctype)

    def mkdir(self, client: str, name: str, *, parent: str | None = None) -> Reply:
        meta = {"parentFolderId": parent, "name": name, "size": "0", "isFolder": True, "entity": "Client",
                "primaryDomainKey": client}  # fmt: skip
        body, ctype = self.multipart(meta, None)
        return self.call("POST", "/API/Core/v2.1/File/", body=body, content_type=ctype)

    # --- /_sandbox/ (inspection; the real API has none) -----------------------------------------

    def holdings(self) -> list[dict[str, Any]]:
        reply = self.call("GET", "/_sandbox/clients")
        assert reply.status == 200, reply
        clients: list[dict[str, Any]] = reply.json()["clients"]
        return clients

    def files_by_client(self) -> dict[str, list[str]]:
        """client id → sorted paths of its files (folders left out); duplicates stay visible."""
        return {c["clientId"]: sorted(i["path"] for i in c["items"] if not i["isFolder"]) for c in self.holdings()}

    def folders_by_client(self) -> dict[str, list[str]]:
        return {c["clientId"]: sorted(i["path"] for i in c["items"] if i["isFolder"]) for c in self.holdings()}

    def content(self, file_id: str) -> bytes:
        reply = self.call("GET", f"/_sandbox/files/{file_id}/content")
        assert reply.status == 200, reply
        return reply.body

    def add_client(self, first: str, last: str) -> dict[str, Any]:
        reply = self.call(
            "POST",
            "/_sandbox/clients",
            body=json.dumps({"firstName": first, "lastName": last}).encode(),
            content_type="application/json",
        )
        assert reply.status == 201, reply
        client: dict[str, Any] = reply.json()
        return client

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = self.call("GET", "/_sandbox/stats").json()
        return stats
