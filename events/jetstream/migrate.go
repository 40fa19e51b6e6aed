package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/events"
)

// The first layout of the log (before the organisation joined the
// subject) stored each event as one message on ev.<category>.<stream id>,
// with the same headers, its position being the message's sequence. Such
// a log is rewritten once, when a store opens on it (migrateLayout): every
// message gets its current subject ev.<category>.<stream id>.<organisation>
// (the organisation from its metadata) and keeps its sequence, headers,
// body and time (hdrTime: the server stamps a copied message with the
// time of the copy). An event at old position p so is at position
// p×PositionsPerMessage afterwards; the projections' checkpoints, which
// hold old positions, are deleted, so the read models rebuild from the
// log.
//
// The rewrite goes through a second stream and survives a crash at any
// step: (1) copy the log into <name>_RELAYOUT (subjects prefixed), (2)
// delete the checkpoints, (3) delete the log, (4) create it again and copy
// the messages back, (5) delete the copy. Opening again after a crash
// finds where it stopped: an old-layout log with or without a partial
// copy starts over at (1); a copy with no log, or with a log shorter
// than the copy, goes on at (3).
const (
	oldLayoutSubjects = subjectPrefix + "*.*" // ev.<category>.<stream id>
	relayoutSuffix    = "_RELAYOUT"
	relayoutPrefix    = "relayout."
	// hdrTime is the time of an event whose message was copied: the
	// server's timestamp of the original message (RFC 3339).
	hdrTime = "Spectra-Time"
	// checkpointsBucket is the key-value bucket of projections/natskv.
	checkpointsBucket = "checkpoints"
)

// migrateLayout rewrites the log named by cfg when it holds messages of
// the first layout; it reports whether it rewrote anything.
func migrateLayout(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, log *slog.Logger) (bool, error) {
	tmpName := cfg.Name + relayoutSuffix
	orig, err := js.Stream(ctx, cfg.Name)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("migrate: %w", err)
	}
	tmp, err := js.Stream(ctx, tmpName)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return false, fmt.Errorf("migrate: %w", err)
	}
	old := false
	if orig != nil {
		_, err := orig.GetLastMsgForSubject(ctx, oldLayoutSubjects)
		switch {
		case err == nil:
			old = true
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			return false, fmt.Errorf("migrate: look for the first layout: %w", err)
		}
	}
	switch {
	case old: // (1) from the start
		if tmp != nil {
			if err := js.DeleteStream(ctx, tmpName); err != nil {
				return false, fmt.Errorf("migrate: delete a partial copy: %w", err)
			}
		}
		start := time.Now()
		n, err := relayoutCopy(ctx, js, orig, jetstream.StreamConfig{Name: tmpName, Subjects: []string{relayoutPrefix + ">"},
			Storage: jetstream.FileStorage, Replicas: cfg.Replicas}, toCurrentLayout)
		if err != nil {
			return false, fmt.Errorf("migrate: copy: %w", err)
		}
		log.Info("event log: first subject layout copied into the current one", slog.Int("messages", n),
			slog.Duration("took", time.Since(start)))
		if tmp, err = js.Stream(ctx, tmpName); err != nil {
			return false, fmt.Errorf("migrate: %w", err)
		}
	case tmp == nil:
		return false, nil // nothing to migrate
	case orig != nil: // a copy beside a current-layout log: (4) finished or not
		oi, err1 := orig.Info(ctx)
		ti, err2 := tmp.Info(ctx)
		if err := errors.Join(err1, err2); err != nil {
			return false, fmt.Errorf("migrate: %w", err)
		}
		if oi.State.LastSeq >= ti.State.LastSeq {
			if err := js.DeleteStream(ctx, tmpName); err != nil {
				return false, fmt.Errorf("migrate: delete the copy: %w", err)
			}
			return true, nil
		}
	}
	// (2) the checkpoints name old positions
	if err := js.DeleteKeyValue(ctx, checkpointsBucket); err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return false, fmt.Errorf("migrate: delete the projections' checkpoints: %w", err)
	}
	// (3), (4)
	if orig != nil {
		if err := js.DeleteStream(ctx, cfg.Name); err != nil {
			return false, fmt.Errorf("migrate: delete the first-layout log: %w", err)
		}
	}
	n, err := relayoutCopy(ctx, js, tmp, cfg, func(subj string, _ nats.Header) (string, error) {
		s, ok := strings.CutPrefix(subj, relayoutPrefix)
		if !ok {
			return "", fmt.Errorf("subject %q of the copy", subj)
		}
		return s, nil
	})
	if err != nil {
		return false, fmt.Errorf("migrate: copy back: %w", err)
	}
	// (5)
	if err := js.DeleteStream(ctx, tmpName); err != nil {
		return false, fmt.Errorf("migrate: delete the copy: %w", err)
	}
	log.Warn("event log migrated to the current subject layout; read models rebuild from the log", slog.Int("messages", n))
	return true, nil
}

// toCurrentLayout gives a message's subject in the copy: its current
// subject, prefixed.
func toCurrentLayout(subj string, h nats.Header) (string, error) {
	rest, ok := strings.CutPrefix(subj, subjectPrefix)
	if !ok {
		return "", fmt.Errorf("subject %q is not an event stream", subj)
	}
	if strings.Count(rest, ".") == 1 { // first layout
		var md events.Metadata
		if raw := h.Get(hdrMetadata); raw != "" {
			if err := decodeMetadata([]byte(raw), &md); err != nil {
				return "", fmt.Errorf("subject %q: metadata: %w", subj, err)
			}
		}
		subj = subj + "." + orgToken(md.OrgID)
	}
	return relayoutPrefix + subj, nil
}

// relayoutCopy creates the stream cfg and copies every message of src
// into it, in order and at the same sequences, under the subject rename
// gives. Each message keeps its headers and body, less the publish-time
// checks (Nats-Expected-…, Nats-Batch-…), and gets its original time in
// hdrTime unless it has one.
func relayoutCopy(ctx context.Context, js jetstream.JetStream, src jetstream.Stream, cfg jetstream.StreamConfig,
	rename func(string, nats.Header) (string, error)) (int, error) {
	info, err := src.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.State.Msgs > 0 && (info.State.FirstSeq != 1 || info.State.NumDeleted > 0) {
		return 0, fmt.Errorf("stream %s has gaps (first sequence %d, %d deleted): positions cannot be kept",
			info.Config.Name, info.State.FirstSeq, info.State.NumDeleted)
	}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return 0, fmt.Errorf("create %s: %w", cfg.Name, err)
	}
	n := int(info.State.Msgs)
	if n == 0 {
		return 0, nil
	}
	cons, err := src.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return 0, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pageSize))
	if err != nil {
		return 0, err
	}
	defer it.Stop()
	for i := range n {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return i, err
		}
		md, err := m.Metadata()
		if err != nil {
			return i, err
		}
		seq := md.Sequence.Stream
		if seq != uint64(i)+1 {
			return i, fmt.Errorf("message %d where %d was due", seq, i+1)
		}
		out := nats.NewMsg("")
		for k, vs := range m.Headers() {
			if k != nats.MsgIdHdr && strings.HasPrefix(k, "Nats-") {
				continue
			}
			out.Header[k] = vs
		}
		if out.Header.Get(hdrTime) == "" {
			out.Header.Set(hdrTime, md.Timestamp.UTC().Format(time.RFC3339Nano))
		}
		if out.Subject, err = rename(m.Subject(), out.Header); err != nil {
			return i, err
		}
		out.Data = m.Data()
		ack, err := js.PublishMsg(ctx, out, jetstream.WithExpectLastSequence(seq-1))
		if err != nil {
			return i, fmt.Errorf("message %d: %w", seq, err)
		}
		if ack.Sequence != seq || ack.Duplicate {
			return i, fmt.Errorf("message %d stored at %d (duplicate: %t)", seq, ack.Sequence, ack.Duplicate)
		}
	}
	return n, nil
}
