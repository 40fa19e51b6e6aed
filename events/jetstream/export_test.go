package jetstream

// SyncAlways reports whether the server a store embeds fsyncs every write.
func SyncAlways(s *Store) bool { return s.srv.ns.JetStreamConfig().SyncAlways }

// Routes is the number of routes the server has to its peers.
func Routes(s *Server) int { return s.ns.NumRoutes() }
