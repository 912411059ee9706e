# A small static image of aks-patch for running it inside the cluster (deploy/):
#   docker build -t myregistry.azurecr.io/aks-patch:0.1.0 .
# The binary is built on Alpine, whose Rust targets musl and links statically; the image
# holds it alone on distroless/static (CA certificates and the time zone database, which
# --time-zone reads; no shell, no package manager), running as a non-root user.
FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p aks-patch --bin aks-patch \
    && strip target/release/aks-patch \
    && ! ldd target/release/aks-patch 2>/dev/null | grep -q '=>'

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/aks-patch /usr/local/bin/aks-patch
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/aks-patch"]
