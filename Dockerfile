# The artifact-store binary in a small Debian image. Build: docker build -t artifact-store .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p artifact-store-gateway

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/artifact-store /usr/local/bin/artifact-store
VOLUME /data
EXPOSE 9000
ENTRYPOINT ["artifact-store"]
CMD ["serve", "--listen", "0.0.0.0:9000", "--data-dir", "/data"]
