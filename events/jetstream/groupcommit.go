package jetstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// Group commit: appends to different streams that arrive while a commit is
// in flight are published together as one atomic batch, so that their
// fsyncs are shared.
//
// Why an atomic batch: with sync always, nats-server fsyncs every stored
// message (fileStore.writeMsgRecord → msgBlock.flushPendingMsgsLocked →
// mfd.Sync), serially per stream in stream.internalLoop. Committing a
// single-server atomic batch instead (stream.go processJetStreamBatchMsg,
// v2.12+) switches the file store to sync-on-flush for the batch
// (fs.updateDurabilitySettingsLocked(true)), stores its messages, syncs
// them with one fs.FlushAllPending and only then sends the one
// acknowledgement. The batch is staged first in a temporary file store with
// SyncOnFlush (jetstream_batching.go newBatchStore; one FlushAllPending in
// readyForCommit). Counted with strace (v2.15.3, 50 writers): a batch costs
// seven synchronous writes whatever its size — the staging store's two
// metadata files (O_SYNC) and their directory's fsync each, its block's
// fsync, and two fsyncs of the stream's block at the commit — against one
// fsync per message otherwise; fsync before acknowledge holds. The commit
// holds the stream's isolateMu, which every other write takes too, so the
// batch's messages get consecutive sequences: the acknowledgement carries
// the last one and the count, and member i is at last-count+1+i.
//
// Each member keeps its own Nats-Expected-Last-Subject-Sequence (checked
// per member in checkMsgHeadersPreClusteredProposal) and its Nats-Msg-Id.
// The server refuses a whole batch if any member fails its check (a wrong
// expected sequence: 10071; a duplicate event id: 10201; an expectation on
// a subject the batch already wrote: 10164), so two appends to one stream
// never share a batch, and a refused batch is published again member by
// member, each on its own: a conflict reaches only its own caller, and a
// retried append is recognised as before. The same holds when the batch's
// outcome is unknown (a timeout): each member then either lands alone, or
// finds its own events already stored (duplicate or conflict → Store.stored).
//
// A lone append (nothing else waiting) is published as one message, as
// without group commit. Only single-message appends are grouped.

// Group commit limits: a batch holds at most maxGroupMessages appends and
// about maxGroupBytes (nats-server's default atomic batch limit is 1,000
// messages; each message is at most max_payload). Appends wait in a queue
// of at most groupQueue; a caller beyond it waits to enqueue (back-pressure,
// no growth).
const (
	maxGroupMessages = 500
	maxGroupBytes    = 4 << 20
	groupQueue       = 4096
	groupTimeout     = 10 * time.Second // one commit's bound (the server's batch timeout)
)

// minBatch is the smallest group committed as an atomic batch. A batch
// costs seven synchronous writes (fsyncsPerBatch) and the creation and
// removal of its staging store: about 1.2 ms of CPU, measured against
// ~80 µs for a single message's write and fsync (BenchmarkGroupCommit,
// cpu-µs/event at 24 and 231 appends per batch). Smaller groups go as
// single messages, sent together; when the disk cannot keep up with them,
// appends queue and the groups grow past minBatch.
var minBatch = 16

// errAlone tells a member of a group whose batch was refused (or whose
// outcome is unknown) to publish its message on its own.
var errAlone = errors.New("publish alone")

// commitReq is one append's message waiting to be committed.
type commitReq struct {
	msg  *nats.Msg
	key  string // the stream's subjects: at most one member per key in a batch
	size int

	seq  uint64 // the message's stream sequence, once committed
	dup  bool   // the server dropped it as a duplicate of the message at seq
	err  error
	done chan struct{}
}

// committer gathers the Store's single-message appends into group commits.
// One goroutine commits, one commit at a time: what arrives meanwhile forms
// the next group.
type committer struct {
	js    jetstream.JetStream
	queue chan *commitReq
	life  context.Context
	wg    sync.WaitGroup

	commits  atomic.Uint64 // single messages and batches
	appends  atomic.Uint64 // appends committed through the committer
	batches  atomic.Uint64 // commits of more than one append
	grouped  atomic.Uint64 // appends committed in batches
	refusals atomic.Uint64 // batches refused or lost, their members published alone

	beforeCommit atomic.Pointer[func(n int)] // tests: called with each group's size before it is committed
}

func newCommitter(life context.Context, js jetstream.JetStream) *committer {
	c := &committer{js: js, queue: make(chan *commitReq, groupQueue), life: life}
	c.wg.Add(1)
	go c.run()
	return c
}

// wait returns once the committer's goroutine has ended (after the store's
// life ended).
func (c *committer) wait() { c.wg.Wait() }

// publish commits m, alone or in a group, and returns its acknowledgement
// as js.PublishMsg would: the message's sequence, and whether the server
// dropped it as a duplicate. Errors are the server's (a *jetstream.APIError
// for a refused expectation), ctx's, or events.ErrClosed's cause.
func (c *committer) publish(ctx context.Context, m *nats.Msg, key string) (*jetstream.PubAck, error) {
	r := &commitReq{msg: m, key: key, size: len(m.Data) + 256, done: make(chan struct{})}
	for _, v := range m.Header {
		for _, s := range v {
			r.size += len(s)
		}
	}
	select {
	case c.queue <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.life.Done():
		return nil, c.life.Err()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		// The outcome is unknown, as for a publish cut short: the
		// caller's retry recognises its events if they landed.
		return nil, ctx.Err()
	}
	if errors.Is(r.err, errAlone) {
		// The batch was refused or lost: this member on its own gets its
		// own answer (a conflict, a duplicate, or stored).
		for _, h := range []string{jetstreamext.BatchIDHeader, jetstreamext.BatchSeqHeader, jetstreamext.BatchCommitHeader} {
			m.Header.Del(h)
		}
		return c.js.PublishMsg(ctx, m)
	}
	if r.err != nil {
		return nil, r.err
	}
	return &jetstream.PubAck{Sequence: r.seq, Duplicate: r.dup}, nil
}

func (c *committer) run() {
	defer c.wg.Done()
	var (
		group, held []*commitReq // held: appends to a stream already in the group, for the next
		keys        = map[string]bool{}
		size        int
	)
	add := func(r *commitReq) {
		if keys[r.key] {
			held = append(held, r)
			return
		}
		keys[r.key] = true
		group = append(group, r)
		size += r.size
	}
	for {
		group, size = group[:0], 0
		clear(keys)
		pending := held
		held = nil
		for _, r := range pending {
			add(r)
		}
		if len(group) == 0 {
			select {
			case r := <-c.queue:
				add(r)
			case <-c.life.Done():
				c.drain(held)
				return
			}
		}
		// What arrived while the last commit was in flight.
	gather:
		for len(group) < maxGroupMessages && size < maxGroupBytes && len(held) < maxGroupMessages {
			select {
			case r := <-c.queue:
				add(r)
			default:
				break gather
			}
		}
		c.commit(group)
	}
}

// alone publishes each member of group as its own message, all at once,
// and waits for their acknowledgements.
func (c *committer) alone(ctx context.Context, group []*commitReq) {
	if len(group) == 1 {
		r := group[0]
		ack, err := c.js.PublishMsg(ctx, r.msg)
		if err == nil {
			r.seq, r.dup = ack.Sequence, ack.Duplicate
		}
		r.err = err
		close(r.done)
		return
	}
	futures := make([]jetstream.PubAckFuture, len(group))
	for i, r := range group {
		futures[i], r.err = c.js.PublishMsgAsync(r.msg)
	}
	for i, r := range group {
		if r.err == nil {
			select {
			case ack := <-futures[i].Ok():
				r.seq, r.dup = ack.Sequence, ack.Duplicate
			case r.err = <-futures[i].Err():
			case <-ctx.Done():
				r.err = ctx.Err()
			}
		}
		close(r.done)
	}
}

// drain answers what still waits once the store has closed.
func (c *committer) drain(held []*commitReq) {
	for _, r := range held {
		r.err = c.life.Err()
		close(r.done)
	}
	for {
		select {
		case r := <-c.queue:
			r.err = c.life.Err()
			close(r.done)
		default:
			return
		}
	}
}

// commit publishes group (an atomic batch, or single messages when it is
// small) and answers each member.
func (c *committer) commit(group []*commitReq) {
	if f := c.beforeCommit.Load(); f != nil {
		(*f)(len(group))
	}
	ctx, cancel := context.WithTimeout(c.life, groupTimeout)
	defer cancel()
	c.appends.Add(uint64(len(group)))
	if len(group) < minBatch {
		// Too few to pay for a batch: each its own message (its own
		// commit), sent together; the server fsyncs them one by one.
		c.commits.Add(uint64(len(group)))
		c.alone(ctx, group)
		return
	}
	c.commits.Add(1)
	c.batches.Add(1)
	c.grouped.Add(uint64(len(group)))
	msgs := make([]*nats.Msg, len(group))
	for i, r := range group {
		msgs[i] = r.msg
	}
	// No flow control: the commit's acknowledgement is the only answer
	// waited for (a refused first message fails the commit all the same).
	ack, err := jetstreamext.PublishMsgBatch(ctx, c.js, msgs, jetstreamext.BatchFlowControl{AckTimeout: groupTimeout})
	if err != nil || ack.BatchSize != uint64(len(group)) || ack.Sequence < uint64(len(group)) {
		if c.life.Err() != nil {
			err = c.life.Err() // the store closed: no one to publish alone
		} else {
			c.refusals.Add(1)
			err = errAlone
		}
		for _, r := range group {
			r.err = err
			close(r.done)
		}
		return
	}
	first := ack.Sequence - uint64(len(group)) + 1
	for i, r := range group {
		r.seq = first + uint64(i)
		close(r.done)
	}
}
