# syntax=docker/dockerfile:1
# Multi-stage build of the `rift` binary for the compose clusters (compose/*.yml).
#
#   docker build -t rift:local .
#
# Stage 1 builds with the Rust toolchain image (edition 2024 needs Rust >= 1.85); the
# full Debian-based image already has the C toolchain, make and zlib that the bundled
# librdkafka build needs, so only protoc (for etcd-client) is added. Stage 2 is a slim
# Debian with the binary alone: it links libc, libgcc_s and zlib dynamically (profiles
# are compiled in, and nothing uses TLS).

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin rift \
    && install -m 0755 target/release/rift /usr/local/bin/rift

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends zlib1g \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/rift /usr/local/bin/rift
# 7070: control API and /metrics; the data-plane ports come from the topology file.
EXPOSE 7070
ENTRYPOINT ["/usr/local/bin/rift"]
CMD ["--help"]
