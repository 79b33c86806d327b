"""deploy/ (DESIGN §11, docs/deploy.md): every overlay renders with `kubectl kustomize`, every object it
renders is valid against the Kubernetes schemas (kubernetes-validate, offline, strict: an unknown
field or kind fails), and the rendering keeps the deployment's contract: mcplocal runs >= 2 replicas
under a PodDisruptionBudget behind the Service `mcp` and an Ingress on /projects that reaches only it,
probes on /readyz and /healthz, the pipeline cache on a shared volume at /var/lib/mcplocal/cache, the
secrets from Secrets, and every container non-root, locked down and with limits.

kubectl is on the project's machines; without it these tests skip, except in CI (CI=true), where a
missing kubectl fails them as an unreachable PostgreSQL does (tests/conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from mcpctl.mcpd.settings import Settings
from mcpctl.mcplocal.filecache import FileCache
from mcpctl.mcplocal.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(path.name for path in (DEPLOY / "overlays").iterdir() if path.is_dir())
KUBERNETES_VERSION = "1.30.0"
CACHE_MOUNT = "/var/lib/mcplocal/cache"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
# Settings the deployment wires before the code reads them: Redis support is being built (issue 14).
PENDING_SETTINGS = {"MCPD_REDIS_URL", "MCPLOCAL_REDIS_URL"}

Obj = dict[str, Any]


def _kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubectl is not on PATH in CI: deploy/ cannot be rendered and checked")
        pytest.skip("kubectl is not on PATH: deploy/ is rendered and checked where it is (and always in CI)")
    return found


def render(target: Path) -> list[Obj]:
    done = subprocess.run(
        [_kubectl(), "kustomize", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"kubectl kustomize {target.relative_to(ROOT)}:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return render(DEPLOY / "overlays" / request.param)


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def named(objects: list[Obj], kind: str, prefix: str) -> Obj:
    """A generated object (ConfigMap, Secret) by its name before kustomize's hash suffix."""
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].rsplit("-", 1)[0] == prefix]
    assert len(matches) == 1, f"{kind}/{prefix}-<hash>: {len(matches)} rendered"
    return matches[0]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> Iterator[Obj]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(objects: list[Obj], name: str) -> Obj:
    (found,) = list(containers(find(objects, "Deployment", name)))
    return found


def env_value(objects: list[Obj], workload: Obj, item: Obj, name: str) -> str | None:
    """What variable `name` holds in container `item`: its value, or the ConfigMap/Secret key it names."""
    for var in item.get("env", []):
        if var["name"] == name:
            if "value" in var:
                return str(var["value"])
            ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
            kind = "Secret" if "secretKeyRef" in var["valueFrom"] else "ConfigMap"
            return data_of(find(objects, kind, ref["name"]))[ref["key"]]
    for source in item.get("envFrom", []):
        kind, ref = (
            ("Secret", source["secretRef"])
            if "secretRef" in source
            else ("ConfigMap", source["configMapRef"])
        )
        values = data_of(find(objects, kind, ref["name"]))
        if name in values:
            return values[name]
    return None


def data_of(obj: Obj) -> dict[str, str]:
    if obj["kind"] == "Secret":
        values = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
        return {**values, **obj.get("stringData", {})}
    return dict(obj.get("data", {}))


def labels_match(selector: Obj, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are checked here"
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


# -- rendering and schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["base", *(f"overlays/{name}" for name in OVERLAYS)])
def test_every_object_rendered_is_valid_against_the_kubernetes_schemas(target: str) -> None:
    rendered = render(DEPLOY / target)
    assert rendered
    for obj in rendered:
        what = f"{target}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            pytest.fail(f"{what}: no Kubernetes {KUBERNETES_VERSION} schema for it ({exc})")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{what}: {exc}")


def test_a_schema_violation_is_caught() -> None:
    """The check above can fail: a misspelt field of a rendered object is refused."""
    service = find(render(DEPLOY / "base"), "Service", "mcp")
    service["spec"]["portz"] = service["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate({**service, "kind": "Servic"}, KUBERNETES_VERSION, strict=True)


# -- the contract -----------------------------------------------------------------------------------------


def test_mcplocal_runs_at_least_two_replicas_under_a_disruption_budget(objects: list[Obj]) -> None:
    mcplocal = find(objects, "Deployment", "mcplocal")
    assert mcplocal["spec"]["replicas"] >= 2
    pod_labels = mcplocal["spec"]["template"]["metadata"]["labels"]
    budgets = [
        o
        for o in objects
        if o["kind"] == "PodDisruptionBudget" and labels_match(o["spec"]["selector"], pod_labels)
    ]
    assert len(budgets) == 1 and budgets[0]["spec"]["minAvailable"] == 1


def test_mcplocal_serves_through_the_service_mcp_and_asks_mcpd_by_its_service(objects: list[Obj]) -> None:
    mcplocal = find(objects, "Deployment", "mcplocal")
    item = container(objects, "mcplocal")
    assert item["command"][:2] == ["mcplocal", "serve"]
    mcpd_url = item["command"][item["command"].index("--mcpd-url") + 1]
    mcpd_service = find(objects, "Service", urlsplit(mcpd_url).hostname or "")
    assert labels_match({"matchLabels": mcpd_service["spec"]["selector"]}, pod_labels(objects, "mcpd"))
    assert urlsplit(mcpd_url).port in [p["port"] for p in mcpd_service["spec"]["ports"]]

    service = find(objects, "Service", "mcp")
    assert labels_match(
        {"matchLabels": service["spec"]["selector"]}, mcplocal["spec"]["template"]["metadata"]["labels"]
    )
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    (target,) = [p for p in item["ports"] if port["targetPort"] in (p.get("name"), p["containerPort"])]
    assert (
        target["containerPort"]
        == int(env_value(objects, mcplocal, item, "MCPLOCAL_HTTP_PORT") or 3200)
        == 3200
    )
    assert env_value(objects, mcplocal, item, "MCPLOCAL_HTTP_HOST") == "0.0.0.0"


def pod_labels(objects: list[Obj], deployment: str) -> dict[str, str]:
    labels: dict[str, str] = find(objects, "Deployment", deployment)["spec"]["template"]["metadata"]["labels"]
    return labels


def test_the_ingress_routes_projects_to_mcp_on_the_host_mcplocal_and_mcpd_know(objects: list[Obj]) -> None:
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    backends = {
        (rule.get("host"), path["path"], path["backend"]["service"]["name"])
        for ingress in ingresses
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    (host,) = {host for host, _, _ in backends}
    # the project endpoints and mcplocal's /healthz (for `mcpctl test mcp`); the control plane is not exposed
    assert {(path, service) for _, path, service in backends} == {("/projects", "mcp"), ("/healthz", "mcp")}
    assert host, "a host of its own (the overlay's)"
    mcplocal = find(objects, "Deployment", "mcplocal")
    allowed = json.loads(
        env_value(objects, mcplocal, container(objects, "mcplocal"), "MCPLOCAL_ALLOWED_HOSTS") or "[]"
    )
    assert host in allowed, "mcplocal refuses a Host it is not told (DNS-rebinding protection)"
    mcpd = find(objects, "Deployment", "mcpd")
    public = env_value(objects, mcpd, container(objects, "mcpd"), "MCPD_PUBLIC_URL") or ""
    assert urlsplit(public).hostname == host, "project URLs mcpd prints point at the Ingress"
    assert all(host in tls["hosts"] for ingress in ingresses for tls in ingress["spec"].get("tls", []))


def test_probes_ask_readyz_for_readiness_and_healthz_for_liveness(objects: list[Obj]) -> None:
    for name in ("mcpd", "mcplocal"):
        item = container(objects, name)
        assert item["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert item["livenessProbe"]["httpGet"]["path"] == "/healthz", name


def test_the_pipeline_cache_is_a_shared_claim_mounted_where_the_cache_lives(objects: list[Obj]) -> None:
    mcplocal = find(objects, "Deployment", "mcplocal")
    item = container(objects, "mcplocal")
    (mount,) = [m for m in item["volumeMounts"] if m["mountPath"] == CACHE_MOUNT]
    (volume,) = [v for v in pod_spec(mcplocal)["volumes"] if v["name"] == mount["name"]]
    claim = find(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "every replica shares it"
    cache_dir = env_value(objects, mcplocal, item, "MCPLOCAL_CACHE_DIR") or ""
    assert Path(cache_dir).is_relative_to(CACHE_MOUNT), "the cache is on the claim"


@pytest.mark.anyio
async def test_the_cache_is_a_directory_of_its_own_inside_the_volume(tmp_path: Path) -> None:
    """The kubelet gives a volume's root to root, or with fsGroup makes it group-writable (2770); the
    FileCache trusts neither (anyone who may write there could plant pages), so MCPLOCAL_CACHE_DIR is
    a directory below the mount that mcplocal makes 0700 itself, on every replica alike."""
    volume_root = tmp_path / "volume"
    volume_root.mkdir()
    volume_root.chmod(0o2770)
    refused, used = FileCache(volume_root, 1 << 20), FileCache(volume_root / "pipeline", 1 << 20)
    await refused.put("k", b"page")
    await used.put("k", b"page")
    assert await refused.get("k") is None
    assert await used.get("k") == b"page"
    for overlay in OVERLAYS:
        objects = render(DEPLOY / "overlays" / overlay)
        mcplocal = find(objects, "Deployment", "mcplocal")
        cache_dir = Path(
            env_value(objects, mcplocal, container(objects, "mcplocal"), "MCPLOCAL_CACHE_DIR") or ""
        )
        assert cache_dir.parent == Path(CACHE_MOUNT), overlay


def test_mcpd_takes_its_database_key_and_first_admin_from_secrets(objects: list[Obj]) -> None:
    mcpd = find(objects, "Deployment", "mcpd")
    item = container(objects, "mcpd")
    by_name = {var["name"]: var for var in item["env"]}
    for name in ("MCPD_DATABASE_URL", "MCPD_SECRET_KEY", "MCPD_BOOTSTRAP_ADMIN_EMAIL"):
        assert "secretKeyRef" in by_name[name].get("valueFrom", {}), f"{name} comes from a Secret"
    assert (env_value(objects, mcpd, item, "MCPD_DATABASE_URL") or "").startswith("postgresql+asyncpg://")
    password_file = Path(by_name["MCPD_BOOTSTRAP_ADMIN_PASSWORD_FILE"]["value"])
    (mount,) = [m for m in item["volumeMounts"] if password_file.is_relative_to(m["mountPath"])]
    (volume,) = [v for v in pod_spec(mcpd)["volumes"] if v["name"] == mount["name"]]
    secret = find(objects, "Secret", volume["secret"]["secretName"])
    (path,) = [
        i["key"]
        for i in volume["secret"]["items"]
        if i["path"] == str(password_file.relative_to(mount["mountPath"]))
    ]
    assert data_of(secret)[path]
    assert "MCPD_BOOTSTRAP_ADMIN_PASSWORD" not in by_name, (
        "the password only as a file, never in the environment"
    )


def test_every_config_map_and_secret_a_pod_names_is_rendered(objects: list[Obj]) -> None:
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for workload in (o for o in objects if o["kind"] in WORKLOADS):
        spec = pod_spec(workload)
        wanted = {("Secret", v["secret"]["secretName"]) for v in spec.get("volumes", []) if "secret" in v}
        wanted |= {("ConfigMap", v["configMap"]["name"]) for v in spec.get("volumes", []) if "configMap" in v}
        for item in containers(workload):
            for source in item.get("envFrom", []):
                if "secretRef" in source:
                    wanted.add(("Secret", source["secretRef"]["name"]))
                else:
                    wanted.add(("ConfigMap", source["configMapRef"]["name"]))
            for var in item.get("env", []):
                ref = var.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    wanted.add(("Secret", ref["secretKeyRef"]["name"]))
                if "configMapKeyRef" in ref:
                    wanted.add(("ConfigMap", ref["configMapKeyRef"]["name"]))
        assert wanted <= present, f"{workload['metadata']['name']} names missing {sorted(wanted - present)}"


def test_every_mcpctl_variable_set_is_a_setting_the_code_reads(objects: list[Obj]) -> None:
    read = {f"MCPD_{name.upper()}" for name in Settings.model_fields}
    read |= GatewaySettings.environment_names()
    read |= PENDING_SETTINGS
    names = {var["name"] for name in ("mcpd", "mcplocal") for var in container(objects, name).get("env", [])}
    for config in (o for o in objects if o["kind"] in ("ConfigMap", "Secret")):
        names |= set(data_of(config))
    ours = {n for n in names if n.startswith(("MCPD_", "MCPLOCAL_"))}
    assert ours and ours <= read, f"not settings: {sorted(ours - read)}"
    assert "MCPD_REDIS_URL" in names and "MCPLOCAL_REDIS_URL" in names


def test_every_container_runs_as_non_root_locked_down_and_with_limits(objects: list[Obj]) -> None:
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    assert {w["metadata"]["name"] for w in workloads} >= {"mcpd", "mcplocal"}
    for workload in workloads:
        pod = pod_spec(workload).get("securityContext", {})
        assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", workload["metadata"]["name"]
        for item in containers(workload):
            what = f"{workload['metadata']['name']}/{item['name']}"
            security = {**pod, **item.get("securityContext", {})}
            assert security.get("runAsNonRoot") is True, what
            assert security.get("runAsUser", 0) != 0, f"{what}: a numeric non-root uid"
            assert security.get("allowPrivilegeEscalation") is False, what
            assert security.get("capabilities", {}).get("drop") == ["ALL"], what
            assert security.get("readOnlyRootFilesystem") is True, what
            resources = item.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{what}: {kind}"


def test_every_image_is_pinned_by_tag_and_mcpctl_comes_from_a_registry(objects: list[Obj]) -> None:
    images = {item["image"] for o in objects if o["kind"] in WORKLOADS for item in containers(o)}
    for image in images:
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"{image}: pin a tag"
    mcpctl = {container(objects, name)["image"] for name in ("mcpd", "mcplocal")}
    assert len(mcpctl) == 1 and "/" in next(iter(mcpctl)), "one image, both components, from a registry"


def test_the_in_cluster_overlay_runs_postgresql_and_redis_for_mcpd_and_mcplocal() -> None:
    objects = render(DEPLOY / "overlays" / "in-cluster")
    postgres = find(objects, "StatefulSet", "postgres")
    assert container_image(postgres).startswith("postgres:16")
    assert postgres["spec"]["volumeClaimTemplates"], "the database is on a volume"
    redis = find(objects, "Deployment", "redis")
    assert container_image(redis).startswith("redis:7")
    mcpd, mcplocal = find(objects, "Deployment", "mcpd"), find(objects, "Deployment", "mcplocal")
    database = urlsplit(env_value(objects, mcpd, container(objects, "mcpd"), "MCPD_DATABASE_URL") or "")
    find(objects, "Service", database.hostname or "")
    password = data_of(named(objects, "Secret", "postgres"))["POSTGRES_PASSWORD"]
    assert database.password == password and database.username == "mcpd", "the URL and the database agree"
    for item, workload, name in (
        (container(objects, "mcpd"), mcpd, "MCPD_REDIS_URL"),
        (container(objects, "mcplocal"), mcplocal, "MCPLOCAL_REDIS_URL"),
    ):
        find(objects, "Service", urlsplit(env_value(objects, workload, item, name) or "").hostname or "")


def test_the_shipped_secrets_are_placeholders_that_say_so() -> None:
    """The overlays are public: each secret they generate is a loud CHANGE-ME (docs/deploy.md)."""
    for overlay in OVERLAYS:
        secrets = [o for o in render(DEPLOY / "overlays" / overlay) if o["kind"] == "Secret"]
        assert secrets, overlay
        for secret in secrets:
            values = data_of(secret)
            assert any("CHANGE-ME" in value for value in values.values()), (
                f"{overlay}: {secret['metadata']['name']}"
            )


def container_image(workload: Obj) -> str:
    (item,) = pod_spec(workload)["containers"]
    image: str = item["image"]
    return image


def test_each_overlay_puts_everything_in_a_namespace_that_enforces_restricted_pods(
    objects: list[Obj],
) -> None:
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    name = namespace["metadata"]["name"]
    assert all(o["metadata"].get("namespace") == name for o in objects if o["kind"] != "Namespace")


def test_mcpd_writes_only_to_its_volumes(objects: list[Obj]) -> None:
    """With a read-only root, each directory mcpd writes is on a mounted volume (the embedded endpoint
    reads MCPLOCAL_CACHE_DIR too, which the image points at a path not mounted in mcpd's pod)."""
    mcpd = find(objects, "Deployment", "mcpd")
    item = container(objects, "mcpd")
    mounts = [Path(m["mountPath"]) for m in item["volumeMounts"] if not m.get("readOnly")]
    for name in ("MCPD_DATA_DIR", "MCPLOCAL_CACHE_DIR"):
        path = Path(env_value(objects, mcpd, item, name) or "")
        assert any(path.is_relative_to(mount) and path != mount for mount in mounts), name
    assert Path("/tmp") in mounts
