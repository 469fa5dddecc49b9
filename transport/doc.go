// Package transport is filled by a later change; see README.md.
package transport
