# syntax=docker/dockerfile:1
#
# LivePet in one image: the `livepet` server plus the web app it serves.
#   docker build -t livepet .           then   docker run -p 8080:8080 livepet
#   docker compose up --build           the same, with PostgreSQL (docker-compose.yml)
#
# The builder installs the same pinned tools as `cargo xtask run` (see README.md): trunk
# 0.21.14, the wasm-bindgen CLI equal to Cargo.lock's wasm-bindgen, and wasm-opt from npm's
# binaryen 132 (never Debian's binaryen: its wasm-opt writes wasm that fails to load).

ARG RUST_VERSION=1.95

# npm's binaryen ships wasm-opt as a Node.js script; take it with the Node.js 20 it was checked
# with, rather than Debian bookworm's older nodejs.
FROM node:20-bookworm-slim AS binaryen
RUN npm install --prefix /opt/binaryen --no-audit --no-fund binaryen@132.0.0 \
 && /opt/binaryen/node_modules/.bin/wasm-opt --version

FROM rust:${RUST_VERSION}-bookworm AS builder
# libpq-dev: diesel's PostgreSQL backend links libpq.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown
# Tools before the sources, each in its own layer, so a code change does not reinstall them.
RUN cargo install trunk --version 0.21.14 --locked
COPY --from=binaryen /usr/local/bin/node /usr/local/bin/node
COPY --from=binaryen /opt/binaryen /opt/binaryen
ENV PATH=/opt/binaryen/node_modules/.bin:$PATH
RUN wasm-opt --version

WORKDIR /src
COPY Cargo.lock ./
# No --locked here on purpose: the CLI's own lock file names a webpki-roots version that
# crates.io no longer has.
RUN version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)" \
 && test -n "$version" \
 && echo "wasm-bindgen-cli $version (from Cargo.lock)" \
 && cargo install wasm-bindgen-cli --version "$version"

COPY . .
# Cache mounts keep downloaded crates and build artifacts between image builds; the results
# are copied out of the cached target dir, since a cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo fetch --locked \
 && trunk build --release --offline --cargo-profile wasm-release \
 && cargo build --release --locked -p livepet-server --bin livepet \
 && cp target/release/livepet /usr/local/bin/livepet \
 && test -f frontend/dist/index.html

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --user-group --home-dir /app --shell /usr/sbin/nologin livepet \
 && mkdir -p /app/data \
 && chown livepet:livepet /app/data
COPY --from=builder /usr/local/bin/livepet /usr/local/bin/livepet
COPY --from=builder /src/frontend/dist /app/dist
USER livepet
# The default DATABASE_URL (sqlite://livepet.db) is relative: it lands in /app/data, the one
# folder the app may write. Mount a volume there to keep a SQLite world across containers.
WORKDIR /app/data
ENV LIVEPET_BIND=0.0.0.0:8080 \
    LIVEPET_STATIC_DIR=/app/dist
EXPOSE 8080
# Exec form: livepet is PID 1 and receives SIGTERM itself, so `docker stop` flushes every pet.
CMD ["livepet", "serve"]
