// Command temporalbench runs the seed ion dose loop as Temporal workflows,
// the baseline Spectra's durable runs are compared with (see
// docs/performance.md). It is its own module, so Spectra does not depend
// on the Temporal SDK.
//
//	temporal server start-dev --headless --db-filename /tmp/t.db &
//	go run . --runs 300 --clients 50 --recipe ../../examples/ion-seed.json
//
// One workflow per run, with one activity that steps the ion engine
// through the recipe's dose loop (process/ion, the engine Spectra's run
// actors step) and heartbeats each simulated second, as Spectra records
// telemetry each simulated second.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/spectra-fab/spectra/process"
	"github.com/spectra-fab/spectra/process/ion"
)

const taskQueue = "spectra-ion"

// IonRun is the workflow: one dose loop activity.
func IonRun(ctx workflow.Context, recipe []byte) (string, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var out string
	err := workflow.ExecuteActivity(ctx, DoseLoop, recipe).Get(ctx, &out)
	return out, err
}

// DoseLoop steps the ion engine to the end of processing, heartbeating
// each simulated second, and returns the outcome's summary.
func DoseLoop(ctx context.Context, recipe []byte) (string, error) {
	r, err := ion.ParseRecipe(recipe)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError("recipe", "invalid", err)
	}
	eng, err := ion.NewEngine(r, process.Options{Seed: 1})
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError("engine", "invalid", err)
	}
	second := -1.0
	for {
		st := eng.Step()
		if s := math.Floor(st.TimeS); s > second {
			second = s
			activity.RecordHeartbeat(ctx, st.N, st.Progress, st.Sample)
		}
		if st.Fault != nil {
			return "", fmt.Errorf("fault: %v", st.Fault)
		}
		if st.Done {
			break
		}
	}
	o := eng.Finish()
	return fmt.Sprintf("%d artifacts", len(o.Artifacts)), nil
}

func main() {
	addr := flag.String("address", "127.0.0.1:7233", "Temporal frontend")
	runs := flag.Int("runs", 300, "workflows to run")
	clients := flag.Int("clients", 50, "clients starting workflows at once")
	recipeFile := flag.String("recipe", "examples/ion-seed.json", "recipe")
	flag.Parse()
	recipe, err := os.ReadFile(*recipeFile)
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.Dial(client.Options{HostPort: *addr, Logger: tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, taskQueue, worker.Options{MaxConcurrentActivityExecutionSize: *clients, MaxConcurrentWorkflowTaskExecutionSize: *clients})
	w.RegisterWorkflow(IonRun)
	w.RegisterActivity(DoseLoop)
	if err := w.Start(); err != nil {
		log.Fatal(err)
	}
	defer w.Stop()

	ctx := context.Background()
	var (
		next   atomic.Int64
		mu     sync.Mutex
		lat    []time.Duration
		failed int
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(*runs) {
				t0 := time.Now()
				run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: taskQueue}, IonRun, recipe)
				if err == nil {
					err = run.Get(ctx, nil)
				}
				mu.Lock()
				if err != nil {
					failed++
					log.Print(err)
				} else {
					lat = append(lat, time.Since(t0))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	slices.Sort(lat)
	at := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	fmt.Printf("temporal: %d workflows completed, %d failed, in %.2f s\n", len(lat), failed, wall.Seconds())
	fmt.Printf("runs/s:   %.1f (%d clients)\n", float64(len(lat))/wall.Seconds(), *clients)
	fmt.Printf("run latency: p50 %s  p90 %s  p99 %s\n", at(0.5), at(0.9), at(0.99))
}
