package projections

// Stats counts the runs of every organisation by status, and lists the
// wall-clock durations of the runs that have finished: what the node's
// metrics export (spectra_runs, spectra_run_duration_seconds).
func (j *JobStatus) Stats() (byStatus map[string]int, durations []float64) {
	j.rlock()
	defer j.mu.RUnlock()
	byStatus = map[string]int{}
	for _, r := range j.runs {
		byStatus[r.Status]++
		if r.DurationSeconds != nil && Terminal(r.Status) {
			durations = append(durations, *r.DurationSeconds)
		}
	}
	return byStatus, durations
}
