package cluster

import (
	"sync"
	"time"
)

// Providers of membership.
const (
	// ProviderNATS: heartbeats on the NATS every node shares (Membership).
	ProviderNATS = "nats"
	// ProviderKubernetes: protoactor's Kubernetes provider. Each pod labels
	// itself (cluster, remoting port, member id, kinds) through the API
	// server and watches the pods of its cluster; a member is a pod that
	// runs and is ready. It needs a service account allowed to get, list,
	// watch and patch pods in its namespace (deploy/k8s/cluster.yaml), and
	// reads the namespace from that service account. It is compiled in
	// with the build tag "kubernetes" (kubernetes.go): client-go doubles
	// the binary (52 → 102 MB), which nobody off Kubernetes should carry.
	ProviderKubernetes = "kubernetes"
)

// watchdog is the fail-stop of a member whose provider does not notice
// that this process itself was frozen (the Kubernetes provider): a gap
// longer than ttl between two ticks means the others may have dropped
// this member and moved its runs, so lost is called once and the node
// stops; Kubernetes restarts it as a new member.
type watchdog struct {
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func startWatchdog(tick, ttl time.Duration, lost func(gap time.Duration)) *watchdog {
	w := &watchdog{stop: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-w.stop:
				return
			case now := <-t.C:
				if gap := time.Since(last); gap > ttl {
					lost(gap)
					return
				}
				last = now
			}
		}
	}()
	return w
}

func (w *watchdog) Stop() {
	if w == nil {
		return
	}
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}
