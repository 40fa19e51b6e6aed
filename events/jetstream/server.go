package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerConfig configures an embedded NATS server with JetStream.
type ServerConfig struct {
	// DataDir holds the server's files, under DataDir/nats. Required.
	DataDir string
	// Sync makes the server fsync every write before acknowledging it
	// (JetStream's SyncAlways): an acknowledged append survives a power
	// loss. Without it an acknowledged append survives a crash of the
	// process but may be lost with the last two minutes of writes when
	// the machine itself goes down; appends are then about 5× faster
	// (see bench_test.go). Open and StartServer callers choose; Spectra
	// serves with Sync on.
	Sync bool
	// ListenAddr is the TCP address to serve clients on ("127.0.0.1:4222",
	// ":0" for any free port). Empty: no listener, in-process clients only.
	// A server that listens always requires credentials: Credentials, or
	// else the ones LoadOrCreateCredentials keeps in DataDir.
	ListenAddr string
	// Credentials clients must present when the server listens (zero:
	// generated, see ListenAddr). In-process clients from Connect use them
	// too.
	Credentials Credentials
	// NKeySeedFile is a user NKey seed whose public key the server
	// authorizes beside the user and password: clients then sign the
	// server's nonce with it instead of sending a password (empty: one
	// generated in DataDir, see NKeyFile, when the server listens).
	NKeySeedFile string
	// TLSCertFile and TLSKeyFile, when set, make the listener speak TLS
	// only (PEM files); and, with a Cluster, the routes too.
	TLSCertFile, TLSKeyFile string
	// TLSCAFile is the CA routes verify their peers' certificates with
	// (mutual TLS). Required for routes over TLS.
	TLSCAFile string
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
	// Cluster, when set, routes this server to its peers (cluster.go).
	Cluster *ClusterConfig
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns    *server.Server
	creds Credentials // zero when the server does not listen
	nkey  string      // the seed file of the authorized NKey user; "" when it does not listen
}

// StartServer starts an embedded NATS server with JetStream file storage
// under cfg.DataDir and waits until it accepts clients.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("start nats: no data directory")
	}
	dir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	opts := &server.Options{
		ServerName: "spectra",
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: cfg.Sync,
		NoSigs:     true,
		NoLog:      cfg.Logger == nil,
		// Embedded: a single server, so the JetStream domain and cluster
		// settings stay empty.
	}
	if cfg.ListenAddr == "" {
		opts.DontListen = true
	} else {
		host, port, err := net.SplitHostPort(cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("start nats: listen address %q: %w", cfg.ListenAddr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("start nats: listen address %q: %w", cfg.ListenAddr, err)
		}
		if p == 0 {
			p = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, p
		if cfg.Credentials.User == "" {
			if cfg.Credentials, err = LoadOrCreateCredentials(filepath.Join(cfg.DataDir, CredentialsFile)); err != nil {
				return nil, fmt.Errorf("start nats: %w", err)
			}
		}
		if err := cfg.Credentials.check(); err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
		pub := ""
		if cfg.NKeySeedFile == "" {
			cfg.NKeySeedFile = filepath.Join(cfg.DataDir, NKeyFile)
			pub, err = LoadOrCreateNKey(cfg.NKeySeedFile)
		} else {
			pub, err = NKeyPublic(cfg.NKeySeedFile)
		}
		if err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
		// Users and NKeys together: the server ignores a lone
		// Username/Password once NKeys are configured.
		opts.Users = []*server.User{{Username: cfg.Credentials.User, Password: cfg.Credentials.Password}}
		opts.Nkeys = []*server.NkeyUser{{Nkey: pub}}
		if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile})
			if err != nil {
				return nil, fmt.Errorf("start nats: tls: %w", err)
			}
			opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 2
		}
	}
	if cfg.Cluster != nil {
		if err := cfg.Cluster.apply(opts, cfg.Credentials); err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
		if err := routeTLS(opts, cfg); err != nil {
			return nil, fmt.Errorf("start nats: %w", err)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start nats: %w", err)
	}
	if cfg.Logger != nil {
		ns.SetLoggerV2(slogLogger{cfg.Logger}, false, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, errors.New("start nats: server not ready after 30s")
	}
	return &Server{ns: ns, creds: cfg.Credentials, nkey: cfg.NKeySeedFile}, nil
}

// routeTLS makes the routes of a server with a certificate speak mutual
// TLS: each end presents the certificate and verifies the other's against
// the CA. Routes authenticate with the user and password besides (NATS
// routes take no NKeys).
func routeTLS(opts *server.Options, cfg ServerConfig) error {
	if cfg.TLSCertFile == "" || opts.Cluster.Port == 0 {
		return nil
	}
	if cfg.TLSCAFile == "" {
		return errors.New("routes over TLS need the CA that signed the peers' certificates")
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile,
		CaFile: cfg.TLSCAFile, Verify: true})
	if err != nil {
		return fmt.Errorf("route tls: %w", err)
	}
	tc.RootCAs = tc.ClientCAs // a route dials its peers too: trust the CA both ways
	opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, 2
	return nil
}

// NKeySeedFile is the seed file of the NKey user the server authorizes
// (nats.NkeyOptionFromSeed reads it); empty when the server does not
// listen.
func (s *Server) NKeySeedFile() string { return s.nkey }

// Connect opens an in-process client connection to the server (no TCP).
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.InProcessServer(s.ns), nats.Name("spectra")}, opts...)
	if s.creds.User != "" {
		opts = append(opts, nats.UserInfo(s.creds.User, s.creds.Password))
	}
	nc, err := nats.Connect("", opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	return nc, nil
}

// ClientURL is the URL clients on other processes connect to; empty when
// the server has no listener.
func (s *Server) ClientURL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Credentials are what clients must present; zero when the server does
// not listen.
func (s *Server) Credentials() Credentials { return s.creds }

// Shutdown stops the server and waits until it has stopped, its files
// flushed and closed.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// slogLogger adapts slog to the server's logger interface.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) logf(level slog.Level, format string, v ...any) {
	l.l.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats")
}

func (l slogLogger) Noticef(format string, v ...any) { l.logf(slog.LevelInfo, format, v...) }
func (l slogLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v...) }
func (l slogLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l slogLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l slogLogger) Debugf(format string, v ...any)  { l.logf(slog.LevelDebug, format, v...) }
func (l slogLogger) Tracef(format string, v ...any)  { l.logf(slog.LevelDebug-4, format, v...) }
