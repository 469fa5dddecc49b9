// Package server is filled by a later change; see README.md.
package server
