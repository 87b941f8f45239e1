"""A tiny blocking Cliniko API client for tests: drives the sandbox as a clinic's staff (or another app)
would. Deliberately independent of the provider under test (urllib, hand-made multipart)."""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
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


def _send(req: urllib.request.Request) -> Reply:
    try:
        with _opener.open(req, timeout=30) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as err:
        return Reply(err.code, dict(err.headers), err.read())


class ClinikoAPI:
    def __init__(self, remote: dict[str, str]) -> None:
        self.base = remote["base_url"].rstrip("/")
        self.origin = self.base.rsplit("/v1", 1)[0]
        token = base64.b64encode(f"{remote['api_key']}:".encode()).decode()
        self.headers = {
            "Authorization": f"Basic {token}",
            "User-Agent": "clinic staff (staff@clinic.example)",
            "Accept": "application/json",
        }

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        url = path if path.startswith("http") else self.base + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=dict(self.headers))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for _ in range(20):  # the sandbox may be rate limited on purpose: wait like a polite client
            reply = _send(req)
            if reply.status != 429:
                return reply
            time.sleep(max(0.1, float(reply.headers.get("X-RateLimit-Reset", "0")) - time.time()))
        return reply

    def all(self, path: str, key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        link: str | None = path + ("&" if "?" in path else "?") + "per_page=100"
        while link:
            reply = self.call("GET", link)
            assert reply.status == 200, (reply.status, reply.body[:300])
            page = reply.json()
            out += page[key]
            link = page["links"].get("next")
        return out

    def patients(self) -> dict[str, dict[str, Any]]:
        return {p["id"]: p for p in self.all("/patients", "patients")}

    def attachments(self, *, archived: bool = False) -> list[dict[str, Any]]:
        query = "?q%5B%5D=archived_at:*" if archived else ""
        return self.all("/patient_attachments" + query, "patient_attachments")

    @staticmethod
    def patient_of(attachment: dict[str, Any]) -> str:
        return str(attachment["patient"]["links"]["self"]).rstrip("/").rpartition("/")[2]

    def content(self, attachment_id: str) -> bytes:
        first = self.call("GET", f"/patient_attachments/{attachment_id}/content")
        assert first.status == 303, first.status
        reply = _send(urllib.request.Request(first.headers["Location"]))  # presigned: no Authorization
        assert reply.status == 200, reply.status
        return reply.body

    def by_patient(self) -> dict[str, dict[str, bytes]]:
        """Every live, processed attachment's content, by patient id and filename."""
        out: dict[str, dict[str, bytes]] = {}
        for a in self.attachments():
            if a["processing_completed"]:
                out.setdefault(self.patient_of(a), {})[a["filename"]] = self.content(a["id"])
        return out

    def upload(self, patient_id: str, filename: str, data: bytes) -> str:
        """The documented upload flow; returns the new attachment's id once processed."""
        post = self.call("GET", f"/patients/{patient_id}/attachment_presigned_post").json()
        boundary = uuid.uuid4().hex
        chunks: list[bytes] = []
        for key, value in post["fields"].items():
            chunks.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        req = urllib.request.Request(post["url"], data=b"".join(chunks), method="POST")
        req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        posted = _send(req)
        assert posted.status == 201, posted.body
        key = ET.fromstring(posted.body).findtext("Key")
        upload_url = post["url"] + "/" + urllib.parse.quote(str(key), safe="/")
        created = self.call("POST", "/patient_attachments", {"patient_id": patient_id, "upload_url": upload_url})
        assert created.status == 201, created.body
        attachment_id = str(created.json()["id"])
        for _ in range(100):
            if self.call("GET", f"/patient_attachments/{attachment_id}").json()["processing_completed"]:
                return attachment_id
            time.sleep(0.1)
        raise AssertionError(f"attachment {attachment_id} never finished processing")

    def archive(self, attachment_id: str) -> int:
        return self.call("POST", f"/patient_attachments/{attachment_id}/archive").status

    def rename_patient(self, patient_id: str, first_name: str, last_name: str) -> int:
        return self.call("PATCH", f"/patients/{patient_id}", {"first_name": first_name, "last_name": last_name}).status

    def api_log(self) -> list[dict[str, Any]]:
        """The sandbox's own record of every /v1 request (time, method, path, status)."""
        reply = _send(urllib.request.Request(self.origin + "/_sandbox/api_log"))
        return list(json.loads(reply.body)["requests"])
