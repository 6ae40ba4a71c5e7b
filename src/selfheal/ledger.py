"""The hash chain behind the write-ahead ledger: canonical form, entry hashes, verification.

Pure functions over values. The store appends entries with `entry_hash`; `verify` walks the
stored rows and names the first entry that was changed, removed or reordered. Each entry's
hash covers its position (seq), its content and the previous entry's hash, so editing one row,
deleting one or swapping two breaks the chain exactly there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from selfheal import errors

GENESIS = "0" * 64


@dataclasses.dataclass(frozen=True)
class RawEntry:
    """A ledger row as stored: the payload is the exact canonical JSON text that was hashed."""

    seq: int
    ts: float
    incident_id: str
    kind: str
    payload: str
    prev_hash: str
    hash: str


def canonical(payload: Any) -> str:
    """The one JSON text of a payload: sorted keys, no spaces, no NaN."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def entry_hash(prev_hash: str, seq: int, ts: float, incident_id: str, kind: str,
               payload: str) -> str:
    header = canonical([prev_hash, seq, repr(float(ts)), incident_id, kind])
    return hashlib.sha256(f"{header}\n{payload}".encode()).hexdigest()


def verify(entries: Iterable[RawEntry]) -> int:
    """Check the chain; return the number of entries, raise `LedgerCorrupt` at the first bad one."""
    prev = GENESIS
    expected_seq = 1
    count = 0
    for e in entries:
        if e.seq != expected_seq:
            missing = "removed" if e.seq > expected_seq else "duplicated or reordered"
            raise errors.LedgerCorrupt(
                expected_seq, f"entry missing ({missing}); found seq {e.seq} instead")
        if e.prev_hash != prev:
            raise errors.LedgerCorrupt(e.seq, "does not link to the entry before it "
                                       "(an earlier entry was changed, removed or reordered)")
        if entry_hash(e.prev_hash, e.seq, e.ts, e.incident_id, e.kind, e.payload) != e.hash:
            raise errors.LedgerCorrupt(e.seq, f"content does not match its hash ({e.kind})")
        prev = e.hash
        expected_seq += 1
        count += 1
    return count
