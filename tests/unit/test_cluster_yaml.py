"""cluster.yaml is a launcher file Ray itself accepts (its own schema and defaults)."""

from __future__ import annotations

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO


def test_cluster_yaml_passes_rays_launcher_validation_and_shares_the_token():
    config = prepare_config(yaml.safe_load((REPO / "cluster.yaml").read_text()))
    validate_config(config)
    assert config["provider"]["type"] == "local"
    assert config["max_workers"] == len(config["provider"]["worker_ips"])
    token = "~/.ray/gtx_ray_cluster_token"
    assert token in config["file_mounts"]
    for commands in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = " ".join(config[commands])
        assert "RAY_AUTH_MODE=token" in start and f"RAY_AUTH_TOKEN_PATH={token}" in start
