package actors

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	b := backoff{base: 60 * time.Second, cap: 10 * time.Minute}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{1, 60 * time.Second},
		{2, 120 * time.Second},
		{3, 240 * time.Second},
		{4, 480 * time.Second},
		{5, 10 * time.Minute},
		{100, 10 * time.Minute},
	}
	for _, tt := range tests {
		if got := b.delay(tt.n); got != tt.want {
			t.Errorf("delay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
}
