package jetstream

import (
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterConfig joins an embedded server to other embedded servers over
// NATS routes, forming a JetStream cluster: streams, KV buckets and object
// stores can then keep three replicas, and the log survives the loss of a
// node.
type ClusterConfig struct {
	// Name of the cluster; every server of it uses the same ("spectra").
	Name string
	// ServerName is this server's unique name in the cluster (the node
	// name). JetStream places replicas by it.
	ServerName string
	// Listen is the route address ("127.0.0.1:7101").
	Listen string
	// Peers are the route addresses of the other servers. Listing this
	// server's own address as well is harmless.
	Peers []string
	// Raft is the timing of the cluster's Raft groups (zero: NATSRaft,
	// the server's own); it is process-wide (raft.go).
	Raft RaftTiming
}

// apply sets the cluster options. Routes authenticate with the same
// credentials as clients (ServerConfig.Credentials): every server of the
// cluster must be given the same ones.
func (c *ClusterConfig) apply(opts *server.Options, creds Credentials) error {
	if creds.User == "" || creds.Password == "" {
		return fmt.Errorf("cluster %s: routes need credentials (a server that routes must listen for clients)", c.Name)
	}
	host, port, err := splitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("cluster listen address: %w", err)
	}
	opts.ServerName = c.ServerName
	if len(c.peerRoutes()) == 0 {
		return nil // a cluster of one: JetStream clusters need routes
	}
	raft := c.Raft
	if raft == (RaftTiming{}) {
		raft = NATSRaft
	}
	if err := setRaft(raft); err != nil {
		return fmt.Errorf("cluster %s: %w", c.Name, err)
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port,
		Username: creds.User, Password: creds.Password}
	for _, p := range c.peerRoutes() {
		opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: p, User: url.UserPassword(creds.User, creds.Password)})
	}
	return nil
}

func (c *ClusterConfig) peerRoutes() []string {
	var out []string
	for _, p := range c.Peers {
		if p != c.Listen {
			out = append(out, p)
		}
	}
	return out
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return host, p, nil
}
