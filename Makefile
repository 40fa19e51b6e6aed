# Spectra — build, run, test, bench.
GO      ?= go
BIN     := bin/spectra
PKGS    := ./...
# -p 2 matches the 2-core machines; the race detector needs the headroom.
TESTFLAGS ?= -race -count=1 -timeout 20m -p 2

.PHONY: build run test test-kubernetes test-short bench fuzz vet fmt clean browser dashboard dashboard-shots

build:
	$(GO) build -o $(BIN) ./cmd/spectra

run: build
	./$(BIN) serve --dev

# Fuzz targets of what the API takes from strangers (recipes, tokens,
# credentials, JSON nesting); `make test` runs each for FUZZTIME. A count
# of executions, not a duration: with a duration Go 1.26's coordinator can
# report "context deadline exceeded" when the time runs out while a worker
# is mid-input on a loaded machine (golang/go#75804, fixed in Go 1.27; CI
# saw it once), a failure with no failing input.
FUZZTIME ?= 20000x
FUZZ_API := FuzzIonRecipe FuzzRTPRecipe FuzzToken FuzzCredentials FuzzJSONDepth
# ... and of the fast decoders of the log's payloads, each against
# encoding/json (a payload may come from another node or store).
FUZZ_DECODE := ./events/:FuzzDecodeTelemetry ./events/:FuzzEncodeTelemetry ./events/:FuzzMetadataJSON ./events/:FuzzDecodeRunEvents ./projections/:FuzzScanTelemetry ./projections/:FuzzPlainJSON ./internal/jsonscan/:FuzzSkip

test: build
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)
	$(MAKE) test-kubernetes
	$(MAKE) fuzz

# The Kubernetes cluster provider is built only with -tags kubernetes
# (client-go doubles the binary). Outside -race: protoactor's member list
# races with its gossip in-process (upstream #1131/#1108).
test-kubernetes:
	$(GO) vet -tags kubernetes ./cluster/
	$(GO) test -count=1 -tags kubernetes ./cluster/ -run TestKubernetesProvider

fuzz:
	for f in $(FUZZ_API); do $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./api/ || exit 1; done
	for pf in $(FUZZ_DECODE); do $(GO) test -run '^$$' -fuzz "^$${pf#*:}\$$" -fuzztime $(FUZZTIME) "$${pf%%:*}" || exit 1; done

# -short skips only the slow soak and browser tests.
test-short:
	$(GO) test -short $(TESTFLAGS) $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Headless Chromium and Firefox for the dashboard's browser test (Debian's
# packages; Firefox is driven over WebDriver BiDi, no geckodriver needed).
browser:
	command -v chromium >/dev/null && command -v firefox-esr >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium firefox-esr)

# The dashboard's bundle: api/dashboard/src (vanilla JS + uPlot) built by
# esbuild into api/dashboard/app.js and app.css, which are committed and
# embedded, so `make build`, `make run` and `make test` need no network.
# Run after changing anything under api/dashboard/src, and commit the result.
dashboard:
	cd api/dashboard/src && npm ci --no-audit --no-fund && npm run build

# Refresh the screenshots in docs/dashboard/ from the browser test.
dashboard-shots:
	SPECTRA_SCREENSHOTS=$(CURDIR)/docs/dashboard $(GO) test -count=1 -run TestDashboardInBrowsers ./cmd/spectra/
