"""The body of the List a poll's probe found changed, held for that poll's fetch.

Why: a poll first asks whether each List changed (`Transport.get_list(unless_version=...)`),
which downloads and signs the whole body. When one did change, the fetch downloaded the same
body again: 16 MB at 5,000 Services, about 45 ms of a 300 ms changed pass. Now the probe
copies the body into one buffer and the fetch cuts it from there (`Transport.get_cut`).

Rules:
- One body at a time: the last probe's, and only if its List changed.
- It serves one fetch: the next `take` of the same path and query. A poll drops it when it
  begins (`drop`), so a body never outlives its poll.
- Nothing is kept between polls: a buffer is made for each probe and let go by `take` or
  `drop` (a cut's items, views into it, keep it alive while the fetch reads them). Keeping
  16 MB resident between polls would raise the daemon's peak RSS by as much (measured at
  5,000 Services: 143 -> 158 MB); a fresh buffer per probe costs a revision-churn poll about
  2 ms, as the allocator hands back the pages the last one freed.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

Key = Tuple[str, Tuple[Tuple[str, str], ...]]  # path, sorted query


def key(path: str, params: Dict[str, str]) -> Key:
    return path, tuple(sorted(params.items()))


class Body:
    """`start`, `add` each chunk, then `hold`; `take` hands it to the fetch, once."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._held: Optional[Tuple[Key, str, Any]] = None  # key, signature, response (for messages)

    def drop(self) -> None:
        self._buf, self._held = bytearray(), None

    def start(self) -> None:
        self.drop()

    def add(self, chunk: bytes) -> None:
        self._buf += chunk

    def hold(self, where: Key, signature: str, resp: Any) -> None:
        """The body added since `start` is whole: keep it for the fetch of `where`."""
        self._held = (where, signature, resp)

    def take(self, where: Key) -> Optional[Tuple[bytearray, str, Any]]:
        """(body, signature, response) when the held body is the one of `where`; then no longer held."""
        if self._held is None or self._held[0] != where:
            return None
        body, (_, signature, resp) = self._buf, self._held
        self.drop()
        return body, signature, resp
