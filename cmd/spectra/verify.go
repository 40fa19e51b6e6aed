package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/node"
	runagg "github.com/spectra-fab/spectra/run"
)

const verifyUsage = `usage: spectra verify RUN_ID [--json] [--export FILE] [--server URL]
       spectra verify --offline [--pubkey KEY] RECORDS.json

Re-simulates a finished run from its recorded inputs and compares it with
its log event by event, and checks its hash chain. --export saves the
run's stored records (GET /api/runs/{id}/records); --offline verifies such
a file with this binary's engines under the run's recorded policy, without a
server, and with --pubkey (hex or base64 Ed25519 public key, or a file
holding one) checks the seals' signatures. Exit status 1 when the run
diverges or its chain is broken.`

// runVerify verifies a run on a server, or a file of its records offline.
func runVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(os.Stderr, verifyUsage) }
	var c client
	f := node.NewFlags(fs)
	c.register(f)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	export := fs.String("export", "", "save the run's stored records to this file")
	offline := fs.Bool("offline", false, "verify a file of records (from --export) without a server")
	pubkey := fs.String("pubkey", "", "Ed25519 public key that signed the seals (hex, base64, or a file holding one)")
	var target string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		target, args = args[0], args[1:]
	}
	if err := parseFlags(f, args); err != nil {
		return commandError("verify", err)
	}
	if target == "" && fs.NArg() > 0 {
		target = fs.Arg(0)
	}
	if target == "" {
		fmt.Fprintln(os.Stderr, verifyUsage)
		return exitError{2}
	}
	var rep runagg.Report
	if *offline {
		pub, err := parsePublicKey(*pubkey)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		if rep, err = verifyFile(target, pub); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	} else {
		if *export != "" {
			var recs json.RawMessage
			if err := c.do(ctx, http.MethodGet, "/api/runs/"+url.PathEscape(target)+"/records", nil, &recs); err != nil {
				return fmt.Errorf("verify: export: %w", err)
			}
			if err := os.WriteFile(*export, recs, 0o644); err != nil {
				return fmt.Errorf("verify: export: %w", err)
			}
		}
		if err := c.do(ctx, http.MethodGet, "/api/runs/"+url.PathEscape(target)+"/verify", nil, &rep); err != nil {
			return fmt.Errorf("verify: %w", err)
		}
	}
	if *asJSON {
		b, _ := json.MarshalIndent(rep, "", "  ")
		fmt.Println(string(b))
	} else {
		printReport(rep)
	}
	if !rep.Identical || len(rep.Chain.Breaks) > 0 {
		return exitError{1}
	}
	return nil
}

// verifyFile verifies a file of a run's records with this binary's
// engines, under the policy the run recorded (the documented defaults for
// an older log).
func verifyFile(path string, pub ed25519.PublicKey) (runagg.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return runagg.Report{}, err
	}
	var recs []events.Record
	if err := json.Unmarshal(data, &recs); err != nil {
		return runagg.Report{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(recs) == 0 {
		return runagg.Report{}, fmt.Errorf("%s holds no records", path)
	}
	var req events.RunRequested
	if err := json.Unmarshal(recs[0].Data, &req); err != nil {
		return runagg.Report{}, fmt.Errorf("%s: the first record is not a RunRequested: %w", path, err)
	}
	model, _ := runagg.Fingerprint(runagg.Engine, req.Kind)
	return runagg.Verify(req.RunID, recs, runagg.Engine, runagg.DefaultPolicy, model, pub), nil
}

// parsePublicKey reads an Ed25519 public key: hex, base64, or a file
// holding either ("" gives none).
func parsePublicKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return nil, nil
	}
	if b, err := os.ReadFile(s); err == nil {
		s = string(b)
	}
	pub, err := events.ParsePublicKey(s)
	if err != nil {
		return nil, fmt.Errorf("--pubkey: %w", err)
	}
	return pub, nil
}

// runSealKey writes a new Ed25519 seal key (its seed, hex) to a file for
// serve --seal-key, and prints its public key for verify --pubkey.
func runSealKey(args []string) error {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: spectra seal-key FILE   (writes a new Ed25519 seal key; prints its public key)")
		return exitError{2}
	}
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		return fmt.Errorf("seal-key: %w", err)
	}
	f, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("seal-key: %w", err)
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(key.Seed())); err != nil {
		f.Close()
		return fmt.Errorf("seal-key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("seal-key: %w", err)
	}
	fmt.Println(hex.EncodeToString(pub))
	return nil
}

func printReport(rep runagg.Report) {
	verdict := "IDENTICAL"
	if !rep.Identical {
		verdict = "DIVERGES"
	}
	fmt.Printf("run %s (%s): %s — %d events, %d re-derived, %d inputs", rep.RunID, rep.Status, verdict, rep.Events, rep.Compared, rep.Inputs)
	if rep.Recoveries > 0 {
		fmt.Printf(", %d crash recoveries", rep.Recoveries)
	}
	fmt.Println()
	if d := rep.Divergence; d != nil {
		fmt.Printf("  first divergence at revision %d: %s\n", d.Revision, d.Reason)
		if d.Recorded != nil {
			fmt.Printf("  recorded: %s %s\n", d.Recorded.Type, d.Recorded.Data)
		}
		if d.Replayed != nil {
			fmt.Printf("  replayed: %s %s\n", d.Replayed.Type, d.Replayed.Data)
		}
	}
	if rep.Model.Same {
		fmt.Printf("  model: same (%s)\n", rep.Model.Current)
	} else {
		fmt.Printf("  model: recorded %v, current %q: %s\n", rep.Model.Recorded, rep.Model.Current, rep.Model.Note)
	}
	ch := rep.Chain
	switch {
	case ch.Linked == 0:
		fmt.Println("  chain: none (the run was recorded before hash chains)")
	case len(ch.Breaks) == 0:
		fmt.Printf("  chain: intact, %d links, %d seals (%d signatures verified), sealed %v\n", ch.Linked, ch.Seals, ch.Signed, ch.Sealed)
	default:
		fmt.Printf("  chain: BROKEN (%d breaks)\n", len(ch.Breaks))
		for _, b := range ch.Breaks {
			fmt.Printf("    revision %d (%s) %s: %s\n", b.Revision, b.Type, b.Kind, b.Message)
		}
	}
}
