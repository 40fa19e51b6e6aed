package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/nats-io/nats.go/jetstream"
)

// MembersBucket is the NATS KV bucket of cluster members.
const MembersBucket = "spectra_members"

// Membership is a protoactor ClusterProvider keeping the member list in a
// NATS KV bucket: each member puts its record (address, kinds) every
// Beat; a member whose last record is more than TTL older than the newest
// record of any member has left. Ages are compared between records, all
// stamped by the NATS server, so a stall of the bucket itself (a leader
// election) expires nobody, and no two clocks are compared.
//
// A member that finds itself expired (it was frozen, or cut off, longer
// than TTL) is out for good: protoactor blocks a member id that left, and
// its runs live elsewhere by now. Lost is called once; the node stops
// (fail-stop) and its supervisor restarts it as a new member.
type Membership struct {
	KV   jetstream.KeyValue
	Node string
	// Beat is how often the member puts its record and reads the others'
	// (500 ms); TTL is how far behind the newest record a member may fall
	// before it counts as gone (2.5 s).
	Beat, TTL time.Duration
	Log       *slog.Logger
	// Lost is called once when this member finds it has been dropped.
	Lost func(error)

	cluster *protocluster.Cluster
	id      string
	record  []byte
	stop    chan struct{}
	done    chan struct{}
	lost    sync.Once

	mu      sync.Mutex
	members []*protocluster.Member
	missing time.Time // since when this member's own record is absent
}

var _ protocluster.ClusterProvider = (*Membership)(nil)

// memberRecord is what a member puts under its id.
type memberRecord struct {
	Node  string   `json:"node"`
	Host  string   `json:"host"`
	Port  int      `json:"port"`
	Kinds []string `json:"kinds"`
}

// StartMember implements protocluster.ClusterProvider: it registers this
// member and starts its heartbeat.
func (m *Membership) StartMember(c *protocluster.Cluster) error {
	if m.Beat <= 0 {
		m.Beat = 500 * time.Millisecond
	}
	if m.TTL <= 0 {
		m.TTL = 5 * m.Beat
	}
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	m.cluster, m.id = c, c.ActorSystem.ID
	m.record, err = json.Marshal(memberRecord{Node: m.Node, Host: host, Port: port, Kinds: c.GetClusterKinds()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.KV.Put(ctx, m.id, m.record); err != nil {
		return fmt.Errorf("register member %s: %w", m.Node, err)
	}
	m.stop, m.done = make(chan struct{}), make(chan struct{})
	m.refresh()
	go m.run()
	return nil
}

// StartClient implements protocluster.ClusterProvider; Spectra nodes are
// always members.
func (m *Membership) StartClient(*protocluster.Cluster) error {
	return errors.New("cluster clients are not supported: every node is a member")
}

// Shutdown implements protocluster.ClusterProvider: the heartbeat stops
// and, when graceful, the member's record is deleted so the others see it
// leave at once.
func (m *Membership) Shutdown(graceful bool) error {
	if m.stop == nil {
		return nil
	}
	select {
	case <-m.stop:
		return nil
	default:
	}
	close(m.stop)
	<-m.done
	if !graceful {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return m.KV.Delete(ctx, m.id)
}

// Members is the last member list this member published.
func (m *Membership) Members() []*protocluster.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members
}

func (m *Membership) run() {
	defer close(m.done)
	t := time.NewTicker(m.Beat)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), m.Beat)
			if _, err := m.KV.Put(ctx, m.id, m.record); err != nil {
				m.Log.Debug("member heartbeat", "err", err)
			}
			cancel()
			m.refresh()
		}
	}
}

// refresh reads every record and publishes the live members.
func (m *Membership) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.Beat)
	defer cancel()
	lister, err := m.KV.ListKeys(ctx)
	if err != nil {
		m.Log.Debug("list members", "err", err)
		return
	}
	type seen struct {
		id      string
		rec     memberRecord
		created time.Time
	}
	var all []seen
	var newest time.Time
	for key := range lister.Keys() {
		e, err := m.KV.Get(ctx, key)
		if err != nil {
			continue // deleted meanwhile
		}
		var rec memberRecord
		if json.Unmarshal(e.Value(), &rec) != nil {
			continue
		}
		all = append(all, seen{key, rec, e.Created()})
		if e.Created().After(newest) {
			newest = e.Created()
		}
	}
	if ctx.Err() != nil {
		return // an incomplete list would drop members that are alive
	}
	var live []*protocluster.Member
	self, stale := false, false
	for _, s := range all {
		if newest.Sub(s.created) > m.TTL {
			stale = stale || s.id == m.id
			continue
		}
		if s.id == m.id {
			self = true
		}
		live = append(live, &protocluster.Member{Id: s.id, Host: s.rec.Host, Port: int32(s.rec.Port), Kinds: s.rec.Kinds})
	}
	m.mu.Lock()
	switch {
	case self || stale:
		m.missing = time.Time{}
	case m.missing.IsZero():
		m.missing = time.Now()
	}
	// A record that is absent (a lagging replica answered) is not yet a
	// verdict; one that is there and too old is.
	gone := stale || (!self && time.Since(m.missing) > 2*m.TTL)
	m.mu.Unlock()
	if gone {
		m.lost.Do(func() {
			m.Log.Error("this node fell out of the cluster (frozen or cut off longer than the membership TTL); stopping", "node", m.Node, "ttl", m.TTL)
			if m.Lost != nil {
				m.Lost(fmt.Errorf("node %s: dropped from the cluster", m.Node))
			}
		})
		return
	}
	if !self {
		return
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Id < live[j].Id })
	m.mu.Lock()
	m.members = live
	m.mu.Unlock()
	m.cluster.MemberList.UpdateClusterTopology(live)
}
