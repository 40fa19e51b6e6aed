package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
)

func runServe(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var (
		sf                                         storeFlags
		httpAddr, secretFile, nodeName, natsListen string
		logLevel, jwksFile                         string
		rates                                      api.RateLimits
		accessTTL, refreshTTL                      time.Duration
		timeScale                                  float64
		dev, faults                                bool
		queueLimit, spcBaseline                    int
		soft, hard, retryBase, retryCap, artTTL    time.Duration
	)
	sf.register(fs)
	fs.StringVar(&httpAddr, "http", envString("SPECTRA_HTTP_ADDR", ":8003"), "HTTP listen address (SPECTRA_HTTP_ADDR)")
	fs.Float64Var(&timeScale, "time-scale", envFloat("SPECTRA_TIME_SCALE", 100), "process time per wall time: 1 real time, 100 demo, 0 as fast as possible (SPECTRA_TIME_SCALE)")
	fs.StringVar(&secretFile, "jwt-secret-file", envString("SPECTRA_JWT_SECRET_FILE", ""), "file holding the JWT secret (else SPECTRA_JWT_SECRET)")
	fs.BoolVar(&dev, "dev", false, "development mode: generate a secret when none is set, print an admin token, allow fault injection")
	fs.BoolVar(&faults, "allow-fault-injection", envBool("SPECTRA_ALLOW_FAULT_INJECTION", false), "honour simulate_fault in recipes (SPECTRA_ALLOW_FAULT_INJECTION)")
	fs.StringVar(&nodeName, "node", envString("SPECTRA_NODE", hostname()), "node name in event metadata (SPECTRA_NODE)")
	fs.StringVar(&natsListen, "nats-listen", envString("SPECTRA_NATS_LISTEN", ""), "let the embedded NATS server listen here, e.g. 127.0.0.1:4222 (SPECTRA_NATS_LISTEN)")
	fs.IntVar(&spcBaseline, "spc-baseline", envInt("SPECTRA_SPC_BASELINE", 20), "first runs of an SPC chart that fix its limits (SPECTRA_SPC_BASELINE)")
	fs.IntVar(&queueLimit, "queue-limit", envInt("SPECTRA_QUEUE_LIMIT", 4), "runs admitted at once per queue (SPECTRA_QUEUE_LIMIT)")
	fs.DurationVar(&soft, "soft-time-limit", envDuration("SPECTRA_SOFT_TIME_LIMIT", 2*time.Hour), "process time after which a run is warned (SPECTRA_SOFT_TIME_LIMIT)")
	fs.DurationVar(&hard, "hard-time-limit", envDuration("SPECTRA_HARD_TIME_LIMIT", 3*time.Hour), "process time after which a run is aborted (SPECTRA_HARD_TIME_LIMIT)")
	fs.DurationVar(&retryBase, "retry-base", envDuration("SPECTRA_RETRY_BASE", 60*time.Second), "first automatic retry delay, process time (SPECTRA_RETRY_BASE)")
	fs.DurationVar(&retryCap, "retry-cap", envDuration("SPECTRA_RETRY_CAP", 10*time.Minute), "longest automatic retry delay, process time (SPECTRA_RETRY_CAP)")
	fs.DurationVar(&artTTL, "artifact-ttl", envDuration("SPECTRA_ARTIFACT_TTL", 7*24*time.Hour), "how long artifacts are kept (SPECTRA_ARTIFACT_TTL)")
	fs.StringVar(&jwksFile, "jwks-file", envString("SPECTRA_JWKS_FILE", ""), "JWKS file of an identity provider: RS256/EdDSA tokens verified by kid, reloaded when it changes (SPECTRA_JWKS_FILE)")
	fs.IntVar(&rates.CreateRuns, "rate-limit-create", envInt("SPECTRA_RATE_LIMIT_CREATE", 100), "run creations per principal per minute (SPECTRA_RATE_LIMIT_CREATE)")
	fs.IntVar(&rates.Reads, "rate-limit-read", envInt("SPECTRA_RATE_LIMIT_READ", 1000), "reads per principal per minute (SPECTRA_RATE_LIMIT_READ)")
	fs.IntVar(&rates.Commands, "rate-limit-command", envInt("SPECTRA_RATE_LIMIT_COMMAND", 100), "other commands per principal per minute (SPECTRA_RATE_LIMIT_COMMAND)")
	fs.DurationVar(&accessTTL, "access-token-ttl", envDuration("SPECTRA_ACCESS_TOKEN_TTL", 0), "lifetime of access tokens from POST /api/auth/token (SPECTRA_ACCESS_TOKEN_TTL; 0: the default)")
	fs.DurationVar(&refreshTTL, "refresh-token-ttl", envDuration("SPECTRA_REFRESH_TOKEN_TTL", 0), "lifetime of refresh tokens (SPECTRA_REFRESH_TOKEN_TTL; 0: the default)")
	fs.StringVar(&logLevel, "log-level", envString("SPECTRA_LOG_LEVEL", "info"), "debug, info, warn or error (SPECTRA_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	logger := newLogger(logLevel)
	if timeScale < 0 {
		return errors.New("serve: --time-scale must be ≥ 0")
	}

	secret, err := loadSecret(secretFile)
	if err != nil {
		return err
	}
	if dev {
		faults = true
		if len(secret) == 0 {
			if secret, err = devSecret(sf.dataDir); err != nil {
				return err
			}
		}
	} else if len(secret) < 32 {
		return errors.New("serve: SPECTRA_JWT_SECRET (or --jwt-secret-file) must hold at least 32 bytes; use --dev for a generated one")
	}
	if err := os.MkdirAll(sf.dataDir, 0o750); err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	n, err := node.Start(ctx, node.Config{HTTPAddr: httpAddr, DataDir: sf.dataDir, EventStore: sf.eventStore,
		NATSURL: sf.natsURL, NATSListen: natsListen, NoSync: sf.noSync, JWTSecret: secret, TimeScale: timeScale,
		Node: nodeName, AllowFaultInjection: faults, QueueLimit: queueLimit, SoftLimit: soft, HardLimit: hard,
		RetryBase: retryBase, RetryCap: retryCap, ArtifactTTL: artTTL, Logger: logger,
		SPCBaseline: spcBaseline, JWKSFile: jwksFile, RateLimits: rates, AccessTokenTTL: accessTTL, RefreshTokenTTL: refreshTTL})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer n.Close()
	defer servePprof(logger)()
	logger.Info("spectra serving", "http", httpAddr, "data_dir", sf.dataDir, "event_store", sf.eventStore,
		"time_scale", timeScale, "fsync", !sf.noSync, "dev", dev)
	if dev {
		tok, err := api.IssueToken(secret, "dev-admin", "admin@example.com", "org-1", "admin", 24*time.Hour)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "\nSpectra is running on %s (dev mode).\n  export SPECTRA_JWT_SECRET=%s\n  export SPECTRA_TOKEN=%s\n\n", httpAddr, string(secret), tok)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-n.Err():
		return fmt.Errorf("serve: %w", err)
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node-1"
	}
	return h
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// loadSecret reads the JWT secret from a file or SPECTRA_JWT_SECRET.
func loadSecret(file string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read jwt secret: %w", err)
		}
		return []byte(strings.TrimSpace(string(b))), nil
	}
	return []byte(os.Getenv("SPECTRA_JWT_SECRET")), nil
}

// devSecret returns the data directory's dev secret, making one the first
// time, so dev tokens survive restarts.
func devSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "dev-jwt-secret")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return []byte(strings.TrimSpace(string(b))), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(buf)
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		return nil, fmt.Errorf("write dev secret: %w", err)
	}
	return []byte(secret), nil
}
