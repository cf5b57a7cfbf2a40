"""The audit log's event kinds, one constructor each (docs/audit-format.md). Every entry the
gateway writes is built here; the verifier and `gateway trace` read entries back with the
readers below, so writer and readers cannot drift apart."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Literal

from gateway.audit.canonical import JsonValue
from gateway.model.decision import Verdict

Event = dict[str, JsonValue]


class Kind(StrEnum):
    HTTP = "http"  # one per call (HTTP or refused by the parser)
    ADMIN = "admin"  # one per admin action (CLI commands, policy reloads, key rotations)


KEY_ROTATE = "key.rotate"
ClientAction = Literal[
    "client.add", "client.rotate_secret", "client.disable", "client.enable", "client.retire"
]
TokenKeyStep = Literal["published", "activated"]


def http_call(
    *,
    rid: str,
    method: str,
    route: str | None,
    path_hmac: str,
    query_hmac: str | None,
    status: int,
    client: str | None,
    token_sha256: str | None,
    decision: Verdict,
    reason: str | None,
    dataset: str | None,
    purpose: str | None,  # a purpose the policy set declares; "(undeclared)" otherwise
    grant: str | None,
    policy: str | None,
    transforms: Sequence[str],
    rows: int,
    resp_sha256: str | None,  # None for a streamed export: logged before its body exists
    rejected: str | None = None,  # the parser's defect, when it refused the request
    peer: str | None = None,  # ... and who sent it (only then)
    view: str | None = None,  # the view a released page was cut from (allowed 200s only)
    row_ids: str | None = None,  # which of its rows left (audit/rowset.py)
    export: str | None = None,  # a streamed export's format (its rows: view and row_ids)
    # Endpoint fields: an aggregate's query (`aggregate`) and privacy budget (`dp`).
    extra: Mapping[str, JsonValue] | None = None,
) -> Event:
    """One call as the audit middleware logs it. The raw path and query never appear: only
    their HMACs under a workspace key (a value in a filter could be personal). A function that
    builds the event at once (it runs once per call: a frozen dataclass of the same fields
    cost three times as much to build, for nothing)."""
    event: Event = {
        "kind": Kind.HTTP.value,
        "rid": rid,
        "method": method,
        "route": route,
        "path_hmac": path_hmac,
        "query_hmac": query_hmac,
        "status": status,
        "client": client,
        "token_sha256": token_sha256,
        "decision": decision.value,
        "reason": reason,
        "dataset": dataset,
        "purpose": purpose,
        "grant": grant,
        "policy": policy,
        "transforms": list(transforms),
        "rows": rows,
        "resp_sha256": resp_sha256,
    }
    if rejected is not None:
        event["rejected"] = rejected
        event["peer"] = peer
    if view is not None:
        event["view"] = view
        event["row_ids"] = row_ids
    if export is not None:
        event["export"] = export
    if extra:
        for name, value in extra.items():
            event.setdefault(name, value)  # never over a field above
    return event


def _admin(action: str, actor: str, detail: Mapping[str, JsonValue]) -> Event:
    return {"kind": Kind.ADMIN.value, "action": action, "actor": actor, **detail}


def client_changed(action: ClientAction, client_id: str, actor: str) -> Event:
    """`gateway clients add|rotate-secret|disable|enable|retire` (and `init --demo`'s client)."""
    return _admin(action, actor, {"subject": client_id})


def token_key_rotated(step: TokenKeyStep, kid: str, actor: str) -> Event:
    """One step of `gateway keys rotate token`: the next key published, or made active."""
    return _admin(f"token_key.{step}", actor, {"subject": kid})


def policy_reloaded(
    old: str | None, new: str, files: Sequence[str], trigger: str, actor: str
) -> Event:
    """A new policy set became active (`files`: the names whose content changed; `old`: None
    when no set was live before; `trigger`: start, file change, SIGHUP, admin endpoint)."""
    detail: dict[str, JsonValue] = {"old": old, "new": new, "files": list(files)}
    return _admin("policy.reload", actor, {**detail, "trigger": trigger})


def policy_rejected(active: str, error: str, trigger: str, actor: str) -> Event:
    """The reloader refused a candidate policy set; `active` stays in force."""
    return _admin("policy.rejected", actor, {"active": active, "error": error, "trigger": trigger})


def key_rotated(actor: str, old_kid: str, new_kid: str, new_key: bytes) -> Event:
    """`gateway keys rotate audit`: signed by the old key, names the new raw Ed25519 key."""
    return _admin(
        KEY_ROTATE,
        actor,
        {"old_kid": old_kid, "new_kid": new_kid, "new_key": base64.b64encode(new_key).decode()},
    )


def audit_resumed(halt: str | None, actor: str) -> Event:
    """`gateway audit resume` cleared a halt; `halt`: the note it cleared (None if unrecorded)."""
    return _admin("audit.resume", actor, {"halt": halt})


# --- readers -------------------------------------------------------------------------------


def is_http(entry: object) -> bool:
    """Whether a decoded entry is the record of a call."""
    return isinstance(entry, Mapping) and entry.get("kind") == Kind.HTTP


def is_key_rotation(entry: Mapping[str, object]) -> bool:
    """Whether a decoded entry is a `key_rotated` event (the verifier then checks its keys)."""
    return entry.get("kind") == Kind.ADMIN and entry.get("action") == KEY_ROTATE
