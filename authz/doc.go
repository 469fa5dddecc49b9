// Package authz is filled by a later change; see README.md.
package authz
