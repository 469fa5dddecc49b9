package authz

import (
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxFieldLen is the largest subject, object or action, in bytes, that
// ValidateRequest accepts. A certificate common name is at most 64
// characters (RFC 5280), so this leaves room for other identity schemes
// while bounding what a client can make the server match and log.
const MaxFieldLen = 1024

// ValidateRequest checks that subject, object and action are usable in an
// authorization decision: each is non-empty, at most MaxFieldLen bytes,
// valid UTF-8, and free of control characters (C0 and C1 controls such as
// newline, NUL and escape; the Unicode line and paragraph separators; and the
// bidirectional-text controls that can make a logged name read differently).
// Policy files are line- and comma-oriented; refusing such input outright
// means no subject can be mistaken for, or injected into, a policy line.
//
// It returns nil or a *DeniedError matching ErrDenied and either
// ErrInvalidSubject or ErrInvalidRequest. It is safe for concurrent use.
func ValidateRequest(subject, object, action string) error {
	if err := ValidateField(subject); err != nil {
		return &DeniedError{Subject: subject, Object: object, Action: action,
			Err: fmt.Errorf("%w: %w", ErrInvalidSubject, err)}
	}
	for _, f := range [...]string{object, action} {
		if err := ValidateField(f); err != nil {
			return &DeniedError{Subject: subject, Object: object, Action: action,
				Err: fmt.Errorf("%w: %w", ErrInvalidRequest, err)}
		}
	}
	return nil
}

// fieldError describes why one field is unusable.
type fieldError string

func (e fieldError) Error() string { return string(e) }

// ValidateField applies the checks of ValidateRequest to one subject, object
// or action, for implementations that validate the fields of their policy
// rules the same way. It returns nil or an error saying what is wrong with
// s (without quoting s). It is safe for concurrent use.
func ValidateField(s string) error {
	switch {
	case s == "":
		return fieldError("empty")
	case len(s) > MaxFieldLen:
		return fieldError(fmt.Sprintf("longer than %d bytes", MaxFieldLen))
	case !utf8.ValidString(s):
		return fieldError("not valid UTF-8")
	}
	for _, r := range s {
		if r < utf8.RuneSelf {
			if r < 0x20 || r == 0x7f {
				return fieldError(fmt.Sprintf("contains control character %U", r))
			}
			continue
		}
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp, unicode.Bidi_Control) {
			return fieldError(fmt.Sprintf("contains control character %U", r))
		}
	}
	return nil
}
