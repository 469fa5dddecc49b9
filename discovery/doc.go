// Package discovery is filled by a later change; see README.md.
package discovery
