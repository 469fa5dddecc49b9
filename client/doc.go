// Package client is filled by a later change; see README.md.
package client
