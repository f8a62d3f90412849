# syntax=docker/dockerfile:1
# Outpost edge node: a container image.
#
#   docker build -f packaging/docker/edge-node.Dockerfile -t outpost/edge-node .      # from the repository root
#
# Two stages: the Rust toolchain builds a release binary and strips its debug info (kept in the
# builder stage as /out/edge-node.debug: `docker build --target build` to get it); the image is
# distroless (glibc, libgcc, CA certificates, no shell), runs as the non-root user 65532, and
# holds only the binary, its default config and CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p edge-node --bin edge-node \
 && mkdir -p /out /out/var/cache/outpost \
 && objcopy --only-keep-debug target/release/edge-node /out/edge-node.debug \
 && objcopy --strip-debug --add-gnu-debuglink=/out/edge-node.debug target/release/edge-node /out/edge-node \
 && chown 65532:65532 /out/var/cache/outpost

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/edge-node /usr/bin/edge-node
COPY packaging/docker/edge.toml /etc/outpost/edge.toml
COPY --from=build --chown=65532:65532 /out/var/cache/outpost /var/cache/outpost
VOLUME ["/var/cache/outpost"]
EXPOSE 8080 8443 8443/udp
USER 65532:65532
# SIGTERM drains (limits.drain_timeout, 10 s by default): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/edge-node"]
CMD ["--config", "/etc/outpost/edge.toml"]
