// Package api is Spectra's HTTP API: a Fiber app that authenticates
// requests (HS256 JWT), authorises them against one role → permission
// table, scopes every query and command to the caller's organisation, and
// maps every error to one JSON shape in one place.
//
// The API is a front: commands go to the actor layer through Commands,
// reads come from the projections through Queries, and job logs from the
// event log. Each is a small interface declared here.
//
//	srv := api.New(api.Config{JWTSecret: secret, Node: "node-1"},
//		api.Deps{Commands: actorSystem, Queries: readModels, Store: store})
//	go srv.Listen(":8003")
//	defer srv.Shutdown(ctx)
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
package api
