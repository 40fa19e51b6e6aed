package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
)

// serveFlags are serve's settings: the node's configuration, bound field
// by field in node.Config.Bind, and the few that only the command reads.
type serveFlags struct {
	cfg        node.Config
	secretFile string
	dev        bool
	logLevel   slog.Level
	logFormat  string
}

func (s *serveFlags) bind(f *node.Flags) {
	s.cfg.Bind(f, hostname())
	f.String(&s.secretFile, "jwt-secret-file", "SPECTRA_JWT_SECRET_FILE", "", "file holding the JWT secret (else SPECTRA_JWT_SECRET)")
	f.Bool(&s.dev, "dev", "", false, "development mode: generate a secret when none is set, print an admin token and a sign-in link, allow fault injection, text logs")
	f.Text(&s.logLevel, "log-level", "SPECTRA_LOG_LEVEL", slog.LevelInfo, "debug, info, warn or error")
	f.String(&s.logFormat, "log-format", "SPECTRA_LOG_FORMAT", "", "text or json (default json, text with --dev)")
}

// parseServe reads serve's flags and environment.
func parseServe(args []string, lookupEnv func(string) (string, bool)) (*serveFlags, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var s serveFlags
	f := node.NewFlags(fs)
	s.bind(f)
	if err := f.Parse(args, lookupEnv); err != nil {
		if _, ok := errors.AsType[*node.EnvError](err); !ok {
			err = usageError{err}
		}
		return nil, err
	}
	if s.logFormat == "" {
		s.logFormat = "json"
		if s.dev {
			s.logFormat = "text"
		}
	}
	if s.logFormat != "json" && s.logFormat != "text" {
		return nil, fmt.Errorf("--log-format must be text or json, not %q", s.logFormat)
	}
	if err := s.cfg.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func runServe(ctx context.Context, args []string) error {
	s, err := parseServe(args, os.LookupEnv)
	if err != nil {
		return commandError("serve", err)
	}
	cfg := &s.cfg
	logger := newLogger(os.Stderr, s.logLevel, s.logFormat, s.dev)
	cfg.Logger = logger

	secret, err := loadSecret(s.secretFile)
	if err != nil {
		return err
	}
	if s.dev {
		cfg.AllowFaultInjection = true
		if len(secret) == 0 {
			if secret, err = devSecret(cfg.DataDir); err != nil {
				return err
			}
		}
	} else if len(secret) < 32 {
		return errors.New("serve: SPECTRA_JWT_SECRET (or --jwt-secret-file) must hold at least 32 bytes; use --dev for a generated one")
	}
	cfg.JWTSecret = secret
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("serve: %w", err)
	}

	n, err := node.Start(ctx, *cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer n.Close()
	defer servePprof(logger)()
	logger.Info("spectra serving", "http", cfg.HTTPAddr, "data_dir", cfg.DataDir, "event_store", cfg.EventStore,
		"time_scale", cfg.TimeScale, "fsync", !cfg.NoSync, "dev", s.dev)
	if s.dev {
		tok, err := api.IssueToken(secret, "dev-admin", "admin@example.com", "org-1", "admin", 24*time.Hour)
		if err != nil {
			return err
		}
		printDevBanner(os.Stderr, cfg.HTTPAddr, string(secret), tok)
	}
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-n.Err():
		return fmt.Errorf("serve: %w", err)
	}
}

// printDevBanner prints what a developer needs to start: the dashboard,
// a link that signs in to it, and the secret and token for the CLI.
func printDevBanner(w io.Writer, httpAddr, secret, token string) {
	base := "http://" + browsable(httpAddr)
	fmt.Fprintf(w, "\nSpectra is running (dev mode).\n"+
		"  Dashboard: %s/\n"+
		"  Sign in:   %s/#token=%s\n"+
		"  CLI:\n"+
		"    export SPECTRA_SERVER=%s\n"+
		"    export SPECTRA_JWT_SECRET=%s\n"+
		"    export SPECTRA_TOKEN=%s\n\n", base, base, token, base, secret, token)
}

// browsable turns a listen address into one a browser on this machine
// reaches: ":8003" and "0.0.0.0:8003" become "localhost:8003".
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "node-1"
	}
	return h
}

// newLogger logs to w as JSON or text. In dev mode the embedded NATS
// server's notices (its start-up banner among them) are dropped: warnings
// and errors still show.
func newLogger(w io.Writer, level slog.Level, format string, dev bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(w, opts)
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	}
	if dev {
		h = quietComponent{Handler: h, component: "nats", min: slog.LevelWarn}
	}
	return slog.New(h)
}

// quietComponent drops one component's records below a level.
type quietComponent struct {
	slog.Handler
	component string
	min       slog.Level
}

func (q quietComponent) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < q.min {
		quiet := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "component" && a.Value.String() == q.component {
				quiet = true
				return false
			}
			return true
		})
		if quiet {
			return nil
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietComponent) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietComponent{Handler: q.Handler.WithAttrs(attrs), component: q.component, min: q.min}
}

func (q quietComponent) WithGroup(name string) slog.Handler {
	return quietComponent{Handler: q.Handler.WithGroup(name), component: q.component, min: q.min}
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
