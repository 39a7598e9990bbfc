# The stationflow binary on a slim Debian. Built by docker-compose.yml; not built or run
# on the project's development machines (no Docker engine there).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p stationflow-engine --bin stationflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/stationflow /usr/local/bin/stationflow
COPY replay-data /opt/stationflow/replay-data
WORKDIR /var/lib/stationflow
ENTRYPOINT ["stationflow"]
CMD ["run"]
