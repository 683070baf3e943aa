"""Helpers of scripts/container-check: read the built image's configuration and the deployment
files, so that the check runs the image as the image and the deployment files say.

  container_check.py image CONFIG_JSON VERSION REVISION OUT_DIR
      checks the image configuration (`buildah inspect --type image` output) and writes
      OUT_DIR/entrypoint, OUT_DIR/healthcheck (NUL-separated arguments) and
      OUT_DIR/healthcheck-timeout (seconds)
  container_check.py compose COMPOSE_CONFIG_JSON IMAGE_HEALTHCHECK OUT_DIR
  container_check.py kubernetes MANIFEST SECRET_MANIFEST OUT_DIR
      write OUT_DIR/env (NUL-separated KEY=VALUE), OUT_DIR/mounts (NUL-separated
      HOST_PATH:CONTAINER_PATH:ro) and the secret files (made-up values of the right form) under
      OUT_DIR/secrets/; `compose` takes `docker compose config --format json` output, so the
      check uses the environment and secret paths compose itself resolved, and checks that its
      healthcheck is the image's (the `healthcheck` file written by `image`)
  container_check.py alertmanager ALERTMANAGER_YML COMPOSE_CONFIG_JSON MANIFEST
      checks that every webhook URL of the Alertmanager example is a /hooks/ROUTE of a route
      that compose and Kubernetes both configure as an alertmanager source reading a bearer
      token from a file, with send_resolved
"""

import json
import os
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


def secret_value(variable):
    """A made-up value of the form the variable's file must hold."""
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


def write_scenario(out_dir, env, files):
    """files: container path -> (variable naming it, mode, gid)."""
    secret_dir = os.path.join(out_dir, "secrets")
    os.makedirs(secret_dir, exist_ok=True)
    mounts = []
    for index, (target, (variable, mode, gid)) in enumerate(sorted(files.items())):
        host = os.path.join(secret_dir, f"{index}-{os.path.basename(target)}")
        with open(host, "w", encoding="utf-8") as out:
            out.write(secret_value(variable) + "\n")
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


def kubernetes_container(manifest):
    with open(manifest, encoding="utf-8") as source:
        documents = [doc for doc in yaml.safe_load_all(source) if doc]
    workload = next(doc for doc in documents if doc["kind"] in ("Deployment", "StatefulSet"))
    pod = workload["spec"]["template"]["spec"]
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
    with open(secret_manifest, encoding="utf-8") as source:
        secret = yaml.safe_load(source)
    pod, container = kubernetes_container(manifest)
    env = {}
    for item in container.get("env") or []:
        expect("value" in item, f"{item['name']}: only plain values are supported by the check")
        env[item["name"]] = str(item["value"])
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    secret_mounts = {}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "secret" in volume:
            expect(volume["secret"]["secretName"] == secret["metadata"]["name"],
                   "the mounted Secret is not the one in the Secret manifest")
            secret_mounts[mount["mountPath"].rstrip("/")] = volume["secret"].get("defaultMode", 0o644)
        if mount["mountPath"] == "/data":
            expect("persistentVolumeClaim" in volume, "/data is not a PersistentVolumeClaim")
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
    write_scenario(out_dir, env, files)


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
                "alertmanager": (alertmanager, 3)}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        fail("usage: see the module docstring")
    function, _ = commands[argv[1]]
    function(*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
