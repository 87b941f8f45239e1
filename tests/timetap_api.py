"""A tiny blocking TimeTap API client for tests: drives the sandbox as a front-desk user would.

Deliberately independent of the provider under test (urllib, hand-made multipart), so a bug in the
provider cannot hide behind the same bug here.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any


class TimeTapAPI:
    def __init__(self, remote: dict[str, Any]) -> None:
        self.base = str(remote["base_url"]).rstrip("/")
        self.remote = remote
        self.token = ""

    def login(self) -> None:
        key, private = str(self.remote["api_key"]), str(self.remote["private_key"])
        query = urllib.parse.urlencode(
            {
                "apiKey": key,
                "timestamp": str(int(time.time())),
                "signature": hashlib.md5((key + private).encode()).hexdigest(),
            }
        )
        with urllib.request.urlopen(f"{self.base}/sessionToken?{query}", timeout=30) as resp:
            self.token = json.load(resp)["sessionToken"]

    def call(
        self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, bytes]:
        if not self.token:
            self.login()
        for attempt in range(2):
            req = urllib.request.Request(self.base + path, data=body, method=method)
            req.add_header("Authorization", f"Bearer {self.token}")
            if content_type:
                req.add_header("Content-Type", content_type)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, resp.read()
            except urllib.error.HTTPError as err:
                if err.code == 401 and attempt == 0:
                    self.login()
                    continue
                return err.code, err.read()
        raise AssertionError("unreachable")

    def files(self) -> list[dict[str, Any]]:
        status, body = self.call("GET", "/files")
        assert status == 200, body
        result: list[dict[str, Any]] = json.loads(body)
        return result

    def tree(self) -> dict[str, dict[str, Any]]:
        """Every live object by its path from the top of the library (folders end with "/")."""
        objects = {o["fileLibraryUUID"]: o for o in self.files() if not o["deleted"]}

        def path(obj: dict[str, Any]) -> str:
            parts = [obj["fileName"]]
            parent = obj["parentFileLibraryUUID"]
            while parent is not None:
                parts.append(objects[parent]["fileName"])
                parent = objects[parent]["parentFileLibraryUUID"]
            return "/".join(reversed(parts))

        return {path(o) + ("/" if o["fileLibraryType"] == "FOLDER" else ""): o for o in objects.values()}

    def content(self, obj: dict[str, Any]) -> bytes:
        with urllib.request.urlopen(obj["url"], timeout=30) as resp:
            data: bytes = resp.read()
            return data

    def upload(self, data: bytes, name: str, parent: str | None = None) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        fields = {
            "businessId": str(self.remote["business_id"]),
            "uploadedFileName": name,
            "userName": "front.desk",
        }
        if parent:
            fields["parentFileLibraryUUID"] = parent
        chunks: list[bytes] = []
        for key, value in fields.items():
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, body = self.call(
            "POST",
            "/businessWeb/fileUploadS3.do",
            body=b"".join(chunks),
            content_type=f"multipart/form-data; boundary={boundary}",
        )
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def delete(self, object_id: str) -> int:
        return self.call("DELETE", f"/files/{object_id}")[0]

    def update(self, obj: dict[str, Any], **changes: Any) -> dict[str, Any]:
        status, body = self.call(
            "POST", "/files", body=json.dumps({**obj, **changes}).encode(), content_type="application/json"
        )
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result
