package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/projections"
)

// BenchmarkRunsEndToEnd measures whole runs per second at time scale 0: a
// command creates each run, its actor steps the real engine and appends
// every event (fsync on), and the job-status projection sees it complete.
func BenchmarkRunsEndToEnd(b *testing.B) {
	for _, kind := range []process.Kind{process.KindIon, process.KindRTP} {
		b.Run(string(kind), func(b *testing.B) {
			recipe, err := os.ReadFile(filepath.Join("..", "examples", string(kind)+"-seed.json"))
			if err != nil {
				b.Fatal(err)
			}
			node, err := node.Start(context.Background(), node.Config{DataDir: b.TempDir(), TimeScale: 0,
				QueueLimit: 8, JWTSecret: []byte("bench-secret-bench-secret-0123456789")})
			if err != nil {
				b.Fatal(err)
			}
			defer node.Close()
			md := events.Metadata{OrgID: "org-1", UserID: "bench", Role: "engineer"}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := node.Actors().CreateRun(context.Background(), actors.CreateRun{Kind: kind, Recipe: recipe, Meta: md}); err != nil {
					b.Fatal(err)
				}
			}
			for {
				_, n, _ := node.Jobs().Runs(context.Background(), projections.RunFilter{OrgID: "org-1", Status: projections.StatusCompleted})
				if n == b.N {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "runs/s")
		})
	}
}
