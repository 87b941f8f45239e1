"""The sandbox's S3 bucket for Cliniko attachments: presigned POST uploads and presigned GET downloads.

Shaped after S3: the POST form carries a base64 JSON ``policy`` signed with HMAC-SHA256
(``x-amz-signature``); every condition of the policy is checked, extra fields are refused, the file
part comes last and ``${filename}`` in the key is replaced by the file part's filename; success is
201 with a ``<PostResponse>`` XML body. Downloads are query-signed URLs (``X-Amz-Signature``) that
expire; like S3, a request that carries an ``Authorization`` header as well is refused with 400.
Errors are S3 XML. The signatures are HMACs with the sandbox secret, not real SigV4. The bucket is
served on an origin of its own (``cliniko_app.build_s3_app``); the API app knows it as ``S3_ORIGIN``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from aiohttp import BodyPartReader, web

from daemon.sandbox.blobs import CHUNK, new_blob_name
from daemon.sandbox.cliniko_backend import BUCKET, ClinikoBackend
from daemon.sandbox.middleware import ApiError

BACKEND = web.AppKey("cliniko_backend", ClinikoBackend)
S3_ORIGIN = web.AppKey("cliniko_s3_origin", str)  # in the API app: where the bucket app is served
ALGORITHM = "AWS4-HMAC-SHA256"
REGION = "ap-southeast-2"
_S3_CODES = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey", 405: "MethodNotAllowed"}


def xml_error(status: int, message: str) -> web.Response:
    code = _S3_CODES.get(status, "InternalError")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")


def _hmac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _amz_date(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


def _credential(backend: ClinikoBackend, amz_date: str) -> str:
    return f"SANDBOX{backend.credentials.api_user.upper()}/{amz_date[:8]}/{REGION}/s3/aws4_request"


def bucket_url(origin: str) -> str:
    return f"{origin}/s3/{BUCKET}"


def presigned_post(backend: ClinikoBackend, origin: str, patient_id: int) -> dict[str, Any]:
    """The body of ``GET /patients/ID/attachment_presigned_post``."""
    now = time.time()
    amz_date = _amz_date(now)
    credential = _credential(backend, amz_date)
    prefix = backend.upload_prefix(patient_id)
    expiration = datetime.fromtimestamp(now, UTC) + timedelta(seconds=backend.presign_ttl)
    policy_doc = {
        "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "conditions": [
            {"bucket": BUCKET},
            ["starts-with", "$key", prefix],
            {"acl": "private"},
            {"success_action_status": "201"},
            ["content-length-range", 0, backend.max_upload_size],
            {"x-amz-algorithm": ALGORITHM},
            {"x-amz-credential": credential},
            {"x-amz-date": amz_date},
        ],
    }
    policy = base64.b64encode(json.dumps(policy_doc).encode()).decode()
    return {
        "url": bucket_url(origin),
        "fields": {
            "key": prefix + "${filename}",
            "success_action_status": "201",
            "acl": "private",
            "policy": policy,
            "x-amz-credential": credential,
            "x-amz-algorithm": ALGORITHM,
            "x-amz-date": amz_date,
            "x-amz-signature": _hmac(backend.signing_secret, policy),
        },
    }


def presigned_get(backend: ClinikoBackend, origin: str, key: str, filename: str, content_type: str) -> str:
    """A query-signed download URL for ``key``, valid for ``presign_ttl`` seconds."""
    now = time.time()
    amz_date = _amz_date(now)
    expires = str(int(backend.presign_ttl))
    params = {
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": _credential(backend, amz_date),
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": expires,
        "X-Amz-SignedHeaders": "host",
        "response-content-disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
        "response-content-type": content_type,
    }
    params["X-Amz-Signature"] = _hmac(backend.signing_secret, f"GET\n{key}\n{amz_date}\n{expires}")
    return f"{bucket_url(origin)}/{quote(key, safe='/')}?{urlencode(params, quote_via=quote)}"


def _refuse_authorization(request: web.Request) -> None:
    if "Authorization" in request.headers:
        raise ApiError(
            400,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
            "parameter or the Authorization header should be specified",
        )


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


def _check_policy(backend: ClinikoBackend, fields: dict[str, str], size: int) -> None:
    policy = fields.get("policy")
    signature = fields.get("x-amz-signature")
    if not policy or not signature:
        raise ApiError(403, "Bucket POST must contain a policy and an x-amz-signature field")
    if not hmac.compare_digest(signature, _hmac(backend.signing_secret, policy)):
        raise ApiError(403, "The request signature we calculated does not match the signature you provided.")
    try:
        doc = json.loads(base64.b64decode(policy, validate=True))
        expiration = datetime.fromisoformat(doc["expiration"].replace("Z", "+00:00"))
        conditions = doc["conditions"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "Invalid Policy: Invalid JSON.") from None
    if datetime.now(UTC) > expiration:
        raise ApiError(403, "Invalid according to Policy: Policy expired.")
    covered = {"policy", "x-amz-signature", "file"}
    for condition in conditions:
        if isinstance(condition, dict):
            ((name, expected),) = condition.items()
            covered.add(name)
            given = BUCKET if name == "bucket" else fields.get(name)
            if given != expected:
                raise ApiError(403, f'Invalid according to Policy: Policy Condition failed: ["eq", "${name}", ...]')
        elif condition[0] == "starts-with":
            name = condition[1].lstrip("$")
            covered.add(name)
            if not str(fields.get(name, "")).startswith(condition[2]):
                raise ApiError(403, f'Invalid according to Policy: Policy Condition failed: ["starts-with", "${name}"]')
        elif condition[0] == "content-length-range" and not condition[1] <= size <= condition[2]:
            raise ApiError(400, "Your proposed upload exceeds the maximum allowed size")
    extra = sorted(k for k in fields if k not in covered and not k.startswith("x-ignore-"))
    if extra:
        raise ApiError(403, f"Invalid according to Policy: Extra input fields: {', '.join(extra)}")


async def post_object(request: web.Request) -> web.StreamResponse:
    """The presigned POST upload (multipart form, the ``file`` part last)."""
    backend = request.app[BACKEND]
    _refuse_authorization(request)
    if request.match_info["bucket"] != BUCKET:
        raise ApiError(404, "The specified bucket does not exist")
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(400, "POST requires a multipart/form-data body")
    fields: dict[str, str] = {}
    written = None
    filename = ""
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or not part.name:
            raise ApiError(400, "Malformed form part")
        if part.name == "file":
            filename = part.filename or ""
            written = await backend.blobs.write_stream(new_blob_name(), _part_chunks(part))
            break  # like S3: anything after the file is ignored
        fields[part.name.lower()] = await part.text()
    if written is None:
        raise ApiError(400, "Bucket POST must contain a field named 'file'.")
    try:
        _check_policy(backend, fields, written.size)
        key = fields.get("key", "").replace("${filename}", filename)
        if not key or key.endswith("/"):
            raise ApiError(400, "Bucket POST must contain a key and the file a filename")
        backend.store_object(key, written)
    except BaseException:
        backend.blobs.remove(written.name)
        raise
    location = f"{request.url.origin()}/s3/{BUCKET}/{quote(key, safe='/')}"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<PostResponse><Location>{escape(location)}</Location><Bucket>{BUCKET}</Bucket>"
        f"<Key>{escape(key)}</Key><ETag>&quot;{written.digest}&quot;</ETag></PostResponse>"
    )
    return web.Response(status=201, text=body, content_type="application/xml", headers={"ETag": f'"{written.digest}"'})


async def get_object(request: web.Request) -> web.StreamResponse:
    """A presigned download; no Authorization header allowed."""
    backend = request.app[BACKEND]
    _refuse_authorization(request)
    key = request.match_info["key"]
    query = request.query
    try:
        amz_date, expires, given = query["X-Amz-Date"], query["X-Amz-Expires"], query["X-Amz-Signature"]
        issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        lifetime = int(expires)
    except (KeyError, ValueError):
        raise ApiError(403, "Query-string authentication requires the X-Amz-* parameters") from None
    if not hmac.compare_digest(given, _hmac(backend.signing_secret, f"GET\n{key}\n{amz_date}\n{expires}")):
        raise ApiError(403, "The request signature we calculated does not match the signature you provided.")
    if datetime.now(UTC) > issued + timedelta(seconds=lifetime):
        raise ApiError(403, "Request has expired")
    obj = backend.objects.get(key)
    if obj is None or not backend.blobs.exists(obj.blob):
        raise ApiError(404, "The specified key does not exist.")
    headers = {
        "Content-Type": query.get("response-content-type") or "application/octet-stream",
        "ETag": f'"{obj.etag}"',
    }
    if query.get("response-content-disposition"):
        headers["Content-Disposition"] = query["response-content-disposition"]
    response = web.StreamResponse(status=200, headers=headers)
    response.content_length = obj.size
    await response.prepare(request)
    async for chunk in backend.blobs.read_range(obj.blob, 0, obj.size):
        await response.write(chunk)
    await response.write_eof()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_post("/s3/{bucket}", post_object)
    app.router.add_post("/s3/{bucket}/", post_object)
    app.router.add_get("/s3/" + BUCKET + "/{key:.+}", get_object)
