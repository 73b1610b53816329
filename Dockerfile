# syntax=docker/dockerfile:1
# rampart sidecar image: the profile-guided release binary on debian bookworm-slim, run as
# uid 10001.
#
#   docker build -t rampart .
#   docker run --read-only -p 15001:15001 -p 9901:9901 \
#     -v "$PWD/rampart.yaml:/etc/rampart/rampart.yaml:ro" rampart
#
# The embedded default config listens on 127.0.0.1, which is unreachable from outside a
# container: mount a config at /etc/rampart/rampart.yaml that sets `listen: 0.0.0.0:15001`
# and `admin.listen: 0.0.0.0:9901` (with `admin.token`, since admin then leaves loopback).
# RAMPART_CONFIG points there, so a missing mount fails start-up loudly (exit 1) instead of
# running the loopback-only default. Nothing is written to disk, so the root filesystem can be
# read-only; upstream TLS roots are compiled in (webpki-roots), so no ca-certificates package.

FROM rust:1.95-slim-bookworm AS build
# The binary is built profile-guided (benches/load/pgo.sh): instrumented, trained for 30 s on
# loopback against an nginx upstream, then rebuilt with the profile. The final build
# recompiles every crate each time (the profile is an input of each); the binary runs about
# 23 % fewer instructions per request than the plain build (docs/performance.md).
# `--build-arg PGO=0` builds the plain release binary, e.g. for a cross-architecture build
# under emulation.
ARG PGO=1
RUN case "$PGO" in 0|1) ;; *) echo "PGO must be 0 or 1, not '$PGO'" >&2; exit 1 ;; esac; \
    if [ "$PGO" = 1 ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends nginx wrk nghttp2-client \
        && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build artifacts between builds (BuildKit). `locked`:
# the profile and binaries pgo.sh writes between cargo runs must not be another concurrent
# build's (another platform's, say).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    if [ "$PGO" = 1 ]; then \
        bin=$(benches/load/pgo.sh); \
    else \
        cargo build --release --locked --bin rampart && bin=target/release/rampart; \
    fi \
    && install -D -m 0755 "$bin" /out/rampart

FROM debian:bookworm-slim
RUN groupadd --gid 10001 rampart \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin rampart \
    && mkdir -p /etc/rampart
COPY --from=build /out/rampart /usr/local/bin/rampart
ENV RAMPART_CONFIG=/etc/rampart/rampart.yaml \
    RAMPART_LOG=info \
    RAMPART_LOG_FORMAT=json
USER 10001:10001
EXPOSE 15001 9901
STOPSIGNAL SIGTERM
# `rampart probe URL` exits 0 on a 2xx answer: no curl or shell needed in the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/rampart", "probe", "http://127.0.0.1:9901/healthz"]
ENTRYPOINT ["/usr/local/bin/rampart"]
CMD ["run"]
