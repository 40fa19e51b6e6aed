package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spectra-fab/spectra/cluster"
	"github.com/spectra-fab/spectra/events"
	sjs "github.com/spectra-fab/spectra/events/jetstream"
)

// A node joins a cluster when ClusterListen is set. Its embedded NATS
// server routes to the peers' (ClusterListen is the route address,
// ClusterPeers the others'), forming a JetStream cluster that replicates
// the log; and its actor system joins the protoactor cluster of run
// grains. Other ports follow from ClusterListen's port P unless set:
// actor remoting on P+1, NATS clients on P+2. With --nats the nodes share
// an external NATS cluster instead (--replicas says how many copies) and
// P only derives the remoting port.

// bindCluster binds the cluster settings.
func (c *Config) bindCluster(f *Flags) {
	f.String(&c.ClusterListen, "cluster-listen", "SPECTRA_CLUSTER_LISTEN", "", "join a cluster: NATS route address of this node, HOST:PORT (actor remoting on PORT+1, NATS clients on PORT+2)")
	f.String(&c.ClusterPeers, "cluster-peers", "SPECTRA_CLUSTER_PEERS", "", "route addresses of the other nodes, HOST:PORT,HOST:PORT")
	f.String(&c.ActorListen, "actor-listen", "SPECTRA_ACTOR_LISTEN", "", "actor remoting address; default: the cluster host, port+1")
	f.Int(&c.Replicas, "replicas", "SPECTRA_REPLICAS", 0, "replicas of streams, KV and object stores; 0: 3 with three or more nodes, else 1")
	f.String(&c.ClusterProvider, "cluster-provider", "SPECTRA_CLUSTER_PROVIDER", cluster.ProviderNATS, "how members find each other: nats (heartbeats on the cluster's NATS) or kubernetes (pod labels through the API server; needs RBAC, see deploy/k8s)")
	f.String(&c.ActorTLSCA, "actor-tls-ca", "SPECTRA_ACTOR_TLS_CA", "", "actor remoting mutual TLS: CA certificates (PEM); default: a CA derived from the cluster's NATS password")
	f.String(&c.ActorTLSCert, "actor-tls-cert", "SPECTRA_ACTOR_TLS_CERT", "", "actor remoting mutual TLS: this node's certificate (PEM), issued by --actor-tls-ca")
	f.String(&c.ActorTLSKey, "actor-tls-key", "SPECTRA_ACTOR_TLS_KEY", "", "actor remoting mutual TLS: this node's key (PEM)")
	f.Bool(&c.NATSRaftDefaults, "nats-raft-defaults", "SPECTRA_NATS_RAFT_DEFAULTS", false, "embedded cluster: keep nats-server's Raft election timeout (4-9 s) instead of 1-2 s (slower failover, fewer spurious elections under load)")
}

// clustered reports whether the node joins a cluster.
func (c Config) clustered() bool { return c.ClusterListen != "" }

// peers are the route addresses of the other nodes.
func (c Config) peers() []string {
	var out []string
	for p := range strings.SplitSeq(c.ClusterPeers, ",") {
		if p = strings.TrimSpace(p); p != "" && p != c.ClusterListen {
			out = append(out, p)
		}
	}
	return out
}

// replicas of everything the node creates in JetStream: three when three
// or more nodes are configured, else one.
func (c Config) replicas() int {
	if c.Replicas > 0 {
		return c.Replicas
	}
	if c.clustered() && c.NATSURL == "" && len(c.peers())+1 >= 3 {
		return 3
	}
	return 1
}

// offset derives an address from ClusterListen: same host, port+d.
func (c Config) offset(d int) (string, int, error) {
	host, port, err := net.SplitHostPort(c.ClusterListen)
	if err != nil {
		return "", 0, fmt.Errorf("--cluster-listen %q: %w", c.ClusterListen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p <= 0 || p+d > 65535 {
		return "", 0, fmt.Errorf("--cluster-listen %q: needs a port below %d", c.ClusterListen, 65535-d)
	}
	return host, p + d, nil
}

// withClusterDefaults fills the derived addresses and the secret.
func (c Config) withClusterDefaults() (Config, error) {
	if !c.clustered() {
		return c, nil
	}
	switch c.ClusterProvider {
	case "", cluster.ProviderNATS, cluster.ProviderKubernetes:
	default:
		return c, fmt.Errorf("--cluster-provider %q: want %s or %s", c.ClusterProvider, cluster.ProviderNATS, cluster.ProviderKubernetes)
	}
	if c.NATSURL != "" {
		// An external NATS cluster replicates the log (--replicas 3);
		// the nodes share it for membership and slots, and only their
		// actor systems listen.
		if c.ActorListen == "" {
			host, port, err := c.offset(1)
			if err != nil {
				return c, err
			}
			c.ActorListen = net.JoinHostPort(host, strconv.Itoa(port))
		}
		if _, _, err := c.remotingTLS(); err != nil {
			return c, err
		}
		return c, nil
	}
	if c.NATSUser == "" || c.NATSPassword == "" {
		return c, errors.New("a cluster's NATS servers share one set of credentials for routes and clients: set --nats-user and SPECTRA_NATS_PASSWORD alike on every node")
	}
	if c.NATSListen == "" {
		host, port, err := c.offset(2)
		if err != nil {
			return c, err
		}
		c.NATSListen = net.JoinHostPort(host, strconv.Itoa(port))
	}
	if c.ActorListen == "" {
		host, port, err := c.offset(1)
		if err != nil {
			return c, err
		}
		c.ActorListen = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return c, nil
}

// natsCluster is the embedded server's cluster configuration, nil for a
// single node.
func (c Config) natsCluster() *sjs.ClusterConfig {
	if !c.clustered() || c.NATSURL != "" {
		return nil
	}
	raft := sjs.FailoverRaft
	if c.NATSRaftDefaults {
		raft = sjs.NATSRaft
	}
	return &sjs.ClusterConfig{Name: cluster.Name, ServerName: c.Node, Listen: c.ClusterListen, Peers: c.peers(), Raft: raft}
}

// retry runs open until it succeeds, ctx ends, or (single node) once: a
// cluster's JetStream answers only once its servers have met and elected
// a meta leader, and R3 needs three of them.
func (n *Node) retry(ctx context.Context, what string, open func(ctx context.Context) error) error {
	if !n.cfg.clustered() {
		return open(ctx)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		actx, cancel := context.WithTimeout(ctx, 4*time.Second)
		err := open(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%s: %w", what, err)
		}
		n.cfg.Logger.Info("waiting for the cluster's JetStream", "open", what, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// replicate raises the replicas of the KV buckets and object stores others
// create with one (JetStream names their streams KV_<bucket> and
// OBJ_<bucket>).
func replicate(ctx context.Context, js jetstream.JetStream, replicas int, streams ...string) error {
	if replicas <= 1 {
		return nil
	}
	for _, name := range streams {
		st, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("replicate %s: %w", name, err)
		}
		cfg := st.CachedInfo().Config
		if cfg.Replicas == replicas {
			continue
		}
		cfg.Replicas = replicas
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("replicate %s: %w", name, err)
		}
	}
	return nil
}

// remotingTLS is the mutual TLS of actor remoting: the operator's files,
// else derived from the secret the nodes share for NATS.
func (c Config) remotingTLS() (*cluster.TLS, string, error) {
	if c.ActorTLSCA != "" || c.ActorTLSCert != "" || c.ActorTLSKey != "" {
		t, err := cluster.TLSFromFiles(c.ActorTLSCA, c.ActorTLSCert, c.ActorTLSKey)
		return t, "files", err
	}
	if c.NATSPassword == "" {
		return nil, "", errors.New("actor remoting needs mutual TLS: set --actor-tls-ca/--actor-tls-cert/--actor-tls-key, or the cluster's shared SPECTRA_NATS_PASSWORD to derive it from")
	}
	t, err := cluster.TLSFromSecret(c.NATSPassword, c.Node)
	return t, "derived from the cluster secret", err
}

// join makes the node's actor system a member of the protoactor cluster.
func (n *Node) join() error {
	host, port, err := net.SplitHostPort(n.cfg.ActorListen)
	if err != nil {
		return fmt.Errorf("--actor-listen %q: %w", n.cfg.ActorListen, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("--actor-listen %q: %w", n.cfg.ActorListen, err)
	}
	tlsCfg, tlsFrom, err := n.cfg.remotingTLS()
	if err != nil {
		return err
	}
	n.cluster, err = cluster.Join(n.actors.System(), cluster.Config{Node: n.cfg.Node, Host: host, Port: p, Conn: n.nc,
		TLS: tlsCfg, Provider: n.cfg.ClusterProvider, Kinds: []*protocluster.Kind{n.actors.RunGrain()},
		Logger: n.cfg.Logger.With("component", "cluster"), Lost: n.fail})
	if err != nil {
		return err
	}
	n.actors.Place(n.cluster)
	n.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spectra_cluster_members",
			Help: "Members of the cluster this node sees."}, func() float64 { return float64(n.cluster.Members()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "spectra_cluster_grains",
			Help: "Run grains (virtual actors) active on this node."}, func() float64 { return float64(n.cluster.Grains()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_cluster_activations_total",
			Help: "Run grains activated on this node."}, func() float64 { a, _ := n.actors.Activations(); return float64(a) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "spectra_cluster_reactivations_total",
			Help: "Activations of runs already under way: after a node's loss, a move, a fenced duplicate."},
			func() float64 { _, r := n.actors.Activations(); return float64(r) }))
	raft := sjs.CurrentRaft()
	n.cfg.Logger.Info("joined the cluster", "node", n.cfg.Node, "provider", n.cfg.ClusterProvider, "actor_address", n.cluster.Address(),
		"members", n.cluster.Members(), "replicas", n.cfg.replicas(), "actor_tls", tlsFrom,
		"nats_raft_election", fmt.Sprintf("%v-%v", raft.MinElection, raft.MaxElection), "nats_raft_heartbeat", raft.Heartbeat)
	return nil
}

// fail reports a fatal error of a background part without blocking.
func (n *Node) fail(err error) {
	select {
	case n.errc <- err:
	default:
	}
}

// openSlots opens the cluster-wide queue slots.
func (n *Node) openSlots(ctx context.Context, js jetstream.JetStream) (*cluster.Slots, error) {
	var kv jetstream.KeyValue
	err := n.retry(ctx, "queue slots bucket", func(ctx context.Context) (err error) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: cluster.SlotsBucket,
			Description: "queue slots: runs holding and waiting, per queue, changed by compare-and-set",
			History:     1, Storage: jetstream.FileStorage, Replicas: n.cfg.replicas()})
		return err
	})
	if err != nil {
		return nil, err
	}
	n.slots = &cluster.Slots{KV: kv}
	return n.slots, nil
}

// sweep frees the slots of runs whose log ends in a final event: their
// node died before giving the slot back.
func (n *Node) sweep(ctx context.Context) {
	if n.slots == nil {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := n.slots.Sweep(sctx, func(runID string) bool {
		recs, err := n.store.ReadStream(sctx, events.RunStream(runID), events.Backwards, math.MaxUint64, 1)
		if err != nil || len(recs) == 0 {
			return false
		}
		switch events.BaseType(recs[0].Type) {
		case events.TypeRunCompleted, events.TypeRunFailed, events.TypeRunCancelled:
			return true
		}
		return false
	})
	if err != nil && ctx.Err() == nil {
		n.cfg.Logger.Warn("sweep queue slots", "err", err)
	}
}
