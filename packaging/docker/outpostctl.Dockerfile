# syntax=docker/dockerfile:1
# Outpost's CLI (outpostctl): a container image.
#
#   docker build -f packaging/docker/outpostctl.Dockerfile -t outpost/outpostctl .      # from the repository root
#
# Two stages: the Rust toolchain builds a release binary and strips its debug info (kept in the
# builder stage as /out/outpostctl.debug: `docker build --target build` to get it); the image is
# distroless (glibc, libgcc, CA certificates, no shell), runs as the non-root user 65532, and
# holds only the binary and CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p control-plane --bin outpostctl \
 && mkdir -p /out \
 && objcopy --only-keep-debug target/release/outpostctl /out/outpostctl.debug \
 && objcopy --strip-debug --add-gnu-debuglink=/out/outpostctl.debug target/release/outpostctl /out/outpostctl

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/outpostctl /usr/bin/outpostctl
USER 65532:65532
# docker run --rm -e OUTPOST_URL -e OUTPOST_TOKEN outpost/outpostctl services list
ENTRYPOINT ["/usr/bin/outpostctl"]
