package node

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// QueueLimits are per-queue concurrency limits that override --queue-limit,
// written "rtp/TOOL-1=3,ion/IMP-2=1" on the command line (queue names are
// KIND/TOOL).
type QueueLimits map[string]int

// MarshalText writes the limits sorted by queue.
func (l QueueLimits) MarshalText() ([]byte, error) {
	var parts []string
	for _, q := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, q+"="+strconv.Itoa(l[q]))
	}
	return []byte(strings.Join(parts, ",")), nil
}

// UnmarshalText reads "rtp/TOOL-1=3,ion/IMP-2=1"; every limit is ≥ 1.
func (l *QueueLimits) UnmarshalText(b []byte) error {
	out := QueueLimits{}
	for part := range strings.SplitSeq(string(b), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		q, v, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if !ok || strings.TrimSpace(q) == "" || err != nil || n < 1 {
			return fmt.Errorf("%q: want QUEUE=LIMIT with a limit ≥ 1", part)
		}
		out[strings.TrimSpace(q)] = n
	}
	*l = out
	return nil
}
