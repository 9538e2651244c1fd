# syntax=docker/dockerfile:1.7
# One image with the three binaries: exchange (serve, check-config, ledger), bidder, perf.
#   docker build -t rtb-exchange .
#   docker run --rm -p 8080:8080 -v $PWD/k8s/base/config:/etc/exchange:ro rtb-exchange
# Not exercised by CI on the development machine (no Docker engine there); the k8s
# manifests are validated offline by k8s/validate.sh instead.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build -------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
# C toolchain for ring; cmake/g++/make for rdkafka's bundled librdkafka (ledger/Kafka
# issue), with the headers of the libraries it can link (TLS, SASL, compression).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake g++ make pkg-config perl \
      libssl-dev libsasl2-dev zlib1g-dev libzstd-dev liblz4-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin exchange --bin bidder --bin perf \
 && mkdir -p /out \
 && cp target/release/exchange target/release/bidder target/release/perf /out/ \
 && strip --strip-debug /out/exchange /out/bidder /out/perf

# ---- runtime -----------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates for TLS to Kafka/PostgreSQL (bidder TLS uses the bundled webpki roots);
# the shared libraries librdkafka may link dynamically (libssl, libsasl2, zstd, lz4).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libsasl2-2 zlib1g libzstd1 liblz4-1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 rtb \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rtb \
 && mkdir -p /etc/exchange /var/lib/exchange/spool \
 && chown rtb:rtb /var/lib/exchange/spool
COPY --from=build /out/exchange /out/bidder /out/perf /usr/local/bin/
# Same uid/gid as runAsUser/runAsGroup in k8s/.
USER 10001:10001
ENV RUST_LOG=info
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
# No ENTRYPOINT: the command names the binary (k8s `args`, compose `command`).
CMD ["exchange", "serve", "--config", "/etc/exchange/exchange.toml", "--listen", "0.0.0.0:8080"]
