# syntax=docker/dockerfile:1
# Outpost origin shield: a container image.
#
#   docker build -f packaging/docker/origin-shield.Dockerfile -t outpost/origin-shield .      # from the repository root
#
# Two stages: the Rust toolchain builds a release binary and strips its debug info (kept in the
# builder stage as /out/origin-shield.debug: `docker build --target build` to get it); the image is
# distroless (glibc, libgcc, CA certificates, no shell), runs as the non-root user 65532, and
# holds only the binary, its default config and CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p origin-shield --bin origin-shield \
 && mkdir -p /out /out/var/cache/outpost \
 && objcopy --only-keep-debug target/release/origin-shield /out/origin-shield.debug \
 && objcopy --strip-debug --add-gnu-debuglink=/out/origin-shield.debug target/release/origin-shield /out/origin-shield \
 && chown 65532:65532 /out/var/cache/outpost

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/origin-shield /usr/bin/origin-shield
COPY packaging/docker/shield.toml /etc/outpost/shield.toml
COPY --from=build --chown=65532:65532 /out/var/cache/outpost /var/cache/outpost
VOLUME ["/var/cache/outpost"]
EXPOSE 8080
USER 65532:65532
# SIGTERM drains (limits.drain_timeout, 10 s by default): give `docker stop -t` more than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/origin-shield"]
CMD ["--config", "/etc/outpost/shield.toml"]
