package node_test

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spectra-fab/spectra/node"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func bind() (*node.Config, *node.Flags) {
	var c node.Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := node.NewFlags(fs)
	c.Bind(f, "host-1")
	return &c, f
}

func TestFlagsDefaults(t *testing.T) {
	c, f := bind()
	if err := f.Parse(nil, env(nil)); err != nil {
		t.Fatalf("Parse(nil) = %v", err)
	}
	if c.HTTPAddr != ":8003" || c.TimeScale != 100 || c.QueueLimit != 4 || c.Node != "host-1" ||
		c.EventStore != "jetstream" || c.DataDir != "./data" || c.SoftLimit != 2*time.Hour ||
		c.RateLimits.Reads != 1000 || c.ArtifactTTL != 7*24*time.Hour {
		t.Errorf("defaults = %+v", c)
	}
}

func TestFlagsEnvThenFlags(t *testing.T) {
	c, f := bind()
	vars := map[string]string{"SPECTRA_TIME_SCALE": "0", "SPECTRA_QUEUE_LIMIT": "9", "SPECTRA_NO_SYNC": "true",
		"SPECTRA_RETRY_BASE": "5s", "SPECTRA_RATE_LIMIT_CREATE": "7", "SPECTRA_HTTP_ADDR": "127.0.0.1:1"}
	if err := f.Parse([]string{"--queue-limit", "2", "--http", ":9"}, env(vars)); err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if c.TimeScale != 0 || !c.NoSync || c.RetryBase != 5*time.Second || c.RateLimits.CreateRuns != 7 {
		t.Errorf("environment not applied: %+v", c)
	}
	if c.QueueLimit != 2 || c.HTTPAddr != ":9" {
		t.Errorf("flags did not beat the environment: queue limit %d, http %q", c.QueueLimit, c.HTTPAddr)
	}
}

func TestFlagsMalformedEnvIsAnError(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"SPECTRA_TIME_SCALE", "abc"},
		{"SPECTRA_QUEUE_LIMIT", "-x"},
		{"SPECTRA_NO_SYNC", "yes please"},
		{"SPECTRA_SOFT_TIME_LIMIT", "2 hours"},
		{"SPECTRA_RATE_LIMIT_READ", "1e3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, f := bind()
			err := f.Parse(nil, env(map[string]string{tc.name: tc.value}))
			var ee *node.EnvError
			if !errors.As(err, &ee) || ee.Name != tc.name {
				t.Fatalf("Parse with %s=%q = %v, want an EnvError naming it", tc.name, tc.value, err)
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

// Every setting has one flag and one variable of its own, and its help
// names the variable.
func TestFlagsEachSettingOnce(t *testing.T) {
	_, f := bind()
	seen := map[string]string{}
	f.FlagSet().VisitAll(func(fl *flag.Flag) {
		i := strings.LastIndex(fl.Usage, "(SPECTRA_")
		if i < 0 {
			t.Errorf("--%s: usage %q names no SPECTRA_* variable", fl.Name, fl.Usage)
			return
		}
		v := strings.TrimSuffix(fl.Usage[i+1:], ")")
		if other, dup := seen[v]; dup {
			t.Errorf("%s sets both --%s and --%s", v, other, fl.Name)
		}
		seen[v] = fl.Name
	})
}

func TestConfigValidate(t *testing.T) {
	c, f := bind()
	if err := f.Parse([]string{"--time-scale", "-1"}, env(nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--time-scale") {
		t.Errorf("Validate() with time scale -1 = %v, want an error naming --time-scale", err)
	}
}
