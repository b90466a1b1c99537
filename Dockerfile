# The relay as a container image: `docker compose up` (see docker-compose.yml).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sealroom-server --bin sealroom

FROM debian:bookworm-slim
# libpq: the relay speaks PostgreSQL when given a postgres:// database URL.
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /data sealroom && mkdir -p /data && chown sealroom /data
COPY --from=build /src/target/release/sealroom /usr/local/bin/sealroom
USER sealroom
ENV SEALROOM_BIND=0.0.0.0:8080 SEALROOM_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
ENTRYPOINT ["sealroom", "serve"]
