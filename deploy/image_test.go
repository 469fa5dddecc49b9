package deploy

import (
	"encoding/json"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// dockerfile is what the repository's Dockerfile says about the directory the image's server
// keeps its data in.
type dockerfile struct {
	user    string
	cmd     []string
	copies  map[string]string // COPY destination (no trailing slash) -> its --chmod ("" if none)
	chowned map[string]string // COPY destination -> its --chown
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{copies: map[string]string{}, chowned: map[string]string{}}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			t.Fatalf("Dockerfile: continued lines are not read by this test: %q", line)
		}
		instr, rest, _ := strings.Cut(line, " ")
		fields := strings.Fields(rest)
		switch strings.ToUpper(instr) {
		case "USER":
			d.user = rest
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &d.cmd); err != nil {
				t.Fatalf("Dockerfile CMD %q is not the exec (JSON) form: %v", rest, err)
			}
		case "COPY":
			var chmod, chown string
			var args []string
			for _, f := range fields {
				switch {
				case strings.HasPrefix(f, "--chmod="):
					chmod = strings.TrimPrefix(f, "--chmod=")
				case strings.HasPrefix(f, "--chown="):
					chown = strings.TrimPrefix(f, "--chown=")
				case strings.HasPrefix(f, "--"):
				default:
					args = append(args, f)
				}
			}
			dest := path.Clean(args[len(args)-1])
			d.copies[dest], d.chowned[dest] = chmod, chown
		}
	}
	return d
}

// flagValue is the value of --name in args (--name value or --name=value), or "".
func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// The server refuses a data directory that group or others may write (server/datadir.go). The
// image's /data is made by COPY from deploy/docker/data, and COPY keeps the mode that directory
// has in the build context: the checkout's, 0775 under the umask 002 that Debian, Ubuntu and
// Fedora give users by default. The image's own CMD, and docker-compose.yml's servers (a new
// named volume starts as a copy of the image's /data, mode included), then exit at start with
// "data dir is writable by group or others". The data directory the image's commands name must
// be one whose mode the Dockerfile sets, not the checkout's, or one the server creates itself
// (0700) inside a directory it owns.
func TestImageDataDirModeIsNotTheCheckouts(t *testing.T) {
	d := readDockerfile(t)
	uid, _, _ := strings.Cut(d.user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Fatalf("Dockerfile USER %q: want a non-root user", d.user)
	}
	check := func(where, dataDir string) {
		t.Helper()
		if dataDir == "" || !path.IsAbs(dataDir) {
			t.Errorf("%s: --data-dir %q: want an absolute path in the image", where, dataDir)
			return
		}
		dataDir = path.Clean(dataDir)
		if chmod, copied := d.copies[dataDir]; copied {
			mode, err := strconv.ParseUint(chmod, 8, 32)
			switch {
			case chmod == "":
				t.Errorf("%s: --data-dir %s is COPYed without --chmod: it gets the mode of the checkout's directory (0775 under umask 002), which the server refuses", where, dataDir)
			case err != nil:
				t.Errorf("%s: COPY --chmod=%s to %s: %v", where, chmod, dataDir, err)
			case mode&0o022 != 0:
				t.Errorf("%s: COPY --chmod=%s to %s: writable by group or others, which the server refuses", where, chmod, dataDir)
			}
			if owner, _, _ := strings.Cut(d.chowned[dataDir], ":"); owner != uid {
				t.Errorf("%s: %s is COPYed --chown=%q; the server (user %s) refuses a data dir it does not own", where, dataDir, d.chowned[dataDir], uid)
			}
			return
		}
		parent := path.Dir(dataDir)
		if _, copied := d.copies[parent]; !copied {
			t.Errorf("%s: --data-dir %s is neither made by a COPY nor inside a directory one makes: the server (user %s) could not create it", where, dataDir, uid)
			return
		}
		if owner, _, _ := strings.Cut(d.chowned[parent], ":"); owner != uid {
			t.Errorf("%s: %s is COPYed --chown=%q: the server (user %s) cannot create %s in it", where, parent, d.chowned[parent], uid, dataDir)
		}
	}
	check("Dockerfile CMD", flagValue(d.cmd, "--data-dir"))

	// docker-compose.yml runs the image with named volumes: each starts as a copy of the
	// image's directory it is mounted on.
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Command []string `json:"command"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	if len(compose.Services) == 0 {
		t.Fatal("docker-compose.yml: no services read")
	}
	for name, s := range compose.Services {
		check("docker-compose.yml "+name, flagValue(s.Command, "--data-dir"))
	}
}
