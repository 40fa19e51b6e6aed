// Command spectra is Spectra's one binary: the server (serve), a dev token
// issuer (token), clients of a running server (submit, runs, logs, cancel,
// pause, resume, retry, replay, audit, bench), maintenance (projections
// rebuild) and shell completion.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: spectra <command> [flags]

commands:
  serve                       run a node: API, actors, projections, embedded event store
  token                       print an access token signed with SPECTRA_JWT_SECRET
  submit ion|rtp RECIPE.json  create a run on a server (--watch follows it and prints its results)
  runs [--state S] [--kind K] list runs, newest first
  logs JOB|RUN_ID             print a job's log
  cancel|pause|resume|retry JOB|RUN_ID
                              send a command to a job's run (--reason for the audit trail)
  recipes list|show|save|approve|diff
                              the recipe library: versions, approval for production runs
  lots list|start|show|cancel|pause|resume
                              lots: one run per wafer from a library recipe
  schedules list|create|show|pause|resume
                              start a recipe or lot at a time or on a cron expression
  replay RUN_ID               print a run's events from a server
  verify RUN_ID               re-simulate a run and check its hash chain (--offline FILE: without a server)
  seal-key FILE               write a new Ed25519 key for serve --seal-key; print its public key
  audit [--run-id ID] …       print who did what and when, from a server's audit trail
  projections rebuild [NAME]  rebuild read models from the log (server stopped)
  bench [--runs N] …          load a server with runs; print runs/s, latencies, events/s, fsyncs/s
  completion bash|zsh         print a shell completion script

run 'spectra <command> -h' for a command's flags`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "spectra:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a code and no further message.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, usage)
		return exitError{2}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:])
	case "token":
		return runToken(args[1:])
	case "submit":
		return runSubmit(ctx, args[1:])
	case "replay":
		return runReplay(ctx, args[1:])
	case "verify":
		return runVerify(ctx, args[1:])
	case "seal-key":
		return runSealKey(args[1:])
	case "audit":
		return runAudit(ctx, args[1:])
	case "projections":
		return runProjections(ctx, args[1:])
	case "bench":
		return runBench(ctx, args[1:])
	case "runs":
		return runRuns(ctx, args[1:])
	case "logs":
		return runLogs(ctx, args[1:])
	case "cancel", "pause", "resume", "retry":
		return runJobCommand(ctx, args[0], args[1:])
	case "recipes":
		return runRecipes(ctx, args[1:])
	case "lots":
		return runLots(ctx, args[1:])
	case "schedules":
		return runSchedules(ctx, args[1:])
	case "completion":
		return runCompletion(args[1:])
	case "-h", "--help", "help":
		fmt.Println(usage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "spectra: unknown command %q\n%s\n", args[0], usage)
	return exitError{2}
}
