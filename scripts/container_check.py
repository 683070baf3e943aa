"""Helpers of scripts/container-check: read the built image's configuration and the deployment
files, so that the check runs the image as the image and the deployment files say.

  container_check.py image CONFIG_JSON VERSION REVISION OUT_DIR
      checks the image configuration (`buildah inspect --type image` output) and writes
      OUT_DIR/entrypoint, OUT_DIR/healthcheck (NUL-separated arguments) and
      OUT_DIR/healthcheck-timeout (seconds)
  container_check.py compose COMPOSE_CONFIG_JSON IMAGE_HEALTHCHECK OUT_DIR
  container_check.py kubernetes MANIFEST SECRET_MANIFEST OUT_DIR
  container_check.py kubernetes-ha MANIFEST SECRET_MANIFEST DATABASE_URL OUT_DIR
      write OUT_DIR/env (NUL-separated KEY=VALUE), OUT_DIR/mounts (NUL-separated
      HOST_PATH:CONTAINER_PATH:ro) and the secret files (made-up values of the right form, but
      DATABASE_URL for the database URL file) under OUT_DIR/secrets/; `compose` takes `docker
      compose config --format json` output, so the check uses the environment and secret paths
      compose itself resolved, and checks that its healthcheck is the image's (the `healthcheck`
      file written by `image`); `kubernetes` checks the one-replica manifest's pod spec (one
      replica, Recreate, /data on a PersistentVolumeClaim), `kubernetes-ha` the two-replica one's
      (two replicas, rolling updates that never go below them, a PodDisruptionBudget selecting
      its pods, the database URL from a mounted Secret key, /data an emptyDir, no claim)
  container_check.py compose-ha COMPOSE_HA_FILE COMPOSE_HA_CONFIG_JSON HA_MANIFEST
      checks the two-replica compose file's bridge service (as `docker compose config --format
      json` resolved COMPOSE_HA_FILE): two replicas, the database URL from a
      secret file, no volume on /data, the same route and lease variables as the Kubernetes HA
      manifest, and that the nginx configuration it mounts exists and proxies to that service
  container_check.py alertmanager ALERTMANAGER_YML COMPOSE_CONFIG_JSON MANIFEST
      checks that every webhook URL of the Alertmanager example is a /hooks/ROUTE of a route
      that compose and Kubernetes both configure as an alertmanager source reading a bearer
      token from a file, with send_resolved
"""

import json
import os
import re
import secrets
import string
import sys
from urllib.parse import urlparse

import yaml

UID = 65532
SERVICE = "pushjet-bridge"


def fail(message):
    print(f"container_check.py: {message}", file=sys.stderr)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def write_args(path, args):
    with open(path, "w", encoding="utf-8") as out:
        out.write("".join(f"{arg}\0" for arg in args))


def secret_value(variable, given):
    """A made-up value of the form the variable's file must hold, or the one `given` for it."""
    if variable in given:
        return given[variable]
    if variable.endswith("_BASIC_AUTH_FILE"):
        return "check:" + secrets.token_hex(16)
    if variable.endswith("_WEBHOOK_SECRET_FILE") or variable.endswith("_TOKEN_FILE"):
        return secrets.token_hex(24)
    if variable.endswith("_SECRET_FILE"):
        # A Pushjet service secret key: 32 letters and digits.
        return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    fail(f"{variable}: no idea what this file holds")
    return None


def image(config_json, version, revision, out_dir):
    with open(config_json, encoding="utf-8") as source:
        inspected = json.load(source)
    config = inspected["Docker"]["config"]
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    labels = config.get("Labels") or {}
    expect(config.get("User") == f"{UID}:{UID}", f"USER is {config.get('User')!r}")
    expect(env.get("PUSHJET_BRIDGE_DATA_DIR") == "/data", "PUSHJET_BRIDGE_DATA_DIR is not /data")
    expect("/data" in (config.get("Volumes") or {}), "/data is not a VOLUME")
    expect("8080/tcp" in (config.get("ExposedPorts") or {}), "8080 is not EXPOSEd")
    for key, value in {
        "org.opencontainers.image.title": SERVICE,
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
    }.items():
        expect(labels.get(key) == value, f"label {key} is {labels.get(key)!r}, not {value!r}")
    expect(labels.get("org.opencontainers.image.description"), "no description label")
    entrypoint = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
    expect(entrypoint, "no ENTRYPOINT")
    health = config.get("Healthcheck") or {}
    test = health.get("Test") or []
    expect(test[:1] == ["CMD"] and len(test) > 1, f"HEALTHCHECK is not an exec-form CMD: {test}")
    write_args(os.path.join(out_dir, "entrypoint"), entrypoint)
    write_args(os.path.join(out_dir, "healthcheck"), test[1:])
    timeout = max(1, int((health.get("Timeout") or 30_000_000_000) // 1_000_000_000))
    with open(os.path.join(out_dir, "healthcheck-timeout"), "w", encoding="utf-8") as out:
        out.write(f"{timeout}\n")
    print(f"image: user {config['User']}, volume /data, entrypoint {entrypoint}, "
          f"healthcheck {test[1:]} (timeout {timeout}s), labels {sorted(labels)}")


def write_scenario(out_dir, env, files, given=None):
    """files: container path -> (variable naming it, mode, gid); given: variable -> the value its
    file holds, instead of a made-up one."""
    secret_dir = os.path.join(out_dir, "secrets")
    os.makedirs(secret_dir, exist_ok=True)
    mounts = []
    for index, (target, (variable, mode, gid)) in enumerate(sorted(files.items())):
        host = os.path.join(secret_dir, f"{index}-{os.path.basename(target)}")
        with open(host, "w", encoding="utf-8") as out:
            out.write(secret_value(variable, given or {}) + "\n")
        os.chown(host, 0, gid)
        os.chmod(host, mode)
        mounts.append(f"{host}:{target}:ro")
    write_args(os.path.join(out_dir, "env"), [f"{key}={value}" for key, value in env.items()])
    write_args(os.path.join(out_dir, "mounts"), mounts)
    print(f"environment: {sorted(env)}")
    print(f"secret files: {sorted(files)}")


def compose_service(config_json):
    with open(config_json, encoding="utf-8") as source:
        return json.load(source)["services"][SERVICE]


def kubernetes_documents(manifest):
    with open(manifest, encoding="utf-8") as source:
        return [doc for doc in yaml.safe_load_all(source) if doc]


def kubernetes_workload(documents):
    return next(doc for doc in documents if doc["kind"] in ("Deployment", "StatefulSet"))


def kubernetes_container(manifest):
    pod = kubernetes_workload(kubernetes_documents(manifest))["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == SERVICE)


def compose(config_json, image_healthcheck, out_dir):
    service = compose_service(config_json)
    with open(image_healthcheck, encoding="utf-8") as source:
        healthcheck = ["CMD"] + source.read().split("\0")[:-1]
    expect(service.get("healthcheck", {}).get("test") == healthcheck,
           f"the compose healthcheck is not the image's {healthcheck}")
    env = {key: "" if value is None else str(value)
           for key, value in (service.get("environment") or {}).items()}
    targets = {}
    for entry in service.get("secrets") or []:
        targets[entry["target"]] = entry["source"]
    files = {}
    for key, value in env.items():
        if key.endswith("_FILE"):
            expect(value in targets, f"{key}={value} is not one of the service's secrets")
            # compose mounts a `file:` secret with the host file's owner and mode: root's, 0644
            # as deploy/README.md says.
            files[value] = (key, 0o644, 0)
    expect(files, "the compose service reads no *_FILE secret")
    expect(any(v.get("target") == "/data" and v.get("type") == "volume"
               for v in service.get("volumes") or []), "no named volume on /data")
    write_scenario(out_dir, env, files)


def kubernetes(manifest, secret_manifest, out_dir):
    workload = kubernetes_workload(kubernetes_documents(manifest))
    expect(workload["spec"].get("replicas", 1) == 1, f"{manifest}: not one replica")
    expect(workload["spec"].get("strategy", {}).get("type") == "Recreate",
           f"{manifest}: one process at a time may open the redb file, but the strategy is not "
           "Recreate")
    kubernetes_scenario(manifest, secret_manifest, out_dir, data_volume="persistentVolumeClaim")


def kubernetes_ha(manifest, secret_manifest, database_url, out_dir):
    documents = kubernetes_documents(manifest)
    workload = kubernetes_workload(documents)
    expect(workload["kind"] == "Deployment", f"{manifest}: the workload is not a Deployment")
    spec = workload["spec"]
    expect(spec.get("replicas") == 2, f"{manifest}: replicas is {spec.get('replicas')!r}, not 2")
    strategy = spec.get("strategy", {})
    expect(strategy.get("type", "RollingUpdate") == "RollingUpdate"
           and strategy.get("rollingUpdate", {}).get("maxUnavailable") == 0,
           f"{manifest}: a rolling update may stop a replica before its successor is Ready")
    pod_labels = spec["template"]["metadata"].get("labels") or {}
    budgets = [doc for doc in documents if doc["kind"] == "PodDisruptionBudget"]
    expect(any(selects(budget["spec"].get("selector", {}), pod_labels)
               and budget["spec"].get("minAvailable") == 1 for budget in budgets),
           f"{manifest}: no PodDisruptionBudget with minAvailable 1 selects the Deployment's pods")
    expect(selects(spec["selector"], pod_labels), f"{manifest}: the selector misses the pods")
    expect(not any(doc["kind"] == "PersistentVolumeClaim" for doc in documents)
           and "volumeClaimTemplates" not in spec,
           f"{manifest}: a PersistentVolumeClaim, but the state is in the database")
    _, container = kubernetes_container(manifest)
    names = {item["name"] for item in container.get("env") or []}
    expect("PUSHJET_BRIDGE_DATABASE_URL_FILE" in names,
           f"{manifest}: PUSHJET_BRIDGE_DATABASE_URL_FILE is not set")
    expect("PUSHJET_BRIDGE_DATABASE_URL" not in names,
           f"{manifest}: the database URL, password included, is in the environment")
    print(f"{manifest}: Deployment of 2 replicas, maxUnavailable 0, PodDisruptionBudget "
          "minAvailable 1 over its pods, no PersistentVolumeClaim")
    # Its file (a Secret key at the mount path: kubernetes_scenario checks that) names the
    # throwaway database of the check.
    kubernetes_scenario(manifest, secret_manifest, out_dir, data_volume="emptyDir",
                        given={"PUSHJET_BRIDGE_DATABASE_URL_FILE": database_url})


def selects(selector, labels):
    """Whether a label selector (matchLabels only) picks pods with `labels`."""
    match = selector.get("matchLabels") or {}
    expect(not selector.get("matchExpressions"), "matchExpressions are not supported by the check")
    return bool(match) and all(labels.get(key) == value for key, value in match.items())


def kubernetes_scenario(manifest, secret_manifest, out_dir, data_volume, given=None):
    """Checks the pod spec of `manifest` (probes, the Secret mounted, /data on a `data_volume`)
    and writes the scenario that runs the image as it configures it."""
    with open(secret_manifest, encoding="utf-8") as source:
        secret = yaml.safe_load(source)
    pod, container = kubernetes_container(manifest)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        expect(got == path, f"{manifest}: {probe} asks {got!r}, not {path} (what the check asks)")
    env = {}
    for item in container.get("env") or []:
        expect("value" in item, f"{item['name']}: only plain values are supported by the check")
        env[item["name"]] = str(item["value"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    expect(not any("persistentVolumeClaim" in volume for volume in volumes.values())
           or data_volume == "persistentVolumeClaim", f"{manifest}: a persistentVolumeClaim volume")
    secret_mounts = {}
    data_mounted = False
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            expect(volume["secret"]["secretName"] == secret["metadata"]["name"],
                   "the mounted Secret is not the one in the Secret manifest")
            secret_mounts[mount["mountPath"].rstrip("/")] = volume["secret"].get("defaultMode", 0o644)
        if mount["mountPath"] == "/data":
            expect(data_volume in volume, f"{manifest}: /data is not a {data_volume}")
            data_mounted = True
    expect(data_mounted, f"{manifest}: nothing mounted on /data")
    keys = set((secret.get("stringData") or {}) | (secret.get("data") or {}))
    group = pod.get("securityContext", {}).get("fsGroup", 0)
    files = {}
    for key, value in env.items():
        if key.endswith("_FILE"):
            folder, name = os.path.split(value)
            expect(folder in secret_mounts, f"{key}={value} is not in a mounted Secret")
            expect(name in keys, f"{key}={value}: the Secret has no key {name!r}")
            # Kubernetes gives the files the Secret volume's defaultMode, group-owned by fsGroup.
            files[value] = (key, secret_mounts[folder], group)
    expect(files, "the container reads no *_FILE secret")
    expect(set(given or {}) <= {variable for variable, _, _ in files.values()},
           f"{manifest}: no mounted file for {sorted(given or {})}")
    write_scenario(out_dir, env, files, given)


def ha_variables(env):
    """The variables two-replica deployments must agree on: the routes and the lease; a *_FILE
    value by its file's name (`github_pushjet_secret` and `github-pushjet-secret` are one)."""
    picked = {}
    for key, value in env.items():
        if key in ("PUSHJET_BRIDGE_ROUTES", "PUSHJET_BRIDGE_LEASE") \
                or key.startswith("PUSHJET_BRIDGE_ROUTE_"):
            if key.endswith("_FILE"):
                value = os.path.basename(value).replace("_", "-")
            picked[key] = value
    return picked


def compose_ha(compose_file, config_json, manifest):
    with open(config_json, encoding="utf-8") as source:
        config = json.load(source)
    service = config["services"][SERVICE]
    replicas = (service.get("deploy") or {}).get("replicas")
    expect(replicas == 2, f"{compose_file}: {SERVICE} has deploy.replicas {replicas!r}, not 2")
    env = {key: "" if value is None else str(value)
           for key, value in (service.get("environment") or {}).items()}
    targets = {entry["target"] for entry in service.get("secrets") or []}
    url_file = env.get("PUSHJET_BRIDGE_DATABASE_URL_FILE")
    expect(url_file in targets,
           f"{compose_file}: PUSHJET_BRIDGE_DATABASE_URL_FILE={url_file!r} is not one of its secrets")
    expect("PUSHJET_BRIDGE_DATABASE_URL" not in env,
           f"{compose_file}: the database URL, password included, is in the environment")
    expect(not any(v.get("target") == "/data" and v.get("type") in ("volume", "bind")
                   for v in service.get("volumes") or []),
           f"{compose_file}: a volume on /data, but the state is in the database")
    kubernetes_env = {item["name"]: str(item.get("value", ""))
                      for item in kubernetes_container(manifest)[1].get("env") or []}
    ours, theirs = ha_variables(env), ha_variables(kubernetes_env)
    expect(ours == theirs, f"{compose_file} and {manifest} differ in the route and lease variables: "
           f"{sorted(set(ours.items()) ^ set(theirs.items()))}")
    print(f"{compose_file}: {SERVICE}: 2 replicas, the database URL from a secret file, "
          f"{len(ours)} route and lease variables as in {manifest}")
    upstreams = []
    for name, other in config["services"].items():
        for volume in other.get("volumes") or []:
            if volume.get("type") == "bind" and volume["target"].startswith("/etc/nginx/"):
                expect(os.path.isfile(volume["source"]),
                       f"{compose_file}: {name} mounts {volume['source']}, which does not exist")
                with open(volume["source"], encoding="utf-8") as source:
                    upstreams += re.findall(r"^\s*server\s+([^\s;:]+):(\d+)", source.read(), re.M)
                print(f"{compose_file}: {name} mounts {os.path.basename(volume['source'])} "
                      f"on {volume['target']}")
    expect(upstreams, f"{compose_file}: no nginx configuration with an upstream server mounted")
    listen = env.get("PUSHJET_BRIDGE_LISTEN", "0.0.0.0:8080").rsplit(":", 1)[1]
    for host, port in upstreams:
        expect((host, port) == (SERVICE, listen),
               f"nginx proxies to {host}:{port}, not to the {SERVICE} service on {listen}")


def alertmanager(alertmanager_yml, compose_json, manifest):
    with open(alertmanager_yml, encoding="utf-8") as source:
        config = yaml.safe_load(source)
    environments = {
        "compose": {k: str(v) for k, v in (compose_service(compose_json).get("environment") or {}).items()},
        "kubernetes": {item["name"]: str(item.get("value", ""))
                       for item in kubernetes_container(manifest)[1].get("env") or []},
    }
    hooks = 0
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs") or []:
            hooks += 1
            url = urlparse(webhook["url"])
            expect(url.path.startswith("/hooks/"), f"{webhook['url']} is not a /hooks/ URL")
            route = url.path.removeprefix("/hooks/")
            expect(webhook.get("send_resolved") is True, f"{webhook['url']}: send_resolved is not true")
            auth = webhook.get("http_config", {}).get("authorization", {})
            expect(auth.get("type", "Bearer") == "Bearer" and auth.get("credentials_file"),
                   f"{webhook['url']}: no bearer credentials_file")
            prefix = "PUSHJET_BRIDGE_ROUTE_" + route.upper().replace("-", "_") + "_"
            for where, env in environments.items():
                routes = [name.strip() for name in env.get("PUSHJET_BRIDGE_ROUTES", "").split(",")]
                expect(route in routes, f"{where}: no route {route!r} for {webhook['url']}")
                expect(env.get(prefix + "SOURCE", "auto") in ("alertmanager", "auto"),
                       f"{where}: route {route!r} is not an alertmanager source")
                expect(prefix + "TOKEN_FILE" in env, f"{where}: route {route!r} reads no token file")
            print(f"{alertmanager_yml}: {webhook['url']} -> route {route!r} in compose and Kubernetes")
    expect(hooks, f"{alertmanager_yml}: no webhook_configs")


def main(argv):
    commands = {"image": (image, 4), "compose": (compose, 3), "kubernetes": (kubernetes, 3),
                "kubernetes-ha": (kubernetes_ha, 4), "compose-ha": (compose_ha, 3),
                "alertmanager": (alertmanager, 3)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        fail("usage: see the module docstring")
    function, _ = commands[argv[1]]
    function(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
