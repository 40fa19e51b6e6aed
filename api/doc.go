// Package api is Spectra's HTTP API: a Fiber app that authenticates
// requests (HS256 JWT), authorises them against one role → permission
// table, scopes every query and command to the caller's organisation, and
// maps every error to one JSON shape in one place.
//
// The API is a front: commands go to the actor layer through Commands,
// reads come from the projections through Queries, and job logs from the
// event log. Each is a small interface declared here (see ExampleNew).
//
// Read-your-writes: a command answers with the log position of what it
// appended (body "position", header X-Spectra-Position) after waiting,
// bounded, for the read models to reach it; a read honours X-Min-Position
// the same way and says X-Spectra-Stale: true when it could not wait long
// enough.
//
// Every route, with the permission it needs, is in the route table
// (Server.Routes); the router, the RBAC tests and the OpenAPI document read
// the same table.
//
// Security. A request is authenticated by a bearer JWT (HS256 with the
// configured secret, algorithm pinned; RS256/EdDSA from a JWKS file when
// Config.JWKS is set) or by an X-API-Key. Keys are issued and revoked by
// admins (POST/DELETE /api/auth/api-keys) as events on apikey-<id>, stored
// as SHA-256 hashes in the security read model; POST /api/auth/token trades
// a key for a short-lived access token and a refresh token, and
// POST /api/auth/refresh rotates it; reusing a spent refresh token revokes
// its family (session-<id>) and every access token issued in it. Each
// principal is rate limited (Config.RateLimits), ids are checked before
// they reach the store, and bodies are capped in size and depth. Refusals —
// 401 where the organisation is known for sure, 403, and the 404 a command
// gets for another organisation's resource — are appended as AccessDenied
// to audit-<org>; GET /api/audit answers from the audit read model. The
// credential and audit services are api.Deps' Events, Credentials and
// Audit.
package api
