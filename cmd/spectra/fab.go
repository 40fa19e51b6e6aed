package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spectra-fab/spectra/node"
)

// Fab operations from the command line: spectra recipes, lots and
// schedules, clients of a running server like submit (docs/fab.md).

const (
	recipesUsage = `usage: spectra recipes <command> [flags]
  list                                   the organisation's recipes
  show NAME [--version N]                a recipe's versions (or one version's recipe)
  save NAME RECIPE.json --kind ion|rtp [--comment C]
                                         save a new version (an engineer)
  approve NAME VERSION [--comment C]     approve a version for production runs (an admin, not its author)
  diff NAME [--from N] [--to N]          the fields that differ between two versions`
	lotsUsage = `usage: spectra lots <command> [flags]
  list                                   the organisation's lots, newest first
  start RECIPE[@VERSION] (--wafers N | --wafer-ids W01,W02) [--lot-id ID] [--tool T] [--priority P] [--engineering]
                                         start one run per wafer
  show LOT_ID                            each wafer's progress, aggregate results
  cancel|pause|resume LOT_ID [--reason R]
  retry LOT_ID [--wafer-ids W07,W12] [--reason R]
                                         run the failed wafers (or those named) again`
	schedulesUsage = `usage: spectra schedules <command> [flags]
  list                                   the organisation's schedules
  create RECIPE[@VERSION] --kind ion|rtp (--cron EXPR | --at TIME) [--wafers N] [--name N] [--tool T]
                                         start a run (or a lot with --wafers) at a time or on a cron expression
  show ID                                a schedule and its firings
  pause|resume ID`
)

// fabCommand is a subcommand's parsed command line: its positional
// arguments, its flags and the client.
type fabCommand struct {
	name   string
	fs     *flag.FlagSet
	flags  *node.Flags
	c      client
	asJSON *bool
}

func newFabCommand(name string) *fabCommand {
	fc := &fabCommand{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	fc.flags = node.NewFlags(fc.fs)
	fc.c.register(fc.flags)
	fc.asJSON = fc.fs.Bool("json", false, "print the server's JSON")
	return fc
}

// parse reads want positional arguments, then the flags after them.
func (fc *fabCommand) parse(args []string, want int, usage string) ([]string, error) {
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") && len(pos) < want {
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) < want {
		fmt.Fprintln(os.Stderr, usage)
		return nil, exitError{2}
	}
	if err := parseFlags(fc.flags, args); err != nil {
		return nil, commandError(fc.name, err)
	}
	if fc.fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, usage)
		return nil, exitError{2}
	}
	return pos, nil
}

// call sends a request; with --json it prints the answer and returns
// printed = true.
func (fc *fabCommand) call(ctx context.Context, method, path string, body any, out any) (printed bool, err error) {
	var data []byte
	if body != nil {
		if data, err = json.Marshal(body); err != nil {
			return false, err
		}
	}
	var raw json.RawMessage
	if err := fc.c.do(ctx, method, path, data, &raw); err != nil {
		return false, fmt.Errorf("%s: %w", fc.name, err)
	}
	if *fc.asJSON {
		fmt.Printf("%s\n", raw)
		return true, nil
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return false, fmt.Errorf("%s: %w", fc.name, err)
		}
	}
	return false, nil
}

// recipeArg reads RECIPE[@VERSION].
func recipeArg(s string) (map[string]any, error) {
	name, v, ok := strings.Cut(s, "@")
	ref := map[string]any{"name": name}
	if ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: the version after @ must be an integer ≥ 1", s)
		}
		ref["version"] = n
	}
	return ref, nil
}

func table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func runRecipes(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, recipesUsage)
		return exitError{2}
	}
	sub, args := args[0], args[1:]
	fc := newFabCommand("recipes " + sub)
	switch sub {
	case "list":
		if _, err := fc.parse(args, 0, recipesUsage); err != nil {
			return err
		}
		var out struct {
			Recipes []struct {
				Name           string    `json:"name"`
				Kind           string    `json:"kind"`
				Latest         int       `json:"latest_version"`
				LatestApproved int       `json:"latest_approved_version"`
				UpdatedAt      time.Time `json:"updated_at"`
				UpdatedBy      string    `json:"updated_by"`
			} `json:"recipes"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/recipes", nil, &out); err != nil || printed {
			return err
		}
		var rows [][]string
		for _, r := range out.Recipes {
			approved := "-"
			if r.LatestApproved > 0 {
				approved = strconv.Itoa(r.LatestApproved)
			}
			rows = append(rows, []string{r.Name, r.Kind, strconv.Itoa(r.Latest), approved, when(r.UpdatedAt), r.UpdatedBy})
		}
		return table("NAME\tKIND\tLATEST\tAPPROVED\tUPDATED\tBY", rows)
	case "show":
		version := fc.fs.Int("version", 0, "print this version's recipe")
		pos, err := fc.parse(args, 1, recipesUsage)
		if err != nil {
			return err
		}
		if *version > 0 {
			var out struct {
				Version struct {
					Recipe json.RawMessage `json:"recipe"`
				} `json:"version"`
			}
			path := fmt.Sprintf("/api/recipes/%s/versions/%d", url.PathEscape(pos[0]), *version)
			if printed, err := fc.call(ctx, http.MethodGet, path, nil, &out); err != nil || printed {
				return err
			}
			fmt.Printf("%s\n", out.Version.Recipe)
			return nil
		}
		var out struct {
			Name     string `json:"name"`
			Kind     string `json:"kind"`
			Versions []struct {
				Version    int       `json:"version"`
				SavedBy    string    `json:"saved_by"`
				SavedAt    time.Time `json:"saved_at"`
				Approved   bool      `json:"approved"`
				ApprovedBy string    `json:"approved_by"`
				Comment    string    `json:"comment"`
			} `json:"versions"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/recipes/"+url.PathEscape(pos[0]), nil, &out); err != nil || printed {
			return err
		}
		fmt.Printf("%s (%s)\n", out.Name, out.Kind)
		var rows [][]string
		for _, v := range out.Versions {
			approved := "no"
			if v.Approved {
				approved = "by " + v.ApprovedBy
			}
			rows = append(rows, []string{strconv.Itoa(v.Version), when(v.SavedAt), v.SavedBy, approved, v.Comment})
		}
		return table("VERSION\tSAVED\tBY\tAPPROVED\tCOMMENT", rows)
	case "save":
		kind := fc.fs.String("kind", "", "ion or rtp")
		comment := fc.fs.String("comment", "", "what changed, for the version history")
		pos, err := fc.parse(args, 2, recipesUsage)
		if err != nil {
			return err
		}
		recipe, err := readJSONFile(pos[1])
		if err != nil {
			return fmt.Errorf("recipes save: %w", err)
		}
		var out struct {
			Versions []struct {
				Version int `json:"version"`
			} `json:"versions"`
		}
		body := map[string]any{"name": pos[0], "kind": *kind, "recipe": recipe, "comment": *comment}
		if printed, err := fc.call(ctx, http.MethodPost, "/api/recipes", body, &out); err != nil || printed {
			return err
		}
		fmt.Printf("%s: version %d saved (an admin approves it for production runs)\n", pos[0], out.Versions[len(out.Versions)-1].Version)
		return nil
	case "approve":
		comment := fc.fs.String("comment", "", "why, for the audit trail")
		pos, err := fc.parse(args, 2, recipesUsage)
		if err != nil {
			return err
		}
		path := "/api/recipes/" + url.PathEscape(pos[0]) + "/versions/" + url.PathEscape(pos[1]) + "/approve"
		if printed, err := fc.call(ctx, http.MethodPost, path, map[string]any{"comment": *comment}, nil); err != nil || printed {
			return err
		}
		fmt.Printf("%s: version %s approved for production runs\n", pos[0], pos[1])
		return nil
	case "diff":
		from := fc.fs.Int("from", 0, "the older version (default: the one before --to)")
		to := fc.fs.Int("to", 0, "the newer version (default: the latest)")
		pos, err := fc.parse(args, 1, recipesUsage)
		if err != nil {
			return err
		}
		q := url.Values{}
		if *from > 0 {
			q.Set("from", strconv.Itoa(*from))
		}
		if *to > 0 {
			q.Set("to", strconv.Itoa(*to))
		}
		var out struct {
			From, To int
			Changes  []struct {
				Field    string `json:"field"`
				From, To any
			} `json:"changes"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/recipes/"+url.PathEscape(pos[0])+"/diff?"+q.Encode(), nil, &out); err != nil || printed {
			return err
		}
		fmt.Printf("%s: version %d → %d\n", pos[0], out.From, out.To)
		var rows [][]string
		for _, ch := range out.Changes {
			rows = append(rows, []string{ch.Field, jsonText(ch.From), jsonText(ch.To)})
		}
		return table("FIELD\tFROM\tTO", rows)
	}
	fmt.Fprintln(os.Stderr, recipesUsage)
	return exitError{2}
}

func jsonText(v any) string {
	if v == nil {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func readJSONFile(path string) (json.RawMessage, error) {
	var (
		data []byte
		err  error
	)
	if path == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("%s: not JSON", path)
	}
	return data, nil
}

func runLots(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, lotsUsage)
		return exitError{2}
	}
	sub, args := args[0], args[1:]
	fc := newFabCommand("lots " + sub)
	switch sub {
	case "list":
		if _, err := fc.parse(args, 0, lotsUsage); err != nil {
			return err
		}
		var out struct {
			Lots []struct {
				LotID  string `json:"lot_id"`
				Kind   string `json:"kind"`
				Recipe struct {
					Name    string `json:"name"`
					Version int    `json:"version"`
				} `json:"recipe"`
				Wafers    int       `json:"wafers"`
				Started   int       `json:"started"`
				Cancelled bool      `json:"cancelled"`
				CreatedAt time.Time `json:"created_at"`
				CreatedBy string    `json:"created_by"`
			} `json:"lots"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/lots", nil, &out); err != nil || printed {
			return err
		}
		var rows [][]string
		for _, l := range out.Lots {
			note := ""
			if l.Cancelled {
				note = "cancelled"
			}
			rows = append(rows, []string{l.LotID, l.Kind, fmt.Sprintf("%s@%d", l.Recipe.Name, l.Recipe.Version),
				fmt.Sprintf("%d/%d", l.Started, l.Wafers), when(l.CreatedAt), l.CreatedBy, note})
		}
		return table("LOT\tKIND\tRECIPE\tSTARTED\tCREATED\tBY\t", rows)
	case "start":
		wafers := fc.fs.Int("wafers", 0, "number of wafers, 1–25 (named W01…)")
		ids := fc.fs.String("wafer-ids", "", "comma-separated wafer ids instead of --wafers")
		lotID := fc.fs.String("lot-id", "", "the lot's id (default: generated)")
		tool := fc.fs.String("tool", "", "tool id")
		priority := fc.fs.Int("priority", 0, "priority of the wafers' runs")
		eng := fc.fs.Bool("engineering", false, "an engineering lot: may use an unapproved version")
		pos, err := fc.parse(args, 1, lotsUsage)
		if err != nil {
			return err
		}
		ref, err := recipeArg(pos[0])
		if err != nil {
			return fmt.Errorf("lots start: %w", err)
		}
		body := map[string]any{"recipe": ref}
		if *ids != "" {
			body["wafers"] = strings.Split(*ids, ",")
		} else {
			body["wafer_count"] = *wafers
		}
		for k, v := range map[string]string{"lot_id": *lotID, "tool_id": *tool} {
			if v != "" {
				body[k] = v
			}
		}
		if *priority != 0 {
			body["priority"] = *priority
		}
		if *eng {
			body["engineering"] = true
		}
		var out struct {
			Lot struct {
				LotID  string `json:"lot_id"`
				Recipe struct {
					Name    string `json:"name"`
					Version int    `json:"version"`
				} `json:"recipe"`
			} `json:"lot"`
			Wafers []struct {
				WaferID string `json:"wafer_id"`
				RunID   string `json:"run_id"`
				Error   string `json:"error"`
			} `json:"wafers"`
		}
		if printed, err := fc.call(ctx, http.MethodPost, "/api/lots", body, &out); err != nil || printed {
			return err
		}
		fmt.Printf("lot %s started from %s@%d\n", out.Lot.LotID, out.Lot.Recipe.Name, out.Lot.Recipe.Version)
		var rows [][]string
		for _, w := range out.Wafers {
			rows = append(rows, []string{w.WaferID, w.RunID, w.Error})
		}
		return table("WAFER\tRUN\tERROR", rows)
	case "show":
		pos, err := fc.parse(args, 1, lotsUsage)
		if err != nil {
			return err
		}
		var out struct {
			LotID    string  `json:"lot_id"`
			Status   string  `json:"status"`
			Progress float64 `json:"progress"`
			Runs     []struct {
				WaferID  string  `json:"wafer_id"`
				RunID    string  `json:"run_id"`
				Status   string  `json:"status"`
				Progress float64 `json:"progress"`
				Step     string  `json:"current_step"`
				Error    string  `json:"error_message"`
			} `json:"wafer_runs"`
			Results map[string]struct {
				N    int     `json:"n"`
				Mean float64 `json:"mean"`
				Std  float64 `json:"std"`
				Min  float64 `json:"min"`
				Max  float64 `json:"max"`
			} `json:"results"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/lots/"+url.PathEscape(pos[0]), nil, &out); err != nil || printed {
			return err
		}
		fmt.Printf("lot %s: %s, %.0f%%\n", out.LotID, out.Status, out.Progress)
		var rows [][]string
		for _, w := range out.Runs {
			rows = append(rows, []string{w.WaferID, w.RunID, w.Status, fmt.Sprintf("%.0f%%", w.Progress), cmpOr(w.Error, w.Step)})
		}
		if err := table("WAFER\tRUN\tSTATE\tPROGRESS\tSTEP", rows); err != nil {
			return err
		}
		if len(out.Results) > 0 {
			fmt.Println()
			rows = nil
			for _, k := range sortedNames(out.Results) {
				r := out.Results[k]
				rows = append(rows, []string{k, strconv.Itoa(r.N), sig4(r.Mean), sig4(r.Std), sig4(r.Min), sig4(r.Max)})
			}
			return table("RESULT\tN\tMEAN\tSTD\tMIN\tMAX", rows)
		}
		return nil
	case "cancel", "pause", "resume", "retry":
		reason := fc.fs.String("reason", "", "why, for the audit trail")
		var ids *string
		if sub == "retry" {
			ids = fc.fs.String("wafer-ids", "", "comma-separated wafers to retry (default: every failed wafer)")
		}
		pos, err := fc.parse(args, 1, lotsUsage)
		if err != nil {
			return err
		}
		var body any
		if b := map[string]any{}; *reason != "" || ids != nil && *ids != "" {
			if *reason != "" {
				b["reason"] = *reason
			}
			if ids != nil && *ids != "" {
				b["wafers"] = strings.Split(*ids, ",")
			}
			body = b
		}
		var out struct {
			Wafers []struct {
				WaferID string `json:"wafer_id"`
				Error   string `json:"error"`
			} `json:"wafers"`
		}
		if printed, err := fc.call(ctx, http.MethodPost, "/api/lots/"+url.PathEscape(pos[0])+"/"+sub, body, &out); err != nil || printed {
			return err
		}
		took := 0
		for _, w := range out.Wafers {
			if w.Error == "" {
				took++
			}
		}
		fmt.Printf("lot %s: %s sent to %d of %d wafers (the others had finished or were not in a state to take it)\n",
			pos[0], sub, took, len(out.Wafers))
		return nil
	}
	fmt.Fprintln(os.Stderr, lotsUsage)
	return exitError{2}
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func sig4(f float64) string { return strconv.FormatFloat(f, 'g', 4, 64) }

func runSchedules(ctx context.Context, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, schedulesUsage)
		return exitError{2}
	}
	sub, args := args[0], args[1:]
	fc := newFabCommand("schedules " + sub)
	type schedule struct {
		ScheduleID string     `json:"schedule_id"`
		Name       string     `json:"name"`
		Cron       string     `json:"cron"`
		At         *time.Time `json:"at"`
		Paused     bool       `json:"paused"`
		Firings    int        `json:"firings"`
		Skips      int        `json:"skips"`
		LastFired  *time.Time `json:"last_fired"`
		Target     struct {
			Kind   string `json:"kind"`
			Recipe struct {
				Name    string `json:"name"`
				Version int    `json:"version"`
			} `json:"recipe"`
			Wafers []string `json:"wafers"`
		} `json:"target"`
	}
	row := func(s schedule) []string {
		spec := s.Cron
		if s.At != nil {
			spec = "at " + s.At.UTC().Format(time.RFC3339)
		}
		state := "active"
		if s.Paused {
			state = "paused"
		}
		last := "-"
		if s.LastFired != nil {
			last = s.LastFired.UTC().Format(time.RFC3339)
		}
		target := s.Target.Recipe.Name
		if s.Target.Recipe.Version > 0 {
			target += "@" + strconv.Itoa(s.Target.Recipe.Version)
		}
		if n := len(s.Target.Wafers); n > 0 {
			target += fmt.Sprintf(" ×%d wafers", n)
		}
		return []string{s.ScheduleID, s.Name, spec, s.Target.Kind + " " + target, state, strconv.Itoa(s.Firings),
			strconv.Itoa(s.Skips), last}
	}
	const header = "ID\tNAME\tWHEN\tSTARTS\tSTATE\tFIRINGS\tSKIPPED\tLAST SLOT"
	switch sub {
	case "list":
		if _, err := fc.parse(args, 0, schedulesUsage); err != nil {
			return err
		}
		var out struct {
			Schedules []schedule `json:"schedules"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/schedules", nil, &out); err != nil || printed {
			return err
		}
		var rows [][]string
		for _, s := range out.Schedules {
			rows = append(rows, row(s))
		}
		return table(header, rows)
	case "create":
		kind := fc.fs.String("kind", "", "ion or rtp")
		cronExpr := fc.fs.String("cron", "", `five-field cron expression in UTC process time, e.g. "0 2 * * *", or @hourly, @every 5m`)
		at := fc.fs.String("at", "", "one time, RFC 3339 process time")
		wafers := fc.fs.Int("wafers", 0, "start a lot of this many wafers at each firing (default: one run)")
		name := fc.fs.String("name", "", "a name for the schedule")
		tool := fc.fs.String("tool", "", "tool id")
		pos, err := fc.parse(args, 1, schedulesUsage)
		if err != nil {
			return err
		}
		ref, err := recipeArg(pos[0])
		if err != nil {
			return fmt.Errorf("schedules create: %w", err)
		}
		body := map[string]any{"recipe": ref, "kind": *kind}
		for k, v := range map[string]string{"cron": *cronExpr, "at": *at, "name": *name, "tool_id": *tool} {
			if v != "" {
				body[k] = v
			}
		}
		if *wafers > 0 {
			body["wafer_count"] = *wafers
		}
		var out schedule
		if printed, err := fc.call(ctx, http.MethodPost, "/api/schedules", body, &out); err != nil || printed {
			return err
		}
		return table(header, [][]string{row(out)})
	case "show":
		pos, err := fc.parse(args, 1, schedulesUsage)
		if err != nil {
			return err
		}
		var out struct {
			Schedule schedule `json:"schedule"`
			Firings  []struct {
				Slot    time.Time `json:"slot"`
				LotID   string    `json:"lot_id"`
				Skipped int       `json:"skipped"`
				Time    time.Time `json:"recorded_at"`
				Node    string    `json:"node"`
			} `json:"firings"`
			Skips []struct {
				Slot   time.Time `json:"slot"`
				Reason string    `json:"reason"`
				Time   time.Time `json:"recorded_at"`
				Node   string    `json:"node"`
			} `json:"skips"`
		}
		if printed, err := fc.call(ctx, http.MethodGet, "/api/schedules/"+url.PathEscape(pos[0]), nil, &out); err != nil || printed {
			return err
		}
		if err := table(header, [][]string{row(out.Schedule)}); err != nil {
			return err
		}
		fmt.Println()
		var rows [][]string
		for _, f := range out.Firings {
			rows = append(rows, []string{f.Slot.UTC().Format(time.RFC3339), when(f.Time), f.Node, f.LotID, strconv.Itoa(f.Skipped)})
		}
		if err := table("SLOT\tFIRED\tNODE\tLOT\tSKIPPED BEFORE", rows); err != nil || len(out.Skips) == 0 {
			return err
		}
		fmt.Println()
		rows = nil
		for _, sk := range out.Skips {
			rows = append(rows, []string{sk.Slot.UTC().Format(time.RFC3339), when(sk.Time), sk.Node, sk.Reason})
		}
		return table("SLOT\tSKIPPED\tNODE\tREASON (nothing started)", rows)
	case "pause", "resume":
		pos, err := fc.parse(args, 1, schedulesUsage)
		if err != nil {
			return err
		}
		var out schedule
		if printed, err := fc.call(ctx, http.MethodPost, "/api/schedules/"+url.PathEscape(pos[0])+"/"+sub, nil, &out); err != nil || printed {
			return err
		}
		return table(header, [][]string{row(out)})
	}
	fmt.Fprintln(os.Stderr, schedulesUsage)
	return exitError{2}
}
