"""docker-compose.yml and the Grafana provisioning, checked without a Docker engine.

The Compose Specification schema is vendored in deploy/compose-spec.schema.json (from
compose-spec/compose-spec, schema/compose-spec.json, commit 00655e2222608fa6eaecdf12ac5195889ca2244a):
no network at test time. The file is interpolated with .env.example first, as compose does.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "deploy" / "compose-spec.schema.json"
ENV_EXAMPLE = ROOT / ".env.example"
PROVISIONING = ROOT / "dashboards" / "provisioning"
DATASOURCES = PROVISIONING / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS = PROVISIONING / "dashboards" / "dashboards.yaml"
PYTHON_SERVICES = ("server", "gateway", "simulator")
EXPECTED_SERVICES = {"mosquitto", "postgres", "influxdb", "grafana", *PYTHON_SERVICES}

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}; "$$" is a literal "$".
VAR_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def used_vars(text: str) -> tuple[set[str], set[str]]:
    """(braced ${VAR} names, unbraced $VAR names) used for interpolation."""
    braced, bare = set(), set()
    for m in VAR_RE.finditer(text):
        if m.group(1) == "$":
            continue
        (braced if m.group(2) else bare).add(m.group(2) or m.group(5))
    return braced, bare


def interpolate(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4)
        val = env.get(name)
        if op in (":-", "-") and (val is None or (op == ":-" and val == "")):
            return arg
        if op in (":?", "?") and (val is None or (op == ":?" and val == "")):
            raise ValueError(f"required variable {name} is missing: {arg}")
        if val is None:
            raise ValueError(f"variable {name} is not defined")
        return val

    return VAR_RE.sub(sub, text)


@pytest.fixture(scope="module")
def raw() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return yaml.safe_load(interpolate(raw, env_example()))


@pytest.fixture(scope="module")
def schema() -> dict:
    if not SCHEMA.is_file():
        pytest.fail(f"the Compose Specification schema is missing: vendor it at {SCHEMA}")
    s = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(s)
    assert s.get("title") == "Compose Specification", "deploy/compose-spec.schema.json is not the Compose spec"
    return s


# --------------------------------------------------------------------------- schema


def test_compose_file_is_valid_against_the_compose_specification(compose, schema):
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


@pytest.mark.parametrize("mutate", [
    lambda c: c["services"]["server"].update(helthcheck={}),  # misspelt key
    lambda c: c["services"]["gateway"]["depends_on"]["server"].update(condition="service_ready"),
    lambda c: c["services"]["mosquitto"].update(ports="1883:1883"),  # not a list
    lambda c: c.update(servises={}),
])
def test_the_schema_does_reject_broken_files(compose, schema, mutate):
    bad = copy.deepcopy(compose)
    mutate(bad)
    assert not jsonschema.Draft7Validator(schema).is_valid(bad)


# --------------------------------------------------------------------------- services


def test_every_part_of_the_stack_is_there(compose):
    assert set(compose["services"]) == EXPECTED_SERVICES
    cmds = {n: compose["services"][n]["command"] for n in PYTHON_SERVICES}
    assert cmds == {"server": ["server", "--host", "0.0.0.0", "--port", "8000"], "gateway": ["gateway"],
                    "simulator": ["sim", "run"]}
    for name in PYTHON_SERVICES:
        assert compose["services"][name]["build"]["dockerfile"] == "Dockerfile"
        assert compose["services"][name]["env_file"] == [{"path": ".env", "required": True}]


def test_every_service_has_a_real_healthcheck(compose):
    for name, svc in compose["services"].items():
        hc = svc.get("healthcheck")
        assert hc, f"{name} has no healthcheck"
        assert not hc.get("disable"), f"{name} disables its healthcheck"
        test = hc["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def test_dependencies_wait_for_healthy_services(compose):
    services = compose["services"]
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert spec == {"condition": "service_healthy"}, f"{name} -> {dep}: {spec}"


def _volume_mounts(svc: dict) -> list[tuple[str, str]]:
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            src, _, rest = v.partition(":")
            out.append((src, rest.split(":")[0]))
        else:
            out.append((v.get("source", ""), v["target"]))
    return out


def test_named_volumes_are_declared_and_used_and_bind_mounts_exist(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in compose["services"].items():
        for src, _target in _volume_mounts(svc):
            if src.startswith((".", "/")):
                assert (ROOT / src).exists(), f"{name} mounts {src}, which does not exist"
            else:
                assert src in declared, f"{name} uses undeclared volume {src}"
                used.add(src)
    assert used == declared, f"declared but unused: {declared - used}"
    # Every stateful service keeps its state in a named volume.
    for name in ("mosquitto", "postgres", "influxdb", "grafana", "server", "gateway"):
        assert any(not s.startswith((".", "/")) for s, _ in _volume_mounts(compose["services"][name])), name


def test_every_variable_is_defined_in_env_example(raw):
    braced, bare = used_vars(raw)
    assert not bare, f"use ${{VAR}} (braced) for interpolation: {bare}"
    env = env_example()
    missing = braced - set(env)
    assert not missing, f"used in docker-compose.yml but not in .env.example: {sorted(missing)}"


def test_env_example_secrets_are_marked_unsafe_placeholders():
    env = env_example()
    secret_keys = [k for k in env if re.search(r"PASSWORD|TOKEN|SECRET|API_KEY", k)]
    assert len(secret_keys) >= 8
    for k in secret_keys:
        assert env[k].startswith("unsafe-placeholder-"), f"{k} must be an obvious unsafe placeholder"
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text().split(), \
        ".env exists but is not ignored by git"


def test_influxdb_is_initialised_with_org_bucket_token_and_dbrp(compose):
    env = compose["services"]["influxdb"]["environment"]
    example = env_example()
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_ORG"] == example["CRP_INFLUX_ORG"]
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == example["CRP_INFLUX_BUCKET"]
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == example["CRP_INFLUX_TOKEN"]
    mounts = dict((t, s) for s, t in _volume_mounts(compose["services"]["influxdb"]))
    init = [s for t, s in mounts.items() if t.startswith("/docker-entrypoint-initdb.d/")]
    assert init and "influx v1 dbrp create" in (ROOT / init[0]).read_text()


def test_mosquitto_users_match_the_acl_and_the_services(compose):
    acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    acl_users = set(re.findall(r"^user (\S+)$", acl, re.M))
    entry = (ROOT / "deploy" / "mosquitto" / "entrypoint.sh").read_text()
    passwd_users = set(re.findall(r'mosquitto_passwd -b "\$PASSWD.new" (\S+) ', entry))
    assert acl_users == passwd_users == {"gateway", "simulator", "health"}
    for name in ("gateway", "simulator"):
        assert compose["services"][name]["environment"]["CRP_MQTT_USERNAME"] in acl_users
    conf = (ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file /mosquitto/config/acl" in conf


def test_dockerfile_copies_every_packaged_part():
    docker = (ROOT / "Dockerfile").read_text()
    assert docker.startswith("#") and "FROM python:3.11-slim" in docker and "pip install ." in docker
    copied = {m.group(1) for m in re.finditer(r"^COPY (\S+) ", docker, re.M)}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= copied, f"not copied into the image: {set(packages) - copied}"
    for src in copied:
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


# --------------------------------------------------------------------------- provisioning


def _container_to_host(compose: dict, service: str, container_path: str) -> Path | None:
    best = None
    for src, target in _volume_mounts(compose["services"][service]):
        if src.startswith((".", "/")) and PurePosixPath(container_path).is_relative_to(target):
            if best is None or len(target) > len(best[1]):
                best = (src, target)
    if best is None:
        return None
    rel = PurePosixPath(container_path).relative_to(best[1])
    return ROOT / best[0] / rel


def _grafana_expand(value: str, compose: dict) -> str:
    env = compose["services"]["grafana"]["environment"]

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        assert name in env, f"provisioning uses ${name}, not in grafana's environment"
        return str(env[name])

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)


def test_datasources_parse_and_have_stable_uids(compose):
    data = yaml.safe_load(DATASOURCES.read_text())
    by_uid = {d["uid"]: d for d in data["datasources"]}
    assert set(by_uid) == {"crp-influx", "crp-postgres"}
    influx, pg = by_uid["crp-influx"], by_uid["crp-postgres"]
    assert influx["type"] == "influxdb" and influx["jsonData"]["version"] == "InfluxQL"
    assert _grafana_expand(influx["jsonData"]["dbName"], compose) == env_example()["CRP_INFLUX_DB"]
    assert _grafana_expand(influx["url"], compose) == "http://influxdb:8086"
    assert pg["type"] in ("grafana-postgresql-datasource", "postgres")
    assert _grafana_expand(pg["url"], compose) == "postgres:5432"
    assert _grafana_expand(pg["jsonData"]["database"], compose) == env_example()["POSTGRES_DB"]
    # Every ${VAR} in the file is provided to Grafana (an unknown one would raise above).
    _grafana_expand(DATASOURCES.read_text(), compose)
    # Secrets go in secureJsonData, never in plain jsonData.
    for d in data["datasources"]:
        assert "password" not in d and "password" not in d.get("jsonData", {})
        assert "password" in d["secureJsonData"]


def test_dashboard_provider_points_at_the_mounted_dashboards_folder(compose):
    data = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())
    [provider] = data["providers"]
    assert provider["type"] == "file"
    path = _grafana_expand(provider["options"]["path"], compose)
    host = _container_to_host(compose, "grafana", path)
    assert host is not None, f"{path} is not mounted into grafana"
    assert host.resolve() == (ROOT / "dashboards").resolve() and host.is_dir()
    prov = _container_to_host(compose, "grafana", "/etc/grafana/provisioning")
    assert prov is not None and prov.resolve() == PROVISIONING.resolve()


# --------------------------------------------------------------------------- helpers


def test_interpolation_helper_follows_compose_rules():
    env = {"A": "1", "E": ""}
    assert interpolate("x${A}y $$A ${B:-d} ${E:-d} ${E-d}", env) == "x1y $A d d "
    with pytest.raises(ValueError):
        interpolate("${B:?need B}", env)
    with pytest.raises(ValueError):
        interpolate("${B}", env)
    assert used_vars("${A} $$B ${C:?x} $D") == ({"A", "C"}, {"D"})
