# veil: WedSync's AI-provider sidecar. `make help` lists the targets.

GO        ?= go
PKGS      ?= ./...
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE      ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
FUZZTIME  ?= 15s
BENCH_RATE     ?= 2000
BENCH_DURATION ?= 10s
SOAK_DURATION  ?= 10m
SOAK_RATE      ?= 300
SOAK_FAULTS    ?= 0.05
OVERLOAD_CAPACITY ?= 0
OVERLOAD_STREAMS  ?= 10000

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: demo
demo: ## Run the demo: fake upstream, real veil, the wedding scenarios, a report.
	$(GO) run ./cmd/veil demo

.PHONY: setup
setup: ## Install what the tests need (idempotent, cached).
	@bash scripts/setup.sh

.PHONY: test
test: ## Run every test with the race detector, after setup, the static checks, a gofmt check and go vet; ends with each phase's time.
	@PKGS='$(PKGS)' bash scripts/test.sh

.PHONY: static
static: setup ## Run golangci-lint, go mod tidy -diff and verify, and each fuzz target for 3s (STATIC_FUZZTIME).
	@bash scripts/static-checks.sh

.PHONY: lint
lint: ## Run golangci-lint on the module (.golangci.yml; make setup installs it).
	@bash scripts/static-checks.sh lint

.PHONY: vuln
vuln: ## Check dependencies with govulncheck (needs access to vuln.go.dev; not part of CI).
	$(GO) run golang.org/x/vuln/cmd/govulncheck@latest $(PKGS)

.PHONY: screenshots
screenshots: ## Drive the console in headless Chromium and save each page to docs/console/*.png.
	$(GO) test -count=1 -run '^TestBrowser$$' ./console -update-screenshots

.PHONY: test-short
test-short: ## Run the tests without the race detector (quick feedback).
	$(GO) test -count=1 $(PKGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 15s).
	@bash scripts/fuzz.sh $(FUZZTIME)

.PHONY: bench
bench: ## Run the Go benchmarks and the load report (BENCH_RATE, BENCH_DURATION).
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./bench -rate $(BENCH_RATE) -duration $(BENCH_DURATION)

.PHONY: soak
soak: ## Soak veil at a constant rate with injected faults: RSS, goroutines, fds, p99 over time (SOAK_DURATION, SOAK_RATE, SOAK_FAULTS).
	$(GO) run ./bench/soak -duration $(SOAK_DURATION) -rate $(SOAK_RATE) -fault-share $(SOAK_FAULTS)

.PHONY: overload
overload: ## Load veil at twice its capacity with shedding, then hold slow streams (OVERLOAD_CAPACITY, 0 measures it; OVERLOAD_STREAMS).
	$(GO) run ./bench -overload -capacity $(OVERLOAD_CAPACITY) -streams $(OVERLOAD_STREAMS)

.PHONY: build
build: ## Build bin/veil as the image has it: the sidecar, without the demo and the fake upstream.
	CGO_ENABLED=0 $(GO) build -tags sidecar -trimpath -ldflags '$(LDFLAGS)' -o bin/veil ./cmd/veil

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet $(PKGS)

.PHONY: fmt
fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: docker
docker: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t wedsync/veil:$(VERSION) .

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin
