package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/spectra-fab/spectra/api"
	"github.com/spectra-fab/spectra/node"
)

func runToken(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	role := fs.String("role", "engineer", "admin, engineer, operator or viewer")
	org := fs.String("org", "org-1", "organisation id (org_id claim)")
	user := fs.String("user", "", "user id (sub claim; default <role>-user)")
	email := fs.String("email", "", "email claim (default <user>@example.com)")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime")
	f := node.NewFlags(fs)
	secretFile := new(string)
	f.String(secretFile, "jwt-secret-file", "SPECTRA_JWT_SECRET_FILE", "", "file holding the JWT secret (else SPECTRA_JWT_SECRET)")
	if err := parseFlags(f, args); err != nil {
		return commandError("token", err)
	}
	secret, err := loadSecret(*secretFile)
	if err != nil {
		return err
	}
	if len(secret) == 0 {
		return errors.New("token: set SPECTRA_JWT_SECRET (or --jwt-secret-file) to the server's secret")
	}
	if *user == "" {
		*user = *role + "-user"
	}
	if *email == "" {
		*email = *user + "@example.com"
	}
	tok, err := api.IssueToken(secret, *user, *email, *org, *role, *ttl)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	fmt.Println(tok)
	return nil
}
