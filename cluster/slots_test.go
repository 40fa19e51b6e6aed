package cluster_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/actors"
	"github.com/spectra-fab/spectra/cluster"
	"github.com/spectra-fab/spectra/events/jetstream"
)

func openSlots(t *testing.T) *cluster.Slots {
	t.Helper()
	srv, err := jetstream.StartServer(jetstream.ServerConfig{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := njs.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), njs.KeyValueConfig{Bucket: cluster.SlotsBucket})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster.Slots{KV: kv}
}

// Many takers race for two slots of one queue through compare-and-set:
// never more than two hold one at once, and each gets its turn.
func TestSlotsCompareAndSetHoldsTheLimit(t *testing.T) {
	slots := openSlots(t)
	const takers, limit = 12, 2
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for i := range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := string(rune('a' + i))
			for {
				got := false
				if _, err := slots.Update(t.Context(), "rtp/TOOL 1", func(tb *actors.SlotTable) bool {
					got = len(tb.Running) < limit
					if got {
						tb.Running = append(tb.Running, me)
					}
					return got
				}); err != nil {
					t.Error(err)
					return
				}
				if got {
					break
				}
				time.Sleep(time.Millisecond)
			}
			n := inside.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(2 * time.Millisecond)
			inside.Add(-1)
			if _, err := slots.Update(t.Context(), "rtp/TOOL 1", func(tb *actors.SlotTable) bool { return tb.Drop(me) }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > limit || p == 0 {
		t.Errorf("peak holders = %d, want 1..%d", p, limit)
	}
	tb, err := slots.Update(t.Context(), "rtp/TOOL 1", func(*actors.SlotTable) bool { return false })
	if err != nil || len(tb.Running) != 0 {
		t.Errorf("table after every taker left = %+v, %v; want empty", tb, err)
	}
}

// Sweep frees the slots of finished runs and keeps the others'.
func TestSlotsSweepFreesFinishedRuns(t *testing.T) {
	slots := openSlots(t)
	if _, err := slots.Update(t.Context(), "ion", func(tb *actors.SlotTable) bool {
		tb.Running = []string{"done-1", "live-1"}
		tb.Waiting = []actors.SlotWait{{RunID: "done-2"}, {RunID: "live-2"}}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	finished := func(id string) bool { return id == "done-1" || id == "done-2" }
	if err := slots.Sweep(t.Context(), finished); err != nil {
		t.Fatal(err)
	}
	tb, _ := slots.Update(t.Context(), "ion", func(*actors.SlotTable) bool { return false })
	if !slices.Equal(tb.Running, []string{"live-1"}) || len(tb.Waiting) != 1 || tb.Waiting[0].RunID != "live-2" {
		t.Errorf("after Sweep: %+v, want running [live-1], waiting [live-2]", tb)
	}
}
