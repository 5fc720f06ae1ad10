# veil: a static binary on distroless, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=""
ARG DATE=""
# -tags sidecar leaves the demo and the fake upstream out of the binary.
RUN CGO_ENABLED=0 go build -tags sidecar -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT} -X main.date=${DATE}" -o /out/veil ./cmd/veil

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=""
ARG DATE=""
LABEL org.opencontainers.image.title="veil" \
      org.opencontainers.image.description="WedSync's AI-provider sidecar" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${DATE}" \
      org.opencontainers.image.licenses="UNLICENSED"
COPY --from=build /out/veil /veil
USER nonroot:nonroot
# 8080: the proxy apps point OPENAI_BASE_URL at; 9090: admin (health, metrics).
# Both listen on loopback unless told otherwise, as a sidecar shares its
# pod's network: to reach veil from outside the container, as with
#   docker run -e VEIL_PROXY_LISTEN=0.0.0.0:8080 -p 8080:8080 ...
# set VEIL_PROXY_LISTEN (and VEIL_ADMIN_LISTEN, with an admin token).
EXPOSE 8080 9090
# distroless has no curl: veil asks its own admin listener (GET /readyz).
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s CMD ["/veil", "health"]
ENTRYPOINT ["/veil"]
CMD ["serve", "--config", "/etc/veil/veil.yaml"]
