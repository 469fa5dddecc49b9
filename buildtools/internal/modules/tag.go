package modules

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// MissingTags returns the release tags (Tags) that the git repository at r.Root does not have,
// in release order.
func (r *Repo) MissingTags() ([]string, error) {
	out, err := git(r.Root, "tag", "--list")
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, t := range strings.Fields(out) {
		have[t] = true
	}
	var missing []string
	for _, t := range r.Tags() {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// Tag creates the missing release tags, annotated, on rev, in release order, and returns them.
// It refuses when the tree at rev is not the tree Check approved: rev's modules.txt and go.mod
// files must be those of the working tree (tag the release commit, with nothing uncommitted).
func (r *Repo) Tag(rev string) ([]string, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	paths := []string{ListFile}
	for _, m := range r.Modules {
		paths = append(paths, m.Dir+"/go.mod")
	}
	if out, err := git(r.Root, append([]string{"diff", "--name-only", rev, "--"}, paths...)...); err != nil {
		return nil, err
	} else if out != "" {
		return nil, fmt.Errorf("%s differs from the working tree in: %s (commit the release first)", rev, strings.Join(strings.Fields(out), ", "))
	}
	missing, err := r.MissingTags()
	if err != nil {
		return nil, err
	}
	for _, t := range missing {
		if _, err := git(r.Root, "tag", "-a", "-m", "release "+t, t, rev); err != nil {
			return nil, err
		}
	}
	return missing, nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
