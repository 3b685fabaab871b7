# tokengate: a small, non-root image. Build: docker build -t tokengate .
# Run:   docker run -p 8000:8000 -v tokengate-data:/data tokengate
# (SQLite in the /data volume; set TOKENGATE_DATABASE_URL=postgres://... to scale out.)

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Dependencies first, so a change to our sources does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY migrations ./migrations
COPY src ./src
# The stub's build products are older than our sources: make sure cargo rebuilds them.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin tokengate \
    && mkdir /data

# distroless/cc: glibc and CA certificates, no shell, no package manager; runs as
# uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tokengate /usr/local/bin/tokengate
COPY --from=build --chown=65532:65532 /data /data
# The default database, sqlite://tokengate.db, is relative to this directory.
WORKDIR /data
# DL3064 reads "TOKEN" in our variables' prefix as a secret; these two are not.
# hadolint ignore=DL3064
ENV TOKENGATE_BIND=0.0.0.0:8000 \
    TOKENGATE_LOG_FORMAT=json
EXPOSE 8000
VOLUME ["/data"]
USER 65532:65532
# No curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/tokengate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tokengate"]
CMD ["serve"]
