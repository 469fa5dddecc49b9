package casbin

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"

	"github.com/commitlog-go/commitlog/authz"
)

// MaxPolicyBytes bounds the size of a policy or model file. A larger file is
// refused rather than read into memory.
const MaxPolicyBytes = 16 << 20

// errReadOnly is returned by the adapter's write methods: policies are edited
// in the file, then Reload is called.
var errReadOnly = errors.New("authz/casbin: policy adapter is read-only")

// fileAdapter is a strict, read-only casbin adapter for CSV policy files.
//
// The format is casbin's: one rule per line, "ptype, field, field, ...",
// fields separated by commas, optionally quoted as in CSV; blank lines and
// lines starting with '#' are ignored. Unlike casbin's own file adapter,
// it refuses instead of skipping or half-loading:
//   - a file that is missing, unreadable, larger than MaxPolicyBytes or not
//     valid UTF-8;
//   - a line that is not valid CSV, names a policy type the model does not
//     define, or has a different number of fields than the model's
//     definition;
//   - an empty field, or a field with control characters (see
//     authz.ValidateRequest): such a rule could never match a valid request.
//
// Surrounding spaces are trimmed from every field. Errors name the file and
// line and wrap ErrInvalidPolicy (or the I/O error).
type fileAdapter struct {
	path string
}

var _ persist.Adapter = (*fileAdapter)(nil)

// LoadPolicy parses the whole file into m; on error, m may hold part of the
// rules and must be discarded (casbin loads into a copy of the model).
func (a *fileAdapter) LoadPolicy(m model.Model) error {
	data, err := readBounded(a.path, MaxPolicyBytes, ErrInvalidPolicy)
	if err != nil {
		return fmt.Errorf("authz/casbin: read policy: %w", err)
	}
	return parsePolicy(a.path, data, m)
}

// readBounded reads the file at path, refusing (with an error wrapping
// tooLarge) a file longer than limit bytes.
func readBounded(path string, limit int64, tooLarge error) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", tooLarge, path, limit)
	}
	return data, nil
}

// parsePolicy loads every rule of data into m. name is used in errors only.
func parsePolicy(name string, data []byte, m model.Model) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: %s: not valid UTF-8", ErrInvalidPolicy, name)
	}
	for i, line := range bytes.Split(data, []byte("\n")) {
		rule, err := parseRule(string(line), m)
		if err != nil {
			return fmt.Errorf("%w: %s:%d: %w", ErrInvalidPolicy, name, i+1, err)
		}
		if rule == nil {
			continue
		}
		if err := persist.LoadPolicyArray(rule, m); err != nil {
			return fmt.Errorf("%w: %s:%d: %w", ErrInvalidPolicy, name, i+1, err)
		}
	}
	return nil
}

// parseRule parses one line into [ptype, fields...], or nil for a blank or
// comment line.
func parseRule(line string, m model.Model) ([]string, error) {
	line = strings.TrimSpace(line) // also drops the '\r' of CRLF files
	if line == "" || strings.HasPrefix(line, "#") {
		return nil, nil
	}
	r := csv.NewReader(strings.NewReader(line))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	rule, err := r.Read()
	if err != nil {
		return nil, err
	}
	for i := range rule {
		rule[i] = strings.TrimSpace(rule[i])
	}
	ptype := rule[0]
	if ptype == "" {
		return nil, errors.New("missing policy type")
	}
	// Only policy ("p…") and role ("g…") lines: the model's request, effect and matcher
	// sections ("r", "e", "m") are assertions too, but never rules.
	var ast *model.Assertion
	if ptype[0] == 'p' || ptype[0] == 'g' {
		ast, err = m.GetAssertion(ptype[:1], ptype)
	}
	if ast == nil || err != nil {
		return nil, fmt.Errorf("policy type %q is not defined by the model", ptype)
	}
	if got, want := len(rule)-1, len(ast.Tokens); got != want {
		return nil, fmt.Errorf("%q rule has %d fields, the model defines %d (%s)",
			ptype, got, want, strings.Join(ast.Tokens, ", "))
	}
	for i, field := range rule[1:] {
		// Reuse the request validation: a field a request can never carry
		// is a mistake in the file, not a rule.
		if err := authz.ValidateField(field); err != nil {
			return nil, fmt.Errorf("field %d (%s): %w", i+1, ast.Tokens[i], err)
		}
		if strings.Contains(field, " #") { // (tabs are refused above, as control characters)
			// casbin's format has no trailing comments: the text would be part of the
			// field, and the rule would never match.
			return nil, fmt.Errorf("field %d (%s) %q holds a trailing comment: put comments on lines of their own", i+1, ast.Tokens[i], field)
		}
	}
	return rule, nil
}

// SavePolicy is not supported: edit the file and call Reload.
func (a *fileAdapter) SavePolicy(model.Model) error { return errReadOnly }

// AddPolicy is not supported: edit the file and call Reload.
func (a *fileAdapter) AddPolicy(string, string, []string) error { return errReadOnly }

// RemovePolicy is not supported: edit the file and call Reload.
func (a *fileAdapter) RemovePolicy(string, string, []string) error { return errReadOnly }

// RemoveFilteredPolicy is not supported: edit the file and call Reload.
func (a *fileAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnly
}
