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
