"""Each export's sync state: what it last delivered to its list, in blobs of the export-sync-state container.

<export id>/<state id>/manifest.json    the digest key, and which account and list the state is of
<export id>/<state id>/shards/<shard>   one line per contact: normalised email, tab, digest of what was sent

A state belongs to one export, account, list and mapping (its state id is derived from them), so
changing any of them gives the next run an empty state: everyone is sent again. Shards are fixed
by a stable hash of the email (SHARDS), so the state does not depend on how many chunks a run has.
A shard is replaced as a whole blob, which Blob Storage makes atomic: a reader sees the old state
or the new one, never a mix. The emails are personal data kept for as long as the export exists:
deleting the export deletes its state.
"""
from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Mapping

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared import compact_json
from shared.storage import delete_blobs

# About 4,000 contacts (200 KB) a shard at a million. Fewer shards would make chunks of big segments
# long; more would make every run of a small one read and write hundreds of tiny blobs.
SHARDS = 256
DIGEST_BYTES = 12  # 96 bits: a changed contact goes unnoticed with odds of 2**-96
_MANIFEST = "manifest.json"


def shard_of(email: str) -> int:
    return zlib.crc32(email.encode("utf-8")) % SHARDS  # stable across processes, unlike hash()


def state_id_of(hostname: str, list_id: str, columns: Mapping[str, str]) -> str:
    """The state's identity: a new account, list or mapping starts a state of its own (everyone is sent again)."""
    identity = json.dumps({"hostname": hostname.lower(), "listId": str(list_id), "mapping": dict(sorted(columns.items()))},
                          sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def digest(contact: Mapping[str, object], key: bytes) -> str:
    """A keyed hash of exactly what is sent for a contact. Keyed (the key is in the state's manifest),
    so a digest cannot be matched against guessed names or phone numbers without the key."""
    return hashlib.blake2b(compact_json.dumps(contact, sort_keys=True), digest_size=DIGEST_BYTES, key=key).hexdigest()


class SyncStateStore:
    def __init__(self, container_client):
        self._container = container_client
        self._keys: dict[tuple[str, str], bytes] = {}

    def prepare(self, export_id: str, state_id: str, description: Mapping[str, str]) -> None:
        """Create the state's manifest (its digest key) unless it exists; safe to race."""
        manifest = {"key": os.urandom(32).hex(), **description}
        try:
            self._blob(export_id, state_id, _MANIFEST).upload_blob(json.dumps(manifest).encode(), overwrite=False)
        except ResourceExistsError:
            pass

    def key(self, export_id: str, state_id: str) -> bytes:
        cached = self._keys.get((export_id, state_id))
        if cached is None:
            data = self._blob(export_id, state_id, _MANIFEST).download_blob().readall()
            cached = self._keys[(export_id, state_id)] = bytes.fromhex(json.loads(data)["key"])
        return cached

    def existing_shards(self, export_id: str, state_id: str) -> set[int]:
        """The shards that hold contacts (one listing, instead of a failed read per empty shard)."""
        prefix = self._name(export_id, state_id, "shards/")
        return {int(name.rsplit("/", 1)[1]) for name in self._container.list_blob_names(name_starts_with=prefix)}

    def read_shard(self, export_id: str, state_id: str, shard: int) -> dict[str, str]:
        """Email -> digest of the contacts the shard holds (empty when it holds none)."""
        try:
            data = self._blob(export_id, state_id, _shard_name(shard)).download_blob().readall()
        except ResourceNotFoundError:
            return {}
        entries = {}
        for line in data.decode("utf-8").splitlines():
            email, _, value = line.partition("\t")
            entries[email] = value
        return entries

    def write_shard(self, export_id: str, state_id: str, shard: int, entries: Mapping[str, str]) -> None:
        blob = self._blob(export_id, state_id, _shard_name(shard))
        if not entries:
            try:
                blob.delete_blob()
            except ResourceNotFoundError:
                pass
            return
        body = "".join(f"{email}\t{value}\n" for email, value in sorted(entries.items())).encode("utf-8")
        blob.upload_blob(body, overwrite=True)  # one Put Blob: the shard is replaced atomically

    def delete_export(self, export_id: str) -> None:
        """Every state of the export (it was deleted)."""
        delete_blobs(self._container, f"{export_id}/")
        self._keys = {k: v for k, v in self._keys.items() if k[0] != export_id}

    def delete_other_states(self, export_id: str, keep: str) -> None:
        """States of the export's former accounts, lists or mappings: they are never read again."""
        for state_id in self._state_ids(export_id) - {keep}:
            delete_blobs(self._container, self._name(export_id, state_id, ""))

    def export_ids(self) -> set[str]:
        """Exports that have a state (the retention sweep removes those of deleted exports)."""
        return {prefix.name.rstrip("/") for prefix in self._container.walk_blobs(delimiter="/")}

    def _state_ids(self, export_id: str) -> set[str]:
        return {prefix.name.rstrip("/").rsplit("/", 1)[1]
                for prefix in self._container.walk_blobs(name_starts_with=f"{export_id}/", delimiter="/")}

    def _name(self, export_id: str, state_id: str, rest: str) -> str:
        return f"{export_id}/{state_id}/{rest}"

    def _blob(self, export_id: str, state_id: str, rest: str):
        return self._container.get_blob_client(self._name(export_id, state_id, rest))


def _shard_name(shard: int) -> str:
    return f"shards/{shard:04d}"
