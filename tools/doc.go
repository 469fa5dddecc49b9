// Package tools is filled by a later change; see README.md.
package tools
