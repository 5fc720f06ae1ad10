# veil: a static binary on distroless, running as a non-root user.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# -tags sidecar leaves the demo and the fake upstream out of the binary.
RUN CGO_ENABLED=0 go build -tags sidecar -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/veil ./cmd/veil

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/veil /veil
USER nonroot:nonroot
# 8080: the proxy apps point OPENAI_BASE_URL at; 9090: admin (health, metrics).
EXPOSE 8080 9090
ENTRYPOINT ["/veil"]
CMD ["serve", "--config", "/etc/veil/veil.yaml"]
