package modules

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/module"
	modzip "golang.org/x/mod/zip"
)

// WriteProxy writes, under dir, a file-system module proxy (GOPROXY=file://<dir>, the layout
// the go command reads: <module>/@v/list, <version>.info, .mod and .zip) that serves every
// module's working tree as each of its released versions. The latest version is what a
// release made from this tree would be; older ones are stand-ins with the same content, there
// only so that requirements on them resolve (no earlier tree is needed, so tags need not be
// present: CI clones without them).
//
// Zips are built as the go command builds them from a repository (golang.org/x/mod/zip):
// nested modules, vendor directories and version-control metadata are left out.
func (r *Repo) WriteProxy(dir string) error {
	at := time.Now().UTC().Truncate(time.Second)
	for _, m := range r.Modules {
		if len(m.Released) == 0 {
			continue
		}
		esc, err := module.EscapePath(m.Path)
		if err != nil {
			return err
		}
		vdir := filepath.Join(dir, filepath.FromSlash(esc), "@v")
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return err
		}
		gomod, err := os.ReadFile(filepath.Join(r.Root, m.Dir, "go.mod"))
		if err != nil {
			return err
		}
		for _, v := range m.Released {
			info, _ := json.Marshal(struct {
				Version string
				Time    time.Time
			}{v, at})
			if err := os.WriteFile(filepath.Join(vdir, v+".info"), info, 0o644); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(vdir, v+".mod"), gomod, 0o644); err != nil {
				return err
			}
			if err := writeZip(filepath.Join(vdir, v+".zip"), module.Version{Path: m.Path, Version: v}, filepath.Join(r.Root, m.Dir)); err != nil {
				return err
			}
		}
		list := strings.Join(m.Released, "\n") + "\n"
		if err := os.WriteFile(filepath.Join(vdir, "list"), []byte(list), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeZip(path string, v module.Version, src string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := modzip.CreateFromDir(f, v, src); err != nil {
		return fmt.Errorf("zip %s@%s: %w", v.Path, v.Version, err)
	}
	return nil
}
