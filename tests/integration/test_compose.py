"""``deploy/docker-compose.yml`` is a valid Compose file and every dispel4py command line in it
parses with dispel4py's own parser (there is no Docker engine here to run it; the Dockerfile
is checked the same way, by a linter: test_dockerfile.py).

The structure is checked with ``compose_check.SCHEMA`` (a JSON Schema written from the
Compose Specification, validated by ``jsonschema``), plus what a schema cannot say."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from compose_check import SCHEMA, MissingVariable, interpolate, semantic_problems

from dispel4py.cli import status as status_cli
from dispel4py.cli import worker as worker_cli
from dispel4py.cli.args import _common_parser, _find_mapping
from dispel4py.mappings import get_mapping

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
ENV = {"DISPEL4PY_KEY": "0" * 64}
REDIS_URL = "redis://redis:6379/0"


def _compose(env: dict[str, str] = ENV) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)


def test_the_compose_file_follows_the_compose_specification() -> None:
    compose = _compose()
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(SCHEMA).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    assert semantic_problems(compose, scaled={"worker", "gpu-worker"}) == []
    assert set(compose["services"]) == {"redis", "worker", "gpu-worker", "driver", "status"}


def test_the_checker_refuses_what_compose_refuses() -> None:
    """The schema is not vacuous: a misspelt attribute, a wrong condition, a bad duration,
    a dangling depends_on and a scaled service with a fixed name are all found."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    for broken in (
        {"services": {"w": {"image": "x", "comand": ["a"]}}},
        {"services": {"w": {"image": "x", "depends_on": {"r": {"condition": "healthy"}}}}},
        {"services": {"w": {"image": "x", "stop_grace_period": "30 seconds"}}},
        {"services": {"w": {"image": "x", "restart": "sometimes"}}},
        {"services": {"w": {"command": ["no image, no build"]}}},
        {"service": {"w": {"image": "x"}}},
    ):
        assert list(validator.iter_errors(broken)), broken
    dangling = {"services": {"w": {"image": "x", "depends_on": ["nope"], "container_name": "w1"}}}
    assert len(semantic_problems(dangling, scaled={"w"})) == 2


def test_the_run_key_must_be_given() -> None:
    with pytest.raises(MissingVariable, match="DISPEL4PY_KEY"):
        _compose({})
    with pytest.raises(ValueError, match="invalid interpolation"):
        interpolate("key $(openssl rand -hex 32)", {})


def _dispel4py_commands(compose: dict) -> dict[str, list[str]]:
    """The argument lists of the services whose entry point is the image's ``dispel4py``."""
    commands = {}
    for name, service in compose["services"].items():
        if service.get("image", "").startswith("dispel4py"):
            assert "entrypoint" not in service, name
            commands[name] = [str(x) for x in service["command"]]
    return commands


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return parser.parse_args(argv)
        except SystemExit:
            raise AssertionError(f"dispel4py {' '.join(argv)}: {err.getvalue()}") from None


def test_every_dispel4py_command_line_parses_with_the_real_parser() -> None:
    """As ``dispel4py`` would read them (cli/command.py dispatches the same way). The
    workers' ``--serve``/``--tags`` (issue 17, point 1) are checked once the worker has them."""
    commands = _dispel4py_commands(_compose())
    assert set(commands) == {"worker", "gpu-worker", "driver", "status"}
    driver = commands["driver"]
    mapping = _find_mapping(driver)
    args = _parse(_common_parser(mapping), driver)
    assert get_mapping(args.target).name == "dyn_auto_redis"
    assert (args.redis_url, args.run, args.num) == (REDIS_URL, "compose-demo", 1)
    status = _parse(status_cli.get_parser(), commands["status"][1:])
    assert (status.redis_url, status.watch) == (REDIS_URL, status_cli.DEFAULT_WATCH_S)
    worker_parser = worker_cli.get_parser()
    for name in ("worker", "gpu-worker"):
        argv = commands[name]
        assert argv[0] == "worker" and REDIS_URL in argv
        assert re.fullmatch("[0-9]+", argv[argv.index("-n") + 1]), argv
    for name in ("worker", "gpu-worker"):
        args = _parse(worker_parser, commands[name][1:])
        assert args.serve and args.redis_url == REDIS_URL


def _keda_recipe() -> list[dict]:
    """The YAML documents of the KEDA recipe in docs/redis.md."""
    text = (ROOT / "docs" / "redis.md").read_text()
    section = text[text.index("## Scaling agents on Kubernetes with KEDA") :]
    block = section[section.index("```yaml\n") + 8 : section.index("```\n", section.index("```yaml\n") + 8)]
    return list(yaml.safe_load_all(block))


def test_the_keda_recipe_runs_standing_agents_scaled_on_a_queue() -> None:
    """The Deployment's agents parse with the real worker parser;
    the trigger watches a run's shared queue with the group the runs use."""
    deployment, scaled = _keda_recipe()
    assert (deployment["kind"], scaled["kind"]) == ("Deployment", "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis-streams" and trigger["metadata"]["consumerGroup"] == "d4py"
    assert re.fullmatch(r"d4py:[A-Za-z0-9_.-]+:q:[A-Za-z0-9_]+:0", trigger["metadata"]["stream"])
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    argv = container["args"]
    assert "command" not in container and argv[0] == "worker"  # the image's entry point is dispel4py
    assert [e["name"] for e in container["env"]] == ["DISPEL4PY_KEY"]
    args = _parse(worker_cli.get_parser(), argv[1:])
    assert args.serve and args.redis_url == REDIS_URL
