# syntax=docker/dockerfile:1
# Outpost control plane: a container image.
#
#   docker build -f packaging/docker/control-plane.Dockerfile -t outpost/control-plane .      # from the repository root
#
# Two stages: the Rust toolchain builds a release binary and strips its debug info (kept in the
# builder stage as /out/control-plane.debug: `docker build --target build` to get it); the image is
# distroless (glibc, libgcc, CA certificates, no shell), runs as the non-root user 65532, and
# holds only the binary, its default config and CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p control-plane --bin control-plane \
 && mkdir -p /out /out/var/lib/outpost-control-plane \
 && objcopy --only-keep-debug target/release/control-plane /out/control-plane.debug \
 && objcopy --strip-debug --add-gnu-debuglink=/out/control-plane.debug target/release/control-plane /out/control-plane \
 && chown 65532:65532 /out/var/lib/outpost-control-plane

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/control-plane /usr/bin/control-plane
COPY packaging/docker/control-plane.toml /etc/outpost/control-plane.toml
COPY --from=build --chown=65532:65532 /out/var/lib/outpost-control-plane /var/lib/outpost-control-plane
VOLUME ["/var/lib/outpost-control-plane"]
EXPOSE 7400
USER 65532:65532
# SIGTERM finishes the requests in flight, then stops.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/control-plane"]
CMD ["run", "--config", "/etc/outpost/control-plane.toml"]
