package node

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/process"
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

// PutSet stores the artifacts of one job as one object named prefix: a zip
// archive of them, stored uncompressed, each file's comment its content
// type. An object is a chunk and its metadata, two fsynced writes (and a
// read of the name's previous version): one job's three artifacts cost
// two writes and a read instead of six and three.
func (a *artifacts) PutSet(ctx context.Context, prefix string, arts []process.Artifact) ([]string, error) {
	// One allocation for the whole zip: the data, and per entry its local
	// header, data descriptor and central directory record (~150 bytes
	// with the name twice and the comment).
	size := 22
	for _, art := range arts {
		size += len(art.Data) + 2*len(art.Name) + len(art.ContentType) + 160
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	zw := zip.NewWriter(buf)
	uris := make([]string, len(arts))
	for i, art := range arts {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: art.Name, Comment: art.ContentType, Method: zip.Store})
		if err != nil {
			return nil, fmt.Errorf("artifacts of %s: %w", prefix, err)
		}
		if _, err := w.Write(art.Data); err != nil {
			return nil, fmt.Errorf("artifacts of %s: %w", prefix, err)
		}
		uris[i] = "nats://artifacts/" + prefix + "/" + art.Name
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("artifacts of %s: %w", prefix, err)
	}
	meta := jetstream.ObjectMeta{Name: prefix, Headers: map[string][]string{"Content-Type": {setContentType}}}
	if _, err := a.obj.Put(ctx, meta, buf); err != nil {
		return nil, fmt.Errorf("put artifacts of %s: %w", prefix, err)
	}
	return uris, nil
}

// setContentType marks an object that holds a set of artifacts (PutSet).
const setContentType = "application/vnd.spectra.artifacts+zip"

// Open streams an artifact with its content type and size: from its job's
// set (PutSet) or, stored before sets, from an object of its own.
func (a *artifacts) Open(ctx context.Context, key string) (io.ReadCloser, string, int64, error) {
	if prefix, name, ok := cutLast(key, "/"); ok {
		rc, ct, size, err := a.openInSet(ctx, prefix, name)
		if !errors.Is(err, api.ErrArtifactGone) {
			return rc, ct, size, err
		}
	}
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

// openInSet opens the artifact name of the set stored as prefix; it
// returns api.ErrArtifactGone when there is no such set or the set has no
// such artifact.
func (a *artifacts) openInSet(ctx context.Context, prefix, name string) (io.ReadCloser, string, int64, error) {
	data, err := a.obj.GetBytes(ctx, prefix)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, "", 0, api.ErrArtifactGone
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("get artifacts of %s: %w", prefix, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		// An artifact of its own named like a job's set.
		return nil, "", 0, api.ErrArtifactGone
	}
	for _, f := range zr.File {
		if f.Name != name {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, "", 0, fmt.Errorf("artifact %s of %s: %w", name, prefix, err)
		}
		ct := f.Comment
		if ct == "" {
			ct = "application/octet-stream"
		}
		return rc, ct, int64(f.UncompressedSize64), nil
	}
	return nil, "", 0, api.ErrArtifactGone
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
