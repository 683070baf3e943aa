# syntax=docker/dockerfile:1
#
# pushjet-bridge: one static (musl) binary on an empty `scratch` image.
#
#   docker build -t pushjet-bridge .
#   docker run -p 8080:8080 -v pushjet-data:/data pushjet-bridge
#
# Stages:
#   builder  compiles the release binary for x86_64-unknown-linux-musl, dependencies first
#            (a dummy crate built from the real Cargo.toml and Cargo.lock) so that a source
#            change does not rebuild them.
#   binary   what the image ships from the build: /pushjet-bridge and an empty /data folder.
#   runtime  scratch + that binary, as UID/GID 65532, with /data as the volume.
#
# scripts/container-check builds the `runtime` target of this very file with buildah around a
# binary built on the host, by replacing the `binary` stage with a build context of the same
# name (`--build-context binary=DIR`); see deploy/README.md.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
# The target triple. For arm64, build on an arm64 machine with
# --build-arg RUST_TARGET=aarch64-unknown-linux-musl (not tested).
ARG RUST_TARGET=x86_64-unknown-linux-musl
# musl-tools gives musl-gcc, which compiles ring's C and assembly for the musl target (named
# here so that a missing musl-gcc is an error, not a silent fall-back to glibc's cc). The
# Debian release is fixed by the base image's tag; the package follows its security updates.
ENV TARGET_CC=musl-gcc
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "${RUST_TARGET}"
WORKDIR /src

# Dependencies only: the real manifest and lock file with an empty library and main (and empty
# benchmarks: cargo refuses a manifest whose [[bench]] files are missing, even to build a binary).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > benches/pipeline.rs \
    && echo 'fn main() {}' > benches/outbox.rs \
    && cargo build --release --locked --target "${RUST_TARGET}" \
    && rm -rf src benches

# The crate itself. build.rs, templates/ and examples/ are needed here: the built-in templates
# and the example payloads of `check` are compiled into the binary (include_dir!), so the runtime
# image needs no template files.
COPY build.rs ./
COPY templates ./templates
COPY examples ./examples
COPY benches ./benches
COPY src ./src
# COPY keeps the files' own modification times, which can be older than the dummy build's:
# touch them so cargo rebuilds the crate instead of shipping the dummy.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "${RUST_TARGET}" \
    && mkdir -p /out/data \
    && cp "target/${RUST_TARGET}/release/pushjet-bridge" /out/pushjet-bridge

FROM scratch AS binary
COPY --from=builder /out/ /

FROM scratch AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="pushjet-bridge" \
      org.opencontainers.image.description="Turns webhooks (GitHub, Gitea, GitLab, Alertmanager, Grafana, curl) into Pushjet push notifications" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# The built-in templates are inside the binary (compiled in from templates/); mount your own
# and set PUSHJET_BRIDGE_TEMPLATES_DIR to override them.
COPY --from=binary /pushjet-bridge /usr/local/bin/pushjet-bridge
# scratch has no shell, no /tmp and no mkdir: /data comes in as an empty folder owned by the
# service's user, so the volume (and a fresh named volume, which Docker fills from the image)
# is writable by it. The service keeps its redb database there.
COPY --from=binary --chown=65532:65532 /data /data

ENV PUSHJET_BRIDGE_LISTEN=0.0.0.0:8080 \
    PUSHJET_BRIDGE_DATA_DIR=/data
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080
# No curl in scratch: the binary asks its own /healthz (on the port of PUSHJET_BRIDGE_LISTEN).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/pushjet-bridge", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pushjet-bridge"]
