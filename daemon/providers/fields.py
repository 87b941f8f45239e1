"""Reading response fields we can trust: every value type-checked, every failure an ``InvalidResponse``
that names the object and the field, so a server answering something odd is reported, never guessed at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from daemon.vocab import InvalidResponse


def require_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` if it is a JSON object; else ``InvalidResponse("<what> is a list, not an object")``."""
    if not isinstance(value, dict):
        raise InvalidResponse(f"{what} is a {type(value).__name__}, not an object")
    return value


def require_text(value: Any, message: str) -> str:
    """``value`` if it is a non-empty string; else ``InvalidResponse(message)``."""
    if not isinstance(value, str) or not value:
        raise InvalidResponse(message)
    return value


@dataclass(frozen=True, slots=True)
class FieldReader:
    """Reads typed fields of one kind of API object.

    ``subject`` names the object in messages (``"CoreData object"``), followed by the object's
    ``id_key`` value. A bool is never taken for a number (JSON ``true`` is an int to Python). Where the
    API leaves out null fields (``absent_is_null``), a missing field reads as null.
    """

    subject: str
    id_key: str = "id"
    absent_is_null: bool = False
    type_word: str = "has type"

    def __call__(
        self, obj: Mapping[str, Any], name: str, kind: type | tuple[type, ...], *, nullable: bool = False
    ) -> Any:
        """The field ``name`` of ``obj``, of type ``kind`` (or None where ``nullable``)."""
        if name not in obj and not self.absent_is_null:
            raise InvalidResponse(f"{self.subject} {obj.get(self.id_key, '?')!r} lacks field {name!r}")
        value = obj.get(name)
        if value is None and nullable:
            return None
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise InvalidResponse(
                f"{self.subject} {obj.get(self.id_key, '?')!r}: field {name!r} {self.type_word} {type(value).__name__}"
            )
        return value
