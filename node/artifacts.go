package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/api"
)

// artifacts keeps run artifacts in a NATS object store whose objects
// expire after the configured retention; the events that name them stay.
type artifacts struct {
	obj jetstream.ObjectStore
}

func openArtifacts(ctx context.Context, js jetstream.JetStream, ttl time.Duration) (*artifacts, error) {
	obj, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "artifacts", TTL: ttl,
		Description: "run artifacts: telemetry, dose maps, charts"})
	if err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	return &artifacts{obj: obj}, nil
}

// Put stores an artifact and returns its URI.
func (a *artifacts) Put(ctx context.Context, key, contentType string, data []byte) (string, error) {
	meta := jetstream.ObjectMeta{Name: key, Headers: map[string][]string{"Content-Type": {contentType}}}
	if _, err := a.obj.Put(ctx, meta, bytes.NewReader(data)); err != nil {
		return "", fmt.Errorf("put artifact %s: %w", key, err)
	}
	return "nats://artifacts/" + key, nil
}

// Open streams an artifact with its content type and size.
func (a *artifacts) Open(ctx context.Context, key string) (io.ReadCloser, string, int64, error) {
	res, err := a.obj.Get(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, "", 0, api.ErrArtifactGone
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("get artifact %s: %w", key, err)
	}
	info, err := res.Info()
	if err != nil {
		_ = res.Close()
		return nil, "", 0, err
	}
	ct := "application/octet-stream"
	if info.Headers != nil && info.Headers.Get("Content-Type") != "" {
		ct = info.Headers.Get("Content-Type")
	}
	return res, ct, int64(info.Size), nil
}
