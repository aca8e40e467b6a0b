# relay — container image (Debian 12, non-root).
#
#   docker build -t relay:local .
#   docker run --rm -v "$PWD/relay.yaml:/etc/relay/relay.yaml:ro" -e DATABASE_URL=postgresql://... relay:local
#
# One image, three uses (docker-compose.yml and charts/relay use all of them):
#   relay run --config /etc/relay/relay.yaml      the default (ENTRYPOINT + CMD)
#   relay migrate --config /etc/relay/relay.yaml  apply the schema:  docker run ... relay:local migrate --config ...
#   relay-demo-consumer --listen 0.0.0.0:8080     the demo consumer: --entrypoint relay-demo-consumer
#
# No config is baked in: mount one at /etc/relay/relay.yaml (examples/relay.yaml documents every key;
# inside a container set `ops.listen: 0.0.0.0:9090`, or probes and Prometheus cannot reach it).
# Secrets reach the config through ${ENV} interpolation (database.url: ${DATABASE_URL}, ...).

# ---- build stage: the -dev packages of scripts/bootstrap, minus the test-only ones (catch2,
# postgresql-15): RELAY_TESTS=OFF does not look for them.
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpqxx-dev libpq-dev libprotobuf-dev protobuf-compiler libcpp-httplib-dev nlohmann-json3-dev \
      libfmt-dev libyaml-cpp-dev libssl-dev prometheus-cpp-dev \
      cmake g++ make pkg-config binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# .dockerignore keeps build*/, .relay/ and .git out of the context.
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DRELAY_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target relay relay-demo-consumer \
 && strip /build/relay/relay /build/examples/relay-demo-consumer

# ---- runtime stage: shared libraries only (the Debian 12 runtime packages of the -dev ones above).
# libprotobuf32 and libprometheus-cpp-core1.0 are listed ahead of the code that links them (the
# envelope and the metrics registry); the ldd check below fails the build if any library is
# missing, so a new dependency cannot slip into an image that would not start.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libpqxx-6.4 libpq5 libcpp-httplib0.11 libfmt9 libyaml-cpp0.7 libssl3 \
      libprotobuf32 libprometheus-cpp-core1.0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 relay \
 && useradd --uid 10001 --gid relay --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin relay \
 && mkdir -p /etc/relay
COPY --from=build /build/relay/relay /build/examples/relay-demo-consumer /usr/local/bin/
RUN for b in /usr/local/bin/relay /usr/local/bin/relay-demo-consumer; do \
      if ldd "$b" | grep 'not found'; then echo "runtime stage lacks a library of $b" >&2; exit 1; fi; \
    done \
 && relay version

# Numeric UID so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# The ops listener (/metrics, /healthz, /readyz, /status) when the config says ops.listen: 0.0.0.0:9090.
EXPOSE 9090
# relay drains in-flight deliveries on SIGTERM for up to shutdown_timeout (default 25s): give it
# that long plus a margin before SIGKILL (docker stop -t 30, compose stop_grace_period: 30s, the
# chart's terminationGracePeriodSeconds). relay takes SIGTERM with sigwait, so it stops correctly
# as PID 1 without an init.
STOPSIGNAL SIGTERM
# No HEALTHCHECK here: the same image runs `relay migrate` and the demo consumer, which serve no
# /readyz, and the slim base has no curl. docker-compose.yml checks the relay service's /readyz
# with bash's /dev/tcp; Kubernetes uses the chart's httpGet probes.
ENTRYPOINT ["relay"]
CMD ["run", "--config", "/etc/relay/relay.yaml"]
