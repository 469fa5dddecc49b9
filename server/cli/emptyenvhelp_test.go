package cli

import (
	"strings"
	"testing"
)

// TestHelpShowsEmptyEnvVariable: a COMMITLOG_ variable set to nothing counts as unset (see
// TestConfigFileUnderEmptyEnv), which was done by dropping it from its flag: serve --help then
// no longer showed "[$COMMITLOG_DATA_DIR]" while the variable was empty. It does, and the
// empty variable still counts as unset.
func TestHelpShowsEmptyEnvVariable(t *testing.T) {
	t.Setenv("COMMITLOG_DATA_DIR", "")
	t.Setenv("COMMITLOG_SEGMENT_BYTES", "")
	_, help, _ := run(t, t.Context(), "serve", "--help")
	for _, v := range []string{"[$COMMITLOG_DATA_DIR]", "[$COMMITLOG_SEGMENT_BYTES]"} {
		if !strings.Contains(help, v) {
			t.Errorf("serve --help under an empty %s does not show %s", strings.Trim(v, "[$]"), v)
		}
	}
	if strings.Contains(help, "\x00") {
		t.Error("serve --help shows a NUL byte")
	}
	cfg, err := serveConfigOf()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "data" || cfg.SegmentBytes != 64<<20 {
		t.Errorf("under empty variables: data dir %q, segment bytes %d; want the defaults", cfg.DataDir, cfg.SegmentBytes)
	}
}
