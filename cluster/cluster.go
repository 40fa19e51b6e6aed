package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/actors/actorspb"
)

// Name is the protoactor cluster name of Spectra nodes.
const Name = "spectra"

// Config configures a node's membership of the cluster.
type Config struct {
	// Node names this node (its NATS server name, event metadata).
	Node string
	// Host and Port of actor remoting (gRPC): other members send grain
	// messages here. Port 0 picks a free one.
	Host string
	Port int
	// Conn is the node's NATS connection, which carries the membership
	// heartbeats (MembersSubject).
	Conn *nats.Conn
	// TLS secures actor remoting with mutual TLS (TLSFromSecret,
	// TLSFromFiles); nil leaves it in plain text, for tests only.
	TLS *TLS
	// Kinds are the grain kinds this member hosts.
	Kinds []*protocluster.Kind
	// Provider finds the members: ProviderNATS (default) or
	// ProviderKubernetes.
	Provider string
	// KubeAPI, for the Kubernetes provider, is the API server to use
	// instead of the pod's service account (tests).
	KubeAPI *KubeAPI
	// Beat and TTL tune Membership (zero: its defaults).
	Beat, TTL time.Duration
	Logger    *slog.Logger
	// Lost is called once if this node drops out of the cluster; it must
	// stop the node.
	Lost func(error)
}

// Cluster is this node's membership of the Spectra cluster. It implements
// actors.Placement.
type Cluster struct {
	c          *protocluster.Cluster
	provider   protocluster.ClusterProvider
	membership *Membership // nil unless ProviderNATS
	watchdog   *watchdog   // the fail-stop of other providers
	leave      sync.Once

	mu      sync.Mutex
	changed []chan struct{}
	// members is the size of the last topology (protoactor's member list
	// may not be read from other goroutines).
	members atomic.Int64
}

var _ actors.Placement = (*Cluster)(nil)

// Join starts remoting on system and joins the cluster as a member hosting
// cfg.Kinds. system must not have started remoting already.
func Join(system *actor.ActorSystem, cfg Config) (*Cluster, error) {
	if cfg.Conn == nil && (cfg.Provider == "" || cfg.Provider == ProviderNATS) {
		return nil, errors.New("join cluster: no NATS connection")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var provider protocluster.ClusterProvider
	var m *Membership
	switch cfg.Provider {
	case "", ProviderNATS:
		m = &Membership{Conn: cfg.Conn, Node: cfg.Node, Beat: cfg.Beat, TTL: cfg.TTL, Log: cfg.Logger, Lost: cfg.Lost}
		provider = m
	case ProviderKubernetes:
		var err error
		if provider, err = kubernetesProvider(cfg.KubeAPI); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("join cluster: unknown provider %q (want %s or %s)", cfg.Provider, ProviderNATS, ProviderKubernetes)
	}
	lookup := disthash.New()
	var ropts []remote.ConfigOption
	if cfg.TLS != nil {
		ropts = append(ropts,
			remote.WithServerOptions(grpc.Creds(credentials.NewTLS(cfg.TLS.Server))),
			remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(cfg.TLS.Client))))
	}
	rcfg := remote.Configure(cfg.Host, cfg.Port, ropts...)
	ccfg := protocluster.Configure(Name, provider, lookup, rcfg, protocluster.WithKinds(cfg.Kinds...),
		protocluster.WithRequestTimeout(10*time.Second))
	c := protocluster.New(system, ccfg)
	out := &Cluster{c: c, provider: provider, membership: m}
	system.EventStream.Subscribe(func(evt any) {
		if t, ok := evt.(*protocluster.ClusterTopology); ok {
			out.members.Store(int64(len(t.Members)))
			out.notify()
		}
	})
	var err error
	func() {
		// StartMember panics when the provider fails to start.
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("join cluster: %v", r)
			}
		}()
		c.StartMember()
	}()
	if err != nil {
		return nil, err
	}
	if m == nil {
		// Kubernetes drops a frozen pod once its readiness probe fails
		// (15 s with deploy/k8s); a node frozen that long stops.
		out.watchdog = startWatchdog(time.Second, kubernetesFrozen, func(gap time.Duration) {
			cfg.Logger.Error("this node was frozen longer than Kubernetes takes to drop it; stopping",
				"node", cfg.Node, "frozen", gap.Round(time.Millisecond), "limit", kubernetesFrozen)
			if cfg.Lost != nil {
				cfg.Lost(fmt.Errorf("node %s: frozen for %v", cfg.Node, gap.Round(time.Millisecond)))
			}
		})
	}
	return out, nil
}

// kubernetesFrozen is how long a member of the Kubernetes provider may be
// frozen before it stops: less than the 15 s its readiness probe takes
// to fail (3 × 5 s in deploy/k8s/cluster.yaml).
const kubernetesFrozen = 10 * time.Second

// Request implements actors.Placement with cluster.Request: the identity
// lookup finds (or activates) the run's one grain.
func (c *Cluster) Request(cmd *actorspb.RunCommand, timeout time.Duration) (*actorspb.CommandReply, error) {
	if timeout <= 0 {
		return nil, errors.New("request timed out")
	}
	res, err := c.c.Request(cmd.RunId, actors.RunKind, cmd, protocluster.WithTimeout(timeout))
	if err != nil {
		return nil, err
	}
	reply, ok := res.(*actorspb.CommandReply)
	if !ok {
		return nil, fmt.Errorf("unexpected reply %T", res)
	}
	return reply, nil
}

// Leave implements actors.Placement: the member's record is deleted, so
// the others take its runs over at once, and remoting stops.
func (c *Cluster) Leave() {
	c.leave.Do(func() {
		c.watchdog.Stop()
		_ = c.provider.Shutdown(true)
		// What protoactor's Shutdown does, less its 2 s sleep and the
		// actor system, which its owner closes: the grains stop (they
		// carry on from their logs where they land next), then gossip
		// and remoting.
		c.c.IdentityLookup.Shutdown()
		c.c.Gossip.Shutdown()
		c.c.Remote.Shutdown(true)
	})
}

// Members is how many members this node sees.
func (c *Cluster) Members() int {
	if c.membership != nil {
		return len(c.membership.Members())
	}
	return int(c.members.Load())
}

// Grains is how many grains this node hosts.
func (c *Cluster) Grains() int64 { return c.c.VirtualActorCount() }

// Address is this member's remoting address.
func (c *Cluster) Address() string { return c.c.ActorSystem.Address() }

// Changed returns a channel that receives (without blocking the sender:
// it holds at most one) whenever the topology changes.
func (c *Cluster) Changed() <-chan struct{} {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.changed = append(c.changed, ch)
	c.mu.Unlock()
	return ch
}

func (c *Cluster) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.changed {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
