# shardgate in a container: built with the Rust toolchain, run on a slim Debian.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# protoc: the etcd-client crate compiles etcd's protocol definitions when it builds.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends protobuf-compiler
COPY . .
RUN cargo build --release --locked --bin shardgate

FROM debian:bookworm-slim
COPY --from=build /src/target/release/shardgate /usr/local/bin/shardgate
COPY config/docker.toml /etc/shardgate/shardgate.toml
ENV SHARDGATE_CONFIG=/etc/shardgate/shardgate.toml
EXPOSE 15306 15000
ENTRYPOINT ["shardgate", "--log-format", "json"]
CMD ["serve"]
