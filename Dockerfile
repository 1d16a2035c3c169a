# syntax=docker/dockerfile:1
# Latchkey's container image: built here from source in a Rust image, run
# from a minimal one (glibc and libgcc only: libpq, OpenSSL and SQLite are
# compiled into the binary). Build on a machine with registry access:
#   podman build -t latchkey .      (or: docker build -t latchkey .)
# tests/api/deploy.rs checks that the names below agree with the build.

# ---- build ------------------------------------------------------------
FROM docker.io/library/rust:1.89-bookworm AS build
WORKDIR /src
# Dependencies first, so that a change to our code rebuilds only our code.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches examples \
    && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/crypto.rs && echo 'fn main() {}' > examples/load.rs \
    && cargo build --release --locked \
    && rm -rf src benches examples
COPY . .
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/latchkey /out/usr/local/bin/latchkey \
    && install -d -m 0700 -o 65532 -g 65532 /out/data

# ---- run --------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/latchkey /usr/local/bin/latchkey
COPY --from=build --chown=65532:65532 /out/data /data
# The database and the key file live on the volume; keep both (README,
# "Backups"). The server creates the key file on first start.
ENV LATCHKEY_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/latchkey.db \
    LATCHKEY_KEY_FILE=/data/latchkey.key \
    LATCHKEY_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER 65532:65532
# The image has no shell and no curl: the binary checks itself.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/latchkey", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/latchkey"]
CMD ["serve"]
