package api

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// TestRateLimits: the 101st create of a principal in a minute is refused
// with 429, Retry-After and the one error shape; other principals and
// reads are not affected; the limits are configurable.
func TestRateLimits(t *testing.T) {
	h := newHarness(t)
	eng := token(t, RoleEngineer, "org-1")
	for i := 1; i <= 100; i++ {
		if res := h.do(t, http.MethodPost, "/api/ion/runs", eng, ionRecipe); res.Status != http.StatusCreated {
			t.Fatalf("create %d = %d %s, want 201", i, res.Status, res.Body)
		}
	}
	res := h.do(t, http.MethodPost, "/api/rtp/runs", eng, ionRecipe)
	if res.Status != http.StatusTooManyRequests {
		t.Fatalf("create 101 = %d %s, want 429", res.Status, res.Body)
	}
	if e := res.Err(t); e.Code != CodeRateLimited {
		t.Errorf("create 101 code = %q, want %q", e.Code, CodeRateLimited)
	}
	if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 || n > 60 {
		t.Errorf("Retry-After = %q, want 1–60 seconds", res.Header.Get("Retry-After"))
	}
	if res := h.do(t, http.MethodGet, "/api/ion/runs", eng, ""); res.Status != http.StatusOK {
		t.Errorf("a read after the create limit = %d, want 200", res.Status)
	}
	if res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleOperator, "org-1"), ionRecipe); res.Status != http.StatusCreated {
		t.Errorf("another principal's create = %d, want 201", res.Status)
	}
	if res := h.do(t, http.MethodPost, "/api/ion/runs", token(t, RoleEngineer, "org-2"), ionRecipe); res.Status != http.StatusCreated {
		t.Errorf("the same user id in another organisation = %d, want 201", res.Status)
	}

	t.Run("configurable", func(t *testing.T) {
		h := newHarness(t, func(c *Config, _ *Deps) {
			c.RateLimits = RateLimits{Reads: 3, CreateRuns: -1, Window: time.Minute}
		})
		v := token(t, RoleViewer, "org-1")
		for i := 0; i < 3; i++ {
			h.do(t, http.MethodGet, "/api/jobs", v, "")
		}
		if res := h.do(t, http.MethodGet, "/api/ion/runs", v, ""); res.Status != http.StatusTooManyRequests {
			t.Errorf("4th read with Reads: 3 = %d, want 429", res.Status)
		}
		e := token(t, RoleEngineer, "org-1")
		for i := 0; i < 150; i++ {
			if res := h.do(t, http.MethodPost, "/api/ion/runs", e, ionRecipe); res.Status != http.StatusCreated {
				t.Fatalf("create %d with the limit off = %d", i, res.Status)
			}
		}
	})

	t.Run("forbidden_floods_are_limited", func(t *testing.T) {
		h := newHarness(t, func(c *Config, _ *Deps) { c.RateLimits = RateLimits{Commands: 2} })
		v := token(t, RoleViewer, "org-1")
		var got []int
		for i := 0; i < 3; i++ {
			got = append(got, h.do(t, http.MethodPost, "/api/jobs/job-000000000001/cancel", v, "").Status)
		}
		if got[0] != 403 || got[1] != 403 || got[2] != 429 {
			t.Errorf("viewer cancels = %v, want [403 403 429]", got)
		}
	})
}
