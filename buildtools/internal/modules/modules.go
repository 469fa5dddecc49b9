// Package modules reads the repository's module list (modules.txt) and the go.mod files it
// names, and derives from them what must agree with it: the workspace file (go.work), the
// release tags, the rule that modules require only released versions of their siblings, and a
// file-system module proxy that serves the modules as strangers fetch them.
package modules

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// Prefix is every module's path without its directory: module "storage" is Prefix+"storage".
const Prefix = "github.com/commitlog-go/commitlog/"

// ListFile is the module list, relative to the repository root.
const ListFile = "modules.txt"

// ExamplesDir holds the external projects (each a directory with its own go.mod, outside the
// workspace), relative to the repository root.
const ExamplesDir = "examples"

// Module is one line of modules.txt and its go.mod.
type Module struct {
	Dir      string   // directory relative to the root, e.g. "storage"
	Path     string   // module path, Prefix+Dir
	Released []string // released versions, oldest first
	Mod      *modfile.File
}

// Latest returns the newest released version ("" when none is).
func (m *Module) Latest() string {
	if len(m.Released) == 0 {
		return ""
	}
	return m.Released[len(m.Released)-1]
}

// Repo is the repository's modules, in dependency order, and its example projects.
type Repo struct {
	Root     string
	Modules  []*Module
	Examples []*Module // Dir relative to the root (examples/<name>); Path from their go.mod
}

// Module returns the module with path p, or nil.
func (r *Repo) Module(p string) *Module {
	for _, m := range r.Modules {
		if m.Path == p {
			return m
		}
	}
	return nil
}

// Load reads modules.txt under root, every go.mod it names and every examples/*/go.mod.
// It fails only on what it cannot read or parse; Check judges the content.
func Load(root string) (*Repo, error) {
	data, err := os.ReadFile(filepath.Join(root, ListFile))
	if err != nil {
		return nil, err
	}
	r := &Repo{Root: root}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := &Module{Dir: f[0], Path: Prefix + f[0], Released: f[1:]}
		if m.Mod, err = readMod(filepath.Join(root, m.Dir, "go.mod")); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", ListFile, n, err)
		}
		r.Modules = append(r.Modules, m)
	}
	examples, _ := filepath.Glob(filepath.Join(root, ExamplesDir, "*", "go.mod"))
	slices.Sort(examples)
	for _, gomod := range examples {
		mf, err := readMod(gomod)
		if err != nil {
			return nil, err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(gomod))
		r.Examples = append(r.Examples, &Module{Dir: filepath.ToSlash(dir), Path: mf.Module.Mod.Path, Mod: mf})
	}
	return r, nil
}

func readMod(path string) (*modfile.File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	mf, err := modfile.Parse(path, data, nil)
	if err != nil {
		return nil, err
	}
	if mf.Module == nil {
		return nil, fmt.Errorf("%s: no module line", path)
	}
	return mf, nil
}

// Check returns every way the repository breaks the release rules (RELEASING.md):
//   - modules.txt: each directory once; versions canonical semantic versions below v2
//     (v2 would change the module path), strictly increasing;
//   - each module's go.mod names the module Prefix+directory;
//   - a module requires a sibling only at a released version (listed in modules.txt) of a
//     sibling listed before it (dependency order, hence no cycles);
//   - no go.mod, a module's or an example's, has a replace directive for a sibling (a
//     replace would not apply to those who import the module, and examples are built as
//     strangers build them);
//   - the examples require the siblings at their latest released versions.
func (r *Repo) Check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	pos := map[string]int{}
	for i, m := range r.Modules {
		if _, dup := pos[m.Path]; dup {
			bad("%s: %s is listed twice", ListFile, m.Dir)
		}
		pos[m.Path] = i
		for j, v := range m.Released {
			switch {
			case !semver.IsValid(v) || semver.Canonical(v) != v || semver.Build(v) != "":
				bad("%s: %s: %q is not a canonical semantic version (vMAJOR.MINOR.PATCH)", ListFile, m.Dir, v)
			case semver.Major(v) != "v0" && semver.Major(v) != "v1":
				bad("%s: %s: %s needs the module path %s/%s (major version suffix); not supported", ListFile, m.Dir, v, m.Path, semver.Major(v))
			case j > 0 && semver.Compare(m.Released[j-1], v) >= 0:
				bad("%s: %s: versions must increase: %s after %s", ListFile, m.Dir, v, m.Released[j-1])
			}
		}
		if got := m.Mod.Module.Mod.Path; got != m.Path {
			bad("%s/go.mod: module %s, want %s", m.Dir, got, m.Path)
		}
	}
	for i, m := range r.Modules {
		for _, req := range m.Mod.Require {
			s := r.Module(req.Mod.Path)
			switch {
			case s == nil && strings.HasPrefix(req.Mod.Path, Prefix):
				bad("%s/go.mod: requires %s, which %s does not list", m.Dir, req.Mod.Path, ListFile)
			case s == nil:
			case s == m:
				bad("%s/go.mod: requires itself", m.Dir)
			case pos[s.Path] > i:
				bad("%s/go.mod: requires %s, listed after it in %s (dependency order: move %s above %s)", m.Dir, s.Dir, ListFile, s.Dir, m.Dir)
			case !slices.Contains(s.Released, req.Mod.Version):
				bad("%s/go.mod: requires %s %s, not a released version of %s (released: %v; see RELEASING.md)",
					m.Dir, s.Dir, req.Mod.Version, s.Dir, s.Released)
			}
		}
		for _, rep := range m.Mod.Replace {
			bad("%s/go.mod: replace %s: a module's go.mod replaces nothing (go.work does it for the workspace)", m.Dir, rep.Old.Path)
		}
	}
	for _, e := range r.Examples {
		for _, req := range e.Mod.Require {
			s := r.Module(req.Mod.Path)
			switch {
			case s == nil && strings.HasPrefix(req.Mod.Path, Prefix):
				bad("%s/go.mod: requires %s, which %s does not list", e.Dir, req.Mod.Path, ListFile)
			case s == nil:
			case req.Mod.Version != s.Latest():
				bad("%s/go.mod: requires %s %s; an example uses the latest release, %s", e.Dir, s.Dir, req.Mod.Version, s.Latest())
			}
		}
		for _, rep := range e.Mod.Replace {
			bad("%s/go.mod: replace %s: an example is built as a stranger builds it, without replace", e.Dir, rep.Old.Path)
		}
	}
	return errors.Join(errs...)
}

// Tags returns the release tags of every listed version, <directory>/<version>, in release
// order: the modules in dependency order, each one's versions oldest first.
func (r *Repo) Tags() []string {
	var tags []string
	for _, m := range r.Modules {
		for _, v := range m.Released {
			tags = append(tags, m.Dir+"/"+v)
		}
	}
	return tags
}

// WorkFile returns the go.work the workspace needs: `use` for every module, and a versioned
// replace pointing every sibling requirement (module path and version) found in a module's
// go.mod at the sibling's directory, so that the workspace never fetches a sibling. Its go
// version is the highest of the modules'.
func (r *Repo) WorkFile() []byte {
	goVersion := "1.21"
	for _, m := range r.Modules {
		if m.Mod.Go != nil && semver.Compare("v"+m.Mod.Go.Version, "v"+goVersion) > 0 {
			goVersion = m.Mod.Go.Version
		}
	}
	var b bytes.Buffer
	b.WriteString("// Generated by `make work` from modules.txt and the modules' go.mod files: do not edit.\n\n")
	fmt.Fprintf(&b, "go %s\n\nuse (\n", goVersion)
	dirs := make([]string, 0, len(r.Modules))
	for _, m := range r.Modules {
		dirs = append(dirs, m.Dir)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		fmt.Fprintf(&b, "\t./%s\n", d)
	}
	b.WriteString(")\n")
	type rep struct{ path, version, dir string }
	var reps []rep
	for _, m := range r.Modules {
		for _, req := range m.Mod.Require {
			if s := r.Module(req.Mod.Path); s != nil {
				reps = append(reps, rep{s.Path, req.Mod.Version, s.Dir})
			}
		}
	}
	slices.SortFunc(reps, func(a, b rep) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return semver.Compare(a.version, b.version)
	})
	reps = slices.Compact(reps)
	for _, p := range reps {
		fmt.Fprintf(&b, "\nreplace %s %s => ./%s\n", p.path, p.version, p.dir)
	}
	return b.Bytes()
}
