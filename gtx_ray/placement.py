"""Where the simulation's parts run on a Ray cluster.

The singletons (the clock, the aggregator, the REST API and the IEEE 2030.5 server's front and
registry) run on one *home* node: the driver's by default (the machine where ``python -m gtx_ray``
runs, so ``--data-dir``, ``--certs-dir`` and the ports are that machine's), or the node chosen with
``--home-node``. Nothing else reads or writes a file there: meter actors, which spread over every
node, get their certificates through Ray and hand their readings and what they learned to the
aggregator. So a cluster needs no shared filesystem, and the singletons survive the loss of any
node but the home node.

Pinning uses Ray's ``ray.io/node-id`` label (``label_selector``), which both actors and Serve
deployments accept.
"""

from __future__ import annotations

from typing import Any

import ray

from gtx_ray.errors import ConfigError

NODE_ID_LABEL = "ray.io/node-id"


def this_node_id() -> str:
    """The Ray node this process runs on (hex id)."""
    return ray.get_runtime_context().get_node_id()


def resolve_home_node(choice: str | None) -> str:
    """The home node's id: this (the driver's) node for None, else the alive node whose id,
    unique id prefix (at least 6 hex digits) or address is ``choice``; ConfigError (exit 2)
    listing the alive nodes otherwise."""
    if choice is None:
        return this_node_id()
    alive = [node for node in ray.nodes() if node.get("Alive")]
    wanted = choice.strip().lower()
    by_id = [n for n in alive if n["NodeID"] == wanted]
    if not by_id and len(wanted) >= 6:
        by_id = [n for n in alive if n["NodeID"].startswith(wanted)]
    matches = by_id or [n for n in alive if n.get("NodeManagerAddress") == choice.strip()]
    if len(matches) == 1:
        return matches[0]["NodeID"]
    listing = ", ".join(f"{n['NodeID'][:12]} ({n.get('NodeManagerAddress', '?')})" for n in alive)
    why = "matches several nodes (give the node id)" if matches else "is no alive node"
    raise ConfigError(f"--home-node {choice!r} {why}; the cluster's nodes: {listing}")


def on_node(node_id: str | None) -> dict[str, Any]:
    """Actor (or Serve ``ray_actor_options``) options that place it on ``node_id`` and nowhere
    else; None: this process's node."""
    return {"label_selector": {NODE_ID_LABEL: node_id or this_node_id()}}


def meter_placements(n_groups: int) -> list[dict[str, Any]]:
    """Actor options for each of ``n_groups`` meter groups: the alive nodes in turn, each as
    often as its share of the cluster's CPUs (``turns_by_cpus``), so a fleet uses every node's
    cores. A group asks for its node by label, with any other node as the fallback: when its
    node is lost, Ray re-creates it on another. (Ray's SPREAD, and a soft node affinity, often
    left nodes empty for actors that ask for no CPU.)"""
    cpus = {n["NodeID"]: n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")}
    turns = turns_by_cpus(cpus, n_groups)
    if not turns:
        return [{"scheduling_strategy": "SPREAD"}] * n_groups
    return [
        {
            "label_selector": {NODE_ID_LABEL: node},
            "fallback_strategy": [{"label_selector": {NODE_ID_LABEL: f"!{node}"}}],
        }
        for node in turns
    ]


def turns_by_cpus(cpus: dict[str, float], count: int) -> list[str]:
    """``count`` picks of the nodes in ``cpus`` (node → CPUs), each picked as often as its share
    of the CPUs and the picks interleaved; a node without CPUs (a head started with
    ``--num-cpus 0`` to keep it for the clock and storage) is never picked. Empty when no node
    has a CPU."""
    nodes = [node for node, count in cpus.items() if count > 0]
    placed = dict.fromkeys(nodes, 0)
    turns = []
    for _ in range(count if nodes else 0):
        node = min(nodes, key=lambda n: (placed[n] + 1) / cpus[n])  # furthest below its share
        placed[node] += 1
        turns.append(node)
    return turns


def node_address(node_id: str) -> str:
    """The address of node ``node_id`` (where its listening ports are)."""
    return _node(node_id).get("NodeManagerAddress", "?")


def object_store_bytes(node_id: str | None) -> float:
    """The object store of node ``node_id`` (None: this node), bytes; the cluster's when the
    node is not found."""
    found = _node(node_id or this_node_id())
    if found:
        return float(found["Resources"].get("object_store_memory", 0.0))
    return float(ray.cluster_resources().get("object_store_memory", 0.0))


def _node(node_id: str) -> dict[str, Any]:
    """Ray's record of node ``node_id`` ({} when it is not in the cluster)."""
    return next((node for node in ray.nodes() if node["NodeID"] == node_id), {})
