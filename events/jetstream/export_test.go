package jetstream

// SyncAlways reports whether the server a store embeds fsyncs every write.
func SyncAlways(s *Store) bool { return s.srv.ns.JetStreamConfig().SyncAlways }
