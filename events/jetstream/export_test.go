package jetstream

// SyncAlways reports whether the server a store embeds fsyncs every write.
func SyncAlways(s *Store) bool { return s.srv.ns.JetStreamConfig().SyncAlways }

// Routes is the number of routes the server has to its peers.
func Routes(s *Server) int { return s.ns.NumRoutes() }

// BeforeCommit has the group committer of s call f with each group's size
// before committing it (f may block to hold commits back).
func BeforeCommit(s *Store, f func(n int)) { s.gc.beforeCommit.Store(&f) }

// Queued is how many appends wait for the group committer of s.
func Queued(s *Store) int { return len(s.gc.queue) }

// MinBatch is the smallest group committed as an atomic batch.
func MinBatch() int { return minBatch }

// FsyncsPerBatch is what a group commit's batch costs in synchronous writes.
const FsyncsPerBatch = fsyncsPerBatch

// IndexReady reports whether the org index of s has caught up with the
// log and follows it (false before the first read that starts it).
func IndexReady(s *Store) bool {
	x := s.idx.Load()
	if x == nil {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ready
}

// StartIndex starts the org index of s (the first indexed read does).
func StartIndex(s *Store) { s.index() }

// BeforeIndex has the org index of s (started here) call f before it
// indexes each message (f may block to hold the index back).
func BeforeIndex(s *Store, f func()) { s.index().beforeAdd.Store(&f) }

// IndexedStreamReads is how many stream reads the index of s served.
func IndexedStreamReads(s *Store) int64 {
	if x := s.idx.Load(); x != nil {
		return x.served.Load()
	}
	return 0
}

// ShortStreamReads is how many stream reads the index of s fell short on
// (and left to the read without it).
func ShortStreamReads(s *Store) int64 {
	if x := s.idx.Load(); x != nil {
		return x.short.Load()
	}
	return 0
}
