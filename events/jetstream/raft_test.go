package jetstream_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/events/jetstream"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The Raft timing a cluster is given is the one its servers run with:
// before, the process has nats-server's own (which shows the linkname
// reaches the server's variables, not copies); after, FailoverRaft. That
// it shortens failover is measured end to end, with kill -9, by
// TestClusterFailoverDistribution in cmd/spectra.
func TestClusterRaftTimingIsInEffect(t *testing.T) {
	if got := jetstream.CurrentRaft(); got != jetstream.NATSRaft {
		t.Fatalf("Raft timing before any cluster = %+v, want nats-server's %+v", got, jetstream.NATSRaft)
	}
	creds := jetstream.Credentials{User: "spectra", Password: "raft-test-password-0123456789"}
	routes := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	servers := make([]*jetstream.Server, 3)
	for i := range servers {
		srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", Credentials: creds,
			Cluster: &jetstream.ClusterConfig{Name: "raft-test", ServerName: fmt.Sprintf("s%d", i), Listen: routes[i],
				Peers: routes, Raft: jetstream.FailoverRaft}})
		if err != nil {
			t.Fatal(err)
		}
		servers[i] = srv
		t.Cleanup(srv.Shutdown)
	}
	if got := jetstream.CurrentRaft(); got != jetstream.FailoverRaft {
		t.Fatalf("Raft timing of the cluster = %+v, want %+v", got, jetstream.FailoverRaft)
	}
	// A server started later in the same process with the same timing
	// keeps it.
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", Credentials: creds,
		Cluster: &jetstream.ClusterConfig{Name: "raft-test", ServerName: "s3", Listen: freeAddr(t), Peers: routes, Raft: jetstream.FailoverRaft}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	if got := jetstream.CurrentRaft(); got != jetstream.FailoverRaft {
		t.Fatalf("Raft timing after a fourth server = %+v, want %+v", got, jetstream.FailoverRaft)
	}
	// A timing Raft cannot work with is refused.
	if _, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", Credentials: creds,
		Cluster: &jetstream.ClusterConfig{Name: "raft-test", ServerName: "s4", Listen: freeAddr(t), Peers: routes,
			Raft: jetstream.RaftTiming{MinElection: time.Second, MaxElection: 2 * time.Second, Heartbeat: time.Second}}}); err == nil {
		t.Error("a heartbeat as long as the election timeout was accepted")
	}
}
