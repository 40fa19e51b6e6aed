// Package natskv keeps projection checkpoints in NATS: the position each
// projection has applied in a JetStream key-value bucket, and its snapshot,
// which can be larger than a KV value, in an object store. The snapshot
// object carries its own position, so a crash between the two writes never
// pairs a snapshot with the wrong position.
package natskv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/projections"
)

const positionHeader = "Spectra-Position"

// Checkpoints implements projections.Checkpoints on NATS.
type Checkpoints struct {
	kv  jetstream.KeyValue
	obj jetstream.ObjectStore
}

var _ projections.Checkpoints = (*Checkpoints)(nil)

// Open creates or opens the "checkpoints" bucket and the "projections"
// object store.
func Open(ctx context.Context, js jetstream.JetStream) (*Checkpoints, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "checkpoints", History: 1})
	if err != nil {
		return nil, fmt.Errorf("open checkpoints bucket: %w", err)
	}
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "projections"})
	if err != nil {
		return nil, fmt.Errorf("open projections object store: %w", err)
	}
	return &Checkpoints{kv: kv, obj: obj}, nil
}

// Load implements projections.Checkpoints.
func (c *Checkpoints) Load(ctx context.Context, name string) (uint64, []byte, error) {
	info, err := c.obj.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return 0, nil, projections.ErrNoCheckpoint
	}
	if err != nil {
		return 0, nil, fmt.Errorf("load checkpoint %s: %w", name, err)
	}
	pos, err := strconv.ParseUint(info.Headers.Get(positionHeader), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("load checkpoint %s: bad position: %w", name, err)
	}
	data, err := c.obj.GetBytes(ctx, name)
	if err != nil {
		return 0, nil, fmt.Errorf("load checkpoint %s: %w", name, err)
	}
	return pos, data, nil
}

// Save implements projections.Checkpoints.
func (c *Checkpoints) Save(ctx context.Context, name string, position uint64, snapshot []byte) error {
	meta := jetstream.ObjectMeta{Name: name, Headers: map[string][]string{positionHeader: {strconv.FormatUint(position, 10)}}}
	if _, err := c.obj.Put(ctx, meta, bytes.NewReader(snapshot)); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	if _, err := c.kv.Put(ctx, name, []byte(strconv.FormatUint(position, 10))); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", name, err)
	}
	return nil
}

// Position returns the position recorded for a projection (0 when none).
func (c *Checkpoints) Position(ctx context.Context, name string) (uint64, error) {
	e, err := c.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(string(e.Value()), 10, 64)
}

// Delete implements projections.Checkpoints.
func (c *Checkpoints) Delete(ctx context.Context, name string) error {
	if err := c.obj.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("delete checkpoint %s: %w", name, err)
	}
	if err := c.kv.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("delete checkpoint %s: %w", name, err)
	}
	return nil
}

// Names implements projections.Checkpoints.
func (c *Checkpoints) Names(ctx context.Context) ([]string, error) {
	infos, err := c.obj.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	names := make([]string, 0, len(infos))
	for _, info := range infos {
		names = append(names, info.Name)
	}
	return names, nil
}
