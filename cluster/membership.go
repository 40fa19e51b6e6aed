package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/nats-io/nats.go"
)

// MembersSubject is the NATS subject members announce themselves on.
const MembersSubject = "spectra.cluster.members"

// Membership is a protoactor ClusterProvider on NATS, which every node
// already shares: each member publishes its record (remoting address,
// kinds) on MembersSubject every Beat and listens to the others'; a member
// not heard from for TTL has left, and one that says it leaves has left at
// once. Core NATS, not a JetStream bucket: a heartbeat must not wait for
// a replicated stream to elect a new leader after the very node loss it
// should report.
//
// A member that finds its own heartbeat interrupted for longer than TTL
// (frozen by SIGSTOP, a stalled machine) is out for good: the others have
// dropped it, protoactor blocks a member id that left, and its runs live
// elsewhere by now. Lost is called once; the node stops (fail-stop) and
// its supervisor restarts it as a new member.
type Membership struct {
	Conn *nats.Conn
	Node string
	// Beat is how often the member announces itself (500 ms); TTL is how
	// long a member may stay silent before it counts as gone (2.5 s).
	Beat, TTL time.Duration
	Log       *slog.Logger
	// Lost is called once when this member finds it has been dropped.
	Lost func(error)

	cluster *protocluster.Cluster
	self    memberRecord
	sub     *nats.Subscription
	stop    chan struct{}
	wg      sync.WaitGroup
	changed chan struct{} // asks the refresher to publish the topology
	lost    sync.Once

	mu      sync.Mutex
	seen    map[string]heard
	members []*protocluster.Member
}

var _ protocluster.ClusterProvider = (*Membership)(nil)

// memberRecord is what a member announces.
type memberRecord struct {
	ID      string   `json:"id"`
	Node    string   `json:"node"`
	Host    string   `json:"host"`
	Port    int      `json:"port"`
	Kinds   []string `json:"kinds"`
	Leaving bool     `json:"leaving,omitempty"`
}

type heard struct {
	rec memberRecord
	at  time.Time
}

// StartMember implements protocluster.ClusterProvider: it starts this
// member's heartbeat and listens to the others'.
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
	m.cluster = c
	m.self = memberRecord{ID: c.ActorSystem.ID, Node: m.Node, Host: host, Port: port, Kinds: c.GetClusterKinds()}
	m.seen = map[string]heard{}
	m.changed = make(chan struct{}, 1)
	m.sub, err = m.Conn.Subscribe(MembersSubject, m.heard)
	if err != nil {
		return fmt.Errorf("listen to members: %w", err)
	}
	if err := m.announce(); err != nil {
		_ = m.sub.Unsubscribe()
		return fmt.Errorf("register member %s: %w", m.Node, err)
	}
	m.stop = make(chan struct{})
	m.refresh()
	m.wg.Add(2)
	go m.beat()
	go m.refresher()
	return nil
}

// StartClient implements protocluster.ClusterProvider; Spectra nodes are
// always members.
func (m *Membership) StartClient(*protocluster.Cluster) error {
	return errors.New("cluster clients are not supported: every node is a member")
}

// Shutdown implements protocluster.ClusterProvider: the heartbeat stops
// and, when graceful, the member says it leaves, so the others take its
// grains over at once.
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
	m.wg.Wait()
	_ = m.sub.Unsubscribe()
	if !graceful {
		return nil
	}
	rec := m.self
	rec.Leaving = true
	data, _ := json.Marshal(rec)
	if err := m.Conn.Publish(MembersSubject, data); err != nil {
		return err
	}
	return m.Conn.FlushTimeout(time.Second)
}

// Members is the last member list this member published.
func (m *Membership) Members() []*protocluster.Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.members
}

func (m *Membership) announce() error {
	data, err := json.Marshal(m.self)
	if err != nil {
		return err
	}
	return m.Conn.Publish(MembersSubject, data)
}

// heard records another member's announcement.
func (m *Membership) heard(msg *nats.Msg) {
	var rec memberRecord
	if json.Unmarshal(msg.Data, &rec) != nil || rec.ID == "" || rec.ID == m.self.ID {
		return
	}
	m.mu.Lock()
	_, known := m.seen[rec.ID]
	if rec.Leaving {
		delete(m.seen, rec.ID)
	} else {
		m.seen[rec.ID] = heard{rec: rec, at: time.Now()}
	}
	m.mu.Unlock()
	if known == rec.Leaving { // joined or left: tell the cluster now
		m.signal()
	}
}

func (m *Membership) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// refresher publishes the topology when asked. Apart from the heartbeat:
// protoactor's topology update can take a while when members leave, and
// must not delay a heartbeat.
func (m *Membership) refresher() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case <-m.changed:
			m.refresh()
		}
	}
}

// beat announces this member every Beat; it does nothing that can block,
// so a gap between beats means the process itself was frozen or starved.
func (m *Membership) beat() {
	defer m.wg.Done()
	t := time.NewTicker(m.Beat)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			// The monotonic clock runs on while the process is frozen.
			if gap := time.Since(last); gap > m.TTL {
				m.lost.Do(func() {
					m.Log.Error("this node was silent longer than the membership TTL (frozen or stalled); the others have dropped it; stopping",
						"node", m.Node, "silent", gap.Round(time.Millisecond), "ttl", m.TTL)
					if m.Lost != nil {
						m.Lost(fmt.Errorf("node %s: dropped from the cluster", m.Node))
					}
				})
				return
			}
			last = now
			if err := m.announce(); err != nil {
				m.Log.Debug("member heartbeat", "err", err)
			}
			m.signal()
		}
	}
}

// refresh publishes the live members to the cluster.
func (m *Membership) refresh() {
	m.mu.Lock()
	live := []*protocluster.Member{{Id: m.self.ID, Host: m.self.Host, Port: int32(m.self.Port), Kinds: m.self.Kinds}}
	for id, h := range m.seen {
		if time.Since(h.at) > m.TTL {
			delete(m.seen, id)
			continue
		}
		live = append(live, &protocluster.Member{Id: id, Host: h.rec.Host, Port: int32(h.rec.Port), Kinds: h.rec.Kinds})
	}
	sort.Slice(live, func(i, j int) bool { return live[i].Id < live[j].Id })
	m.members = live
	m.mu.Unlock()
	m.cluster.MemberList.UpdateClusterTopology(live)
}
