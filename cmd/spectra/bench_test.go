package main

import (
	"testing"
	"time"
)

// BenchmarkRecoveryAfterKill9 kills a node with 100 runs in flight and
// measures, after the restart on the same data directory, how long until
// the API is ready and until every run has moved on from where the log
// left it: its actor re-read its stream, re-simulated to the last recorded
// step and appended again. Run it with -benchtime 1x.
func BenchmarkRecoveryAfterKill9(b *testing.B) {
	for range b.N {
		s := startServer(b, b.TempDir(), "--time-scale", "5", "--queue-limit", "100")
		eng := token(b, "engineer", "org-1")
		type run struct{ id, kind string }
		var runs []run
		for i := range 100 {
			kind, file := "ion", "ion-seed.json"
			if i%2 == 1 {
				kind, file = "rtp", "rtp-seed.json"
			}
			id, _ := s.create(b, kind, eng, readExample(b, file))
			runs = append(runs, run{id, kind})
		}
		for _, r := range runs {
			s.waitFor(b, r.kind, r.id, eng, func(m map[string]any) bool {
				return m["status"] == "running" && m["progress"].(float64) > 20
			})
		}
		s.kill9()
		start := time.Now()
		s.start()
		ready := time.Since(start)
		revision := map[string]float64{}
		for _, r := range runs {
			revision[r.id] = s.do(b, "GET", "/api/"+r.kind+"/runs/"+r.id, eng, nil).json(b)["revision"].(float64)
		}
		for _, r := range runs {
			s.waitFor(b, r.kind, r.id, eng, func(m map[string]any) bool {
				return m["revision"].(float64) > revision[r.id] || m["status"] == "completed"
			})
		}
		resumed := time.Since(start)
		b.ReportMetric(float64(ready.Milliseconds()), "ms-to-ready")
		b.ReportMetric(float64(resumed.Milliseconds()), "ms-until-all-100-resumed")
		s.stop()
	}
}
