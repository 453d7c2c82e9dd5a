# Builds the cdf-provisioning binary (worker, REST facade, CLI) into a small runtime image.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# gcc and make build aws-lc-sys; nothing else is needed.
RUN apt-get update && apt-get install -y --no-install-recommends gcc make && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY src ./src
COPY schemas ./schemas
RUN CARGO_TARGET_DIR=/src/target cargo build --release --locked && cp target/release/cdf-provisioning /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 cdf
COPY --from=build /usr/local/bin/cdf-provisioning /usr/local/bin/cdf-provisioning
COPY infra /opt/cdf-provisioning/infra
COPY schemas /opt/cdf-provisioning/schemas
WORKDIR /opt/cdf-provisioning
USER cdf
# The API binds all interfaces in a container, so `api` starts only with CDF_API_BEARER_TOKEN
# set (at least 16 characters), or with CDF_API_INSECURE=true behind an authorizer of your own.
ENV CDF_LOG_FORMAT=json CDF_API_BIND=0.0.0.0:3004
ENTRYPOINT ["cdf-provisioning"]
CMD ["worker"]
