"""Entity tags: a strong ETag per representation, and the matching rules of RFC 9110 section 13.

The tag is a hash of the encoded body, so it changes whenever any field of the representation
does, and is the same on every instance; the HTTP layer tags item responses with it, and the CRUD
rules compare `If-Match` against the tag of the row they lock.
"""

from __future__ import annotations

from hashlib import blake2b


def etag(body: bytes) -> bytes:
    """The strong entity tag of `body`, quoted, as the ETag header carries it."""
    return b'"' + blake2b(body, digest_size=12).hexdigest().encode() + b'"'


def _tags(header: bytes) -> list[bytes]:
    return [tag.strip() for tag in header.split(b",") if tag.strip()]


def none_match(header: bytes, tag: bytes) -> bool:
    """If-None-Match is false for `tag` (so a GET answers 304): weak comparison, or `*`."""
    return any(t == b"*" or t.removeprefix(b"W/") == tag for t in _tags(header))


def match(header: str, tag: bytes) -> bool:
    """If-Match holds for the current `tag`: strong comparison (a weak tag never matches)."""
    return any(t == b"*" or t == tag for t in _tags(header.encode("latin-1")))
