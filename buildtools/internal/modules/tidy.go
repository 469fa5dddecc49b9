package modules

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/semver"
)

// GoEnv is the environment for go commands that build like a stranger: the caller's
// environment without its go settings, then the given ones (NAME=value).
func GoEnv(settings ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		// The caches, GOROOT and GOENV stay; every other go setting is the caller's to give.
		if !strings.HasPrefix(kv, "GO") || strings.HasPrefix(kv, "GOCACHE=") || strings.HasPrefix(kv, "GOPATH=") ||
			strings.HasPrefix(kv, "GOROOT=") || strings.HasPrefix(kv, "GOENV=") {
			env = append(env, kv)
		}
	}
	return append(env, settings...)
}

func goEnvValue(name string) (string, error) {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return "", fmt.Errorf("go env %s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// TidyExamples runs `go mod tidy` in every example as a stranger would once the listed versions
// are published: outside the workspace, this tree's modules from a module proxy written for
// the purpose (WriteProxy), third-party modules from the local module cache or else the
// caller's GOPROXY. The examples' go.sum then holds the third-party lines only: the lines of
// this tree's modules change with every commit until a release, so the go command adds them
// when it builds an example (GOFLAGS=-mod=mod). With check, nothing is written: it returns the
// examples whose go.mod or go.sum would change. Module downloads go to a module cache of its
// own, removed at the end, so that this tree's modules never land in the shared one.
func (r *Repo) TidyExamples(check bool) (stale []string, err error) {
	work, err := os.MkdirTemp("", "commitlog-tidy-examples")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	proxy := filepath.Join(work, "proxy")
	if err := r.WriteProxy(proxy); err != nil {
		return nil, err
	}
	modcache, err := goEnvValue("GOMODCACHE")
	if err != nil {
		return nil, err
	}
	upstream, err := goEnvValue("GOPROXY")
	if err != nil {
		return nil, err
	}
	env := GoEnv(
		"GOWORK=off",
		"GOFLAGS=-modcacherw",
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(modcache, "cache", "download"))+","+upstream,
		// Third-party lines come from the hashes of the downloads, checked when they were
		// first downloaded; this tree's modules have no checksum to look up yet.
		"GOSUMDB=off",
		"GOTOOLCHAIN=local",
		"GOMODCACHE="+filepath.Join(work, "modcache"),
	)
	ws, err := r.workspaceVersions()
	if err != nil {
		return nil, err
	}
	for _, e := range r.Examples {
		src := filepath.Join(r.Root, e.Dir)
		dir := filepath.Join(work, "src", filepath.Base(e.Dir))
		if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
			return nil, err
		}
		if err := tidyAtWorkspaceVersions(dir, env, ws); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Dir, err)
		}
		changed := false
		for _, name := range []string{"go.mod", "go.sum"} {
			want, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			if name == "go.sum" {
				want = withoutLines(want, Prefix)
			}
			got, err := os.ReadFile(filepath.Join(src, name))
			if err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			if bytes.Equal(got, want) {
				continue
			}
			changed = true
			if !check {
				if err := os.WriteFile(filepath.Join(src, name), want, 0o644); err != nil {
					return nil, err
				}
			}
		}
		if changed {
			stale = append(stale, e.Dir)
		}
	}
	return stale, nil
}

// workspaceVersions returns the version of every module the workspace selects, by path.
func (r *Repo) workspaceVersions() (map[string]string, error) {
	root, err := filepath.Abs(r.Root)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Version}}", "all")
	cmd.Dir = root
	// The workspace even when the caller runs with GOWORK=off (make runs this tool so).
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"), "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -m all in the workspace: %w\n%s", err, stderr.String())
	}
	vs := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if path, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && v != "" {
			vs[path] = v
		}
	}
	return vs, nil
}

// tidyAtWorkspaceVersions runs go mod tidy in dir, then raises every third-party module that
// provides a package it builds, when below the workspace's version, to that version, and tidies
// again, until nothing changes. An example then
// builds with exactly the third-party versions the workspace builds and tests, which are in
// the module cache once the workspace's tests ran (a fresh CI machine has nothing else).
func tidyAtWorkspaceVersions(dir string, env []string, ws map[string]string) error {
	run := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return out, nil
	}
	for range 5 {
		if _, err := run("mod", "tidy"); err != nil {
			return err
		}
		// The modules that provide the packages it builds: only their zips are needed.
		out, err := run("list", "-deps", "-test", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", "./...")
		if err != nil {
			return err
		}
		var raise []string
		for line := range strings.Lines(string(out)) {
			path, v, ok := strings.Cut(strings.TrimSpace(line), " ")
			if !ok || strings.HasPrefix(path, Prefix) {
				continue
			}
			if w := ws[path]; w != "" && semver.Compare(w, v) > 0 && !slices.Contains(raise, "-require="+path+"@"+w) {
				raise = append(raise, "-require="+path+"@"+w)
			}
		}
		if len(raise) == 0 {
			return nil
		}
		if _, err := run(append([]string{"mod", "edit"}, raise...)...); err != nil {
			return err
		}
	}
	return fmt.Errorf("the workspace's versions did not settle after 5 rounds of go mod tidy")
}

// withoutLines drops the lines that start with prefix.
func withoutLines(b []byte, prefix string) []byte {
	var out bytes.Buffer
	for line := range bytes.Lines(b) {
		if !bytes.HasPrefix(line, []byte(prefix)) {
			out.Write(line)
		}
	}
	return out.Bytes()
}
