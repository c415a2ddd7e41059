# hookgate: a small, non-root runtime image.
#   docker build -t hookgate:dev .
#   docker run --rm -p 8000:8000 -p 9901:9901 -v $PWD/config.yaml:/etc/hookgate/hookgate.yaml:ro hookgate:dev
# Build stage: the Rust toolchain plus cmake (pingora's zlib-ng); its image has the C compiler (ring, zstd)
# and make (jemalloc).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && printf 'fn main() {}\n' > benches/verify.rs && cp benches/verify.rs benches/throughput.rs \
    && cargo build --release --locked --bin hookgate && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin hookgate \
    && install -D target/release/hookgate /out/hookgate

# Runtime: glibc and CA certificates, no shell, user 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/hookgate /usr/local/bin/hookgate
COPY config.example.yaml /etc/hookgate/hookgate.yaml
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8000 9090 9901
ENTRYPOINT ["/usr/local/bin/hookgate"]
CMD ["run", "--config", "/etc/hookgate/hookgate.yaml", "--log-format", "json"]
