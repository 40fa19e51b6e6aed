package node

import "testing"

func TestClusterDefaults(t *testing.T) {
	tests := []struct {
		name                        string
		cfg                         Config
		wantActor, wantNATS         string
		wantReplicas                int
		wantErr, wantEmbeddedRoutes bool
	}{
		{name: "single_node", cfg: Config{}, wantReplicas: 1},
		{name: "three_embedded", cfg: Config{ClusterListen: "127.0.0.1:7101", ClusterPeers: "127.0.0.1:7101,127.0.0.1:7201,127.0.0.1:7301",
			NATSUser: "spectra", NATSPassword: "0123456789abcdef"},
			wantActor: "127.0.0.1:7102", wantNATS: "127.0.0.1:7103", wantReplicas: 3, wantEmbeddedRoutes: true},
		{name: "two_embedded_keep_one_replica", cfg: Config{ClusterListen: "127.0.0.1:7101", ClusterPeers: "127.0.0.1:7201",
			NATSUser: "spectra", NATSPassword: "0123456789abcdef"},
			wantActor: "127.0.0.1:7102", wantNATS: "127.0.0.1:7103", wantReplicas: 1, wantEmbeddedRoutes: true},
		{name: "embedded_without_credentials", cfg: Config{ClusterListen: "127.0.0.1:7101", ClusterPeers: "127.0.0.1:7201"}, wantErr: true},
		{name: "external_nats", cfg: Config{ClusterListen: "10.0.0.5:7101", NATSURL: "nats://nats:4222", Replicas: 3,
			NATSUser: "spectra", NATSPassword: "0123456789abcdef"},
			wantActor: "10.0.0.5:7102", wantReplicas: 3},
		// Actor remoting is mutual TLS only: without a shared secret to
		// derive it from or files, the node refuses to start.
		{name: "external_nats_without_secret_or_tls_files", cfg: Config{ClusterListen: "10.0.0.5:7101", NATSURL: "nats://nats:4222"},
			wantErr: true},
		{name: "unknown_provider", cfg: Config{ClusterListen: "127.0.0.1:7101", NATSUser: "u", NATSPassword: "0123456789abcdef",
			ClusterProvider: "consul"}, wantErr: true},
		{name: "bad_listen", cfg: Config{ClusterListen: "nohost", NATSUser: "u", NATSPassword: "0123456789abcdef"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.withClusterDefaults()
			if (err != nil) != tt.wantErr {
				t.Fatalf("withClusterDefaults() error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.ActorListen != tt.wantActor || got.NATSListen != tt.wantNATS || got.replicas() != tt.wantReplicas {
				t.Errorf("actor %q, nats %q, replicas %d; want %q, %q, %d", got.ActorListen, got.NATSListen, got.replicas(),
					tt.wantActor, tt.wantNATS, tt.wantReplicas)
			}
			if (got.natsCluster() != nil) != tt.wantEmbeddedRoutes {
				t.Errorf("natsCluster() = %v, want routes %v", got.natsCluster(), tt.wantEmbeddedRoutes)
			}
		})
	}
}
