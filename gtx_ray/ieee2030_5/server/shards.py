"""The registry sharded by device: each device's state lives in one of n registries, chosen by
its LFDI, so that several registry actors (cores) share the work of a large fleet.

What a device reads and writes (its EndDevice, mirrors, readings, DER records and Responses) is
its own (``managers``): the front sends each device's operations to its shard
(``ShardedBackend``) and every shard answers them alone. What the operator publishes (demand
response events, tariffs, notices, DER controls and defaults: the registry's event books) every
device must see: shard 0 runs the action and then copies its books to every other shard, which
also takes them from shard 0 when it starts (after a crash, say), so the shards never hold
different programs, ids or mRIDs. Rates and mirror clearing for every device run on every
shard. Admin reads of devices gather the shards' answers; counts of Responses are summed.

Ids stay unique over the shards (``Registry(shard=...)``), so a device id names one device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gtx_ray.ieee2030_5.server.store import BOOK_STATE

if TYPE_CHECKING:  # types only: config imports this module, and dispatch imports config's peers
    from gtx_ray.ieee2030_5.server.backend import Backend
    from gtx_ray.ieee2030_5.server.dispatch import Op
    from gtx_ray.ieee2030_5.server.registry import Registry

PUBLISH = frozenset(
    {
        "create_dr_event",
        "cancel_dr_event",
        "add_tariff",
        "remove_tariff",
        "create_message",
        "cancel_message",
        "create_der_control",
        "cancel_der_control",
        "set_default_der_control",
    }
)
"""Admin actions that change the event books: run on shard 0, its books then copied to all."""
BROADCAST = frozenset(
    {
        "set_rates",  # without device_id: every device's rates (routed by id otherwise)
        "clear_mirrors",  # without lfdi: every device's mirrors (routed by LFDI otherwise)
    }
)
"""Admin actions on every device: run on every shard."""
WITH_RESPONSES = frozenset(
    {"list_dr_events", "get_dr_event", "list_der_controls", "get_der_control", "list_messages"}
)
"""Admin reads of published events that carry the Responses devices posted (in their shards):
shard 0's answer with the counts summed over the shards."""
GATHER = frozenset({"list_devices", "list_der_devices", "list_responses"})
"""Admin reads of device state: every shard's answer, together."""


def shard_of(lfdi: str, shards: int) -> int:
    """The shard holding the device with this LFDI (hex; its leading 64 bits, uniform as the
    LFDI is a hash, modulo ``shards``)."""
    if shards == 1:
        return 0
    return int(lfdi[:16], 16) % shards


def shard_of_id(device_id: int, shards: int) -> int:
    """The shard that gave out this EndDevice id (shard k gives out k + 1, k + 1 + n, …)."""
    return (int(device_id) - 1) % shards


def registry_name(base: str, shard: int) -> str:
    """The named actor of registry shard ``shard``: ``base`` for shard 0 (a single registry's
    name), ``base_<k>`` for the others."""
    return base if shard == 0 else f"{base}_{shard}"


class ShardedBackend:
    """The front's way to the registry: each operation goes to its caller's shard."""

    def __init__(self, shards: Sequence[Backend]) -> None:
        self.shards = list(shards)

    async def execute(self, op: Op) -> Any:
        return await self.shards[shard_of(op.caller.lfdi, len(self.shards))].execute(op)


def admin_plan(action: str, kwargs: dict[str, Any], shards: int) -> list[int] | None:
    """Which shards run an admin action: a list of shard numbers, or None for all of them."""
    if shards == 1:
        return [0]
    if action in ("set_rates", "remove_device") and kwargs.get("device_id") is not None:
        return [shard_of_id(kwargs["device_id"], shards)]
    if action in ("clear_mirrors", "preregister") and kwargs.get("lfdi"):
        return [shard_of(str(kwargs["lfdi"]).upper(), shards)]
    if action in BROADCAST or action in WITH_RESPONSES or action in GATHER:
        return None
    return [0]  # publishing (then copied) and reads of what every shard holds alike


def merge_admin(action: str, kwargs: dict[str, Any], answers: list[Any]) -> Any:
    """One answer from the shards' answers to the same admin action (shard 0's first)."""
    if len(answers) == 1:
        return answers[0]
    if action in GATHER:
        rows = [row for answer in answers for row in answer]
        if action == "list_responses":  # newest first and at most ``limit``, as one registry
            rows.sort(key=lambda r: (r["received"], r["id"]), reverse=True)
            return rows[: kwargs.get("limit", 1000)]
        key = "id" if action == "list_devices" else "device_id"
        return sorted(rows, key=lambda r: r[key])
    if action in WITH_RESPONSES:
        return _sum_responses(answers)
    return answers[0]  # published alike everywhere: shard 0 speaks for all


def _sum_responses(answers: list[Any]) -> Any:
    first = answers[0]
    if isinstance(first, dict):
        return _summed(first, [a for a in answers[1:] if isinstance(a, dict)])
    by_id: list[dict[Any, dict]] = [{row.get("id"): row for row in a} for a in answers[1:]]
    return [_summed(row, [other.get(row.get("id"), {}) for other in by_id]) for row in first]


def _summed(row: dict, others: list[dict]) -> dict:
    counts = row.get("responses")
    if not isinstance(counts, dict):
        return row
    total = dict(counts)
    for other in others:
        for status, n in (other.get("responses") or {}).items():
            total[status] = total.get(status, 0) + n
    return {**row, "responses": total}


def run_admin(
    action: str,
    kwargs: dict[str, Any],
    shards: int,
    call: Callable[[int, str, dict[str, Any]], Any],
    copy_books: Callable[[], None],
) -> Any:
    """Run an admin action where ``admin_plan`` says, through ``call(shard, action, kwargs)``,
    and merge the answers; after a publishing action, ``copy_books()`` (shard 0's books to the
    others). A refused action (a bad field, an unknown id) raises on shard 0 first, so no other
    shard is asked."""
    plan = admin_plan(action, kwargs, shards)
    targets = list(range(shards)) if plan is None else plan
    answers = [call(targets[0], action, kwargs)]
    answers += [call(k, action, kwargs) for k in targets[1:]]
    if action in PUBLISH and shards > 1:
        copy_books()
    return merge_admin(action, kwargs, answers)


def books_of(registry: Registry) -> dict[str, dict[str, Any]]:
    """The registry's event books (what it publishes), as the store keeps them."""
    return {
        name: {attr: getattr(getattr(registry, name), attr) for attr in attrs}
        for name, attrs in BOOK_STATE.items()
    }


def adopt_books(registry: Registry, books: dict[str, dict[str, Any]]) -> None:
    """Make ``books`` (``books_of`` another shard) this registry's event books; the devices'
    own records (DER records, Responses) stay."""
    for name, state in books.items():
        book = getattr(registry, name)
        for attr, value in state.items():
            setattr(book, attr, value)
        book.changed = True
