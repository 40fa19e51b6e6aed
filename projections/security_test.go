package projections_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/spectra-fab/spectra/events"
	"github.com/spectra-fab/spectra/projections"
)

// records turns payloads into stored records of their streams, positions
// counting from 1.
type records struct {
	pos  uint64
	revs map[string]uint64
	t0   time.Time
}

func (r *records) rec(t *testing.T, stream string, md events.Metadata, p events.Payload) events.Record {
	t.Helper()
	if r.revs == nil {
		r.revs, r.t0 = map[string]uint64{}, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	}
	ev, err := events.New(p, md)
	if err != nil {
		t.Fatal(err)
	}
	r.pos++
	rev, seen := r.revs[stream]
	if seen {
		rev++
	}
	r.revs[stream] = rev
	return events.Record{ID: ev.ID, Stream: stream, Revision: rev, Position: r.pos, Type: ev.Type,
		Time: r.t0.Add(time.Duration(r.pos) * time.Second), Data: ev.Data, Metadata: md}
}

func TestSecurity(t *testing.T) {
	var r records
	admin := events.Metadata{OrgID: "org-1", UserID: "u-admin", Role: "admin"}
	svc := events.Metadata{OrgID: "org-1", UserID: "apikey:k1", Role: "operator"}
	s := projections.NewSecurity()
	apply := func(stream string, md events.Metadata, p events.Payload) {
		t.Helper()
		if err := s.Apply(r.rec(t, stream, md, p)); err != nil {
			t.Fatalf("Apply %T: %v", p, err)
		}
	}
	apply("apikey-k1", admin, &events.APIKeyIssued{KeyID: "k1", OrgID: "org-1", Name: "ci", Role: "operator", Hash: "h1"})
	apply("apikey-k2", events.Metadata{OrgID: "org-2", UserID: "u-x"}, &events.APIKeyIssued{KeyID: "k2", OrgID: "org-2", Role: "viewer", Hash: "h2"})
	k, err := s.APIKey("k1")
	if err != nil || k.Hash != "h1" || k.CreatedBy != "u-admin" || !k.Active(time.Now()) {
		t.Fatalf("APIKey(k1) = %+v, %v", k, err)
	}
	if got := s.APIKeys("org-1"); len(got) != 1 || got[0].ID != "k1" {
		t.Errorf("APIKeys(org-1) = %+v, want k1 only", got)
	}
	if _, err := s.APIKey("k9"); !errors.Is(err, projections.ErrNotFound) {
		t.Errorf("APIKey(k9) error = %v, want ErrNotFound", err)
	}

	apply("session-f1", svc, &events.RefreshTokenIssued{FamilyID: "f1", TokenID: "t1", Hash: "r1", KeyID: "k1",
		Subject: "apikey:k1", OrgID: "org-1", Role: "operator", AccessTokenID: "a1", ExpiresAt: r.t0.Add(time.Hour)})
	apply("session-f1", svc, &events.RefreshTokenRotated{FamilyID: "f1", FromTokenID: "t1", TokenID: "t2", Hash: "r2",
		AccessTokenID: "a2", ExpiresAt: r.t0.Add(time.Hour)})
	f, err := s.Family("f1")
	if err != nil || f.Current != "t2" || !f.Tokens["t1"].Spent || f.Tokens["t2"].Spent || f.Revision != 1 {
		t.Fatalf("Family(f1) = %+v, %v; want t2 current, t1 spent, revision 1", f, err)
	}
	if s.AccessTokenRevoked("a1") {
		t.Error("a1 revoked before its family")
	}

	// A snapshot restores the same model.
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := projections.NewSecurity()
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	rf, _ := restored.Family("f1")
	if diff := cmp.Diff(f, rf); diff != "" {
		t.Errorf("restored family (-want +got):\n%s", diff)
	}

	// Revoking the key revokes its families and their access tokens.
	apply("apikey-k1", admin, &events.APIKeyRevoked{KeyID: "k1", Reason: "leaked"})
	k, _ = s.APIKey("k1")
	f, _ = s.Family("f1")
	if k.RevokedAt == nil || k.RevokedBy != "u-admin" || k.Active(time.Now()) || !f.Revoked {
		t.Errorf("after revocation key %+v, family revoked %v", k, f.Revoked)
	}
	for _, jti := range []string{"a1", "a2"} {
		if !s.AccessTokenRevoked(jti) {
			t.Errorf("AccessTokenRevoked(%s) = false after the key was revoked", jti)
		}
	}
	snap, _ = s.Snapshot()
	restored = projections.NewSecurity()
	_ = restored.Restore(snap)
	if !restored.AccessTokenRevoked("a2") {
		t.Error("revoked jti lost in the snapshot")
	}

	// A family revoked on its own (reuse).
	apply("session-f2", svc, &events.RefreshTokenIssued{FamilyID: "f2", TokenID: "t1", KeyID: "k2", OrgID: "org-2", AccessTokenID: "b1"})
	apply("session-f2", svc, &events.TokenFamilyRevoked{FamilyID: "f2", Reason: "refresh token reused", TokenID: "t1"})
	if f, _ := s.Family("f2"); !f.Revoked || f.Reason != "refresh token reused" || !s.AccessTokenRevoked("b1") {
		t.Errorf("family f2 = %+v, want revoked for reuse with b1 refused", f)
	}
}
