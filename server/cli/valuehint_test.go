package cli

import (
	"strings"
	"testing"
)

// TestFlagValueErrorSaysForm: a flag value that did not parse was refused as `invalid value "5"
// for flag --bootstrap-wait: parse error`, which did not say that a duration needs its unit,
// nor that a count cannot be negative (consume --count -1).
func TestFlagValueErrorSaysForm(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--bootstrap-wait", "5"}, `invalid value "5" for flag --bootstrap-wait: want a duration with its unit, such as 500ms, 30s or 1h30m (see commitlog serve --help)`},
		{[]string{"consume", "--timeout", "5"}, `invalid value "5" for flag --timeout: want a duration with its unit`},
		{[]string{"group", "reset", "--topic", "t", "--by-duration", "5", "g"}, `invalid value "5" for flag --by-duration: want a duration with its unit`},
		{[]string{"consume", "--count", "-1"}, `invalid value "-1" for flag --count: want a whole number, 0 or more`},
		{[]string{"group", "reset", "--topic", "t", "--partition", "-1", "--to-earliest", "g"}, `invalid value "-1" for flag --partition: want a whole number, 0 or more`},
		{[]string{"serve", "--rpc-port", "abc"}, `invalid value "abc" for flag --rpc-port: want a whole number (see`},
		{[]string{"serve", "--trace-sample-ratio", "x"}, `invalid value "x" for flag --trace-sample-ratio: want a number (see`},
		{[]string{"consume", "--count", "99999999999999999999999"}, `for flag --count: value out of range`},
	} {
		code, out, errOut := run(t, t.Context(), tc.args...)
		if code != 1 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}
}
