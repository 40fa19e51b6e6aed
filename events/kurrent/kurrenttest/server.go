// Package kurrenttest is an in-process protocol double of a KurrentDB
// (EventStoreDB) node. It implements the server side of the gRPC services
// the EventStore-Client-Go/v4 client speaks — Streams (Read, Append),
// ServerFeatures and Gossip — using the client module's own generated
// service interfaces, so the real client and the events/kurrent adapter run
// unchanged against it:
//
//	srv, conn := kurrenttest.Start(t) // conn is "esdb://127.0.0.1:port?tls=false"
//	store, err := kurrent.Open(ctx, conn, kurrent.Options{})
//	srv.Restart()                      // same data, same address: reconnection tests
//
// What it implements, as a real node behaves:
//   - Append with expected revision any, no stream, stream exists and an
//     exact revision; the wrong-expected-version answer with the current
//     revision; idempotent retries (the same event ids at the same place
//     answer success with the original revision and no position, as the
//     real server answers an idempotent write).
//   - $all positions that are sparse, ordered log offsets with commit =
//     prepare per event (as a node gives for single-stream appends); the
//     log starts with two system events ($epoch-information, $settings).
//   - Reads of a stream (forwards and backwards, from start, end or a
//     revision, with a count; StreamNotFound for a missing stream) and of
//     $all (forwards inclusive of the start position, backwards exclusive).
//   - Catch-up subscriptions to a stream or to $all from start, end or a
//     position (exclusive), with server-side filters (stream name or event
//     type, prefixes or regex), checkpoints every window × multiplier
//     events considered, the caught-up message, then live events.
//   - System metadata "type", "content-type" and "created" (.NET ticks since
//     the Unix epoch); OmitCreated(true) leaves "created" out, the trap
//     that makes the client call log.Fatalf.
//   - A slow or hung node: Delay(appends, reads) holds every append and
//     read that long before answering, over connections that stay open.
//   - Stop and Restart on the same address with the data kept.
//
// What it does not implement: BatchAppend, Delete, Tombstone, stream
// metadata ($maxAge, $maxCount, ACLs) and truncation, links and
// ResolveLinkTos, persistent subscriptions, projections, users,
// authentication and TLS, leader/follower redirection, the idempotency
// cache's eviction (ids are remembered for ever), fell-behind messages,
// size limits, deadlines, and anything on disk: data lives in memory for
// the life of the Server. It is a test double, not a performance model.
package kurrenttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Version is the server version the double reports in ServerFeatures.
const Version = "24.10.0"

// event is one stored event.
type event struct {
	id          uuid.UUID
	stream      string
	revision    uint64
	position    uint64 // commit = prepare
	typ         string
	contentType string
	created     int64 // .NET ticks since the Unix epoch
	data        []byte
	meta        []byte
}

// Server is a running protocol double. Its methods are safe for concurrent use.
type Server struct {
	mu          sync.Mutex
	log         []*event // $all, in position order
	streams     map[string][]*event
	ids         map[uuid.UUID]*event
	next        uint64        // the next log position
	changed     chan struct{} // closed and replaced after every append
	omitCreated bool
	appendDelay time.Duration // see Delay
	readDelay   time.Duration

	addr string // host:port, kept across restarts
	gs   *grpc.Server
	done chan struct{} // closed when Serve returns
}

// Start starts a double on a free loopback port and stops it when tb ends.
// It returns the server and a connection string for esdb.ParseConnectionString
// (plain text, so it carries tls=false).
func Start(tb testing.TB) (*Server, string) {
	tb.Helper()
	s := New()
	if err := s.Listen("127.0.0.1:0"); err != nil {
		tb.Fatalf("kurrenttest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s, s.ConnString()
}

// New returns a stopped double holding only the system events a fresh node
// has. Listen starts it.
func New() *Server {
	s := &Server{
		streams: map[string][]*event{},
		ids:     map[uuid.UUID]*event{},
		next:    1024, // a fresh node's log starts with its epoch and chunk headers
		changed: make(chan struct{}),
	}
	for _, name := range []string{"$epoch-information", "$settings"} {
		s.write(name, []*api.AppendReq_ProposedMessage{{
			Id:       toProtoUUID(uuid.New(), false),
			Metadata: map[string]string{"type": name, "content-type": "application/json"},
			Data:     []byte("{}"),
		}})
	}
	return s
}

// Listen starts serving on addr ("127.0.0.1:0" for a free port).
func (s *Server) Listen(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	gs := grpc.NewServer(grpc.WaitForHandlers(true))
	api.RegisterStreamsServer(gs, streamsService{s: s})
	serverfeatures.RegisterServerFeaturesServer(gs, featuresService{})
	gossip.RegisterGossipServer(gs, gossipService{s: s})
	done := make(chan struct{})
	s.mu.Lock()
	s.addr, s.gs, s.done = lis.Addr().String(), gs, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	return nil
}

// Addr is the host:port the double listens on.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// ConnString is an esdb:// connection string for the double.
func (s *Server) ConnString() string {
	return "esdb://" + s.Addr() + "?tls=false"
}

// Stop closes every connection and ends every call, as a node that goes
// down. The data stays; Restart serves it again. Stop is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	gs, done := s.gs, s.done
	s.gs = nil
	s.mu.Unlock()
	if gs == nil {
		return
	}
	gs.Stop()
	<-done
}

// Delay makes every append, and every read (not subscriptions), wait that
// long before the double handles it, as a slow node does; the caller's
// deadline still ends the wait. A long delay is a node that accepts calls
// and never answers them (a hung process, a lost network) while its
// connections stay open. Zero answers at once again.
func (s *Server) Delay(appends, reads time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appendDelay, s.readDelay = appends, reads
}

// wait sleeps for the delay of appends (or reads), or until ctx ends.
func (s *Server) wait(ctx context.Context, appends bool) error {
	s.mu.Lock()
	d := s.readDelay
	if appends {
		d = s.appendDelay
	}
	s.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// Restart stops the double and serves the same data on the same address.
func (s *Server) Restart() error {
	s.Stop()
	return s.Listen(s.Addr())
}

// OmitCreated makes reads and subscriptions leave the "created" system
// metadata out of the events they send (the client would call log.Fatalf).
func (s *Server) OmitCreated(omit bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.omitCreated = omit
}

// Len is the number of events in $all, system events included.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// write appends msgs to stream; the caller has checked the expected
// revision and holds s.mu (or owns s).
func (s *Server) write(stream string, msgs []*api.AppendReq_ProposedMessage) *event {
	now := time.Now().UnixNano() / 100
	var last *event
	for _, m := range msgs {
		id, _ := fromProtoUUID(m.GetId())
		ev := &event{
			id:          id,
			stream:      stream,
			revision:    uint64(len(s.streams[stream])),
			position:    s.next,
			typ:         m.GetMetadata()["type"],
			contentType: m.GetMetadata()["content-type"],
			created:     now,
			data:        m.GetData(),
			meta:        m.GetCustomMetadata(),
		}
		// Positions are byte offsets in a real log: sparse and ordered.
		s.next += uint64(96 + len(stream) + len(ev.typ) + len(ev.data) + len(ev.meta))
		s.log = append(s.log, ev)
		s.streams[stream] = append(s.streams[stream], ev)
		s.ids[id] = ev
		last = ev
	}
	close(s.changed)
	s.changed = make(chan struct{})
	return last
}

// expectation is an append's expected revision; rev is used with kindRevision.
type expectation struct {
	kind int
	rev  uint64
}

const (
	kindAny = iota
	kindNoStream
	kindExists
	kindRevision
)

// append decides and performs one append, as a node's write path does.
func (s *Server) append(stream string, exp expectation, msgs []*api.AppendReq_ProposedMessage) *api.AppendResp {
	s.mu.Lock()
	defer s.mu.Unlock()
	evs := s.streams[stream]
	current := int64(len(evs)) - 1
	if last, ok := s.idempotent(stream, exp, msgs); ok {
		// An idempotent write answers the original revision without a position.
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
			CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last},
			PositionOption:        &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}},
		}}}
	}
	ok := false
	switch exp.kind {
	case kindAny:
		ok = true
	case kindNoStream:
		ok = current == -1
	case kindExists:
		ok = current >= 0
	case kindRevision:
		ok = current == int64(exp.rev)
	}
	if !ok {
		return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: wrongExpected(current, exp)}}
	}
	if len(msgs) == 0 {
		// A node accepts an empty write and answers where the stream is.
		succ := &api.AppendResp_Success{PositionOption: &api.AppendResp_Success_NoPosition{NoPosition: &shared.Empty{}}}
		if current < 0 {
			succ.CurrentRevisionOption = &api.AppendResp_Success_NoStream{NoStream: &shared.Empty{}}
		} else {
			succ.CurrentRevisionOption = &api.AppendResp_Success_CurrentRevision{CurrentRevision: uint64(current)}
		}
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: succ}}
	}
	last := s.write(stream, msgs)
	return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
		CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: last.revision},
		PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
			CommitPosition: last.position, PreparePosition: last.position,
		}},
	}}}
}

// idempotent reports whether msgs were already written by an earlier
// append with the same expectation, and the revision of the last of them.
func (s *Server) idempotent(stream string, exp expectation, msgs []*api.AppendReq_ProposedMessage) (uint64, bool) {
	if len(msgs) == 0 {
		return 0, false
	}
	evs := s.streams[stream]
	first := -1
	switch exp.kind {
	case kindNoStream:
		first = 0
	case kindRevision:
		first = int(exp.rev) + 1
	default: // any, exists: look the first id up
		id, _ := fromProtoUUID(msgs[0].GetId())
		if ev, ok := s.ids[id]; ok && ev.stream == stream {
			first = int(ev.revision)
		}
	}
	if first < 0 || first+len(msgs) > len(evs) {
		return 0, false
	}
	for i, m := range msgs {
		id, _ := fromProtoUUID(m.GetId())
		if evs[first+i].id != id {
			return 0, false
		}
	}
	return evs[first+len(msgs)-1].revision, true
}

func wrongExpected(current int64, exp expectation) *api.AppendResp_WrongExpectedVersion {
	w := &api.AppendResp_WrongExpectedVersion{}
	if current < 0 {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	} else {
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: uint64(current)}
	}
	switch exp.kind {
	case kindAny:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	case kindNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case kindExists:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	default:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.rev}
	}
	return w
}

// streamsService is the Streams gRPC service.
type streamsService struct {
	api.UnimplementedStreamsServer
	s *Server
}

func (svc streamsService) Append(stream api.Streams_AppendServer) error {
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := req.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "append: first message must carry options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "append: empty stream name")
	}
	var exp expectation
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Any:
		exp.kind = kindAny
	case *api.AppendReq_Options_NoStream:
		exp.kind = kindNoStream
	case *api.AppendReq_Options_StreamExists:
		exp.kind = kindExists
	case *api.AppendReq_Options_Revision:
		exp = expectation{kind: kindRevision, rev: o.Revision}
	default:
		return status.Error(codes.InvalidArgument, "append: no expected revision")
	}
	var msgs []*api.AppendReq_ProposedMessage
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		m := req.GetProposedMessage()
		if m == nil {
			return status.Error(codes.InvalidArgument, "append: expected a proposed message")
		}
		if _, err := fromProtoUUID(m.GetId()); err != nil {
			return status.Error(codes.InvalidArgument, "append: bad event id")
		}
		if m.GetMetadata()["type"] == "" {
			return status.Error(codes.InvalidArgument, "append: event without type")
		}
		msgs = append(msgs, m)
	}
	if err := svc.s.wait(stream.Context(), true); err != nil {
		return err
	}
	return stream.SendAndClose(svc.s.append(name, exp, msgs))
}

func (svc streamsService) Read(req *api.ReadReq, stream api.Streams_ReadServer) error {
	opts := req.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "read: no options")
	}
	if opts.GetSubscription() == nil {
		if err := svc.s.wait(stream.Context(), false); err != nil {
			return err
		}
	}
	filter, err := compileFilter(opts.GetFilter())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	r := reader{s: svc.s, out: stream, stringIDs: opts.GetUuidOption().GetString_() != nil, filter: filter}
	if opts.GetSubscription() != nil {
		return r.subscribe(stream.Context(), opts)
	}
	backwards := opts.GetReadDirection() == api.ReadReq_Options_Backwards
	count := opts.GetCount()
	if so := opts.GetStream(); so != nil {
		return r.readStream(string(so.GetStreamIdentifier().GetStreamName()), so, backwards, count)
	}
	if ao := opts.GetAll(); ao != nil {
		return r.readAll(ao, backwards, count)
	}
	return status.Error(codes.InvalidArgument, "read: neither a stream nor $all")
}

// reader sends one Read call's messages.
type reader struct {
	s         *Server
	out       api.Streams_ReadServer
	stringIDs bool
	filter    func(*event) bool
}

func (r reader) readStream(name string, so *api.ReadReq_Options_StreamOptions, backwards bool, count uint64) error {
	r.s.mu.Lock()
	evs := r.s.streams[name]
	omit := r.s.omitCreated
	r.s.mu.Unlock()
	if len(evs) == 0 {
		return r.out.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	last := int64(len(evs)) - 1
	var i int64
	switch o := so.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Start:
		i = 0
	case *api.ReadReq_Options_StreamOptions_End:
		i = last + 1
		if backwards {
			i = last
		}
	case *api.ReadReq_Options_StreamOptions_Revision:
		i = int64(min(o.Revision, uint64(last)+1))
		if backwards && i > last {
			i = last
		}
	}
	for n := uint64(0); n < count && i >= 0 && i <= last; n++ {
		if err := r.send(evs[i], omit); err != nil {
			return err
		}
		if backwards {
			i--
		} else {
			i++
		}
	}
	return nil
}

func (r reader) readAll(ao *api.ReadReq_Options_AllOptions, backwards bool, count uint64) error {
	r.s.mu.Lock()
	log := r.s.log
	omit := r.s.omitCreated
	r.s.mu.Unlock()
	var i int
	switch o := ao.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		i = 0
		if backwards {
			i = -1
		}
	case *api.ReadReq_Options_AllOptions_End:
		i = len(log)
		if backwards {
			i = len(log) - 1
		}
	case *api.ReadReq_Options_AllOptions_Position:
		// Forwards is inclusive of the position, backwards starts before it.
		i = firstAtOrAfter(log, o.Position.GetCommitPosition())
		if backwards {
			i--
		}
	}
	for n := uint64(0); n < count && i >= 0 && i < len(log); {
		if r.filter == nil || r.filter(log[i]) {
			if err := r.send(log[i], omit); err != nil {
				return err
			}
			n++
		}
		if backwards {
			i--
		} else {
			i++
		}
	}
	return nil
}

// firstAtOrAfter is the index of the first event at or after position pos.
func firstAtOrAfter(log []*event, pos uint64) int {
	lo, hi := 0, len(log)
	for lo < hi {
		m := (lo + hi) / 2
		if log[m].position < pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// subscribe runs a catch-up subscription: confirmation, stored events after
// the start (exclusive), caught-up, then live events until the call ends.
func (r reader) subscribe(ctx context.Context, opts *api.ReadReq_Options) error {
	if err := r.out.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	interval := uint64(0) // checkpoints only for filtered subscriptions
	if fo := opts.GetFilter(); fo != nil {
		window := uint64(fo.GetMax())
		if window == 0 {
			window = 32
		}
		interval = window * uint64(max(fo.GetCheckpointIntervalMultiplier(), 1))
	}
	so := opts.GetStream()
	name := string(so.GetStreamIdentifier().GetStreamName())
	r.s.mu.Lock()
	var next int // index in the stream or in $all of the next event to consider
	if so != nil {
		evs := r.s.streams[name]
		switch o := so.GetRevisionOption().(type) {
		case *api.ReadReq_Options_StreamOptions_End:
			next = len(evs)
		case *api.ReadReq_Options_StreamOptions_Revision:
			next = int(o.Revision) + 1 // exclusive
		}
	} else {
		switch o := opts.GetAll().GetAllOption().(type) {
		case *api.ReadReq_Options_AllOptions_End:
			next = len(r.s.log)
		case *api.ReadReq_Options_AllOptions_Position:
			next = firstAtOrAfter(r.s.log, o.Position.GetCommitPosition()+1) // exclusive
		}
	}
	r.s.mu.Unlock()
	caughtUp := false
	var considered uint64
	for {
		r.s.mu.Lock()
		src := r.s.log
		if so != nil {
			src = r.s.streams[name]
		}
		var batch []*event
		if next < len(src) {
			batch = src[next:]
		}
		changed, omit := r.s.changed, r.s.omitCreated
		r.s.mu.Unlock()
		for _, ev := range batch {
			next++
			considered++
			if r.filter == nil || r.filter(ev) {
				if err := r.send(ev, omit); err != nil {
					return err
				}
			}
			if interval > 0 && considered%interval == 0 {
				if err := r.out.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
					CommitPosition: ev.position, PreparePosition: ev.position,
				}}}); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			continue
		}
		if !caughtUp {
			caughtUp = true
			if err := r.out.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}}); err != nil {
				return err
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (r reader) send(ev *event, omitCreated bool) error {
	md := map[string]string{"type": ev.typ, "content-type": ev.contentType}
	if !omitCreated {
		md["created"] = strconv.FormatInt(ev.created, 10)
	}
	return r.out.Send(&api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               toProtoUUID(ev.id, r.stringIDs),
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(ev.stream)},
			StreamRevision:   ev.revision,
			PreparePosition:  ev.position,
			CommitPosition:   ev.position,
			Metadata:         md,
			CustomMetadata:   ev.meta,
			Data:             ev.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: ev.position},
	}}})
}

// compileFilter turns a server-side filter into a predicate (nil: no filter).
func compileFilter(fo *api.ReadReq_Options_FilterOptions) (func(*event) bool, error) {
	if fo == nil {
		return nil, nil
	}
	expr, onType := fo.GetStreamIdentifier(), false
	if expr == nil {
		expr, onType = fo.GetEventType(), true
	}
	if expr == nil {
		return nil, errors.New("filter: neither stream nor event type")
	}
	var re *regexp.Regexp
	if expr.GetRegex() != "" {
		var err error
		if re, err = regexp.Compile(expr.GetRegex()); err != nil {
			return nil, fmt.Errorf("filter: %w", err)
		}
	}
	prefixes := expr.GetPrefix()
	return func(ev *event) bool {
		subject := ev.stream
		if onType {
			subject = ev.typ
		}
		if re != nil {
			return re.MatchString(subject)
		}
		for _, p := range prefixes {
			if strings.HasPrefix(subject, p) {
				return true
			}
		}
		return false
	}, nil
}

// featuresService answers ServerFeatures/GetSupportedMethods.
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
}

func (featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const svc = "event_store.client.streams.streams"
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: Version,
		Methods: []*serverfeatures.SupportedMethod{
			{ServiceName: svc, MethodName: "read"},
			{ServiceName: svc, MethodName: "append"},
		},
	}, nil
}

// gossipService answers Gossip/Read with one live leader: the double itself.
type gossipService struct {
	gossip.UnimplementedGossipServer
	s *Server
}

func (g gossipService) Read(context.Context, *shared.Empty) (*gossip.ClusterInfo, error) {
	host, port, err := net.SplitHostPort(g.s.Addr())
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	p, _ := strconv.Atoi(port)
	return &gossip.ClusterInfo{Members: []*gossip.MemberInfo{{
		InstanceId:   toProtoUUID(uuid.New(), false),
		TimeStamp:    time.Now().UnixNano() / 100,
		State:        gossip.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossip.EndPoint{Address: host, Port: uint32(p)},
	}}}, nil
}

func toProtoUUID(id uuid.UUID, asString bool) *shared.UUID {
	if asString {
		return &shared.UUID{Value: &shared.UUID_String_{String_: id.String()}}
	}
	var most, least uint64
	for i := range 8 {
		most = most<<8 | uint64(id[i])
		least = least<<8 | uint64(id[8+i])
	}
	return &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
		MostSignificantBits: int64(most), LeastSignificantBits: int64(least),
	}}}
}

func fromProtoUUID(u *shared.UUID) (uuid.UUID, error) {
	if s := u.GetStructured(); s != nil {
		var id uuid.UUID
		most, least := uint64(s.GetMostSignificantBits()), uint64(s.GetLeastSignificantBits())
		for i := 7; i >= 0; i-- {
			id[i], id[8+i] = byte(most), byte(least)
			most, least = most>>8, least>>8
		}
		return id, nil
	}
	return uuid.Parse(u.GetString_())
}
