# commitlog — build, run and test every module of the workspace.
#
# `make run` and `make test` are all a new user needs; both work on a fresh machine with only Go
# installed (developer tools are pinned in buildtools/go.mod and run through `go tool`).

SHELL := /usr/bin/env bash
GO ?= go
# The modules, in dependency order: modules.txt is the one list (see RELEASING.md).
MODULES := $(shell bash scripts/modules.sh)
# deploy (the Helm chart's checks) is a workspace of its own (deploy/go.work): Helm's
# dependencies must not raise the versions the released modules build with. It is tested and
# linted with them, and is not released.
CHECKED := $(MODULES) deploy
DATA_DIR ?= $(CURDIR)/data
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# tool prints the path of a pinned developer tool, building it on first use.
tool = $(shell GOWORK=off $(GO) -C buildtools tool -n $(1))
BENCHTIME ?= 2s
# modules runs buildtools/cmd/modules (module list, go.work, release rules, module proxy) on this repository.
modules = GOWORK=off $(GO) -C buildtools run ./cmd/modules -root $(CURDIR)

.PHONY: all build run cluster test test-deps test-large fuzz lint fmt vet staticcheck generate check-generate tidy work check-modules test-examples tags bench bench-load bench-vs-nats certs init gencert testraft testagent clean chaos chaos-short chaos-planted chaos-deps chaos-build

all: lint test build

## build: the commitlog binary in bin/
build:
	cd server && CGO_ENABLED=0 $(GO) build -trimpath \
		-ldflags "-X github.com/commitlog-go/commitlog/server/cli.Version=$(VERSION)" \
		-o ../bin/commitlog ./cmd/commitlog

## run: a single-node server on loopback, data under ./data. It bootstraps at once on a new data
## dir (--bootstrap-wait 0s): a lone development node has no older cluster to look for first
run: build
	bin/commitlog serve --data-dir "$(DATA_DIR)" --bootstrap-wait 0s

## cluster: three local nodes (API on 127.0.0.1:8400, 8410, 8420); Ctrl-C stops them; a node that
## exits is reported with the command that restarts it, and the others keep running
cluster: build
	bash scripts/cluster.sh

## test: every module's tests, with the race detector (prints every skipped test and a count; with
## COMMITLOG_STRICT=1, as in CI, a skipped test fails the run), the examples built as strangers
## build them (test-examples), then, as root, chaos-short: the fault-injection suite against
## real processes (network namespaces need root)
test: test-deps
	bash scripts/test.sh $(CHECKED)
	$(MAKE) --no-print-directory test-examples
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory chaos-short; \
	elif [ -n "$$COMMITLOG_STRICT" ]; then echo "make test: chaos-short needs root, and COMMITLOG_STRICT forbids skipping it"; exit 1; \
	else echo "make test: chaos-short NOT run: it needs root (network namespaces, nftables); run sudo make chaos-short"; fi

## test-deps: what the tests run besides Go (curl, Docker compose), from Debian when missing
test-deps:
	@missing=""; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then \
		missing="$$missing docker-compose"; fi; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "test-deps: missing$$missing (install them, or run as root)"; exit 0; fi; \
		echo "test-deps: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

## test-large: the tests left out of the race run (a 100 MB snapshot install, slow under -race;
## a diverged leader handing leadership over, flaky under -race)
test-large:
	cd server && $(GO) test -count=1 -timeout 20m -run 'Large$$' -v . ./fsm/

## fuzz: every fuzz target for FUZZTIME each (default 30s), from its committed corpus in testdata/fuzz
FUZZTIME ?= 30s
FUZZ_TARGETS := storage:./segment:FuzzOpen storage:./segment:FuzzDecodeFrame storage:./segment:FuzzDecodeIndex storage:./segment:FuzzDecodeTimeIndex \
	consensus:./raft:FuzzSnapshotFrame transport:./mux:FuzzSort \
	server:./fsm:FuzzDecodeCommand server:./fsm:FuzzDecodeEnvelope server:./fsm:FuzzSnapshotStream
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		IFS=: read -r mod pkg name <<<"$$t"; \
		echo "== fuzz $$mod $$pkg $$name ($(FUZZTIME))"; \
		(cd $$mod && $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg); \
	done

## lint: gofmt, go vet and staticcheck on every module
lint: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $(CHECKED) buildtools examples); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	@set -e; for m in $(CHECKED); do (cd $$m && $(GO) vet ./...); done
	cd buildtools && GOWORK=off $(GO) vet ./...

staticcheck:
	@set -e; sc="$(call tool,staticcheck)"; for m in $(CHECKED); do (cd $$m && "$$sc" ./...); done; \
		cd buildtools && GOWORK=off "$$sc" ./...

## generate: regenerate committed code (protobuf, gRPC and Connect stubs)
generate:
	bash transport/generate.sh

## check-generate: fail if generated code is not what `make generate` produces (changes nothing)
check-generate:
	bash transport/generate.sh -check

## tidy: go mod tidy for every module and buildtools (siblings resolved locally, see scripts/tidy.sh)
tidy:
	bash scripts/tidy.sh

## work: go.work generated from modules.txt and the modules' go.mod files
work:
	$(modules) work

## check-modules: fail if a go.mod requires a sibling at a version modules.txt does not list as
## released (or has a replace), or if make tidy or make work would change anything (changes nothing)
check-modules:
	$(modules) check
	$(modules) work -check
	bash scripts/tidy.sh -check

## tags: on the release commit, the missing release tags (<module>/<version> from modules.txt),
## annotated, in dependency order (see RELEASING.md; pushing them is up to you)
tags:
	$(modules) tag

## test-examples: the projects in examples/ built and run as strangers build them: from a
## file-system module proxy of this tree's modules at their released versions, GOWORK=off,
## no network, no replace (buildtools/internal/modules)
test-examples:
	cd buildtools && GOWORK=off $(GO) test -count=1 -timeout 15m ./...

## bench: the benchmarks that back the performance goals (see README)
bench:
	cd storage && $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./segment/
	cd consensus && $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./raft/
	cd server && $(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) . ./fsm/

## certs: the seed's mTLS set and ACL files in ./.config (CA, server for localhost/127.0.0.1 naming this host's node, root and nobody clients, gossip key); overwrites
certs: build
	mkdir -p .config
	bin/commitlog tls ca create --dir .config --name-prefix "" --force
	bin/commitlog tls cert create --server --dir .config --name-prefix "" --force
	bin/commitlog tls cert create --client --cn root --dir .config --name-prefix "" --force
	bin/commitlog tls cert create --client --cn nobody --dir .config --name-prefix "" --force
	(umask 077 && bin/commitlog tls gossip-key > .config/gossip.key)
	cp authz/casbin/testdata/seed/model.conf authz/casbin/testdata/seed/policy.csv .config/

## init, gencert, testraft, testagent: the seed's targets, kept for its users. init makes .config;
## gencert is certs (no cfssl needed); testraft runs the replication tests (consensus/raft: elections,
## replication, failover, snapshots, membership); testagent the cluster tests of the service
## (three in-process nodes with Serf and Raft: form, forward, fail over, leave, remove)
init:
	mkdir -p .config

gencert: certs

testraft:
	cd consensus && $(GO) test -race ./raft/

testagent:
	cd server && $(GO) test -race -run '^TestCluster' .

## bench-load: the load tool against real processes: a single node, then 3 nodes (see scripts/bench-load.sh)
bench-load:
	bash scripts/bench-load.sh

## bench-vs-nats: 3 commitlog nodes side by side with 3 NATS JetStream nodes (R3, fsync always), one
## table of records/s, p50 and server CPU per record with ratios (see scripts/bench-vs-nats.sh)
bench-vs-nats: build
	cd tools && $(GO) build -o ../bin/commitlog-bench ./cmd/commitlog-bench
	bash scripts/bench-vs-nats.sh

## chaos: the long fault-injection run against real processes (root; see tools/README.md):
## CHAOS_SCHEDULES schedules of CHAOS_DURATION from seed CHAOS_SEED, resumable (seeds already done in
## CHAOS_DIR are skipped: run it again, or raise CHAOS_SEED, to continue)
CHAOS_SCHEDULES ?= 100
CHAOS_DURATION ?= 60s
CHAOS_SEED ?= 1
CHAOS_NODES ?= 3
CHAOS_DIR ?= $(CURDIR)/chaos-out
CHAOS_FLAGS ?=
chaos: chaos-deps chaos-build
	bin/commitlog-chaos -bin bin/commitlog -dir "$(CHAOS_DIR)/long" -schedules $(CHAOS_SCHEDULES) -duration $(CHAOS_DURATION) \
		-seed $(CHAOS_SEED) -nodes $(CHAOS_NODES) -resume $(CHAOS_FLAGS)

## chaos-short: the CI form, 8 schedules of 20 s (under 10 minutes on 2 cores); fails on any anomaly
CHAOS_SHORT_SCHEDULES ?= 8
CHAOS_SHORT_DURATION ?= 20s
chaos-short: chaos-deps chaos-build
	rm -rf "$(CHAOS_DIR)/short"
	bin/commitlog-chaos -bin bin/commitlog -dir "$(CHAOS_DIR)/short" -schedules $(CHAOS_SHORT_SCHEDULES) \
		-duration $(CHAOS_SHORT_DURATION) -seed $(CHAOS_SEED) -nodes $(CHAOS_NODES) $(CHAOS_FLAGS)

## chaos-planted: each planted bug (a -tags chaosbugs binary) under CHAOS_PLANTED_RUNS seeded schedules,
## with the faults that expose it, and prints how many runs caught it. snapshot-no-sync needs lost
## unsynced writes, which kill -9 of a real process never causes: it runs the in-process power-loss
## test (crashfs) instead, which must fail with the bug planted.
CHAOS_PLANTED_RUNS ?= 10
CHAOS_PLANTED_DURATION ?= 20s
CHAOS_PLANTED_BUGS ?= ack-before-commit follower-unapplied-read stale-leader-read snapshot-restore-off-by-one
chaos-planted: chaos-deps chaos-build
	@mkdir -p "$(CHAOS_DIR)"; set -e; for bug in $(CHAOS_PLANTED_BUGS); do \
		case $$bug in \
		ack-before-commit) faults=partition-leader,partition-oneway;; \
		stale-leader-read) faults=pause-leader;; \
		snapshot-*) faults=remove-add,kill,partition-halves;; \
		*) faults=;; \
		esac; \
		bin/commitlog-chaos -bin bin/commitlog-chaosbugs -bug $$bug -faults "$$faults" -dir "$(CHAOS_DIR)/planted/$$bug" \
			-schedules $(CHAOS_PLANTED_RUNS) -duration $(CHAOS_PLANTED_DURATION) -seed $(CHAOS_SEED) -expect-anomaly \
			| tee "$(CHAOS_DIR)/planted-$$bug.txt" | grep -E '^(seed|planted)' || true; \
	done; \
	caught=0; for i in $$(seq $(CHAOS_PLANTED_RUNS)); do \
		(cd server && COMMITLOG_CHAOS_BUG=snapshot-no-sync $(GO) test -tags chaosbugs -count=1 -run TestPowerLossAfterCompaction ./fsm >/dev/null 2>&1) \
			|| caught=$$((caught+1)); \
	done; \
	echo "planted bug snapshot-no-sync (in process, power loss on crashfs): caught in $$caught of $(CHAOS_PLANTED_RUNS) runs" \
		| tee "$(CHAOS_DIR)/planted-snapshot-no-sync.txt"; \
	grep -h '^planted' "$(CHAOS_DIR)"/planted-*.txt

## chaos-deps: nftables and iproute2, installed only when missing (needs root)
chaos-deps:
	@command -v nft >/dev/null && command -v ip >/dev/null || { apt-get update && apt-get install -y nftables iproute2; }

chaos-build: build
	cd tools && $(GO) build -o ../bin/commitlog-chaos ./cmd/commitlog-chaos
	cd server && CGO_ENABLED=0 $(GO) build -trimpath -tags chaosbugs -o ../bin/commitlog-chaosbugs ./cmd/commitlog

clean:
	rm -rf bin
