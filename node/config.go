package node

import (
	"encoding"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/process"
)

// Config is a node's configuration. [Config.Bind] declares, once per
// field, the flag and SPECTRA_* environment variable that set it, with its
// default and help text; cmd/spectra binds them and tests fill the struct
// directly.
type Config struct {
	// HTTPAddr is where the API listens (":8003"); empty = no listener
	// (tests use Node.API().App()).
	HTTPAddr string
	// DataDir holds the embedded NATS server's files.
	DataDir string
	// EventStore is "jetstream" (default) or a kurrentdb:// / esdb://
	// connection string.
	EventStore string
	// NATSURL is an external NATS server; empty embeds one.
	NATSURL string
	// NATSListen, when set, makes the embedded NATS server listen on this
	// address (for tools and other nodes). It never listens without
	// credentials: NATSUser/NATSPassword, else generated ones kept in
	// DataDir/nats-credentials.json.
	NATSListen string
	// NATSUser and NATSPassword are the embedded server's credentials when
	// it listens, and the node's when it connects to NATSURL (which may
	// also carry them as user:password@).
	NATSUser, NATSPassword string
	// NATSNKeySeed is a user NKey seed file: the key the embedded server
	// authorizes when it listens (generated as DataDir/nats-user.nk when
	// empty), and the node's own with NATSURL.
	NATSNKeySeed string
	// NATSTLSCert and NATSTLSKey make the embedded server's listener speak
	// TLS only, and its cluster routes mutual TLS; NATSCAFile is the CA the
	// node trusts for NATSURL and its routes' peers.
	NATSTLSCert, NATSTLSKey, NATSCAFile string
	// NoSync trades the fsync of every append for speed: an acknowledged
	// append then survives a process crash but not a power loss.
	NoSync bool
	// JWTSecret signs and verifies access tokens.
	JWTSecret []byte
	// TimeScale: 1 real time, 100 the seed's demo speed, 0 as fast as
	// possible.
	TimeScale float64
	// Node names this node in event metadata ("node-1").
	Node string
	// AllowFaultInjection lets recipes carry simulate_fault.
	AllowFaultInjection bool
	// QueueLimit is the default concurrency per queue (4).
	QueueLimit int
	// QueueLimits override QueueLimit for named queues (KIND/TOOL).
	QueueLimits QueueLimits
	// OrgWeights are the organisations' fair-share weights in each queue
	// (default 1 each).
	OrgWeights Weights
	// SoftLimit, HardLimit, RetryBase, RetryCap: see actors.Config.
	SoftLimit, HardLimit, RetryBase, RetryCap time.Duration
	// ArtifactTTL is how long finished runs' artifacts are kept (7 days).
	ArtifactTTL time.Duration
	// ReadYourWritesTimeout bounds how long reads wait for projections.
	ReadYourWritesTimeout time.Duration
	// JWKSFile, when set, adds RS256/EdDSA verification of an identity
	// provider's tokens by kid (HS256 with JWTSecret always works).
	JWKSFile string
	// JWTIssuer and JWTAudience are required of the identity provider's
	// tokens (iss, aud); the audience is required with JWKSFile.
	JWTIssuer, JWTAudience string
	// MaxTokenLifetime caps an access token's lifetime (exp − iat); 0: 24 h.
	MaxTokenLifetime time.Duration
	// RateLimits caps requests per principal (zero fields: the specification's
	// defaults).
	RateLimits api.RateLimits
	// AccessTokenTTL and RefreshTokenTTL are the lifetimes of the tokens
	// POST /api/auth/token issues (zero: the API's defaults).
	AccessTokenTTL, RefreshTokenTTL time.Duration
	// OTLPEndpoint, when set, sends the API's request spans to an
	// OTLP/HTTP collector ("collector:4318" or a URL); empty: no exporter
	// (events still carry the trace ids a caller sends in traceparent).
	OTLPEndpoint string
	// SPCBaseline is how many first points of a chart fix its limits (20).
	SPCBaseline int
	// T2Library is how many good runs of a tool and recipe class make the
	// multivariate check's library (50).
	T2Library int
	// ClusterListen, ClusterPeers, ActorListen and Replicas make the node
	// one of a cluster: see cluster.go.
	ClusterListen, ClusterPeers, ActorListen string
	Replicas                                 int
	// ClusterProvider finds the members: "nats" (heartbeats on the shared
	// NATS) or "kubernetes" (protoactor's provider, pod labels).
	ClusterProvider string
	// ActorTLSCA, ActorTLSCert and ActorTLSKey secure actor remoting
	// with the operator's PKI; unset, its mutual TLS derives from the
	// cluster secret (cluster.go).
	ActorTLSCA, ActorTLSCert, ActorTLSKey string
	// NATSRaftDefaults keeps nats-server's Raft election timing (4–9 s)
	// instead of Spectra's faster one (1–2 s; cluster.go).
	NATSRaftDefaults bool
	// SealKeyFile holds the Ed25519 key that signs run seals (hex or
	// base64 seed; spectra seal-key makes one); empty: seals unsigned.
	SealKeyFile string
	// Engines overrides the process engines (tests); nil = actors.Engines().
	Engines map[process.Kind]actors.EngineFactory
	Logger  *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.EventStore == "" {
		c.EventStore = "jetstream"
	}
	if c.Node == "" {
		c.Node = "node-1"
	}
	if c.ArtifactTTL <= 0 {
		c.ArtifactTTL = 7 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Engines == nil {
		c.Engines = actors.Engines()
	}
	return c
}

// Flags binds settings to a flag set, each with the SPECTRA_* environment
// variable that sets it when the flag is not given. Each setting is
// declared once, in one call that names its field, flag, variable,
// default and help text; [Config.Bind] declares a node's.
type Flags struct {
	fs   *flag.FlagSet
	envs []envBinding
}

type envBinding struct{ flag, env string }

// NewFlags binds settings to fs.
func NewFlags(fs *flag.FlagSet) *Flags { return &Flags{fs: fs} }

// FlagSet is the bound flag set.
func (f *Flags) FlagSet() *flag.FlagSet { return f.fs }

// String binds a string setting.
func (f *Flags) String(p *string, name, env, def, usage string) {
	f.fs.StringVar(p, name, def, usage)
	f.rebind(name, env)
}

// Int binds an int setting.
func (f *Flags) Int(p *int, name, env string, def int, usage string) {
	f.fs.IntVar(p, name, def, usage)
	f.rebind(name, env)
}

// Float64 binds a float64 setting.
func (f *Flags) Float64(p *float64, name, env string, def float64, usage string) {
	f.fs.Float64Var(p, name, def, usage)
	f.rebind(name, env)
}

// Bool binds a bool setting.
func (f *Flags) Bool(p *bool, name, env string, def bool, usage string) {
	f.fs.BoolVar(p, name, def, usage)
	f.rebind(name, env)
}

// Duration binds a duration setting ("90s", "2h").
func (f *Flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.fs.DurationVar(p, name, def, usage)
	f.rebind(name, env)
}

// Text binds a setting that parses itself (slog.Level, …).
func (f *Flags) Text(p encoding.TextUnmarshaler, name, env string, def encoding.TextMarshaler, usage string) {
	f.fs.TextVar(p, name, def, usage)
	f.rebind(name, env)
}

// rebind notes the variable of a flag just defined and names it in the
// help text.
func (f *Flags) rebind(name, env string) {
	if env == "" {
		return
	}
	fl := f.fs.Lookup(name)
	fl.Usage += " (" + env + ")"
	f.envs = append(f.envs, envBinding{name, env})
}

// Parse sets each setting from its environment variable (read with
// lookupEnv, os.LookupEnv in a program), then from args: a flag beats its
// variable, and the variable beats the default. A variable whose value does
// not parse is an error that names it, never a silent default.
func (f *Flags) Parse(args []string, lookupEnv func(string) (string, bool)) error {
	for _, b := range f.envs {
		v, ok := lookupEnv(b.env)
		if !ok {
			continue
		}
		if err := f.fs.Set(b.flag, v); err != nil {
			return &EnvError{Name: b.env, Value: v, Err: err}
		}
	}
	return f.fs.Parse(args)
}

// EnvError is a SPECTRA_* variable whose value does not parse.
type EnvError struct {
	Name, Value string
	Err         error
}

func (e *EnvError) Error() string {
	return fmt.Sprintf("environment variable %s=%q: %v", e.Name, e.Value, e.Err)
}

func (e *EnvError) Unwrap() error { return e.Err }

// BindStore binds the settings every command that opens the event store
// shares: --data-dir, --event-store, --nats and --no-sync.
func (c *Config) BindStore(f *Flags) {
	f.String(&c.DataDir, "data-dir", "SPECTRA_DATA_DIR", "./data", "data directory of the embedded event store")
	f.String(&c.EventStore, "event-store", "SPECTRA_EVENT_STORE", "jetstream", "jetstream, or a kurrentdb:// / esdb:// connection string")
	f.String(&c.NATSURL, "nats", "SPECTRA_NATS_URL", "", "external NATS server URL; empty embeds one")
	f.Bool(&c.NoSync, "no-sync", "SPECTRA_NO_SYNC", false, "acknowledge appends before fsync: survives a crash, not a power loss")
}

// Bind binds every setting of a node that `spectra serve` takes from its
// command line and environment. JWTSecret, Engines and Logger are not
// among them: the command reads the secret from a file or
// SPECTRA_JWT_SECRET and builds the logger from its own flags.
func (c *Config) Bind(f *Flags, hostname string) {
	c.BindStore(f)
	f.String(&c.HTTPAddr, "http", "SPECTRA_HTTP_ADDR", ":8003", "HTTP listen address")
	f.Float64(&c.TimeScale, "time-scale", "SPECTRA_TIME_SCALE", 100, "process time per wall time: 1 real time, 100 demo, 0 as fast as possible")
	f.Bool(&c.AllowFaultInjection, "allow-fault-injection", "SPECTRA_ALLOW_FAULT_INJECTION", false, "honour simulate_fault in recipes")
	f.String(&c.Node, "node", "SPECTRA_NODE", hostname, "node name in event metadata")
	f.String(&c.NATSListen, "nats-listen", "SPECTRA_NATS_LISTEN", "", "let the embedded NATS server listen here, e.g. 127.0.0.1:4222; clients need the credentials (generated in the data directory unless --nats-user/SPECTRA_NATS_PASSWORD give them)")
	f.String(&c.NATSUser, "nats-user", "SPECTRA_NATS_USER", "", "NATS user: of the embedded server when it listens, or for --nats")
	f.String(&c.NATSPassword, "nats-password", "SPECTRA_NATS_PASSWORD", "", "NATS password (prefer the variable: flags show in ps)")
	f.String(&c.NATSTLSCert, "nats-tls-cert", "SPECTRA_NATS_TLS_CERT", "", "PEM certificate: the embedded server's listener speaks TLS only")
	f.String(&c.NATSTLSKey, "nats-tls-key", "SPECTRA_NATS_TLS_KEY", "", "PEM key of --nats-tls-cert")
	f.String(&c.NATSCAFile, "nats-ca", "SPECTRA_NATS_CA", "", "PEM CA the node trusts for a TLS --nats server, and for its routes' peers with --nats-tls-cert")
	f.String(&c.NATSNKeySeed, "nats-nkey-seed", "SPECTRA_NATS_NKEY_SEED", "", "NKey user seed file: the key the embedded server authorizes when it listens (generated as DATA_DIR/nats-user.nk otherwise), or the node's for --nats")
	f.Int(&c.SPCBaseline, "spc-baseline", "SPECTRA_SPC_BASELINE", 20, "first runs of an SPC chart that fix its limits")
	f.Int(&c.T2Library, "t2-library", "SPECTRA_T2_LIBRARY", 50, "good runs of a tool and recipe class that make the multivariate (T²) check's library")
	f.Int(&c.QueueLimit, "queue-limit", "SPECTRA_QUEUE_LIMIT", 4, "runs admitted at once per queue")
	f.Text(&c.QueueLimits, "queue-limits", "SPECTRA_QUEUE_LIMITS", QueueLimits(nil), "limits of named queues over --queue-limit, e.g. rtp/RTP-1=2,ion/IMP-1=1")
	f.Text(&c.OrgWeights, "org-weights", "SPECTRA_ORG_WEIGHTS", Weights(nil), "fair-share weights per organisation in each queue, e.g. org-1=2,org-2=1 (default 1 each)")
	f.Duration(&c.SoftLimit, "soft-time-limit", "SPECTRA_SOFT_TIME_LIMIT", 2*time.Hour, "process time after which a run is warned")
	f.Duration(&c.HardLimit, "hard-time-limit", "SPECTRA_HARD_TIME_LIMIT", 3*time.Hour, "process time after which a run is aborted")
	f.Duration(&c.RetryBase, "retry-base", "SPECTRA_RETRY_BASE", 60*time.Second, "first automatic retry delay, process time")
	f.Duration(&c.RetryCap, "retry-cap", "SPECTRA_RETRY_CAP", 10*time.Minute, "longest automatic retry delay, process time")
	f.Duration(&c.ArtifactTTL, "artifact-ttl", "SPECTRA_ARTIFACT_TTL", 7*24*time.Hour, "how long artifacts are kept")
	f.String(&c.JWKSFile, "jwks-file", "SPECTRA_JWKS_FILE", "", "JWKS file of an identity provider: RS256/EdDSA tokens verified by kid, reloaded when it changes")
	f.String(&c.JWTIssuer, "jwt-issuer", "SPECTRA_JWT_ISSUER", "", "iss the identity provider's tokens must carry")
	f.String(&c.JWTAudience, "jwt-audience", "SPECTRA_JWT_AUDIENCE", "", "aud the identity provider's tokens must carry (required with --jwks-file)")
	f.Duration(&c.MaxTokenLifetime, "jwt-max-lifetime", "SPECTRA_JWT_MAX_LIFETIME", 24*time.Hour, "longest access token lifetime (exp − iat) accepted")
	f.Int(&c.RateLimits.CreateRuns, "rate-limit-create", "SPECTRA_RATE_LIMIT_CREATE", 100, "run creations per principal per minute")
	f.Int(&c.RateLimits.Reads, "rate-limit-read", "SPECTRA_RATE_LIMIT_READ", 1000, "reads per principal per minute")
	f.Int(&c.RateLimits.Commands, "rate-limit-command", "SPECTRA_RATE_LIMIT_COMMAND", 100, "other commands per principal per minute")
	f.Duration(&c.AccessTokenTTL, "access-token-ttl", "SPECTRA_ACCESS_TOKEN_TTL", 0, "lifetime of access tokens from POST /api/auth/token; 0: the default")
	f.String(&c.SealKeyFile, "seal-key", "SPECTRA_SEAL_KEY", "", "file of the Ed25519 key that signs each run's seal (spectra seal-key makes one); verify checks it")
	f.String(&c.OTLPEndpoint, "otlp-endpoint", "SPECTRA_OTLP_ENDPOINT", "", "OTLP/HTTP collector for the API's request spans, e.g. collector:4318; empty: no exporter")
	f.Duration(&c.RefreshTokenTTL, "refresh-token-ttl", "SPECTRA_REFRESH_TOKEN_TTL", 0, "lifetime of refresh tokens; 0: the default")
	c.bindCluster(f)
}

// Validate reports settings no node can run with.
func (c *Config) Validate() error {
	var errs []error
	if c.TimeScale < 0 {
		errs = append(errs, errors.New("--time-scale must be ≥ 0"))
	}
	if c.QueueLimit < 0 {
		errs = append(errs, errors.New("--queue-limit must be ≥ 0"))
	}
	if c.SPCBaseline < 0 {
		errs = append(errs, errors.New("--spc-baseline must be ≥ 0"))
	}
	if c.T2Library != 0 && c.T2Library < 4 {
		errs = append(errs, errors.New("--t2-library must be ≥ 4 (more runs than the summary's variables + 1)"))
	}
	if c.JWKSFile != "" && c.JWTAudience == "" {
		errs = append(errs, errors.New("--jwt-audience is required with --jwks-file (tokens meant for another service must not pass)"))
	}
	return errors.Join(errs...)
}
