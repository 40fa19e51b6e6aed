package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	njs "github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/cluster"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/events/jetstream"
	"github.com/spectra-fab/spectra/fab"
	"github.com/spectra-fab/spectra/projections"
	"github.com/spectra-fab/spectra/projections/natskv"
)

// Node is one running Spectra node.
type Node struct {
	cfg       Config
	server    *jetstream.Server // embedded NATS, when no URL was given
	nc        *nats.Conn
	store     events.Store
	artifacts *artifacts
	jobs      *projections.JobStatus
	spc       *projections.SPCCharts
	mv        *projections.Multivariate
	r2r       *projections.R2RState
	security  *projections.Security // API keys and token families
	audit     *projections.Audit
	fab       *projections.Fab // recipe library, lots, schedules (fab.go)
	runner    *projections.Runner
	actors    *actors.Service
	cluster   *cluster.Cluster // nil on a single node
	slots     *cluster.Slots   // cluster-wide queue slots; nil on a single node
	api       *api.Server
	registry  *prometheus.Registry
	tracing   func(context.Context) error // flushes and stops the OTLP exporter; nil without one

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errc   chan error
	once   sync.Once
}

// Start opens the stores, catches the projections up, wakes every
// unfinished run and (when HTTPAddr is set) serves the API.
// A start-up failure shuts down whatever had started (the embedded NATS
// server, connections, goroutines) before Start returns the error.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	cfg, err := cfg.withClusterDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, errc: make(chan error, 2), registry: prometheus.NewRegistry()}
	if err := n.start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) (err error) {
	cfg := n.cfg
	if cfg.OTLPEndpoint != "" {
		if n.tracing, err = startTracing(ctx, cfg.OTLPEndpoint, cfg.Node); err != nil {
			return err
		}
	}
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var opts []nats.Option // of the connections to an external NATS
	if cfg.NATSURL == "" {
		n.server, err = jetstream.StartServer(jetstream.ServerConfig{DataDir: cfg.DataDir, Sync: !cfg.NoSync,
			ListenAddr: cfg.NATSListen, Logger: cfg.Logger,
			Credentials: jetstream.Credentials{User: cfg.NATSUser, Password: cfg.NATSPassword}, NKeySeedFile: cfg.NATSNKeySeed,
			TLSCertFile: cfg.NATSTLSCert, TLSKeyFile: cfg.NATSTLSKey, TLSCAFile: cfg.NATSCAFile, Cluster: cfg.natsCluster()})
		if err != nil {
			return err
		}
		n.nc, err = n.server.Connect(nats.Name("spectra-" + cfg.Node))
	} else {
		opts = []nats.Option{nats.Name("spectra-" + cfg.Node), nats.MaxReconnects(-1)}
		if cfg.NATSUser != "" {
			opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
		}
		if cfg.NATSNKeySeed != "" {
			nk, err := nats.NkeyOptionFromSeed(cfg.NATSNKeySeed)
			if err != nil {
				return fmt.Errorf("nats nkey: %w", err)
			}
			opts = append(opts, nk)
		}
		if cfg.NATSCAFile != "" {
			opts = append(opts, nats.RootCAs(cfg.NATSCAFile))
		}
		n.nc, err = nats.Connect(cfg.NATSURL, opts...)
	}
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", cfg.NATSURL, err)
	}
	js, err := njs.New(n.nc)
	if err != nil {
		return err
	}

	// Reads get their own connection: the server answers a connection's
	// direct gets in line, so a replay would hold the appends behind it.
	readConn := func() (*nats.Conn, error) {
		return nats.Connect(cfg.NATSURL, append(opts, nats.Name("spectra-"+cfg.Node+"-reads"))...)
	}
	if n.server != nil {
		readConn = func() (*nats.Conn, error) { return n.server.Connect(nats.Name("spectra-" + cfg.Node + "-reads")) }
	}
	if err = n.retry(ctx, "event store", func(ctx context.Context) (err error) {
		n.store, err = openStore(ctx, n.nc, readConn, cfg)
		return err
	}); err != nil {
		return err
	}
	if st, ok := n.store.(*jetstream.Store); ok { // fsyncs/s for spectra bench, when they are ours to count
		n.registry.MustRegister(st.Collectors(map[bool]*jetstream.Server{true: n.server}[!cfg.NoSync])...)
	}
	var cps *natskv.Checkpoints
	if err = n.retry(ctx, "artifacts and checkpoints", func(ctx context.Context) (err error) {
		if n.artifacts, err = openArtifacts(ctx, js, cfg.ArtifactTTL); err != nil {
			return err
		}
		if cps, err = natskv.Open(ctx, js); err != nil {
			return err
		}
		return replicate(ctx, js, cfg.replicas(), "OBJ_artifacts", "KV_checkpoints", "OBJ_projections")
	}); err != nil {
		return err
	}

	n.jobs = projections.NewJobStatus()
	n.spc, n.r2r = projections.NewSPCCharts(projections.SPCConfig{Baseline: cfg.SPCBaseline}), projections.NewR2RState()
	n.security, n.audit, n.fab = projections.NewSecurity(), projections.NewAudit(), projections.NewFab()
	tools := projections.NewTools() // E10 timelines (docs/provenance.md)
	n.mv = projections.NewMultivariate(projections.MultivariateConfig{Library: cfg.T2Library})
	n.runner = projections.NewRunner(n.store, cps, cfg.Logger.With("component", "projections"), n.jobs, n.spc, n.r2r,
		n.security, n.audit, n.fab, n.mv, tools)
	if head := n.head(); head != nil {
		// A run starting right after another completed learns from it.
		synced := n.syncHead(head)
		n.r2r.SetSync(2*time.Second, func(ctx context.Context) error {
			h, err := synced(ctx)
			if err != nil {
				return err
			}
			return n.runner.WaitFor(ctx, h)
		})
		n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spectra_projection_lag",
			Help: "Appends (log messages) the read models have not applied yet."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				h, err := head(ctx)
				if err != nil {
					return math.NaN()
				}
				return float64(jetstream.Distance(n.runner.Position(), h)) // in appends: positions are sequence×1000 + index
			}))
	}
	lag := prometheus.NewGauge(prometheus.GaugeOpts{Name: "spectra_projection_position",
		Help: "Global log position the read models have applied."})
	n.registry.MustRegister(lag)
	n.runner.OnApplied(func(p uint64) { lag.Set(float64(p)) })
	for _, name := range n.runner.Names() {
		n.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spectra_projection_stopped",
			Help:        "1 while a projection is stopped at an event its Apply failed on (see /readyz), else 0.",
			ConstLabels: prometheus.Labels{"projection": name}},
			func() float64 {
				if n.runner.Stopped(name) {
					return 1
				}
				return 0
			}))
	}
	n.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_projection_resubscriptions_total",
		Help: "Times the projection runner subscribed to the log again after a subscription error."},
		func() float64 { return float64(n.runner.Resubscriptions()) }))

	runCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.runner.Run(runCtx); err != nil {
			cfg.Logger.Error("projection runner stopped", "err", err)
			n.errc <- err
		}
	}()

	sealKey, err := readSealKey(cfg.SealKeyFile)
	if err != nil {
		return err
	}
	var slots actors.Slots
	if cfg.clustered() {
		if slots, err = n.openSlots(ctx, js); err != nil {
			return err
		}
	}
	n.actors, err = actors.New(actors.Config{TimeScale: cfg.TimeScale, Node: cfg.Node, QueueLimit: cfg.QueueLimit, QueueLimits: cfg.QueueLimits,
		SoftLimit: cfg.SoftLimit, HardLimit: cfg.HardLimit, RetryBase: cfg.RetryBase, RetryCap: cfg.RetryCap,
		AllowFaultInjection: cfg.AllowFaultInjection, Logger: cfg.Logger.With("component", "actors"), SealKey: sealKey, Slots: slots},
		newTimedStore(n.store, n.registry), n.artifacts, cfg.Engines, n.r2r)
	if err != nil {
		return err
	}
	if cfg.clustered() {
		if err := n.join(); err != nil {
			return err
		}
	}
	n.registry.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_run_actors_fenced_total",
			Help: "Run actors stopped because another writer appended to their stream (duplicate activations)."},
			func() float64 { return float64(n.actors.Fenced()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spectra_runs_unfinished",
			Help: "Runs of every organisation that are queued, running, paused or retrying."},
			func() float64 { return float64(len(n.jobs.Unfinished())) }),
		newRunCollector(n.jobs))

	// Catch up, then wake every run that is not finished: recovery after a
	// crash or a restart. The reconciler repeats it now and then, since
	// nothing else re-activates a run whose actor is gone.
	select {
	case <-n.runner.CaughtUp():
	case <-ctx.Done():
		return ctx.Err()
	case err := <-n.errc:
		return err
	}
	n.actors.SetWeights(cfg.OrgWeights)
	for _, id := range n.jobs.Unfinished() {
		if org, ok := n.audit.Owner(id); ok {
			n.actors.Own(id, org) // fair sharing after a restart
		}
	}
	n.actors.Wake(n.jobs.Unfinished()...)
	n.wg.Add(1)
	go n.reconcile(runCtx)
	runs := ownedRuns{n.actors}
	fabSvc := fab.NewService(n.store, runs, validators(cfg.Engines), fab.Options{TimeScale: cfg.TimeScale, Node: cfg.Node,
		Logger: cfg.Logger.With("component", "fab"), OnWaferRun: killAfterLotRuns(cfg.Logger)})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		(&scheduleWorker{fab: fabSvc, model: n.fab, log: cfg.Logger.With("component", "schedules"), now: time.Now,
			running: n.running}).Run(runCtx)
	}()
	monitor := projections.NewSPCMonitor(n.spc, n.store, cfg.Logger.With("component", "spc-monitor"))
	monitor.Node = cfg.Node
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = monitor.Run(runCtx, n.runner.CaughtUp())
	}()

	var jwks *api.JWKS
	if cfg.JWKSFile != "" {
		if jwks, err = api.OpenJWKS(cfg.JWKSFile); err != nil {
			return err
		}
	}
	n.api = api.New(api.Config{JWTSecret: api.Secret(cfg.JWTSecret), Logger: cfg.Logger.With("component", "api"),
		Node: cfg.Node, AllowFaultInjection: cfg.AllowFaultInjection, ReadYourWritesTimeout: cfg.ReadYourWritesTimeout,
		JWKS: jwks, JWTIssuer: cfg.JWTIssuer, JWTAudience: cfg.JWTAudience, MaxTokenLifetime: cfg.MaxTokenLifetime, RateLimits: cfg.RateLimits, AccessTokenTTL: cfg.AccessTokenTTL, RefreshTokenTTL: cfg.RefreshTokenTTL},
		api.Deps{Commands: runs, Queries: projections.JobQueries{Model: n.jobs, Runner: n.runner}, Store: n.store,
			Ready: n.ready, StoreDown: n.storeDown, Registerer: n.registry, Gatherer: n.registry, Artifacts: n.artifacts, Views: views{spc: n.spc, r2r: n.r2r, mv: n.mv}, Tunings: n.actors,
			Events: n.store, Credentials: n.security, Audit: n.audit,
			Streams: n.store, Fab: fabSvc, FabLists: n.fab,
			Verifier: &projections.Verifier{Store: n.store, Engines: actors.EngineFunc(cfg.Engines), // runs record their policy
				PublicKey: sealPublicKey(sealKey)},
			WhatIf: &projections.WhatIfs{Store: n.store}, Tools: tools})
	if cfg.HTTPAddr != "" {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.api.Listen(cfg.HTTPAddr); err != nil {
				cfg.Logger.Error("http server stopped", "err", err)
				n.errc <- err
			}
		}()
	}
	return nil
}

// openStore opens the event store cfg.EventStore names. It returns a nil
// interface on error (never a typed nil pointer), so Close can test it.
func openStore(ctx context.Context, nc *nats.Conn, readConn func() (*nats.Conn, error), cfg Config) (events.Store, error) {
	switch {
	case cfg.EventStore == "jetstream":
		// Group commit shares the fsyncs of concurrent appends; it pays
		// only where the server fsyncs every write: our embedded single
		// server with sync on (events/jetstream/groupcommit.go).
		st, err := jetstream.New(ctx, nc, jetstream.Options{Logger: cfg.Logger.With("component", "store"), Replicas: cfg.replicas(),
			ReadConn: readConn, GroupCommit: cfg.NATSURL == "" && !cfg.NoSync && !cfg.clustered() && cfg.replicas() == 1})
		if err != nil {
			return nil, err
		}
		return st, nil
	case strings.HasPrefix(cfg.EventStore, "esdb") || strings.HasPrefix(cfg.EventStore, "kurrentdb"):
		return openKurrent(ctx, cfg.EventStore, cfg)
	}
	return nil, fmt.Errorf("unknown event store %q (want jetstream, esdb://… or kurrentdb://…)", cfg.EventStore)
}

func (n *Node) reconcile(ctx context.Context) {
	defer n.wg.Done()
	every, changed := 30*time.Second, (<-chan struct{})(nil)
	if n.cluster != nil {
		// Activation is lazy: a run whose node died stays dead until a
		// command reaches it. Wake every unfinished run on each change of
		// topology (its one owner activates it) and often besides.
		every, changed = 10*time.Second, n.cluster.Changed()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-changed:
		}
		n.actors.Wake(n.jobs.Unfinished()...)
		n.sweep(ctx)
	}
}

func (n *Node) ready(ctx context.Context) error {
	select {
	case <-n.runner.CaughtUp():
	default:
		return errors.New("projections are catching up")
	}
	if !n.runner.Live() {
		return errors.New("projections are resubscribing to the log")
	}
	if fs := n.runner.Failures(); len(fs) > 0 {
		return &projections.StoppedError{Failures: fs}
	}
	return n.storeDown()
}

// storeDown reports a NATS connection that is down (the log, or with
// KurrentDB the artifacts and checkpoints, cannot be written), or a log
// store that cannot reach its server (KurrentDB).
func (n *Node) storeDown() error {
	if n.nc != nil && !n.nc.IsConnected() {
		return errors.New("nats disconnected")
	}
	if d, ok := n.store.(interface{ Down() error }); ok {
		return d.Down()
	}
	return nil
}

// Err delivers a fatal error of a background part (HTTP server, projection
// runner).
func (n *Node) Err() <-chan error { return n.errc }

// API is the node's HTTP API.
func (n *Node) API() *api.Server { return n.api }

// NATSClientURL is where the embedded NATS server listens for other
// processes; empty without --nats-listen or with an external NATS.
func (n *Node) NATSClientURL() string {
	if n.server == nil {
		return ""
	}
	return n.server.ClientURL()
}

// Store is the node's event store.
func (n *Node) Store() events.Store { return n.store }

// Actors is the node's actor layer.
func (n *Node) Actors() *actors.Service { return n.actors }

// Jobs is the node's job-status read model.
func (n *Node) Jobs() *projections.JobStatus { return n.jobs }

// Runner is the node's projection runner.
func (n *Node) Runner() *projections.Runner { return n.runner }

// Close stops the API, the actors (runs go on after the next start), the
// projections (saving their checkpoints) and the stores, in that order.
func (n *Node) Close() {
	n.once.Do(func() {
		if n.api != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.api.Shutdown(ctx)
			cancel()
		}
		if n.actors != nil {
			_ = n.actors.Close()
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.store != nil {
			_ = n.store.Close()
		}
		if n.nc != nil {
			n.nc.Close()
		}
		if n.server != nil {
			n.server.Shutdown()
		}
		if n.tracing != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = n.tracing(ctx)
			cancel()
		}
	})
}

// head returns a function reading the log's last position cheaply, or nil
// when the store offers none (KurrentDB).
func (n *Node) head() func(ctx context.Context) (uint64, error) {
	st, ok := n.store.(*jetstream.Store)
	if !ok {
		return nil
	}
	return st.Head
}

// syncHead is the log position a starting run's R2R model must have
// applied: every completion acknowledged before it. When this node's store
// is the log's only writer (one node, embedded NATS), that is the highest
// position its own appends were acknowledged at, which costs no request:
// asking the server (head) waits behind the stream's queued fsyncs, about
// a second per run start under load (block profile, docs/performance.md).
// Before its first append the node asks once.
func (n *Node) syncHead(head func(ctx context.Context) (uint64, error)) func(ctx context.Context) (uint64, error) {
	st, ok := n.store.(*jetstream.Store)
	if !ok || n.cfg.clustered() || n.cfg.NATSURL != "" {
		return head
	}
	return func(ctx context.Context) (uint64, error) {
		if h := st.Acknowledged(); h > 0 {
			return h, nil
		}
		return head(ctx)
	}
}

// views adapts the SPC, multivariate and R2R read models to the API's
// Views: the multivariate (T²) charts follow the univariate ones.
type views struct {
	spc *projections.SPCCharts
	r2r *projections.R2RState
	mv  *projections.Multivariate
}

func (v views) Charts(ctx context.Context, f projections.ChartFilter) ([]projections.Chart, error) {
	cs, err := v.spc.Charts(ctx, f)
	if err != nil && !errors.Is(err, projections.ErrNotFound) {
		return nil, err
	}
	if v.mv != nil {
		cs = append(cs, v.mv.Charts(ctx, f)...)
	}
	if len(cs) == 0 {
		return nil, projections.ErrNotFound
	}
	return cs, nil
}
func (v views) Threads(ctx context.Context, f projections.R2RFilter) []projections.R2RThread {
	return v.r2r.Threads(ctx, f)
}

// SPC is the node's SPC chart read model.
func (n *Node) SPC() *projections.SPCCharts { return n.spc }

// R2R is the node's run-to-run read model.
func (n *Node) R2R() *projections.R2RState { return n.r2r }
