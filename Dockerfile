# syntax=docker/dockerfile:1
# One static binary in a small non-root image; every role is a subcommand.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/callflow ./cmd/callflow

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/callflow /usr/local/bin/callflow
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/callflow"]
CMD ["serve"]
